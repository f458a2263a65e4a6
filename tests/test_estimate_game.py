"""kvq.estimate_game: sampled importances of any value function, checked against games whose
values are known in closed form (sums of unanimity games) and against shapiq."""

from __future__ import annotations

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
    errors of zero for every rule, and ± 2 se_sampling holds the exact value 85-99 % of the time."""
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
