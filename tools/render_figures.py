"""Draw the pictures of the docs into docs/figures/: ``python tools/render_figures.py``.

Each figure is kept twice: its Graphviz DOT text (``NAME.dot``, written by the library,
no Graphviz needed) and the SVG that Graphviz's ``dot`` draws from it (``NAME.svg``),
with the comment naming Graphviz's version removed, so the same text gives the same
file on every run. tests/test_figures.py fails when a committed file no longer matches
what this tool draws; ``--check`` does the same here, writing nothing.

The figures (all of the documented [2, 3, 1] network, seed 0, or of the small graph
f = x·y + eˣ·y of docs/backprop.md):

- ``step-2-3-1``: one training step's graph, every tensor with its value and ∂C/∂t,
  every edge with what the backward pass sends along it (``tinygrad-nn graph``);
- ``trace-2-3-1``: the per-layer trace of ``tinygrad-nn explain``, every term of BP1–BP4;
- ``walk-f``: the graph of f with its gradients, ∂f/∂x = 3.297 + 2 on the two edges out
  of x (``tinygrad-nn explain --walk``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinygrad_nn import explain, viz  # noqa: E402  (after the path is set)

FOLDER = ROOT / "docs" / "figures"


def _step() -> str:
    cost, names = viz.training_step_graph((2, 3, 1), seed=0)
    return viz.to_dot(cost, name="step-2-3-1", names=names, gradients=True)


def _trace() -> str:
    return explain.explain((2, 3, 1), seed=0).to_dot()


def _walk() -> str:
    f, names = explain.example_graph()
    return viz.to_dot(f, name="walk-f", names=names, gradients=True)


#: name -> (what it shows, the function that writes its DOT text)
FIGURES: dict[str, tuple[str, Callable[[], str]]] = {
    "step-2-3-1": ("one training step of [2, 3, 1], values and gradients", _step),
    "trace-2-3-1": ("BP1-BP4 layer by layer on [2, 3, 1]", _trace),
    "walk-f": ("the graph of f = x*y + exp(x)*y with its gradients", _walk),
}


def sources() -> dict[str, str]:
    """Every figure's DOT text, by name."""
    return {name: make() for name, (_, make) in FIGURES.items()}


def expected_files(with_svg: bool) -> dict[str, str]:
    """File name -> the text this tool writes (the SVGs only if ``with_svg``)."""
    files = {}
    for name, dot_text in sources().items():
        files[f"{name}.dot"] = dot_text
        if with_svg:
            files[f"{name}.svg"] = viz.svg(dot_text)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="report the figures that differ from what the tool draws; "
                             "write nothing (exit status 1 if any)")
    args = parser.parse_args(argv)
    if shutil.which("dot") is None:
        print("render_figures: Graphviz's dot is not installed (apt-get install graphviz); "
              "it draws the SVGs", file=sys.stderr)
        return 2
    stale = []
    for file, text in expected_files(with_svg=True).items():
        path = FOLDER / file
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(file)
        if not args.check:
            FOLDER.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "stale" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "all figures are current")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
