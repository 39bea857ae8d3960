"""tinygrad_nn: a small, honest reverse-mode autograd on numpy.

It grows out of the tutorial "How does a neural net, work?": a Tensor records
the computation graph, `backward()` walks it in reverse (BP1–BP4, generalized
to any graph), and layers, costs and SGD are built from those primitives.
"""

from .anomaly import AnomalyError, detect_anomaly
from .autograd import grad
from .costs import cross_entropy_cost, quadratic_cost
from .gradcheck import GradcheckError, gradcheck, numerical_grad
from .network import EpochStats, Network
from .nn import Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from .ops import exp, linear, log, matmul, relu, sigmoid, tanh
from .optim import SGD
from .perceptron import NotDifferentiableError, Perceptron, nand_gate
from .tensor import Tensor, is_grad_enabled, no_grad

__all__ = [
    "AnomalyError",
    "detect_anomaly",
    "SGD",
    "EpochStats",
    "GradcheckError",
    "Linear",
    "Module",
    "Network",
    "NotDifferentiableError",
    "Perceptron",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "Tensor",
    "cross_entropy_cost",
    "exp",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "linear",
    "log",
    "matmul",
    "nand_gate",
    "no_grad",
    "numerical_grad",
    "quadratic_cost",
    "relu",
    "sigmoid",
    "tanh",
]
__version__ = "0.1.0"
