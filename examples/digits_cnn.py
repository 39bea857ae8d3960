"""A small convolutional network on the embedded 8x8 digits, in seconds (sec. 6.1's idea).

Each digit is an image again, (1, 8, 8), not 64 unrelated inputs: conv3x3(16)-ReLU-pool2x2
shares one set of 3x3 weights across the image, then one Linear layer reads the (16, 4, 4)
maps. PyTorch's default initialisation, softmax cross-entropy of the logits, Adam (lr 0.003,
mini-batches of 32), trained by `fit`, the library's one training loop. Compare
examples/digits.py, the best MLP found (98.33% of the validation split, the mean of seeds
0-4; 99.0% with seed 0).

Run: python examples/digits_cnn.py [--epochs N]
"""

import argparse
import time

import numpy as np

from tinygrad_nn import costs, datasets, nn, optim
from tinygrad_nn.training import evaluate, fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=15)
args = parser.parse_args()


def images(split: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
    return split.X.reshape(-1, 1, 8, 8), split.labels  # rows back into 8x8 images


train, validation, test = datasets.load_digits()
rng = np.random.default_rng(0)
model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(16 * 4 * 4, 10, rng=rng))
opt = optim.Adam(model.parameters(), lr=0.003)
start = time.perf_counter()
fit(model, costs.cross_entropy, opt, images(train), args.epochs, 32, images(validation),
    seed=0, verbose=False)
seconds = time.perf_counter() - start
for name, split in (("Validation", validation), ("Test", test)):
    result = evaluate(model, images(split))
    print(f"{name} accuracy: {result.correct} / {result.total} "
          f"({100 * result.accuracy:.2f}%)")
print(f"Trained in {seconds:.1f} s")
