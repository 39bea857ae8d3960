"""The tutorial's session (sec. 2.3) on an MNIST-format folder: [784, 30, 10], η = 3.0.

    >>> training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    >>> net = network.Network([784, 30, 10])
    >>> net.SGD(training_data, 30, 10, 3.0, test_data=test_data)

The folder holds MNIST's four IDX files (optionally .gz): the 60,000 training images are
split 50,000 / 10,000 into training and validation, as the tutorial does, and the 10,000
t10k images are the test data. Fashion-MNIST uses the same format; on Debian,
`apt-get install dataset-fashion-mnist` puts it in /usr/share/datasets/fashion-mnist.

Run: python examples/mnist_session.py DIR [--epochs N]
"""

import argparse
import time

from tinygrad_nn import datasets, network

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data_dir", help="a folder of MNIST-format IDX files")
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

training_data, validation_data, test_data = datasets.load_mnist(args.data_dir)

start = time.perf_counter()
net = network.Network([784, 30, 10], seed=0)
net.SGD(training_data, args.epochs, 10, 3.0, test_data=test_data)
print(f"{args.epochs} epochs in {time.perf_counter() - start:.1f} s")
