"""Ten output neurons or four? The tutorial's experiment (sec. 2.1).

Four output neurons suffice to name ten digits in binary (2^4 = 16 >= 10), but the tutorial
says the network with ten outputs, one per digit, does better. Here both learn the embedded
8x8 digits with the same hidden layer of 30 sigmoid neurons, the same seed and the tutorial's
hyperparameters: [64, 30, 10] with one-hot targets, and [64, 30, 4] with the digit's 4-bit
binary code as targets (read back by rounding each output to 0 or 1).

Run: python examples/ten_vs_four_outputs.py [--epochs N]
"""

import argparse

import numpy as np

from tinygrad_nn import datasets
from tinygrad_nn.network import Network

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
epochs = parser.parse_args().epochs

train, validation, test = datasets.load_digits()
BITS = 2 ** np.arange(3, -1, -1)  # 8 4 2 1: output neuron j is bit j, most significant first


def binary_code(labels):
    return (labels[:, None] // BITS % 2).astype(float)  # 5 -> [0, 1, 0, 1]


ten = Network([64, 30, 10], seed=0)
ten.SGD((train.X, train.one_hot()), epochs, 10, 3.0, verbose=False)
ten_correct = ten.evaluate(test)

four = Network([64, 30, 4], seed=0)
four.SGD((train.X, binary_code(train.labels)), epochs, 10, 3.0, verbose=False)
decoded = (four.feedforward(test.X) > 0.5) @ BITS  # the rounded bits as a number
four_correct = int(np.sum(decoded == test.labels))

n = len(test)
print(f"{epochs} epochs, mini-batch 10, eta 3.0, quadratic cost, {n} test digits")
print(f"10 outputs (one-hot):     {ten_correct} / {n} = {100 * ten_correct / n:.1f}%")
print(f" 4 outputs (binary code): {four_correct} / {n} = {100 * four_correct / n:.1f}%")
