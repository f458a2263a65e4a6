"""Real kills: a scan and a sweep SIGKILLed at several points, then re-run, end with the
numbers of an uninterrupted run (``tests/sigkill_run.py`` does the killing)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kvq.cli import main

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parent / "sigkill_run.py"
ARGS = ["--data", "12", "--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20",
        "--collocation", "32", "--no-plot"]


def run_killed(when: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``kvq args`` in a subprocess that SIGKILLs itself at ``when``."""
    return subprocess.run([sys.executable, str(RUNNER), when, "--", *args], capture_output=True, text=True,
                          timeout=300)


def table(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "table.npz") as z:
        return {k: z[k] for k in z.files}


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = table(a), table(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


def test_a_scan_killed_at_every_stage_ends_with_the_uninterrupted_numbers(tmp_path):
    reference = tmp_path / "reference"
    assert main(["scan", "burgers", *ARGS, "--max-batch", "64", "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    scan = ["scan", "burgers", *ARGS, "--out", str(out)]
    for when in ("pretrain", "train", "checkpoint", "results"):
        proc = run_killed(when, [*scan, "--max-batch", "64"])
        assert proc.returncode == -signal.SIGKILL, (when, proc.stdout, proc.stderr)
        assert not (out / "results.json").exists()
    assert (out / "results.json.tmp").exists()  # the torn write never replaced anything
    # the last kill came after every training finished; chunks of 7 instead of 64 must
    # still find every item's saved state (a checkpoint keyed by batch number would not)
    proc = run_killed("never", [*scan, "--max-batch", "7"])
    assert proc.returncode == 0, proc.stderr
    assert "resuming from the checkpoint" in proc.stdout
    assert_same_tables(out, reference)
    assert (out / ".checkpoint").is_dir()  # kept for a longer budget


def test_a_sweep_killed_while_writing_resumes_to_the_same_numbers(tmp_path):
    args = ["sweep", "burgers", "--data", "0,12", "--split", "interpolation", *ARGS[2:]]
    reference = tmp_path / "reference"
    assert main([*args, "--max-batch", "64", "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    # killed while writing the second point's results.json: the first point is done, the second's
    # trainings are in the checkpoint (a kill mid-training is the scan test's, and an interrupted
    # sweep's in tests/test_sweeps.py)
    proc = run_killed("results", [*args, "--max-batch", "64", "--out", str(out)])
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    proc = run_killed("never", [*args, "--max-batch", "64", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    points = json.loads((reference / "sweep.json").read_text())["points"]
    assert len(points) == 2
    for p in points:
        assert_same_tables(out / p["dir"], reference / p["dir"])
    assert (out / "summary.csv").read_text() == (reference / "summary.csv").read_text()
