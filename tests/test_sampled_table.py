"""A table of sampled coalitions is a value table (docs/design.md §6): importances, verdicts,
reports and figures take it like a complete one.  Synthetic games only, no training."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kvq
from kvq.core.coalitions import all_masks, mask_index
from kvq.game.importance import adjusted_importance, estimate_importance, values_importance
from kvq.game.sampling import SampledResult, coalitions_of, draw, full_masks
from kvq.game.table import Sampling, ValueTable

N, SEEDS = 5, 3
NAMES = tuple(f"r{i}" for i in range(N))
CHECKS = np.array([50, 100, 150, 200])


def game(seed: int = 0, weights=(0.4, -0.3, 0.1, 0.0, 0.25), pair: float = 0.2, noise: float = 0.02) -> np.ndarray:
    """Values v [2^n, S] (decades): the rules' weights, a pair term for r0 and r1, per-seed noise."""
    masks = all_masks(N).astype(float)
    v = masks @ np.asarray(weights) + pair * masks[:, 0] * masks[:, 1]
    return v[:, None] + np.random.default_rng(seed).normal(0, noise, (2**N, SEEDS))


def sampled(v: np.ndarray, sampler: str = "msr", count: int = 12, seed: int = 0, **table) -> ValueTable:
    """The table of the coalitions ``count`` draws of ``sampler`` need (and FI's), cut from the
    complete game ``v`` [2^n, S] (or [checks, 2^n, S] for a table over the budget)."""
    draws = draw(sampler, N, count, np.random.default_rng(seed))
    masks = np.unique(np.concatenate([full_masks(N), coalitions_of(sampler, draws)]), axis=0)
    rows = [mask_index(m) for m in masks]
    errors = 10.0 ** -(v[..., rows, :] + 2)
    if errors.ndim == 3:  # a trajectory
        table |= {"errors_by_check": errors, "check_steps": CHECKS[: len(errors)]}
        errors = errors[-1]
    return ValueTable(NAMES, errors, masks=masks, sampling=Sampling(sampler, draws), **table)


def complete(v: np.ndarray) -> ValueTable:
    return ValueTable(NAMES, 10.0 ** -(v + 2))


def test_a_sampled_tables_ri_is_the_samplers_estimate_and_its_fi_the_complete_tables():
    v = game()
    for sampler in ("msr", "permutation", "kernel", "kernel-banzhaf"):
        t = sampled(v, sampler, count=6)
        assert not t.complete and complete(v).complete
        want = estimate_importance(sampler, NAMES, t.masks, -np.log10(t.errors), t.sampling.draws)
        got = kvq.rule_importance(t)
        np.testing.assert_allclose(got.per_seed, want.per_seed)
        np.testing.assert_allclose(got.se_sampling, want.se_sampling)
        assert got.weighting == kvq.sampling.WEIGHTING[sampler]
        np.testing.assert_allclose(kvq.full_importance(t).per_seed, kvq.full_importance(complete(v)).per_seed)


def test_every_coalition_drawn_gives_the_exact_uniform_ri():
    v = game(1)
    every = ValueTable(NAMES, 10.0 ** -(v + 2), masks=all_masks(N), sampling=Sampling("msr", all_masks(N)))
    np.testing.assert_allclose(kvq.rule_importance(every).per_seed, kvq.rule_importance(complete(v)).per_seed)
    np.testing.assert_allclose(kvq.rule_importance(every, "uniform").mean, values_importance(v).mean(axis=0))


def test_the_wrong_weighting_and_the_measures_that_need_every_coalition_say_why():
    t = sampled(game(), "permutation", count=3)
    with pytest.raises(
        kvq.KvqError, match="sampled with 'permutation' for the Shapley RI; ask for weighting='shapley'"
    ):
        kvq.rule_importance(t, "uniform")
    assert kvq.rule_importance(t, "shapley").weighting == "shapley"
    with pytest.raises(kvq.KvqError, match="pair interactions need every coalition.*exact scan"):
        kvq.interactions(t)
    with pytest.raises(kvq.KvqError, match="dependence profiles need every coalition"):
        kvq.dependence_profile(t)
    with pytest.raises(kvq.KvqError, match="cannot|no sub-games"):
        t.without("r0")
    assert kvq.pair_relations(t) is None


