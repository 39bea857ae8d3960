"""The best small model found for the embedded 8x8 digits, beside the tutorial's (sec. 2.3).

The tutorial's network, [64, 30, 10] sigmoid neurons trained on the quadratic cost (eq. 2.1)
by SGD with η = 3.0, gets 96.0-97.3% of the validation split with seeds 0-3 and stalls at
83.3% with seed 4. This one gets 98.0-99.0% of it with seeds 0-4 (mean 98.33%; seed 0:
99.00%): 256 ReLU neurons with He initialisation, a softmax output trained on the
cross-entropy of its logits, Adam (lr 0.003, mini-batches of 32) and a cosine learning-rate
schedule over 30 epochs. The choices were made on the validation split only; the test split
is used once, at the end. docs/recipes.md explains each choice.

Run: python examples/digits.py [--epochs N] [--tutorial] [--seed S]
"""

import argparse
import time

import numpy as np

from tinygrad_nn import costs, datasets, nn, optim
from tinygrad_nn.network import Network
from tinygrad_nn.training import evaluate, fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--tutorial", action="store_true",
                    help="train the tutorial's [64, 30, 10] network (eta 3.0) instead")
parser.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
args = parser.parse_args()

train, validation, test = datasets.load_digits()
start = time.perf_counter()
if args.tutorial:
    model = Network([64, 30, 10], seed=args.seed)
    model.SGD(train, args.epochs, 10, 3.0, verbose=False)
else:
    rng = np.random.default_rng(args.seed)
    model = nn.Sequential(nn.Linear(64, 256, "he", rng), nn.ReLU(),
                          nn.Linear(256, 10, "he", rng))  # logits: the softmax is in the cost
    opt = optim.Adam(model.parameters(), lr=0.003)
    schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs))
    fit(model, costs.cross_entropy, opt, train, args.epochs, 32, schedule=schedule, seed=args.seed,
        verbose=False)
seconds = time.perf_counter() - start

for name, split in [("Validation", validation), ("Test", test)]:  # test: once, at the end
    result = evaluate(model, split)
    print(f"{name} accuracy: {result.correct} / {result.total} ({100 * result.accuracy:.2f}%)")
print(f"Trained in {seconds:.1f} s")
