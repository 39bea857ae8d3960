"""tinygrad_nn: a small, honest reverse-mode autograd on numpy.

It grows out of the tutorial "How does a neural net, work?": a Tensor records
the computation graph, `backward()` walks it in reverse (BP1–BP4, generalized
to any graph), and layers, costs and SGD are built from those primitives.
"""

from .autograd import grad
from .gradcheck import GradcheckError, gradcheck, numerical_grad
from .ops import exp, linear, log, matmul, relu, sigmoid, tanh
from .tensor import Tensor, is_grad_enabled, no_grad

__all__ = [
    "GradcheckError",
    "Tensor",
    "exp",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "linear",
    "log",
    "matmul",
    "no_grad",
    "numerical_grad",
    "relu",
    "sigmoid",
    "tanh",
]
__version__ = "0.1.0"
