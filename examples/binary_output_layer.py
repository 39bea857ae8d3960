"""A perceptron layer that writes the network's answer in binary (end of sec. 2.1).

The tutorial: to get four binary outputs with the accuracy of the ten-output network, append
a layer of four perceptrons with precalculated weights. Perceptron j (bit j of the answer,
most significant first) gets weight +1 from output neuron k if bit j of k is 1, else -1, and
bias 0, so it fires when the digits whose code has bit j set hold more of the activation than
the others. Whenever the winning output exceeds the sum of all the others, every perceptron
takes the sign of the winner's weight: the code is exactly the argmax in binary.

Run: python examples/binary_output_layer.py [--epochs N]
"""

import argparse

import numpy as np

from tinygrad_nn import datasets, no_grad
from tinygrad_nn.network import Network
from tinygrad_nn.nn import Sequential
from tinygrad_nn.perceptron import Perceptron

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
epochs = parser.parse_args().epochs

train, validation, test = datasets.load_digits()
net = Network([64, 30, 10], seed=0)
net.SGD(train, epochs, 10, 3.0, verbose=False)

bits = np.arange(10)[None, :] >> np.arange(3, -1, -1)[:, None] & 1  # bits[j, k]: bit j of k
encoder = Perceptron(np.where(bits == 1, 1.0, -1.0), np.zeros(4))
binary_net = Sequential(net, encoder)  # [64, 30, 10] sigmoid neurons, then 4 perceptrons

with no_grad():  # a perceptron has no useful gradient, so it refuses to be in a graph
    outputs = net(test.X).data
    codes = binary_net(test.X).data.astype(int)
winners = outputs.argmax(axis=1)
agree = np.all(codes == bits[:, winners].T, axis=1)
confident = outputs.max(axis=1) > outputs.sum(axis=1) - outputs.max(axis=1)
assert agree[confident].all(), "a confident answer was encoded wrongly"

print("image  label  argmax  code  argmax in binary")
for i in range(8):
    code = "".join(map(str, codes[i]))
    print(f"{i:5d}  {test.labels[i]:5d}  {winners[i]:6d}  {code}  {winners[i]:04b}")
print(f"The code equals the argmax in binary for {agree.sum()} of {len(test)} test images,")
print(f"including all {confident.sum()} whose winning output exceeds the sum of the others.")
