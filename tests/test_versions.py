"""The version has one source, the import stays light, and the package says it is typed."""

import importlib.metadata
import importlib.resources
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

import tinygrad_nn

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_installed_distributions():
    """pyproject reads ``tinygrad_nn.__version__`` (dynamic), so the metadata pip installed
    says the same; there is no second copy of the number to forget."""
    assert tinygrad_nn.__version__ == importlib.metadata.version("tinygrad_nn")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_numpy_in_use_is_supported():
    """The suite runs on a numpy that pyproject admits (CI pins the floor in one run)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (floor,) = [d.split(">=")[1] for d in project["dependencies"] if d.startswith("numpy>=")]
    have = tuple(int(part) for part in np.__version__.split(".")[:2])
    assert have >= tuple(int(part) for part in floor.split(".")[:2])


def test_import_loads_numpy_and_nothing_else_from_outside():
    """`import tinygrad_nn` imports numpy and the standard library only: tqdm, matplotlib
    and Jupyter are imported by the command line or a notebook when they are used."""
    # Modules without a file (cython_runtime, which numpy's compiled parts register) are
    # no imports of anything installed.
    code = ("import sys; before = set(sys.modules); import tinygrad_nn; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before "
            "if getattr(sys.modules[m], '__file__', None)})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = set(done.stdout.split())
    outside = loaded - set(sys.stdlib_module_names) - {"tinygrad_nn", "numpy"}
    assert not outside, f"import tinygrad_nn loaded {sorted(outside)}"
    assert "numpy" in loaded


def test_the_package_is_marked_typed():
    """PEP 561: py.typed ships in the package (package-data), so type checkers read the
    annotations of an installed tinygrad_nn."""
    assert importlib.resources.files("tinygrad_nn").joinpath("py.typed").is_file()
