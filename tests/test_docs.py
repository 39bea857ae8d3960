"""Every ```python block in the README and docs/ runs, and its shown output is checked.

Blocks written as an interactive session (`>>>`) are doctests; other blocks are
executed as scripts. Blocks of one file share a namespace, in order, so a page
reads as one session.
"""

import doctest
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in FENCE.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run_and_show_their_output(page: Path) -> None:
    blocks = python_blocks(page)
    namespace: dict = {"__name__": "__docs__"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    parser = doctest.DocTestParser()
    old = np.get_printoptions()
    try:
        for line, code in blocks:
            name = f"{page.name}:{line}"
            if ">>>" in code:
                test = parser.get_doctest(code, namespace, name, str(page), line)
                test.globs = namespace  # get_doctest copies it; the page is one session
                result = runner.run(test, clear_globs=False)
                assert result.failed == 0, f"{name}: {result.failed} example(s) failed (see above)"
            else:
                exec(compile(code, name, "exec"), namespace)  # noqa: S102
    finally:
        np.set_printoptions(**old)


MODULES = sorted(
    p.stem for p in (ROOT / "tinygrad_nn").glob("*.py") if p.stem not in {"__main__"}
)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str) -> None:
    name = "tinygrad_nn" if module == "__init__" else f"tinygrad_nn.{module}"
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{module}: {result.failed} docstring example(s) failed"


def test_every_exercise_has_a_solution_that_runs():
    """docs/exercises.md: at least eight exercises, each under an "Exercise" heading, each
    with a folded solution holding at least one Python block (run by the test above)."""
    text = (ROOT / "docs" / "exercises.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (Exercise \d+: .+)$", text, flags=re.M)[1:]
    titles, bodies = parts[::2], parts[1::2]
    assert len(titles) >= 8, titles
    for title, body in zip(titles, bodies):
        solution = body.partition("<summary>Solution</summary>")[2]
        assert solution and FENCE.search(solution), f"{title}: no solution with a Python block"
