"""The kvq command: a tiny end-to-end scan, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kvq
from kvq.cli import main

TINY_ARGS = ["--data", "12", "--max-batch", "64", "--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20",
             "--collocation", "32"]


@pytest.mark.slow
def test_tiny_scan_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["scan", "burgers", *TINY_ARGS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    for name in ("pde", "ic", "bc_left", "bc_right", "RI uniform", "RI Shapley", "FI", "all rules", "no rules"):
        assert name in captured.out
    assert "subset-steps" in captured.err  # progress was shown
    for f in ("results.json", "table.npz", "table.csv", "ri.png", "ri-steps.png"):
        assert (out / f).stat().st_size > 0
    meta = json.loads((out / "results.json").read_text())
    # the verdicts say how sure they are: caps, settledness, and how to re-run for longer
    capped = int(meta["capped_share"] * 32 + 0.5)
    assert f"trainings: {capped} of 32 " in captured.out
    if meta["unsettled"]:
        assert "UNSETTLED" in captured.out
        rerun = ("kvq scan burgers --data 12 --max-batch 64 --seeds 2 --width 8 --depth 1 --check-every 10 "
                 "--pretrain-steps 20 "
                 f"--collocation 32 --steps 40 --out {out}")
        assert f"re-run with a longer budget: {rerun}" in captured.out
        assert f"continues the trainings saved in {out}/" in captured.out
        # the advice does what it says: the capped trainings continue, nothing else trains
        assert main(rerun.split()[1:] + ["--no-plot"]) == 0
        assert "holds this scan at a shorter budget" in capsys.readouterr().out
        assert json.loads((out / "results.json").read_text())["config"]["steps"] == 40
        assert main(["scan", "burgers", *TINY_ARGS, "--out", str(out)]) == 2  # the longer run is not thrown away
        assert "longer budget (40 steps" in capsys.readouterr().err
    assert meta["trajectory"]["steps"] == [10, 20] and len(meta["trajectory"]["ri"]) == 2
    assert set(meta["elimination"]) >= {"removed", "kept", "rounds", "withheld"}
    assert meta["rule_names"] == ["pde", "ic", "bc_left", "bc_right"]
    assert meta["config"]["steps"] == 20 and meta["problem"]["n_data"] == 12
    assert meta["environment"]["versions"]["jax"]
    assert len(meta["importance"]["ri_uniform"]["mean"]) == 4
    # the saved result can be shown again without training
    assert main(["show", str(out)]) == 0
    assert "bc_right" in capsys.readouterr().out
    # a different scan into the same folder is refused before any training
    assert main(["scan", "burgers", *TINY_ARGS, "--noise", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different scan" in err and "--overwrite" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "heat"], "known problems: burgers"),
        (["scan", "burgers", "--noise=-5"], "noise"),
        (["scan", "burgers", "--noise", "abc"], "noise"),
        (["scan", "burgers", "--data", "99999"], "larger than"),
        (["scan", "burgers", "--data", "many"], "invalid int"),
        (["scan", "burgers", "--seeds", "0"], "seeds"),
        (["scan", "burgers", "--steps", "1500"], "multiple of check_every"),
        (["scan", "burgers", "--split", "diagonal"], "split"),
        (["scan", "burgers", "--preset", "huge"], "preset"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, capsys, tmp_path):
    code = None
    try:
        code = main([*args, "--out", str(tmp_path / "x")] if args[0] == "scan" else args)
    except SystemExit as e:  # argparse errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_entry_point_lists_problems():
    proc = subprocess.run([sys.executable, "-m", "kvq.cli", "problems"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "burgers" in proc.stdout and "pde (global)" in proc.stdout and "extrapolation" in proc.stdout
    for name in kvq.problems.names():  # every built-in problem with every rule and split
        block = proc.stdout.split(f"{name}:", 1)[1].split("\n  quick preset")[0]
        spec = kvq.problems.spec(name)
        assert all(f"{rule} ({kind})" in block for rule, kind in spec.rules)
        assert all(f"{split}:" in block for split in spec.splits)
    assert "ic_velocity (local)" in proc.stdout and "128 subsets" in proc.stdout


@pytest.mark.slow
def test_interrupted_scan_resumes_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    import kvq.cli as cli

    out = tmp_path / "run"
    args = ["scan", "burgers", *TINY_ARGS, "--out", str(out)]
    show = cli.ProgressPrinter.__call__

    def ctrl_c_half_way(self, phase, done, total):
        if phase == "train" and done >= total // 2:
            raise KeyboardInterrupt
        show(self, phase, done, total)

    monkeypatch.setattr(cli.ProgressPrinter, "__call__", ctrl_c_half_way)
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (out / ".checkpoint").is_dir() and not (out / "results.json").exists()
    monkeypatch.undo()
    assert main(args) == 0
    assert "resuming from the checkpoint" in capsys.readouterr().out
    assert (out / "results.json").exists() and (out / ".checkpoint").is_dir()  # kept: a longer budget continues it


@pytest.mark.slow
def test_scan_with_an_estimator_method(tmp_path, capsys):
    out = tmp_path / "newton"
    args = ["scan", "burgers", *TINY_ARGS, "--method", "newton", "--set", "damping=1e-2", "--set", "cg_iterations=20"]
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "estimating (newton)" in captured.out and "ESTIMATED by 'newton'" in captured.out
    assert "largest CG relative residual" in captured.out and "systems" in captured.err
    meta = json.loads((out / "results.json").read_text())
    assert meta["method"] == "newton" and meta["estimator"]["settings"]["damping"] == 1e-2
    assert len(meta["estimator"]["diagnostics"]["cg_iterations"]) == 2  # one row per seed
    # the same estimate again is accepted in place; the exact scan there is a different result
    assert main([*args, "--out", str(out)]) == 0
    assert main(["scan", "burgers", *TINY_ARGS, "--out", str(out)]) == 2
    assert "different scan" in capsys.readouterr().err
    assert main(["scan", "burgers", *TINY_ARGS, "--method", "newton", "--set", "dampin=1", "--out", str(tmp_path / "x")]) == 2
    assert "has no setting(s) ['dampin']" in capsys.readouterr().err


SWEEP_ARGS = ["--max-batch", "64", "--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20", "--collocation", "32"]


@pytest.mark.slow
def test_sweep_tune_and_report_commands(tmp_path, capsys):
    sw = tmp_path / "sweep"
    assert main(["sweep", "burgers", "--data", "0,6,12", "--split", "extrapolation", *SWEEP_ARGS, "--out", str(sw)]) == 0
    captured = capsys.readouterr()
    assert "Mann-Kendall" in captured.out and "extrapolation" in captured.out and "subset-steps" in captured.err
    for f in ("sweep.json", "summary.csv", "ri-data.png", "points/d6-n0-extrapolation/results.json"):
        assert (sw / f).stat().st_size > 0
    assert main(["report", str(sw)]) == 0
    html = (sw / "report.html").read_text()
    assert "data:image/png;base64," in html and "bc_right" in html

    tu = tmp_path / "tune"
    assert main(["tune", "burgers", "--iterations", "1", "--wrong", "ic", "--data", "8", *SWEEP_ARGS,
                 "--out", str(tu)]) == 0
    out = capsys.readouterr().out
    assert "best: iteration" in out and "bc_left" in out
    meta = json.loads((tu / "tune.json").read_text())
    assert len(meta["history"]) == 2 and meta["problem"]["wrong"]["rule"] == "ic"
    assert (tu / "tuning.png").stat().st_size > 0 and (tu / "iter-1" / "results.json").exists()
    assert main(["report", str(tu), "--format", "md"]) == 0 and (tu / "report.md").exists()
    capsys.readouterr()
    assert main(["show", str(sw)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("sweep: problem burgers") and "3 of 3 points done" in shown and "bc_right" in shown
    assert main(["show", str(tu)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("tuning: problem burgers") and "iteration" in shown

    assert main(["sweep", "burgers", "--data", "1,x"]) == 2
    assert "comma-separated" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "results folder" in capsys.readouterr().err


def test_a_checkpoint_of_another_scan_is_refused_without_claiming_to_resume(tmp_path, capsys):
    from kvq.engine.checkpoint import Checkpoint

    out = tmp_path / "run"
    Checkpoint(out / ".checkpoint", "0" * 16)  # left behind by a different scan
    assert main(["scan", "burgers", *TINY_ARGS, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "resuming" not in captured.out and "different scan" in captured.err


@pytest.mark.parametrize("command", ["scan", "sweep", "tune", "report", "problems", "show"])
def test_every_command_says_what_it_is_for(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    usage_end = text.index("\n\n")
    assert len(text[usage_end:].strip().splitlines()[0]) > 30  # a description under the usage line
    assert f"kvq {command}" in text.split("example")[-1]  # and an example


def test_show_names_the_preset_a_run_was_made_with():
    from kvq.cli import _nearest_preset

    standard = kvq.problems.config("kdv", "standard").to_dict()
    assert _nearest_preset("kdv", standard) == "preset standard"
    assert _nearest_preset("kdv", {**standard, "steps": 48_000, "max_batch": 7}) == "preset standard with steps=48000"
    assert _nearest_preset("kdv", kvq.problems.config("kdv", "quick", seeds=5).to_dict()) == "preset quick with seeds=5"
    # a problem built from the user's measurements has presets too
    assert _nearest_preset("tlc", kvq.problems.config("tlc", "standard").to_dict()) == "preset standard"
    far = {**standard, "steps": 10, "width": 3, "depth": 1, "learning_rate": 0.5}
    assert _nearest_preset("kdv", far) is None
    assert _nearest_preset("my_problem", standard) is None


def test_the_longer_budget_command_of_one_of_several_processes_serves_every_process():
    import argparse

    from kvq.cli import _rerun

    args = argparse.Namespace(argv=["scan", "burgers", "--coordinator", "10.0.0.1:1234", "--num-processes", "2",
                                    "--process-id", "1", "--steps", "10"], preset="standard")
    assert _rerun(args, 20, Path("out")).splitlines()[0] == (
        "kvq scan burgers --coordinator 10.0.0.1:1234 --num-processes 2 --process-id I --steps 20 --out out")


def test_progress_says_how_long_is_left_while_a_phase_runs(monkeypatch):
    import io

    from kvq import cli

    clock = iter([0.0, 0.0, 10.0, 20.0, 20.0])
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    show = cli.ProgressPrinter(out, every_s=0)  # t0 = 0
    show("train", 0, 1000)  # the phase starts at 0 s
    show("train", 250, 1000)  # 10 s for a quarter: 30 s left at that rate
    show("train", 1000, 1000)  # finished (trainings that stopped early count as done)
    first, last = out.getvalue().splitlines()
    assert first.endswith("25 subset-steps/s  30 s left if nothing more stops early")
    assert "left" not in last and "(100.0%)" in last
