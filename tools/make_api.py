"""Write docs/api.md from the package's docstrings: `python tools/make_api.py`.

tests/test_api_doc.py regenerates the text and fails when docs/api.md is stale or
a public name has no docstring, so the page stays true.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The modules a user imports, in reading order, with what each is for.
MODULES = [
    ("tinygrad_nn.tensor", "the Tensor and the switch that stops recording"),
    ("tinygrad_nn.autograd", "the graph walk: backward and grad"),
    ("tinygrad_nn.ops", "the primitives, each with its vector–Jacobian products"),
    ("tinygrad_nn.functional", "operations derived from the primitives"),
    ("tinygrad_nn.gradcheck", "finite differences against the autograd"),
    ("tinygrad_nn.testing", "check your own operation: strategies and check_primitive"),
    ("tinygrad_nn.anomaly", "stop at the first NaN or inf"),
    ("tinygrad_nn.backprop", "the hand-derived BP1–BP4 reference, in plain numpy"),
    ("tinygrad_nn.nn", "modules and layers"),
    ("tinygrad_nn.checkpoint", "the one model-file format: save, load, resume"),
    ("tinygrad_nn.costs", "cost functions"),
    ("tinygrad_nn.optim", "optimizers and learning-rate schedules"),
    ("tinygrad_nn.perceptron", "perceptrons and logic from NAND gates"),
    ("tinygrad_nn.network", "the tutorial's Network"),
    ("tinygrad_nn.training", "the one training loop"),
    ("tinygrad_nn.records", "what an epoch leaves behind: records, histories, lines"),
    ("tinygrad_nn.jit", "capture a training step once, replay it as plain numpy calls"),
    ("tinygrad_nn.bridge", "a model moved to PyTorch and back (needs torch)"),
    ("tinygrad_nn.datasets", "data: the embedded digits and MNIST-format files"),
    ("tinygrad_nn.viz", "the computation graph as a picture"),
    ("tinygrad_nn.explain", "BP1–BP4 beside autograd, layer by layer"),
    ("tinygrad_nn.cli", "the tinygrad-nn command"),
]


def public_names(module) -> list[str]:
    """Names a user may use: __all__ if the module has one, else what it defines itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    from tinygrad_nn.ops import Primitive

    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        defined_here = getattr(obj, "__module__", None) == module.__name__
        if defined_here or (isinstance(obj, Primitive) and module.__name__.endswith(".ops")):
            names.append(name)
    return names


def first_paragraph(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def borrowed_doc(name: str) -> str:
    """A Tensor method that only calls the op of its name shares that op's summary."""
    from tinygrad_nn import functional, ops

    for module in (ops, functional):
        if hasattr(module, name):
            return first_paragraph(getattr(module, name))
    return ""


def signature(name: str, obj) -> str:
    from tinygrad_nn.ops import Primitive

    if isinstance(obj, Primitive):  # its inputs and params are those its VJPs take after (g, out)
        if obj.vjps:
            params = [p for p in list(inspect.signature(obj.vjps[0]).parameters)[2:]
                      if p != "saved"]  # (what the forward keeps for the VJP: no argument)
        elif isinstance(obj.forward, np.ufunc):  # not differentiable: the forward's inputs
            params = ["x", "y"][:obj.forward.nin]
        else:
            params = [p for p in inspect.signature(obj.forward).parameters if p != "out"]
        return f"{name}({', '.join(params)})"
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def entries(module) -> list[tuple[str, str]]:
    """(heading, summary) for each public name, with a class's public methods."""
    out = []
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.isclass(obj):
            out.append((f"class {signature(name, obj)}", first_paragraph(obj)))
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (inspect.isfunction(member)
                                                or isinstance(member, property)):
                    continue
                target = member.fget if isinstance(member, property) else member
                if attr == "forward" and not inspect.getdoc(target):
                    continue  # a module's forward is what its class docstring describes
                heading = f"{name}.{attr}" if isinstance(member, property) else \
                    f"{name}.{signature(attr, member)}"
                # A property's own doc (property(fget, doc=...)), else its getter's: the
                # getter may be a C function whose docstring changes with Python's version.
                doc = first_paragraph(member if isinstance(member, property) else target)
                out.append((heading, doc or borrowed_doc(attr)))
        elif callable(obj):
            out.append((signature(name, obj), first_paragraph(obj)))
        else:
            out.append((name, f"constant: `{type(obj).__name__}`"))
    return out


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python tools/make_api.py`; "
             "`tests/test_api_doc.py` keeps it current.", ""]
    for module_name, purpose in MODULES:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`: {purpose}", ""]
        for heading, summary in entries(module):
            lines += [f"- `{heading}`: {summary or '(undocumented)'}"]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / "docs" / "api.md").write_text(render(), encoding="utf-8")
    print("wrote docs/api.md")
