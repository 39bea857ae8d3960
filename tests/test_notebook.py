"""examples/tutorial.ipynb runs top to bottom in a fresh kernel, and is committed without outputs.

The run needs nbclient and ipykernel (in the test extra); without them it is skipped.
"""

import json
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "tutorial.ipynb"


def test_the_committed_notebook_has_no_outputs():
    """Outputs are stripped, so a change to the notebook is a readable diff of its cells."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    for number, cell in enumerate(code, 1):
        assert cell["outputs"] == [], f"code cell {number} has outputs: strip them"
        assert cell["execution_count"] is None, f"code cell {number} has an execution count"
    assert "widgets" not in notebook["metadata"]


def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    """Every cell runs without error in a fresh kernel, in well under a minute."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # jupyter_core warns (a DeprecationWarning, an error here) until its platformdirs paths
    # are opted into; the kernel's runtime files go to the test's own folder.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    seconds = time.perf_counter() - start
    assert seconds < 60, f"the notebook took {seconds:.1f} s"
    shown = "".join(output.get("text", "") for cell in notebook.cells
                    for output in cell.get("outputs", []) if output.output_type == "stream")
    # The cells ran to their ends: the BP1-BP4 table and the test accuracy were printed.
    assert "max |BP - autograd| over all layers" in shown
    assert "digits right after" in shown
