"""The notebooks in notebooks/ run top to bottom.

Each notebook is executed with nbclient in a fresh kernel running this very interpreter, in a
temporary working directory, with ``KVQ_NOTEBOOK_SMALL=1`` (tiny networks and budgets: the
numbers are meaningless, the mechanics are what is checked), and must leave its results
files behind and print its tables.  The three take well under a minute and a half on 2 CPU cores;
``tlc.ipynb`` needs the TLC data set, which is not shipped, and is skipped without it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quick_start.ipynb", "paper_walkthrough.ipynb", "custom_problem.ipynb", "tlc.ipynb")
# the TLC data set is not shipped: tlc.ipynb runs only where it is (KVQ_TLC_DATA, or next to the repository)
TLC_DATA = Path(os.environ.get("KVQ_TLC_DATA", ROOT.parent / "shared" / "refdata" / "tlc" / "TLC_dataset.xlsx"))
KERNEL = "kvq-tests-python"
CELL_TIMEOUT = 300  # seconds per cell
BURGERS_RULES = ("pde", "ic", "bc_left", "bc_right")


@pytest.fixture(scope="session")  # once per worker, however xdist orders the tests
def jupyter_path(tmp_path_factory) -> Path:
    """A folder holding a kernelspec that starts ``sys.executable``: the kernel then imports
    the kvq under test, whatever a ``python3`` kernel resolves to on this machine."""
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (kvq tests)",
        "language": "python",
    }))
    return base


def _prepend(var: str, value: str) -> str:
    old = os.environ.get(var, "")
    return value + (os.pathsep + old if old else "")


def run(name: str, workdir: Path, jupyter_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Execute notebook ``name`` in ``workdir`` (small mode); return it with its outputs."""
    monkeypatch.setenv("JUPYTER_PATH", _prepend("JUPYTER_PATH", str(jupyter_path)))
    monkeypatch.setenv("PYTHONPATH", _prepend("PYTHONPATH", str(ROOT)))  # kvq even when not installed
    monkeypatch.setenv("KVQ_NOTEBOOK_SMALL", "1")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) if any cell fails
    return nb


def text(nb) -> str:
    """Everything the code cells printed or returned as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def test_notebooks_are_stored_clean_and_have_a_small_mode():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, name
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs before saving"
        assert "KVQ_NOTEBOOK_SMALL" in code[0].source, f"{name}: the first code cell must read KVQ_NOTEBOOK_SMALL"


@pytest.mark.slow
def test_quick_start(tmp_path, jupyter_path, monkeypatch):
    nb = run("quick_start.ipynb", tmp_path, jupyter_path, monkeypatch)
    out = text(nb)
    assert "small mode" in out
    assert "RI uniform ± se" in out and "validation MSE, all rules" in out
    for rule in BURGERS_RULES:
        assert f"\n{rule} " in out, rule
    assert images(nb) >= 1
    base = tmp_path / "results" / "quick_start"
    folder = base / "burgers"
    for f in ("results.json", "table.csv", "table.npz", "report.html", "report.md"):
        assert (folder / f).is_file(), f
    assert (base / "ri.png").stat().st_size > 0
    saved = json.loads((folder / "results.json").read_text())
    assert tuple(saved["rule_names"]) == BURGERS_RULES
    assert saved["config"]["steps"] == 40  # the small size was used


@pytest.mark.slow
def test_paper_walkthrough(tmp_path, jupyter_path, monkeypatch):
    nb = run("paper_walkthrough.ipynb", tmp_path, jupyter_path, monkeypatch)
    out = text(nb)
    assert "RI uniform ± se per sweep point" in out and "Mann-Kendall trend" in out
    for split in ("interpolation", "extrapolation"):
        assert split in out
    assert "pde & ic" in out  # interactions
    assert "|S| = 0" in out  # dependence profile
    assert "e_law" in out and "flagged as improper:" in out
    assert images(nb) >= 3
    base = tmp_path / "results" / "paper_walkthrough"
    sweep = json.loads((base / "sweep" / "sweep.json").read_text())
    assert sweep["axes"]["data"] == [0, 8, 16] and sweep["axes"]["split"] == ["interpolation", "extrapolation"]
    assert len(sweep["points"]) == 6 and all(p["done"] for p in sweep["points"])
    assert any(t["measure"] == "ri" and t["axis"] == "data" for t in sweep["trends"])
    assert (base / "sweep" / "summary.csv").is_file()
    for png in ("sweep_ri.png", "dependence.png", "interactions.png"):
        assert (base / png).stat().st_size > 0, png
    wrong = json.loads((base / "equations_wrong_e_law" / "results.json").read_text())
    assert "e_law" in wrong["rule_names"]


@pytest.mark.slow
def test_custom_problem(tmp_path, jupyter_path, monkeypatch):
    nb = run("custom_problem.ipynb", tmp_path, jupyter_path, monkeypatch)
    out = text(nb)
    for rule in ("ode", "initial", "bounded"):
        assert f"\n{rule} " in out, rule
    assert "best: iteration" in out
    assert images(nb) >= 1
    base = tmp_path / "results" / "custom_problem"
    scan = json.loads((base / "scan" / "results.json").read_text())
    assert scan["rule_names"] == ["ode", "initial", "bounded"]
    tune = json.loads((base / "tune" / "tune.json").read_text())
    assert [h["iteration"] for h in tune["history"]] == [0, 1, 2]
    assert (base / "tuning.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not TLC_DATA.is_file(), reason="the TLC data set is absent (set KVQ_TLC_DATA to its path)")
def test_tlc(tmp_path, jupyter_path, monkeypatch):
    pytest.importorskip("openpyxl")
    pytest.importorskip("rdkit")
    monkeypatch.setenv("KVQ_TLC_DATA", str(TLC_DATA))
    nb = run("tlc.ipynb", tmp_path, jupyter_path, monkeypatch)
    out = text(nb)
    assert "4944 measurements" in out and "small mode" in out
    for rule in ("bounds", "monotone", "ordering", "snyder"):
        assert f"\n{rule} " in out, rule
    assert "flagged as improper:" in out and "Mann-Kendall" in out
    assert images(nb) >= 3
    base = tmp_path / "results" / "tlc"
    for folder in ("scan", "wrong"):
        saved = json.loads((base / folder / "results.json").read_text())
        assert saved["rule_names"] == ["bounds", "monotone", "ordering", "snyder"]
        assert str(TLC_DATA.parent) not in json.dumps(saved["problem"])  # the file's name only
    sweep = json.loads((base / "sweep" / "sweep.json").read_text())
    assert sweep["axes"]["data"] == [20, 40, 80] and all(p["done"] for p in sweep["points"])
