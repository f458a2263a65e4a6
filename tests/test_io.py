"""Saving and loading results; refusing to mix two scans in one folder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import kvq
from kvq.core.coalitions import all_masks
from kvq.store.results import check_output_dir, load_result, save_result


def _result(seed: int = 0, n: int = 3, problem_name: str = "synthetic") -> kvq.ScanResult:
    rng = np.random.default_rng(seed)
    errors = rng.uniform(1e-3, 1e-1, (2**n, 2, 2))
    errors[5, 1] = np.nan
    diverged = np.zeros((2**n, 2), bool)
    diverged[5, 1] = True
    return kvq.ScanResult(
        rule_names=tuple(f"r{i}" for i in range(n)),
        errors=errors.mean(axis=-1),
        errors_by_output=errors,
        output_names=("u", "v"),
        steps_run=rng.integers(1, 100, (2**n, 2)),
        diverged=diverged,
        seeds=(3, 4),
        problem={"name": problem_name, "n_data": 10},
        config=kvq.ScanConfig.preset("quick").to_dict(),
        timing={"total_s": 1.5},
    )


def test_round_trip(tmp_path):
    result = _result()
    assert kvq.rule_importance(result).missing  # the NaN entry is reported as a value, not averaged in
    save_result(result, tmp_path)
    back = kvq.ScanResult.load(tmp_path)
    np.testing.assert_array_equal(back.errors, result.errors)
    np.testing.assert_array_equal(back.errors_by_output, result.errors_by_output)
    np.testing.assert_array_equal(back.masks, result.masks)
    np.testing.assert_array_equal(back.steps_run, result.steps_run)
    np.testing.assert_array_equal(back.diverged, result.diverged)
    assert back.rule_names == result.rule_names and back.seeds == (3, 4) and back.output_names == ("u", "v")
    assert back.problem == result.problem and back.config == result.config
    assert kvq.ScanConfig.from_dict(back.config) == kvq.ScanConfig.preset("quick")
    meta = json.loads((tmp_path / "results.json").read_text())
    assert meta["diverged"] == [{"mask": 5, "rules_on": ["r0", "r2"], "seed": 4}]
    ri = meta["importance"]["ri_uniform"]
    # RI computed here from the errors alone: per seed the mean over the pairs (S, S + {i}) that
    # both trained without diverging, then the mean over seeds
    v = -np.log10(result.errors)
    v[result.diverged] = np.nan
    index = {tuple(row): k for k, row in enumerate(result.masks)}
    expected = []
    for i in range(3):
        pairs = [(index[tuple(np.where(np.arange(3) == i, 1, row))], k) for k, row in enumerate(result.masks)
                 if row[i] == 0]
        gains = np.array([v[on] - v[off] for on, off in pairs])  # [pairs, seeds]
        expected.append(np.mean([np.nanmean(g) for g in gains.T]))
    np.testing.assert_allclose(ri["mean"], expected, rtol=1e-6)
    assert {"ri_uniform", "ri_shapley", "fi", "interactions_uniform", "interactions_shapley", "dependence"} <= set(meta["importance"])
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0].startswith("mask,r0,r1,r2,seed,mse,mse_u,mse_v,steps_run,diverged")
    assert len(lines) == 1 + 8 * 2


def test_saved_masks_must_agree_with_rule_names(tmp_path):
    save_result(_result(), tmp_path)
    meta = json.loads((tmp_path / "results.json").read_text())
    meta["rule_names"] = ["r0", "r1"]  # a rule dropped: 4 masks expected, 8 stored
    (tmp_path / "results.json").write_text(json.dumps(meta))
    with pytest.raises(kvq.KvqError, match="disagree|shape"):
        load_result(tmp_path)


def test_masks_in_wrong_order_are_rejected():
    masks = all_masks(2)[::-1]
    with pytest.raises(kvq.KvqError, match="disagree"):
        kvq.ValueTable(("a", "b"), np.ones((4, 1)), masks=masks)


def test_folder_with_a_different_scan_is_refused(tmp_path):
    save_result(_result(problem_name="one"), tmp_path)
    save_result(_result(problem_name="one"), tmp_path)  # the same scan again: fine
    with pytest.raises(kvq.KvqError, match="different scan"):
        save_result(_result(problem_name="two"), tmp_path)
    save_result(_result(problem_name="two"), tmp_path, overwrite=True)
    assert kvq.ScanResult.load(tmp_path).problem["name"] == "two"


def test_loading_a_folder_without_results(tmp_path):
    with pytest.raises(kvq.KvqError, match="no kvq result"):
        load_result(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(kvq.KvqError, match="not a folder"):
        check_output_dir(tmp_path / "file", "abc", False)


def test_results_json_stays_small_with_many_rules(tmp_path):
    # raw marginal contributions grow as 2^n: they stay in the value table, not in results.json
    result = _result(n=10)
    save_result(result, tmp_path)
    meta = json.loads((tmp_path / "results.json").read_text())
    assert "samples" not in meta["importance"]["dependence"]
    assert (tmp_path / "results.json").stat().st_size < 150_000
    # what was left out is recomputed from the table
    profile = kvq.dependence_profile(load_result(tmp_path))
    assert [len(s) for s in profile.samples["r0"]][:3] == [2, 17, 72]  # seeds x C(9, k), less the missing mask 5 (r0, r2) of seed 1


def test_table_over_the_budget_round_trips(tmp_path):
    base = _result()
    steps = np.array([10, 20])
    history = np.stack([base.errors * 2, base.errors])
    result = kvq.ScanResult(base.rule_names, base.errors, base.errors_by_output, base.output_names,
                            errors_by_check=history, errors_by_check_by_output=np.stack([base.errors_by_output * 2,
                                                                                          base.errors_by_output]),
                            check_steps=steps, stopped=base.steps_run < 50, steps_run=base.steps_run,
                            diverged=base.diverged, seeds=base.seeds, problem=base.problem, config=base.config)
    save_result(result, tmp_path)
    back = load_result(tmp_path)
    np.testing.assert_array_equal(back.errors_by_check, history)
    np.testing.assert_array_equal(back.check_steps, steps)
    np.testing.assert_array_equal(back.stopped, base.steps_run < 50)
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert rows[0].endswith("stopped_early") and rows[1].split(",")[-1] == str(int(base.steps_run[0, 0] < 50))
    meta = json.loads((tmp_path / "results.json").read_text())
    # the JSON trajectory holds RI as it stood at each check, computed independently here
    v = -np.log10(history[0])
    masks = all_masks(3)
    on, off = v[masks[:, 0] == 1], v[masks[:, 0] == 0]
    expected = np.nanmean(on - off, axis=0)  # rule r0's marginal contributions at step 10, per seed
    ok = np.isfinite(expected)
    assert meta["trajectory"]["steps"] == [10, 20]
    assert meta["trajectory"]["ri"][0][0] == pytest.approx(float(np.mean(expected[ok])))
    assert meta["capped_share"] == pytest.approx(float(np.mean(~(base.steps_run < 50)[~base.diverged])))


def test_checkpoint_folders_survive_a_torn_index_and_refuse_another_scan(tmp_path):
    from kvq.engine.checkpoint import Checkpoint, stored_fingerprint

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "checkpoint.json").write_text('{"fingerpr')  # killed mid-write by an older version
    (folder / "batch0000.npz").write_bytes(b"stale")
    Checkpoint(folder, "a" * 16)  # not refused forever: the damaged folder is started afresh
    assert stored_fingerprint(folder) == "a" * 16 and not (folder / "batch0000.npz").exists()
    assert not list(folder.glob("*.tmp"))
    with pytest.raises(kvq.KvqError, match="different scan"):
        Checkpoint(folder, "b" * 16)


def _user_problem(y_shift: float = 0.0, version: str = "", weight: float = 1.0) -> kvq.Problem:
    x = np.linspace(0, 1, 12)[:, None]
    rule = kvq.Rule("slope", residual=lambda u, pts: pts[:, 0] * 0.0, points=np.linspace(0, 1, 5)[:, None],
                    weight=weight)
    return kvq.Problem("user", (rule,), kvq.Dataset(x, x + y_shift), kvq.Dataset(x, x), version=version)


def test_a_scan_is_identified_by_what_changes_its_numbers_and_nothing_else():
    from kvq.engine.identity import run_fingerprint as scan_fingerprint

    config = kvq.ScanConfig.preset("quick")
    base = scan_fingerprint(_user_problem(), config)
    # memory and layout settings do not change the numbers: a run may resume with others
    assert scan_fingerprint(_user_problem(), config.replace(max_batch=3, vectorize=2)) == base
    assert scan_fingerprint(_user_problem(), config) == base  # rebuilt from equal arrays: the same
    for changed in (_user_problem(y_shift=1e-6), _user_problem(version="v2"), _user_problem(weight=2.0)):
        assert scan_fingerprint(changed, config) != base
    assert scan_fingerprint(_user_problem(), config.replace(learning_rate=2e-3)) != base
    assert scan_fingerprint(_user_problem(), config.replace(seeds=3)) != base
    identity = _user_problem(version="v2").identity(2)
    assert identity["version"] == "v2" and len(identity["data_digest"]) == 16
    assert identity["rule_functions"][0].endswith("<lambda>")
    with pytest.raises(kvq.KvqError, match="version must be a string"):
        kvq.Problem("user", _user_problem().rules, _user_problem().train, _user_problem().valid, version=2)


def test_a_result_saved_with_other_memory_settings_is_the_same_scan(tmp_path):
    result = _result()
    save_result(result, tmp_path / "run")
    other = dataclasses.replace(result, config={**result.config, "max_batch": 5, "vectorize": 1})
    save_result(other, tmp_path / "run")  # accepted in place: the same scan
    changed = dataclasses.replace(result, config={**result.config, "learning_rate": 0.5})
    with pytest.raises(kvq.KvqError, match="different scan"):
        save_result(changed, tmp_path / "run")


def test_scan_sweep_and_tuning_folders_refuse_each_other(tmp_path):
    from kvq.store.results import FOLDER_MARKERS

    for kind, marker in FOLDER_MARKERS.items():
        folder = tmp_path / kind
        folder.mkdir()
        (folder / marker).write_text(json.dumps({"fingerprint": "a" * 16}))
        check_output_dir(folder, "a" * 16, False, kind)  # the same run: resumed
        with pytest.raises(kvq.KvqError, match=f"different {kind}"):
            check_output_dir(folder, "b" * 16, False, kind)
        check_output_dir(folder, "b" * 16, True, kind)  # replaced as asked
        for other in FOLDER_MARKERS:
            if other != kind:
                for overwrite in (False, True):  # never replaced by another kind of run
                    with pytest.raises(kvq.KvqError, match=f"holds a kvq {kind}"):
                        check_output_dir(folder, "a" * 16, overwrite, other)
