"""docs/equations.md stays true: every equation has a row, and every link still points at code.

The table in docs/equations.md has one row per equation of the tutorial (1.1, 1.5, 1.6-1.9,
2.1-2.6) and per backpropagation equation (BP1-BP4). Each row has four non-empty cells: the
equation's number, the equation, the functions that implement it and the tests that check it.
The last two cells hold Markdown links such as

    [ops.sigmoid](../tinygrad_nn/ops.py#L268)
    [test_sigmoid_values](../tests/test_backprop.py#L112)

This module checks each link:

- the linked file exists;
- the link text is a name defined in that file. It is written as dotted Python: `ops.sigmoid`
  (the module prefix is optional), `Network.SGD` (a method of a class), or a bare test name.
  "Defined" means a top-level `def NAME`, `class NAME` or `NAME = ...` (read with `ast`, so
  comments and strings do not count). Each later part must be defined inside the class named
  by the part before it;
- the line anchor `#L<n>` is the line where that name is defined. For a decorated function
  this is the `def` line, not the decorator.

Why line anchors are kept, and checked exactly
----------------------------------------------
Anchors are brittle: adding one line above a function moves it, and then the anchor points
somewhere else. Checking only the names would be safer, but a link into a 700-line file is
worth much less without its line. A stale anchor is also worse than none, because the
reader lands on unrelated code. So the anchors stay, this test fails as soon as one goes
stale, and mending them is one command, which rewrites every anchor in the table to the
line where its name is now defined:

    python tests/test_equations_table.py --fix

Names are never rewritten. If a function is renamed or removed, the test fails until a
person updates the row.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "equations.md"

REQUIRED = ["1.1", "1.5", "1.6", "1.7", "1.8", "1.9",
            "2.1", "2.2", "2.3", "2.4", "2.5", "2.6",
            "BP1", "BP2", "BP3", "BP4"]
COLUMNS = ["Eq.", "Equation", "Implemented by", "Checked by"]
FIX_COMMAND = "python tests/test_equations_table.py --fix"

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# --- reading the page ---------------------------------------------------------------------


def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row; `\\|` inside a cell is not a separator."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", body)]


def table(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (line number, cells) of each body row of the table headed by COLUMNS."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and split_row(line) == COLUMNS:
            rows = []
            for j in range(i + 2, len(lines)):  # i + 1 is the |---| separator
                if not lines[j].lstrip().startswith("|"):
                    break
                rows.append((j + 1, split_row(lines[j])))
            return split_row(line), rows
    raise AssertionError(f"{PAGE.name}: no table with the header | {' | '.join(COLUMNS)} |")


def page_rows() -> list[tuple[int, list[str]]]:
    return table(PAGE.read_text(encoding="utf-8"))[1]


def table_links() -> list:
    """One pytest.param (line, column, text, target) per link in the code columns of the table."""
    found = []
    for line, cells in page_rows():
        for column, cell in zip(COLUMNS, cells):
            if column in ("Implemented by", "Checked by"):
                found += [pytest.param(line, column, text, target, id=f"{cells[0]}:{text}")
                          for text, target in LINK.findall(cell)]
    return found


# --- resolving a dotted name in a Python file -----------------------------------------------


def _defined(body: list[ast.stmt], name: str) -> ast.stmt | None:
    """The first statement of `body` that defines `name` (def, class or assignment)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return node
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                return node
    return None


@cache
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def definition_line(path: Path, dotted: str) -> int:
    """The line where `dotted` (``name``, ``Class.method``, ``module.name``) is defined in path.

    Raises LookupError saying which part is missing.
    """
    parts = dotted.split(".")
    if len(parts) > 1 and parts[0] == path.stem:
        parts = parts[1:]  # "ops.sigmoid" in ops.py
    body: list[ast.stmt] = _module(path).body
    node = None
    for k, part in enumerate(parts):
        node = _defined(body, part)
        if node is None:
            where = "at the top level" if k == 0 else f"in class {parts[k - 1]}"
            raise LookupError(f"{part!r} is not defined {where} of {path.relative_to(ROOT)}")
        if k < len(parts) - 1:
            if not isinstance(node, ast.ClassDef):
                raise LookupError(f"{part!r} in {path.relative_to(ROOT)} is not a class, so "
                                  f"{'.'.join(parts[k + 1:])!r} cannot be defined in it")
            body = node.body
    return node.lineno


def split_target(target: str) -> tuple[Path, int | None]:
    """A relative link target as (absolute path, line or None)."""
    file_part, _, anchor = target.partition("#")
    path = (PAGE.parent / file_part).resolve()
    match = re.fullmatch(r"L(\d+)", anchor)
    return path, int(match.group(1)) if match else None


