"""A model moved to PyTorch and back: the path for users who outgrow a teaching framework.

`to_torch(model)` builds the equivalent `torch.nn.Sequential` and loads the model's
`state_dict` into it: the names match (``0.weight``, ``3.running_mean``, ...), as do the
shapes (a Linear weight is (out, in) in both), so the state dict moves as it is.
`from_torch(torch_model, model)` copies a PyTorch state dict back into a tinygrad_nn model
of the same layers. Both copy the arrays: nothing is shared between the two frameworks.
torch is imported inside the two functions only (``import tinygrad_nn`` never imports this
module, nor torch). tests/test_bridge.py checks both ways when torch is installed: the
same outputs to 1e-12 in float64, and the state back bit for bit.
"""

from __future__ import annotations

from typing import Any

from . import nn

__all__ = ["from_torch", "to_torch"]


def _torch_layer(layer: Any, torch: Any) -> Any:  # (Any: `type(layer) is` does not narrow)
    """The torch.nn layer that computes what `layer` does, with the same settings."""
    tnn = torch.nn
    kind = type(layer)
    if kind is nn.Linear:
        n_out, n_in = layer.weight.shape
        return tnn.Linear(n_in, n_out, bias=layer.bias is not None)
    if kind is nn.Conv2d:
        return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          layer.stride, layer.padding, bias=layer.bias is not None)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        return getattr(tnn, kind.__name__)(layer.num_features, layer.eps, layer.momentum)
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        return getattr(tnn, kind.__name__)(layer.kernel_size, layer.stride, layer.padding)
    made = {nn.ReLU: lambda: tnn.ReLU(), nn.Sigmoid: lambda: tnn.Sigmoid(),
            nn.Tanh: lambda: tnn.Tanh(), nn.GELU: lambda: tnn.GELU(), nn.SiLU: lambda: tnn.SiLU(),
            nn.ELU: lambda: tnn.ELU(layer.alpha),
            nn.LeakyReLU: lambda: tnn.LeakyReLU(layer.slope),
            nn.Softmax: lambda: tnn.Softmax(dim=layer.axis),
            nn.Flatten: lambda: tnn.Flatten(layer.start_axis),
            nn.Dropout: lambda: tnn.Dropout(layer.p)}
    if kind not in made:
        raise TypeError(f"to_torch: no PyTorch equivalent known for {kind.__name__}")
    return made[kind]()


def to_torch(model: nn.Sequential) -> Any:
    """The same network as a `torch.nn.Sequential` (float64, in the model's mode), weights
    and buffers copied from ``model.state_dict()``."""
    import torch

    torch_model = torch.nn.Sequential(*(_torch_layer(layer, torch) for layer in model))
    torch_model = torch_model.double().train(model.training)
    state = {name: torch.tensor(array) for name, array in model.state_dict().items()}
    torch_model.load_state_dict(state)  # strict: every name must match
    return torch_model


def from_torch(torch_model: Any, model: nn.Sequential) -> None:
    """Copy the weights and buffers of `torch_model` into `model`, in place (its
    `load_state_dict`: the names and shapes must match, or nothing changes)."""
    model.load_state_dict({name: tensor.detach().cpu().numpy().copy()
                           for name, tensor in torch_model.state_dict().items()})
