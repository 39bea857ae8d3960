"""tinygrad_nn: a small, honest reverse-mode autograd on numpy.

It grows out of the tutorial "How does a neural net, work?": a Tensor records
the computation graph, `backward()` walks it in reverse (BP1–BP4, generalized
to any graph), and layers, costs and SGD are built from those primitives.
"""

from .anomaly import AnomalyError, detect_anomaly
from .autograd import grad
from .costs import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    cross_entropy_cost,
    nll_loss,
    quadratic_cost,
)
from .gradcheck import GradcheckError, gradcheck, numerical_grad
from .jit import JitError, JitWarning, jit  # the decorator, as `tinygrad_nn.jit`
from .network import EpochStats, History, Network
from .nn import (
    ELU,
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from .ops import exp, linear, log, matmul, relu, sigmoid, tanh
from .optim import SGD, Adam, AdamW, RMSprop
from .perceptron import NotDifferentiableError, Perceptron, nand_gate
from .tensor import Tensor, as_tensor, is_grad_enabled, no_grad
from .training import fit

__all__ = [
    "Adam",
    "AdamW",
    "AnomalyError",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "ELU",
    "EpochStats",
    "Flatten",
    "GELU",
    "GradcheckError",
    "History",
    "JitError",
    "JitWarning",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "Network",
    "NotDifferentiableError",
    "Perceptron",
    "RMSprop",
    "ReLU",
    "SGD",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Tensor",
    "as_tensor",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "cross_entropy_cost",
    "detect_anomaly",
    "exp",
    "fit",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "jit",
    "linear",
    "log",
    "matmul",
    "nand_gate",
    "nll_loss",
    "no_grad",
    "numerical_grad",
    "quadratic_cost",
    "relu",
    "sigmoid",
    "tanh",
]
# The one place the version is written: pyproject.toml reads it (dynamic = ["version"]).
__version__ = "0.1.0"