# --- the tests ------------------------------------------------------------------------------


def test_the_table_has_one_complete_row_per_equation():
    rows = page_rows()
    by_equation: dict[str, list[int]] = {}
    for line, cells in rows:
        assert len(cells) == len(COLUMNS), (
            f"{PAGE.name}:{line}: {len(cells)} cells, expected {len(COLUMNS)} "
            f"({' | '.join(COLUMNS)}); a | inside a cell must be written \\|")
        for column, cell in zip(COLUMNS, cells):
            assert cell, f"{PAGE.name}:{line}: the {column!r} cell is empty"
        by_equation.setdefault(cells[0], []).append(line)
    missing = [eq for eq in REQUIRED if eq not in by_equation]
    assert not missing, f"{PAGE.name}: no row for {', '.join(missing)}"
    repeated = {eq: lines for eq, lines in by_equation.items() if len(lines) > 1}
    assert not repeated, f"{PAGE.name}: equations with more than one row: {repeated}"
    unknown = [eq for eq in by_equation if eq not in REQUIRED]
    assert not unknown, f"{PAGE.name}: rows for equations not in REQUIRED: {unknown}"


def test_every_row_links_an_implementation_and_a_test():
    for line, cells in page_rows():
        row = dict(zip(COLUMNS, cells))
        implemented = LINK.findall(row["Implemented by"])
        checked = LINK.findall(row["Checked by"])
        assert implemented, f"{PAGE.name}:{line} ({cells[0]}): no link in 'Implemented by'"
        assert checked, f"{PAGE.name}:{line} ({cells[0]}): no link in 'Checked by'"
        for text, target in implemented:
            assert target.startswith("../tinygrad_nn/"), (
                f"{PAGE.name}:{line}: implementation link {text!r} -> {target} is not into "
                f"tinygrad_nn/")
        for text, target in checked:
            assert target.startswith("../tests/") and text.split(".")[-1].startswith("test_"), (
                f"{PAGE.name}:{line}: test link {text!r} -> {target} is not a test_ function "
                f"in tests/")


@pytest.mark.parametrize("line, column, text, target", table_links())
def test_link_names_a_definition_at_its_line(line, column, text, target):
    where = f"{PAGE.name}:{line} ({column}) [{text}]({target})"
    path, anchor = split_target(target)
    assert path.is_file(), f"{where}: {path.relative_to(ROOT)} does not exist"
    assert DOTTED.match(text), f"{where}: the link text must be a (dotted) Python name"
    assert anchor is not None, f"{where}: the link needs a line anchor #L<n>"
    try:
        defined = definition_line(path, text)
    except LookupError as err:
        pytest.fail(f"{where}: {err}")
    if anchor != defined:
        lines = path.read_text(encoding="utf-8").splitlines()
        found = repr(lines[anchor - 1].strip()[:60]) if anchor <= len(lines) else "past the end"
        pytest.fail(f"{where}: line {anchor} is {found}, but {text} is defined at line "
                    f"{defined}; run `{FIX_COMMAND}`")


def test_every_relative_link_on_the_page_exists():
    text = PAGE.read_text(encoding="utf-8")
    for label, target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or a link within the page
        path, _ = split_target(target)
        assert path.exists(), f"{PAGE.name}: [{label}]({target}): {path} does not exist"


# --- mending the anchors ----------------------------------------------------------------------


def fix_anchors(text: str) -> tuple[str, list[str]]:
    """Rewrite every table link's #L<n> to its name's definition line; report what changed."""
    table_lines = {line for line, _ in table(text)[1]}
    lines = text.splitlines(keepends=True)
    changes: list[str] = []

    def mend(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        path, old = split_target(target)
        if not path.is_file() or not DOTTED.match(label):
            return match.group(0)
        try:
            new = definition_line(path, label)
        except LookupError as err:
            changes.append(f"cannot fix [{label}]({target}): {err}")
            return match.group(0)
        if new == old:
            return match.group(0)
        changes.append(f"{label}: #L{old} -> #L{new}")
        return f"[{label}]({target.partition('#')[0]}#L{new})"

    for number in table_lines:
        lines[number - 1] = LINK.sub(mend, lines[number - 1])
    return "".join(lines), changes


if __name__ == "__main__":
    if sys.argv[1:] != ["--fix"]:
        sys.exit(f"usage: {FIX_COMMAND}")
    fixed, changes = fix_anchors(PAGE.read_text(encoding="utf-8"))
    PAGE.write_text(fixed, encoding="utf-8")
    print("\n".join(changes) or "every anchor was already right")
    if any(change.startswith("cannot fix") for change in changes):
        sys.exit("some names are no longer defined where their links point: edit those rows")
