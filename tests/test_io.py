"""Saving and loading results; refusing to mix two scans in one folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kvq
from kvq.coalitions import all_masks
from kvq.io import check_output_dir, load_result, save_result


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
    with pytest.warns(RuntimeWarning, match="diverged|missing|left out"):
        kvq.rule_importance(result)  # the NaN entry is reported, not averaged in
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
    with pytest.warns(RuntimeWarning):
        expected = kvq.rule_importance(result).mean
    np.testing.assert_allclose(ri["mean"], expected)
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
