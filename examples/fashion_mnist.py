"""A Fashion-MNIST recipe that reaches 90% on validation, beside the tutorial's network (sec. 2.3).

An MLP of [784, 512, 256, 10]: ReLU neurons with He initialisation, dropout 0.2 after each
hidden layer, a softmax output trained on the cross-entropy of its logits, Adam (lr 0.001,
mini-batches of 128) and a cosine learning-rate schedule over 40 epochs, all in float32.
It was chosen and tuned on the validation split (the last 10,000 of the 60,000 training
images, the tutorial's split); the test split is used once, at the very end.
docs/recipes.md has the ablations, what each choice buys, and the commands.

--optimizer sgd, --schedule none and --dropout 0 take one ingredient out; --tutorial trains
the tutorial's [784, 30, 10] sigmoid network (quadratic cost, eq. 2.1, η = 3.0) instead.

Run: python examples/fashion_mnist.py DIR [--epochs N] [--tutorial] [...]
"""

import argparse
import time

import numpy as np

from tinygrad_nn import costs, datasets, nn, optim
from tinygrad_nn.network import Network
from tinygrad_nn.training import cast_parameters, evaluate, fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data_dir", help="a folder of MNIST-format IDX files")
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                    help="sgd: plain SGD, lr 0.1")
parser.add_argument("--schedule", choices=["cosine", "none"], default="cosine")
parser.add_argument("--dropout", type=float, default=0.2)
parser.add_argument("--tutorial", action="store_true")
parser.add_argument("--seed", type=int, default=0, help="seeds the weights, dropout and order")
args = parser.parse_args()

train, validation, test = datasets.load_mnist(args.data_dir, dtype=np.float32)
start = time.perf_counter()
if args.tutorial:
    model = Network([784, 30, 10], seed=args.seed)
    model.SGD(train, args.epochs, 10, 3.0, test_data=validation)
else:
    rng = np.random.default_rng(args.seed)
    layers = []
    for n_in, n_out in [(784, 512), (512, 256)]:
        layers += [nn.Linear(n_in, n_out, "he", rng), nn.ReLU(), nn.Dropout(args.dropout, rng)]
    model = nn.Sequential(*layers, nn.Linear(256, 10, "he", rng))  # logits; softmax in the cost
    cast_parameters(model, np.float32)  # float32 weights and data: half the memory traffic
    if args.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=0.001)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1)
    cosine = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs))
    fit(model, costs.cross_entropy, opt, train, args.epochs, 128, validation,
        schedule=cosine if args.schedule == "cosine" else None, seed=args.seed)
seconds = time.perf_counter() - start

for name, split in [("Validation", validation), ("Test", test)]:  # test: once, at the end
    result = evaluate(model, split)
    print(f"{name} accuracy: {result.correct} / {result.total} ({100 * result.accuracy:.2f}%)")
print(f"Trained in {seconds:.1f} s")