def test_a_sampled_table_checks_its_masks():
    t = sampled(game())
    keep = np.flatnonzero(t.masks.sum(axis=1) < N)  # all but the all-rules coalition
    with pytest.raises(kvq.KvqError, match="all-but-one"):
        ValueTable(NAMES, t.errors[keep], masks=t.masks[keep], sampling=Sampling("msr", np.zeros((0, N))))
    with pytest.raises(kvq.KvqError, match="distinct"):
        ValueTable(
            NAMES, np.vstack([t.errors, t.errors[:1]]), masks=np.vstack([t.masks, t.masks[:1]]), sampling=t.sampling
        )
    with pytest.raises(kvq.KvqError, match="draws need"):
        ValueTable(NAMES, t.errors[: N + 1], masks=full_masks(N), sampling=t.sampling)
    assert t.subset_label(t.row_of([1, 1, 0, 1, 1])) == "{r0, r1, r3, r4}"
    assert t.row_of(np.zeros(N, int)) in (None, *range(len(t.masks)))


def test_at_step_keeps_the_sampling_and_the_estimate_follows_the_budget():
    v = game()
    history = np.stack([0.5 * v, 0.8 * v, 0.95 * v, v])
    t = sampled(history)
    early = t.at_step(120)
    assert early.sampling is t.sampling and np.array_equal(early.masks, t.masks)
    want = estimate_importance("msr", NAMES, t.masks, -np.log10(t.errors_by_check[1]), t.sampling.draws)
    np.testing.assert_allclose(kvq.rule_importance(t, step=120).mean, want.mean)
    traj = kvq.importance.trajectory(t)
    assert traj is not None and traj["weighting"] == "uniform" and traj["ri"].shape == (4, N)


def test_a_proxy_adjusts_the_estimate_and_the_plain_one_is_kept():
    v = game(2)
    t = sampled(v, "msr", count=24, seed=3)
    proxy = 0.9 * v + 0.01  # a correlated cheap game, scored on every coalition
    rows = [mask_index(m) for m in t.masks]
    s = Sampling(
        "msr",
        t.sampling.draws,
        proxy={"method": "newton", "coalitions": 2**N, "exact": True, "beta": [1.0] * N},
        proxy_values=proxy[rows],
        proxy_per_seed=values_importance(proxy),
        proxy_se=np.zeros(N),
    )
    r = SampledResult(rule_names=NAMES, errors=t.errors, masks=t.masks, sampling=s)
    want, _ = adjusted_importance(
        "msr", NAMES, t.masks, -np.log10(t.errors), proxy[rows], s.draws, values_importance(proxy), np.zeros(N)
    )
    np.testing.assert_allclose(r.ri.mean, want.mean)
    np.testing.assert_allclose(r.plain.mean, kvq.rule_importance(t).mean)
    assert np.all(r.ri.se_sampling <= r.plain.se_sampling + 1e-12)
    assert "adjusted by a newton proxy scored on 32 coalitions" in r.table()
    with pytest.raises(kvq.KvqError, match="come together"):
        Sampling("msr", s.draws, proxy_values=proxy[rows])


def sampled_result(v_history: np.ndarray, sampler: str = "msr", count: int = 16, seeds: int = SEEDS) -> SampledResult:
    t = sampled(v_history, sampler, count=count)
    return SampledResult(
        rule_names=NAMES,
        errors=t.errors,
        masks=t.masks,
        errors_by_check=t.errors_by_check,
        check_steps=t.check_steps,
        stopped=np.ones(t.errors.shape, bool),
        seeds=tuple(range(seeds)),
        problem={"name": "toy", "rules": [{"name": n, "kind": "local"} for n in NAMES]},
        sampling=Sampling(sampler, t.sampling.draws, budget=len(t.masks)),
    )


def test_verdicts_report_and_figures_take_a_sampled_table(tmp_path):
    pytest.importorskip("matplotlib")
    from kvq.present.plots import plot_importance, plot_trajectory

    v = game(weights=(0.4, -0.8, 0.1, 0.0, 0.25), noise=0.01)
    r = sampled_result(np.stack([v, v, v, v]), count=300)  # msr: enough draws for a sure verdict
    assert isinstance(r, kvq.ScanResult) and r.method == "sampled" and r.sampler == "msr"
    settle = kvq.settledness(r)
    assert settle.known and settle.settled.all()  # every training stopped, nothing moved
    a = kvq.assess(r)
    assert a.pairs is None and "exact scan" in a.notes["pair_relations"]
    assert a.elimination.removed == ("r1",)  # the one rule that hurts
    assert a.elimination.final is None and a.elimination.kept == ("r0", "r2", "r3", "r4")
    assert a.best["trained"] == len(r.masks) and "trained coalitions" in a.best["note"]
    json.dumps(a.to_dict(), allow_nan=False)
    text = kvq.report.importance_table(r)
    assert text == r.table()
    for line in (
        "RI uniform (msr) ± se",
        "se sampling",
        "se seeds",
        f"of {2**N} coalitions trained",
        "IMPROPER",
        "pair relations: not available",
        "trained coalitions",
    ):
        assert line in text, line
    assert "ESTIMATED" not in text
    plot_importance(r, tmp_path / "ri.png")
    plot_trajectory(r, tmp_path / "steps.png")
    assert (tmp_path / "ri.png").stat().st_size > 0 and (tmp_path / "steps.png").stat().st_size > 0


