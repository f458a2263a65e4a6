"""kvq bench: the timing table of the engine on this machine, at a tiny size."""

from __future__ import annotations

import json

import pytest

from kvq.workflows.bench import bench, bench_table, step_flops
from kvq.cli import main

pytestmark = pytest.mark.slow  # compiles and times tiny trainings


@pytest.fixture(scope="session")  # once per worker, however xdist orders the tests
def heat():
    import factory_problem

    return factory_problem.make(n_data=6, noise=0.0, split="interpolation", seed=0)


def test_bench_times_both_modes_and_scales(heat):
    said = []
    result = bench(heat, "quick", collocation=16, steps=4, repeats=2, batch_sizes=(2,), devices=[1], peak=False,
                   progress=said.append)
    assert result["subsets"] == 4 and result["rules"] == list(heat.rule_names)
    for mode in ("batched", "one_at_a_time"):
        m = result["modes"][mode]
        assert len(m["seconds"]) == 2 and m["seconds_median"] == pytest.approx(sum(m["seconds"]) / 2)
        assert m["subset_steps_per_s"] == pytest.approx(4 * 4 / m["seconds_median"])
        assert m["flops_per_s"] > 0 and m["compile_s"] > 0
    ratio = result["modes"]["batched"]["subset_steps_per_s"] / result["modes"]["one_at_a_time"]["subset_steps_per_s"]
    assert result["speedup_batched_vs_one_at_a_time"] == pytest.approx(ratio)
    assert [r["max_batch"] for r in result["batch_scaling"]] == [2]
    assert [r["devices"] for r in result["device_scaling"]] == [1]
    assert result["peak_memory_bytes"] > 0 and "matmul_peak_flops_per_s" not in result
    assert any("one at a time" in s for s in said)
    text = bench_table(result)
    assert "batched vs one at a time" in text and "subset-steps/s" in text and "devices: 1:" in text


def test_a_step_with_more_rules_costs_more_flops(heat):
    from kvq.core.config import ScanConfig
    from kvq.engine.batched import Engine

    engine = Engine.prepare(heat, ScanConfig.preset("quick", seeds=1, collocation=16, pretrain_steps=0,
                                                    warm_start=False, steps=4, check_every=4, grouping=heat.rule_names))
    none, first, both = step_flops(engine, ()), step_flops(engine, (0,)), step_flops(engine, (0, 1))
    assert 0 < none < first < both


def test_the_command_line_writes_json_and_refuses_bad_input(heat, tmp_path, capsys, monkeypatch):
    assert main(["bench", "nope"]) == 2
    assert "unknown problem" in capsys.readouterr().err
    assert main(["bench", "--collocation", "0"]) == 2
    assert "--collocation" in capsys.readouterr().err
    assert main(["bench", "--devices", "64", "--steps", "2", "--repeats", "1", "--collocation", "8"]) == 2
    assert "device counts" in capsys.readouterr().err
    import kvq.bench

    monkeypatch.setattr(kvq.bench.problems, "get", lambda name: heat)  # a 2-rule stand-in keeps it quick
    peak = kvq.bench.matmul_peak
    monkeypatch.setattr(kvq.bench, "matmul_peak", lambda: peak(256, 2))  # the same measurement, smaller
    out = tmp_path / "b.json"
    # the sizes of the test above: its compiled programs come from the compilation cache
    assert main(["bench", "burgers", "--preset", "quick", "--collocation", "16", "--steps", "4", "--repeats", "1",
                 "--batch-sizes", "2", "--devices", "1", "--out", str(out)]) == 0
    meta = json.loads(out.read_text())
    assert meta["subsets"] == 4 and meta["matmul_peak_flops_per_s"] > 0 and meta["steps_per_subset"] == 4
    assert f"kvq bench: {heat.name} (2 rules, 4 subsets), quick network" in capsys.readouterr().out
