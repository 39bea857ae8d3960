"""Ten output neurons or four? The tutorial's experiment (sec. 2.1).

Four output neurons suffice to name ten digits in binary (2^4 = 16 >= 10), but the tutorial
says the network with ten outputs, one per digit, does better. Here both learn the embedded
8x8 digits with the same hidden layer of 30 sigmoid neurons, the same seeds and the tutorial's
hyperparameters: [64, 30, 10] with one-hot targets, and [64, 30, 4] with the digit's 4-bit
binary code as targets (read back by rounding each output to 0 or 1). One seed settles
nothing: the gap between the two is of the size of the spread from seed to seed, so each seed
(initial weights and shuffling) is a run of its own, and the last lines sum them up. With
seeds 0-4 and 30 epochs (the default run below) ten outputs get 290, 288, 292, 291, 250 of the
300 validation digits and four get 277, 285, 283, 283, 281: ten win for 4 of 5 seeds (median
290 against 283), but seed 4's ten-output network stalls at 250, so the means are level.

Run: python examples/ten_vs_four_outputs.py [--epochs N] [--seeds K]
"""

import argparse

import numpy as np

from tinygrad_nn import datasets
from tinygrad_nn.network import Network

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. K-1")
args = parser.parse_args()

train, validation, _ = datasets.load_digits()
BITS = 2 ** np.arange(3, -1, -1)  # 8 4 2 1: output neuron j is bit j, most significant first


def binary_code(labels):
    return (labels[:, None] // BITS % 2).astype(float)  # 5 -> [0, 1, 0, 1]


n, results = len(validation), []  # a choice between models: made on the validation split
print(f"{args.epochs} epochs, mini-batch 10, eta 3.0, quadratic cost, {n} validation digits")
for seed in range(args.seeds):
    ten = Network([64, 30, 10], seed=seed)
    ten.SGD((train.X, train.one_hot()), args.epochs, 10, 3.0, verbose=False)
    four = Network([64, 30, 4], seed=seed)
    four.SGD((train.X, binary_code(train.labels)), args.epochs, 10, 3.0, verbose=False)
    decoded = (four.feedforward(validation.X) > 0.5) @ BITS  # the rounded bits as a number
    results.append((ten.evaluate(validation), int(np.sum(decoded == validation.labels))))
    print(f"seed {seed}: 10 outputs {results[-1][0]} / {n}, 4 outputs {results[-1][1]} / {n}")
for name, column in (("10 outputs (one-hot):    ", 0), (" 4 outputs (binary code):", 1)):
    c = np.array([r[column] for r in results])
    print(f"{name} mean {c.mean():.1f} / {n} = {100 * c.mean() / n:.1f}%, "
          f"median {np.median(c):g}, range {c.min()}-{c.max()}")
wins = sum(t > f for t, f in results)
print(f"10 outputs beat 4 for {wins} of {len(results)} seeds")
