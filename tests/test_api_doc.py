"""docs/api.md is generated from the docstrings and must be current and complete."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "tools" / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_is_current() -> None:
    expected = load_generator().render()
    actual = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is stale: run `python tools/make_api.py`"


def test_every_public_name_is_documented() -> None:
    undocumented = [line for line in load_generator().render().splitlines()
                    if line.endswith("(undocumented)")]
    assert not undocumented, "public names without a docstring:\n" + "\n".join(undocumented)


def test_every_module_of_the_package_is_on_the_page() -> None:
    listed = {name for name, _ in load_generator().MODULES}
    modules = {f"tinygrad_nn.{p.stem}" for p in (ROOT / "tinygrad_nn").glob("*.py")
               if not p.stem.startswith("_")}
    assert modules <= listed, f"modules missing from tools/make_api.py: {modules - listed}"


def test_signatures_read_like_the_docs():
    """No public signature spells out numpy's typing internals (issue 20: help() of
    backprop.backprop was 1,300 characters of numpy._typing._array_like._SupportsArray)."""
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert "numpy._typing" not in page and "_SupportsArray" not in page
