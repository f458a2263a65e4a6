"""Sweeps: a point trained in the sweep's batch equals its own scan; an interrupted sweep
resumes to identical numbers; trends and the saved folder are consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kvq
from kvq.workflows.sweeps import SweepResult, plan, sweep

pytestmark = pytest.mark.slow  # every test here trains (tiny) models

OPTIONS = {"n_valid": 128}


@pytest.fixture(scope="session")  # once per worker, however xdist orders the tests
def small_sweep(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    result = sweep("burgers", tiny_config, data=[0, 8, 16], noise=[0, 20], split="interpolation",
                   problem_options=OPTIONS, out=out)
    return result, out


def test_points_in_the_batch_equal_their_own_scans(small_sweep, tiny_config):
    result, _ = small_sweep
    assert [p.label for p in result.points] == ["d0-n0-interpolation", "d8-n0-interpolation", "d16-n0-interpolation",
                                                "d0-n20-interpolation", "d8-n20-interpolation", "d16-n20-interpolation"]
    # no data (a column that skips the warm start) and a padded noisy column of another size
    for n_data, noise in ((0, 0.0), (8, 20.0)):
        alone = kvq.scan(kvq.problems.get("burgers", n_data=n_data, noise=noise, **OPTIONS), tiny_config)
        got = result.result(n_data=n_data, noise=noise)
        np.testing.assert_allclose(got.errors, alone.errors, rtol=1e-4)
        np.testing.assert_array_equal(got.steps_run, alone.steps_run)
        assert got.problem == alone.problem and got.seeds == alone.seeds
    assert result.result(n_data=16, noise=20).timing["points_in_batch"] == 6


def test_summary_trends_and_folder(small_sweep):
    result, out = small_sweep
    rows = result.summary
    assert len(rows) == 6 * 4
    ri = kvq.rule_importance(result.result(n_data=8, noise=20))
    row = next(r for r in rows if r["n_data"] == 8 and r["noise"] == 20 and r["rule"] == "ic")
    assert row["ri"] == pytest.approx(ri["ic"][0]) and row["ri_se"] == pytest.approx(ri["ic"][1])
    point = kvq.assess(result.result(n_data=8, noise=20))
    assert all(r["improper"] == (r["rule"] in point.elimination.removed) and
               r["improper_unsure"] == (r["rule"] in point.unsure) for r in rows if r["n_data"] == 8 and r["noise"] == 20)
    trends = result.trends  # data has 3 values: one test per rule, measure and noise level
    assert {(t["axis"], t["fixed"]["noise"]) for t in trends} == {("data", 0.0), ("data", 20.0)}
    assert len(trends) == 2 * 2 * 4 and all(t["n"] == 3 * 2 for t in trends)
    meta = json.loads((out / "sweep.json").read_text())
    assert all(p["done"] for p in meta["points"]) and meta["summary"] == json.loads(json.dumps(rows))
    loaded = SweepResult.load(out)
    for a, b in zip(loaded.results, result.results):
        np.testing.assert_array_equal(a.errors, b.errors)
    assert (out / "summary.csv").read_text().count("\n") == 1 + 24
    assert not (out / ".checkpoint").exists()


def test_interrupted_sweep_resumes_to_identical_numbers(tiny_config, tmp_path):
    kwargs = dict(data=[0, 16], split=["interpolation", "extrapolation"], problem_options=OPTIONS)
    reference = sweep("burgers", tiny_config, **kwargs)
    seen = []

    def interrupt(phase, done, total):
        seen.append(phase)
        if phase == "[2/2] train" and done >= total // 2:
            raise KeyboardInterrupt

    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        sweep("burgers", tiny_config, out=out, progress=interrupt, checkpoint_every_s=0, **kwargs)
    meta = json.loads((out / "sweep.json").read_text())
    assert [p["done"] for p in meta["points"]] == [True, True, False, False]  # the first split was written
    assert any((out / ".checkpoint").rglob("batch*.npz"))

    phases = []
    resumed = sweep("burgers", tiny_config, out=out, progress=lambda p, d, t: phases.append(p), **kwargs)
    assert all(p.startswith("[1/1]") for p in phases)  # only the unfinished split trained again
    for a, b in zip(resumed.results, reference.results):
        np.testing.assert_array_equal(a.errors, b.errors)
    assert not (out / ".checkpoint").exists()
    with pytest.raises(kvq.KvqError, match="different sweep"):
        sweep("burgers", tiny_config.replace(learning_rate=0.05), out=out, **kwargs)
    with pytest.raises(kvq.KvqError, match="different sweep"):
        sweep("burgers", tiny_config, out=out, seed=5, **kwargs)


def test_bad_sweeps_are_refused(tiny_config):
    with pytest.raises(kvq.KvqError, match="unknown split"):
        plan("burgers", split=["inside"])
    with pytest.raises(kvq.KvqError, match="repeats"):
        plan("burgers", data=[10, 10])
    with pytest.raises(kvq.KvqError, match="axes"):
        sweep("burgers", tiny_config, problem_options={"noise": 5})
    with pytest.raises(kvq.KvqError, match="unknown problem"):
        sweep("nope", tiny_config)
    axes, points = plan("equations")
    assert axes == {"data": [100], "noise": [0.0], "split": ["interpolation"]} and len(points) == 1


def test_a_sweep_of_your_own_problem_factory(tiny_config, tmp_path):
    import factory_problem

    swept = sweep(factory_problem.make, tiny_config, data=[4, 8], noise=[0, 10], out=tmp_path / "sw")
    assert swept.problem == "factory_problem:make" and len(swept.results) == 4
    assert [(p.n_data, p.noise) for p in swept.points] == [(4, 0.0), (8, 0.0), (4, 10.0), (8, 10.0)]
    # each point is the factory's problem at that setting, and its scan is that problem's own
    direct = kvq.scan(factory_problem.make(n_data=8, noise=10.0, split="interpolation", seed=0), tiny_config)
    np.testing.assert_allclose(swept.result(n_data=8, noise=10.0).errors, direct.errors, rtol=1e-4)
    assert swept.result(n_data=4, noise=0.0).problem["data_digest"] != swept.result(n_data=8, noise=0.0).problem["data_digest"]
    loaded = kvq.SweepResult.load(tmp_path / "sw")
    assert loaded.problem == "factory_problem:make" and loaded.fingerprint() == swept.fingerprint()
    with pytest.raises(kvq.KvqError, match="needs data"):
        sweep(factory_problem.make, tiny_config)
    with pytest.raises(kvq.KvqError, match="must return a kvq.Problem"):
        sweep(lambda **kw: None, tiny_config, data=[4])
    with pytest.raises(kvq.KvqError, match="built-in problem name or a problem factory"):
        sweep(3, tiny_config)


def test_the_command_line_takes_a_problem_factory(tmp_path, capsys):
    from kvq.cli import main

    args = ["--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20", "--max-batch", "64",
            "--no-plot"]
    assert main(["scan", "factory_problem:make", "--data", "6", *args, "--out", str(tmp_path / "scan")]) == 0
    meta = json.loads((tmp_path / "scan" / "results.json").read_text())
    assert meta["problem"]["name"] == "heat" and meta["problem"]["rule_functions"] == [
        "factory_problem.heat", "factory_problem.boundary"]
    assert main(["sweep", "factory_problem:make", "--data", "4,6", *args, "--out", str(tmp_path / "sweep")]) == 0
    assert "sweeping factory_problem:make: 2 point(s)" in capsys.readouterr().out
    assert main(["scan", "factory_problem:make", "--data", "6", "--model", "factory_problem:small_network", *args,
                 "--out", str(tmp_path / "own-network")]) == 0
    meta = json.loads((tmp_path / "own-network" / "results.json").read_text())
    assert meta["config"]["model"]["kind"] == "pure" and meta["config"]["model"]["parameters"] == 18
    assert main(["tune", "factory_problem:make", "--data", "6", "--iterations", "1", *args,
                 "--out", str(tmp_path / "tune")]) == 0
    meta = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert meta["problem"]["name"] == "heat" and len(meta["history"]) == 2
    assert main(["scan", "factory_problem:nothing", *args]) == 2
    assert "has no function 'nothing'" in capsys.readouterr().err
    assert main(["scan", "factory_problem:make", "--wrong", "ic", *args]) == 2


def test_every_point_of_an_exact_sweep_gets_the_knowledge_or_optimizer_check(tiny_config, monkeypatch):
    from kvq.workflows import sweeps

    with pytest.raises(kvq.KvqError, match="robustness|protocol"):  # said before anything trains
        sweep("burgers", tiny_config, data=[0, 8], robustness="stronger-please", problem_options=OPTIONS)
    checked = []

    def check(problem, config, result, protocol, **_):
        checked.append((problem.info["n_data"], result.problem["n_data"], protocol))
        return result

    monkeypatch.setattr(sweeps.robust, "check", check)
    sweep("burgers", tiny_config, data=[0, 8], problem_options=OPTIONS)
    assert checked == [(0, 0, "lbfgs"), (8, 8, "lbfgs")]  # each point with its own problem
    sweep("burgers", tiny_config, data=[0, 8], problem_options=OPTIONS, robustness=None)
    assert len(checked) == 2
