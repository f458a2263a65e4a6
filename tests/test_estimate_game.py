"""kvq.estimate_game: sampled importances of any value function, checked against games whose
values are known in closed form (sums of unanimity games) and against shapiq."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kvq
from kvq.game.sampling import DEFAULT


def unanimity(n: int, seed: int, basis: int | None = None):
    """A sum of unanimity games: value function (masks [k, n] -> [k]) and its exact
    {"shapley": c/|T| per member, "uniform": c/2^(|T|-1) per member} values."""
    rng = np.random.default_rng(seed)
    basis = basis or 2 * n
    sizes = rng.integers(1, n + 1, basis)
    sets = np.zeros((basis, n), bool)
    for row, d in enumerate(sizes):
        sets[row, rng.choice(n, d, replace=False)] = True
    c = rng.normal(0, 1, basis)

    def value(masks):
        m = np.asarray(masks, bool)
        return ((m[:, None, :] | ~sets[None]).all(axis=2) * c).sum(axis=1)

    exact = {"shapley": (sets * (c / sizes)[:, None]).sum(0), "uniform": (sets * (c / 2.0 ** (sizes - 1))[:, None]).sum(0)}
    return value, exact


NAMES6 = tuple(f"r{i}" for i in range(6))


@pytest.mark.parametrize("weighting", ["uniform", "shapley"])
def test_a_budget_of_every_coalition_gives_the_exact_value_with_no_sampling_error(weighting):
    value, exact = unanimity(6, 0)
    result = kvq.estimate_game(value, NAMES6, weighting, budget=64)
    ri = kvq.rule_importance(result)
    assert result.sampler == DEFAULT[weighting] and ri.weighting == weighting
    np.testing.assert_allclose(ri.mean, exact[weighting], atol=1e-9)
    np.testing.assert_allclose(ri.se_sampling, 0.0)
    # FI is exact: v(all) - v(all but i)
    every = np.ones((1, 6), np.int8)
    fi = value(every) - value(every - np.eye(6, dtype=np.int8))
    np.testing.assert_allclose(kvq.full_importance(result).mean, fi, atol=1e-9)


@pytest.mark.parametrize("sampler, weighting", [("regression", "shapley"), ("regression-banzhaf", "uniform")])
def test_the_regression_samplers_are_centred_and_their_error_bars_cover(sampler, weighting):
    """200 draws of 60 coalitions of an 8-rule game: the mean error is within 4 standard
    errors of zero for every rule (Shapley: the cross-fitted estimate, unbiased; uniform: the
    design-weighted fit, consistent, its bias small against its spread), and ± 2 se_sampling
    holds the exact value 85-99 % of the time."""
    n = 8
    value, exact = unanimity(n, 1)
    names = [f"r{i}" for i in range(n)]
    errors, hits = [], 0
    for seed in range(200):
        ri = kvq.rule_importance(kvq.estimate_game(value, names, weighting, sampler, budget=60, seed=seed))
        errors.append(ri.mean - exact[weighting])
        hits += int(np.sum(np.abs(ri.mean - exact[weighting]) <= 2 * ri.se_sampling))
    errors = np.array(errors)
    assert np.all(np.abs(errors.mean(0)) <= 4 * errors.std(0, ddof=1) / np.sqrt(len(errors)) + 1e-12)
    assert 0.85 <= hits / (200 * n) <= 0.99


@pytest.mark.parametrize("sampler, weighting", [("regression", "shapley"), ("regression-banzhaf", "uniform")])
def test_below_the_cross_fitted_model_the_fit_is_the_estimate_and_its_error_bar_is_the_wider_one(
    monkeypatch, sampler, weighting
):
    """20 coalitions of an 8-rule game (the cross-fitted model needs 27): over 60 draws the
    fitted estimate errs less than the unbiased one without a model, each of its error bars is
    at least the unbiased one of the same draws, and ± 2 se holds the exact value mostly."""
    from kvq.game import regression

    n = 8
    value, exact = unanimity(n, 3)
    names = [f"r{i}" for i in range(n)]

    def estimates() -> list:
        return [kvq.rule_importance(kvq.estimate_game(value, names, weighting, sampler, budget=20, seed=seed))
                for seed in range(60)]

    fitted = estimates()
    monkeypatch.setattr(regression, "SMALL_BUDGET", "unbiased")
    unbiased = estimates()
    error = {k: np.array([ri.mean - exact[weighting] for ri in got]) for k, got in (("f", fitted), ("u", unbiased))}
    assert np.abs(error["f"]).mean() < 0.7 * np.abs(error["u"]).mean()
    for f, u in zip(fitted, unbiased, strict=True):
        assert np.all(f.se_sampling >= u.se_sampling) and np.all(f.se_sampling > 0)
    se = np.array([ri.se_sampling for ri in fitted])
    assert np.mean(np.abs(error["f"]) <= 2 * se) >= 0.85


@pytest.mark.parametrize("level", ["rules", "sizes", "pairs"])
@pytest.mark.parametrize("weighting", ["uniform", "shapley"])
def test_the_design_weighted_fit_over_every_coalition_is_the_exact_value(monkeypatch, weighting, level):
    """Over all 2^n coalitions, without a ridge, the design-weighted fit of every model level is
    the exact value (Banzhaf: least squares under the uniform distribution; Shapley: the
    KernelSHAP theorem, with the ends nearly fixed for the intercept-and-rules model; a value per
    size keeps each size's residual at mean zero, which the theorem needs as well)."""
    from kvq.core.coalitions import all_masks
    from kvq.game import regression

    monkeypatch.setattr(regression, "END_MASS", 1e3)  # nearly fixed; beyond, the 1e-8 ridge floor dominates
    value, exact = unanimity(7, 11)
    masks = all_masks(7).astype(np.int8)
    got = regression._fit_importance(weighting, masks, value(masks), level=level)
    np.testing.assert_allclose(got, exact[weighting], atol=5e-4 if level == "rules" else 1e-4)  # the 1e-8 ridge floor


@pytest.mark.parametrize("weighting", ["uniform", "shapley"])
def test_the_design_weights_give_each_complete_size_its_mass_and_sampled_sizes_the_rest(weighting):
    """With sizes 1 and n - 1 held completely (FI holds the latter) besides the drawn pairs:
    complete sizes share their mass equally and in proportion to it; the weights are positive
    with mean 1."""
    import math

    from kvq.game import regression

    n = 8
    rng = np.random.default_rng(0)
    edges = np.concatenate([np.zeros((1, n), np.int8), np.ones((1, n), np.int8), np.eye(n, dtype=np.int8),
                            1 - np.eye(n, dtype=np.int8)])
    draws, _ = regression.plan_pairs(weighting, n, 60, {m.tobytes() for m in edges}, rng)
    masks = np.unique(np.concatenate([edges, draws, 1 - draws]), axis=0)
    assert [t for t in range(1, n) if (masks.sum(axis=1) == t).sum() == math.comb(n, t)][:2] == [1, 7]
    w = regression.design_weights(weighting, masks)
    assert w.shape == (len(masks),) and np.isclose(w.mean(), 1.0) and np.all(w > 0)
    size = masks.sum(axis=1)
    mass = (
        np.array([math.comb(n, t) for t in range(n + 1)], float)
        if weighting == "uniform"
        else np.array([0] + [(n - 1) / (t * (n - t)) for t in range(1, n)] + [0], float)
    )
    for t in range(1, n):
        held = size == t
        if held.sum() == math.comb(n, t):  # complete: equal weights, total in proportion to the size's mass
            assert np.allclose(w[held], w[held][0])
    complete = [t for t in range(1, n) if (size == t).sum() == math.comb(n, t)]
    if len(complete) >= 2:
        a, b = complete[:2]
        assert np.isclose(w[size == a].sum() / w[size == b].sum(), mass[a] / mass[b])


def test_the_uniform_fit_errs_less_than_the_cross_fitted_estimate_and_its_error_bars_hold(monkeypatch):
    """A 10-rule unanimity game at 102 coalitions (10 %), 20 draws: the design-weighted fit
    (kvq's uniform default) has a lower mean absolute error than the cross-fitted estimate of
    the same draws, and its ± 2 se (grouped jackknife) holds the exact value 85-99 % of the time."""
    from kvq.game import regression

    n = 10
    names = [f"r{i}" for i in range(n)]

    def run() -> tuple[float, float]:
        err, hit = [], []
        for seed in range(20):
            value, exact = unanimity(n, 100 + seed)
            ri = kvq.rule_importance(kvq.estimate_game(value, names, "uniform", budget=102, seed=seed))
            e = np.abs(ri.mean - exact["uniform"])
            err.append(e.mean())
            hit.append(np.mean(e <= 2 * ri.se_sampling))
        return float(np.mean(err)), float(np.mean(hit))

    fitted, coverage = run()
    monkeypatch.setattr(regression, "FITTED_WEIGHTINGS", ())
    adjusted, _ = run()
    assert fitted < adjusted
    assert 0.85 <= coverage <= 0.99


def test_the_uniform_fit_picks_its_model_by_held_out_error(monkeypatch):
    """10 rules, 300 coalitions, 10 draws: on a game with a strong size effect the fit picks a
    model with a value per size and is exact, where the intercept-and-rules model errs; on an
    additive game with noise it does about as well as that simpler model."""
    from kvq.core.coalitions import all_masks
    from kvq.game import regression
    from kvq.game.importance import values_importance

    n = 10
    names = [f"r{i}" for i in range(n)]
    w = np.random.default_rng(0).normal(size=n)
    bits = 1 << np.arange(n)
    noise = np.random.default_rng(1).normal(size=2**n)
    games = {
        "additive": lambda m: np.asarray(m) @ w + 0.3 * noise[np.asarray(m, int) @ bits],
        "sized": lambda m: np.asarray(m) @ w + 3 * np.sin(np.asarray(m).sum(axis=1)),
    }
    every = all_masks(n).astype(np.int8)

    def mae(value, exact) -> float:
        return float(np.mean([np.abs(kvq.rule_importance(kvq.estimate_game(
            value, names, "uniform", budget=300, seed=seed)).mean - exact).mean() for seed in range(10)]))

    chosen = {k: mae(v, values_importance(v(every)[:, None], "uniform")[0]) for k, v in games.items()}
    monkeypatch.setattr(regression, "richest_level", lambda masks: "rules")
    simple = {k: mae(v, values_importance(v(every)[:, None], "uniform")[0]) for k, v in games.items()}
    assert chosen["sized"] < 1e-6 and simple["sized"] > 0.03
    assert chosen["additive"] <= 1.2 * simple["additive"]


def test_the_uniform_fit_leaves_out_a_diverged_training_for_its_seed_only():
    """An additive 8-rule game over two seed columns, NaN (a diverged training) in some
    coalitions of the second: both seeds' fitted estimates are the exact weights."""
    n = 8
    w = np.linspace(-1.0, 1.0, n)

    def value(masks):
        m = np.asarray(masks, float)
        v = np.stack([m @ w, m @ w + 0.01], axis=1)
        v[(m[:, 0] == 1) & (m[:, 2] == 1) & (m.sum(axis=1) == 4), 1] = np.nan
        return v

    result = kvq.estimate_game(value, [f"r{i}" for i in range(n)], "uniform", budget=120, seed=0)
    assert np.isnan(np.asarray(result.errors)).any()
    ri = kvq.rule_importance(result)
    np.testing.assert_allclose(ri.per_seed, np.stack([w, w]), atol=1e-6)
    assert np.all(np.isfinite(ri.se_sampling))


def test_the_table_says_which_estimate_is_a_fit():
    """The uniform sampler's table says its RI is a fit (consistent, not unbiased); the
    Shapley sampler's cross-fitted estimate does not carry that line."""
    value, _ = unanimity(8, 2)
    names = [f"r{i}" for i in range(8)]
    uniform = kvq.estimate_game(value, names, "uniform", budget=80, seed=0).table()
    shapley = kvq.estimate_game(value, names, "shapley", budget=80, seed=0).table()
    assert "least-squares fit" in uniform and "consistent, not unbiased" in uniform
    assert "least-squares fit" not in shapley


def test_one_pair_drawn_from_both_sides_is_one_pair_and_gives_no_error_bar():
    from kvq.game.regression import regression_importance
    from kvq.game.table import full_masks

    n = 7
    value, _ = unanimity(n, 5)
    side = np.eye(n, dtype=np.int8)[5:6]
    draws = np.concatenate([side, 1 - side])  # the pair (e5, 1 - e5), drawn once by each side
    masks = np.concatenate([full_masks(n), np.zeros((1, n), np.int8), side])
    _, se, _ = regression_importance("regression", masks, value(masks)[:, None], draws)
    assert np.all(np.isinf(se))


def test_the_default_samplers_beat_the_old_ones_on_a_unanimity_game():
    """At 20 % of the coalitions of a 10-rule game, over 10 draws, the regression samplers'
    mean absolute error is below that of permutation (Shapley) and msr (Banzhaf)."""
    n = 10
    names = [f"r{i}" for i in range(n)]
    mae: dict[str, list[float]] = {}
    for seed in range(10):
        value, exact = unanimity(n, 100 + seed)
        for sampler, weighting in (("regression", "shapley"), ("permutation", "shapley"),
                                   ("regression-banzhaf", "uniform"), ("msr", "uniform")):
            ri = kvq.rule_importance(kvq.estimate_game(value, names, weighting, sampler, budget=205, seed=seed))
            mae.setdefault(sampler, []).append(float(np.mean(np.abs(ri.mean - exact[weighting]))))
    assert np.mean(mae["regression"]) < np.mean(mae["permutation"])
    assert np.mean(mae["regression-banzhaf"]) < np.mean(mae["msr"])


def test_seed_columns_give_a_spread_over_seeds_and_shapiq_agrees_with_the_exact_value():
    shapiq = pytest.importorskip("shapiq")
    value, exact = unanimity(5, 2)
    noise = np.random.default_rng(3).normal(0, 0.01, (32, 3))
    bits = 1 << np.arange(5)

    def noisy(masks):
        return value(masks)[:, None] + noise[np.asarray(masks, int) @ bits]

    result = kvq.estimate_game(noisy, [f"r{i}" for i in range(5)], "shapley", budget=32)
    ri = kvq.rule_importance(result)
    assert ri.per_seed.shape == (3, 5) and np.all(ri.se_seeds > 0)
    theirs = shapiq.ExactComputer(lambda c: noisy(c).mean(axis=1), n_players=5)("SV", order=1)
    np.testing.assert_allclose(ri.mean, [theirs[(i,)] for i in range(5)], atol=1e-9)
    np.testing.assert_allclose(ri.mean, exact["shapley"], atol=0.05)


def test_target_se_stops_once_every_rule_is_below_it():
    value, _ = unanimity(10, 4)
    names = [f"r{i}" for i in range(10)]
    loose = kvq.estimate_game(value, names, "uniform", budget=800, target_se=0.5)
    tight = kvq.estimate_game(value, names, "uniform", budget=800)
    assert len(loose.masks) < len(tight.masks)
    assert np.max(kvq.rule_importance(loose).se_sampling) <= 0.5


def test_what_estimate_game_refuses_says_why():
    value, _ = unanimity(4, 5)
    names = ["a", "b", "c", "d"]
    with pytest.raises(kvq.KvqError, match="estimates the shapley RI"):
        kvq.estimate_game(value, names, "uniform", "permutation", budget=12)
    with pytest.raises(kvq.KvqError, match="unknown coalition sampler"):
        kvq.estimate_game(value, names, "uniform", "nope", budget=12)
    with pytest.raises(kvq.KvqError, match="budget must be"):
        kvq.estimate_game(value, names, budget=3)
    with pytest.raises(kvq.KvqError, match="returned shape"):
        kvq.estimate_game(lambda m: np.zeros(len(m) + 1), names, budget=12)
    with pytest.raises(kvq.KvqError, match="unknown weighting"):
        kvq.estimate_game(value, names, "banzhaf", budget=12)


@pytest.mark.slow
def test_a_shapiq_approximator_trains_what_it_asks_for_as_kvq_batches(tiny_burgers, tiny_config, tiny_scan, tmp_path):
    """kvq.estimate(..., coalitions=<shapiq approximator>): the coalitions it asks for are trained
    for every seed (as the exact scan trains them), and each seed's estimate is the approximator's
    on that seed's values with kvq's budget less FI's n + 1 coalitions; the result saves, loads and
    reads like any sampled table."""
    shapiq = pytest.importorskip("shapiq")
    approximator = shapiq.KernelSHAP(4, pairing_trick=True, random_state=3)
    reference = copy.deepcopy(approximator)
    result = kvq.estimate(tiny_burgers, tiny_config, coalitions=approximator, budget=12, out=tmp_path / "run")
    assert result.sampling.sampler == "shapiq-shapley" and len(result.masks) <= 12
    ri = kvq.rule_importance(result)
    assert ri.weighting == "shapley" and ri.per_seed.shape == (2, 4) and np.all(np.isnan(ri.se_sampling))
    assert "estimated by a shapiq approximator" in result.table()
    bits = 1 << np.arange(4)
    rows = np.asarray(result.masks, int) @ bits
    np.testing.assert_allclose(result.errors, tiny_scan.errors[rows], rtol=2e-5)  # trained as the scan trains them
    values = np.full((16, 2), np.nan)
    values[rows] = -np.log10(result.errors)
    for s in range(2):
        theirs = copy.deepcopy(reference).approximate(
            12 - 5, lambda c, s=s: values[np.atleast_2d(np.asarray(c, int)) @ bits, s]
        )
        np.testing.assert_allclose(ri.per_seed[s], [theirs[(i,)] for i in range(4)], atol=1e-9)
    again = kvq.ScanResult.load(tmp_path / "run")
    np.testing.assert_allclose(kvq.rule_importance(again).per_seed, ri.per_seed)
    with pytest.raises(kvq.KvqError, match="Shapley or Banzhaf value"):
        kvq.estimate(tiny_burgers, tiny_config, coalitions=shapiq.KernelSHAPIQ(4, max_order=2), budget=12)


def test_a_regression_estimate_from_fewer_pairs_than_twice_the_rules_says_its_error_bar_is_rough():
    names = [f"r{i}" for i in range(12)]
    weights = np.linspace(-0.2, 0.5, 12)

    def value(masks):
        return masks @ weights + 0.1 * masks[:, 0] * masks[:, 1]

    few = kvq.estimate_game(value, names, "uniform", budget=40)
    assert kvq.rule_importance(few).samples < 24 and "(fewer than 24): a rough error bar" in few.table()
    enough = kvq.estimate_game(value, names, "uniform", budget=200)
    assert kvq.rule_importance(enough).samples >= 24 and "rough error bar" not in enough.table()
    # the Monte Carlo samplers keep a fixed floor of draws, whatever n; a regression's is never lower
    from kvq.game.sampling import FEW_DRAWS, few_draws

    assert few_draws("msr", 23, 12) is None and few_draws("msr", FEW_DRAWS - 1, 12) == FEW_DRAWS
    assert few_draws("regression", 23, 12) == 24 and few_draws("regression", 24, 12) is None
    assert few_draws("regression-banzhaf", 14, 7) == FEW_DRAWS == few_draws("kernel-banzhaf", 14, 7)
    assert few_draws("regression", FEW_DRAWS, 7) is None