def test_several_harmful_rules_in_a_sampled_table_are_withheld_not_flagged():
    v = game(weights=(0.4, -0.8, -0.9, 0.0, 0.25), noise=0.01)
    r = sampled_result(np.stack([v, v]), count=300)
    elim = kvq.eliminate(r)
    assert elim.removed == () and set(elim.sampled_withheld) == {"r1", "r2"}
    assert "withheld: r1, r2" in kvq.report.importance_table(r)
    perm = sampled_result(np.stack([v, v]), "permutation", count=4)
    assert kvq.assess(perm).elimination.weighting == "shapley"


def test_sampling_round_trips_through_json_and_arrays(tmp_path):
    s = Sampling(
        "kernel",
        draw("kernel", N, 5, np.random.default_rng(0)),
        (1,),
        40,
        0.05,
        {"method": "newton", "beta": [0.5, np.float64(1.0)], "correlation": float("nan")},
        np.ones((7, 2)),
        np.zeros((2, N)),
        np.full(N, 0.1),
    )
    meta = json.loads(json.dumps(s.to_json(), allow_nan=False))
    np.savez(tmp_path / "t.npz", errors=np.ones(3), **s.arrays())  # other keys beside them are ignored
    with np.load(tmp_path / "t.npz") as z:
        back = Sampling.from_saved(meta, z)
    assert (back.sampler, back.enumerated, back.budget, back.target_se) == ("kernel", (1,), 40, 0.05)
    assert back.proxy == {"method": "newton", "beta": [0.5, 1.0], "correlation": None}
    for name in ("draws", "proxy_values", "proxy_per_seed", "proxy_se"):
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))
    plain = Sampling.from_saved(
        Sampling("permutation", draw("permutation", N, 2, np.random.default_rng(1))).to_json(),
        Sampling("permutation", draw("permutation", N, 2, np.random.default_rng(1))).arrays(),
    )
    assert plain.proxy_values is None and plain.draws.dtype.kind == "i" and plain.draws.shape == (4, N)


def test_an_old_sampled_json_reads_back_as_a_sampled_result():
    t = sampled(game(), "msr", count=10)
    ri = estimate_importance("msr", NAMES, t.masks, -np.log10(t.errors), t.sampling.draws)
    old = json.loads(
        json.dumps(
            kvq.importance.json_ready(
                {
                    "kind": "kvq.SampledResult",
                    "rule_names": list(NAMES),
                    "sampler": "msr",
                    "budget": 20,
                    "target_se": None,
                    "seeds": [0, 1, 2],
                    "masks": t.masks,
                    "errors": t.errors,
                    "draws": t.sampling.draws,
                    "enumerated": [],
                    "ri": {
                        **ri.to_dict(),
                        "se_sampling": ri.se_sampling,
                        "se_seeds": ri.se_seeds,
                        "samples": ri.samples,
                    },
                    "fi": kvq.full_importance(t).to_dict(),
                    "plain_ri": None,
                    "proxy": {},
                    "problem": {"name": "toy"},
                    "config": {},
                    "timing": {"total_s": 1.0},
                }
            )
        )
    )
    r = kvq.sampling.SampledResult.from_dict(old)
    assert isinstance(r, kvq.ScanResult) and r.method == "sampled" and r.budget == 20 and r.plain is None
    np.testing.assert_allclose(r.ri.mean, ri.mean)
    assert "RI uniform (msr)" in r.table() and repr(r).startswith("SampledResult(problem='toy', 5 rules")
    old["proxy"] = {"method": "newton", "values": old["errors"], "beta": [0.0] * N}
    with_proxy = SampledResult.from_dict(old)
    assert "values" not in with_proxy.proxy and with_proxy.sampling.proxy_values is None
    assert "plain estimate of the same draws is shown" in with_proxy.table()
    with pytest.raises(kvq.KvqError, match="not a sampled estimate"):
        SampledResult.from_dict({"kind": "kvq.ScanResult"})


def test_a_diverged_training_is_named_by_its_mask():
    t = sampled(game())
    errors = t.errors.copy()
    k = t.row_of([1, 1, 1, 1, 0])
    errors[k, 1] = np.nan
    bad = ValueTable(NAMES, errors, masks=t.masks, sampling=t.sampling)
    ri = kvq.rule_importance(bad)
    assert ri.missing == (15,) and np.all(np.isfinite(ri.mean))
