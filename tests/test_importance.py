"""Tests for kvq.importance on synthetic value tables (no training)."""

import json
import math
import warnings
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from kvq.errors import KvqError
from kvq.game.importance import (
    dependence_profile,
    full_importance,
    interactions,
    rule_importance,
    values,
)

WEIGHTINGS = ("uniform", "shapley")


def random_table(n, seeds=1, rng=None):
    rng = rng or np.random.default_rng(0)
    names = tuple(f"r{i}" for i in range(n))
    return names, 10.0 ** -rng.uniform(0.5, 4.0, size=(2**n, seeds))


def mask(subset):
    return sum(1 << j for j in subset)


def brute_force(v, n, weighting, players):
    """Reference: loop over coalitions as sets; skip NaN terms and renormalise the weights.

    ``players`` is (i,) for a marginal contribution or (i, j) for a pairwise interaction.
    """
    others = [p for p in range(n) if p not in players]
    m = len(others)
    total = weight_sum = 0.0
    for size in range(m + 1):
        if weighting == "shapley":
            w = math.factorial(size) * math.factorial(m - size) / math.factorial(m + 1)
        else:
            w = 0.5**m
        for s in combinations(others, size):
            term = sum(
                (-1) ** (len(players) - len(t)) * v[mask(s + t)]
                for r in range(len(players) + 1)
                for t in combinations(players, r)
            )
            if np.isfinite(term):
                total += w * term
                weight_sum += w
    return total / weight_sum if weight_sum > 0 else np.nan


def test_values_marks_missing_entries():
    out = values(np.array([0.1, 0.001, 0.0, -1.0, np.inf, np.nan]))
    np.testing.assert_allclose(out[:2], [1.0, 3.0])
    assert np.isnan(out[2:]).all()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_matches_brute_force_loops(n):
    names, errors = random_table(n, seeds=2, rng=np.random.default_rng(n))
    v = -np.log10(errors)
    for weighting in WEIGHTINGS:
        ri = rule_importance((names, errors), weighting)
        expected = [[brute_force(v[:, s], n, weighting, (i,)) for i in range(n)] for s in range(2)]
        np.testing.assert_allclose(ri.per_seed, expected, rtol=0, atol=1e-12)
        if n >= 2:
            inter = interactions((names, errors), weighting)
            pairs = list(combinations(range(n), 2))
            expected = [[brute_force(v[:, s], n, weighting, p) for p in pairs] for s in range(2)]
            np.testing.assert_allclose(inter.per_seed, expected, rtol=0, atol=1e-12)
            assert inter.names == tuple(f"r{i} & r{j}" for i, j in pairs)


def test_null_player():
    n, null = 4, 2
    names, errors = random_table(n, seeds=3)
    for k in range(2**n):
        errors[k] = errors[k & ~(1 << null)]
    table = (names, errors)
    for weighting in WEIGHTINGS:
        assert rule_importance(table, weighting).per_seed[:, null] == pytest.approx(0, abs=1e-12)
        inter = interactions(table, weighting)
        for name, col in zip(inter.names, inter.per_seed.T):
            if f"r{null}" in name.split(" & "):
                assert col == pytest.approx(0, abs=1e-12)
    assert full_importance(table).per_seed[:, null] == pytest.approx(0, abs=1e-12)


def test_symmetric_rules_get_equal_importance():
    n = 4
    names, errors = random_table(n, seeds=2)
    for k in range(2**n):  # make rules 0 and 1 interchangeable: E(k) = E(k with bits 0, 1 swapped)
        if k & 1 and not k & 2:
            errors[k ^ 3] = errors[k]
    table = (names, errors)
    for result in (rule_importance(table), rule_importance(table, "shapley"),
                   full_importance(table)):
        np.testing.assert_allclose(result.per_seed[:, 0], result.per_seed[:, 1], atol=1e-12)
        assert not np.allclose(result.per_seed[:, 0], result.per_seed[:, 2])


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_shapley_efficiency(n):
    names, errors = random_table(n, seeds=3, rng=np.random.default_rng(10 + n))
    ri = rule_importance((names, errors), "shapley")
    v = -np.log10(errors)
    np.testing.assert_allclose(ri.per_seed.sum(axis=1), v[-1] - v[0], atol=1e-12)


def test_additive_game():
    n, seeds = 4, 3
    rng = np.random.default_rng(1)
    effect = rng.normal(size=(seeds, n))  # a_i, different per seed
    v = np.array([[1.5 + sum(effect[s, j] for j in range(n) if k >> j & 1) for s in range(seeds)]
                  for k in range(2**n)])
    table = (tuple("abcd"), 10.0**-v)
    for result in (rule_importance(table), rule_importance(table, "shapley"),
                   full_importance(table)):
        np.testing.assert_allclose(result.per_seed, effect, atol=1e-12)
    for weighting in WEIGHTINGS:
        np.testing.assert_allclose(interactions(table, weighting).per_seed, 0, atol=1e-12)


def test_shapley_is_mean_of_per_size_means():
    names, errors = random_table(5, seeds=1, rng=np.random.default_rng(3))
    profile = dependence_profile((names, errors))
    ri = rule_importance((names, errors), "shapley")
    np.testing.assert_allclose(ri.mean, profile.mean.mean(axis=1), atol=1e-12)
    assert profile.sizes == (0, 1, 2, 3, 4)
    assert [len(profile.samples["r0"][k]) for k in range(5)] == [math.comb(4, k) for k in range(5)]
    json.dumps(profile.to_dict(), allow_nan=False)


def test_hand_computed_two_rules():
    # masks in binary order: {}, {a}, {b}, {a, b}
    errors = np.array([[0.1], [0.01], [0.05], [0.001]])
    v_empty, v_a, v_b, v_ab = 1.0, 2.0, -math.log10(0.05), 3.0
    table = (("a", "b"), errors)
    ri_a = ((v_a - v_empty) + (v_ab - v_b)) / 2  # both weightings are 1/2, 1/2 for n = 2
    ri_b = ((v_b - v_empty) + (v_ab - v_a)) / 2
    for weighting in WEIGHTINGS:
        assert rule_importance(table, weighting).mean == pytest.approx([ri_a, ri_b], abs=1e-12)
        inter = interactions(table, weighting)
        assert inter["a & b"][0] == pytest.approx(v_ab - v_a - v_b + v_empty, abs=1e-12)
    fi = full_importance(table)
    assert fi["a"][0] == pytest.approx(v_ab - v_b, abs=1e-12)
    assert fi["b"][0] == pytest.approx(3.0 - 2.0, abs=1e-12)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_agrees_with_shapiq(n):
    shapiq = pytest.importorskip("shapiq")
    rng = np.random.default_rng(100 + n)
    for _ in range(3):
        names, errors = random_table(n, seeds=2, rng=rng)
        v = -np.log10(errors)
        ours = {
            ("SV", 1): rule_importance((names, errors), "shapley"),
            ("BV", 1): rule_importance((names, errors), "uniform"),
            ("SII", 2): interactions((names, errors), "shapley"),
            ("BII", 2): interactions((names, errors), "uniform"),
        }
        keys = {1: [(i,) for i in range(n)], 2: list(combinations(range(n), 2))}
        for s in range(v.shape[1]):
            # shapiq hands the game a boolean [m, n] matrix in its own (size-ordered) coalition
            # order; player j is our rule j, i.e. bit j of the mask index.
            def game(coalitions, s=s):
                return v[coalitions.astype(int) @ (1 << np.arange(n)), s]

            computer = shapiq.ExactComputer(game, n_players=n)
            for (index, order), result in ours.items():
                theirs = computer(index, order=order)
                expected = [theirs[key] for key in keys[order]]
                np.testing.assert_allclose(result.per_seed[s], expected, rtol=0, atol=1e-10)


def test_missing_entry_is_dropped_and_renormalised():
    n, seeds, bad_mask, bad_seed = 3, 3, 5, 1
    names, errors = random_table(n, seeds=seeds, rng=np.random.default_rng(7))
    clean = rule_importance((names, errors), "shapley")
    errors[bad_mask, bad_seed] = np.nan
    v = -np.log10(errors)
    for weighting in WEIGHTINGS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the missing entry is a value of the result, not a warning
            ri = rule_importance((names, errors), weighting)
        assert ri.missing == (bad_mask,)
        assert np.isfinite(ri.mean).all()
        expected = [brute_force(v[:, bad_seed], n, weighting, (i,)) for i in range(n)]
        np.testing.assert_allclose(ri.per_seed[bad_seed], expected, atol=1e-12)
    # rule 1 is not in mask 5 but its contribution to {0, 2} is; drop that term by hand (Shapley):
    # remaining coalitions {}, {0}, {2} with weights 1/3, 1/6, 1/6 -> renormalised by 2/3
    d = lambda s: v[mask(s) | 2, bad_seed] - v[mask(s), bad_seed]  # noqa: E731
    by_hand = (d(()) / 3 + d((0,)) / 6 + d((2,)) / 6) / (2 / 3)
    assert ri.per_seed[bad_seed, 1] == pytest.approx(by_hand, abs=1e-12)
    others = [s for s in range(seeds) if s != bad_seed]
    np.testing.assert_allclose(ri.per_seed[others], clean.per_seed[others], atol=1e-15)


def test_missing_full_mask_gives_nan_seed_but_finite_mean():
    names, errors = random_table(3, seeds=3)
    errors[-1, 0] = -1.0  # <= 0 counts as missing
    fi = full_importance((names, errors))  # the missing entry is a value of the result, not a warning
    assert np.isnan(fi.per_seed[0]).all() and np.isfinite(fi.mean).all()
    np.testing.assert_allclose(fi.mean, fi.per_seed[1:].mean(axis=0))
    assert fi.missing == (7,)
    json.dumps(fi.to_dict(), allow_nan=False)


def test_mean_and_standard_error_over_seeds():
    names, errors = random_table(4, seeds=5)
    for result in (rule_importance((names, errors)), full_importance((names, errors)),
                   interactions((names, errors), "shapley")):
        assert result.per_seed.shape == (5, len(result.names))
        np.testing.assert_allclose(result.mean, result.per_seed.mean(axis=0))
        np.testing.assert_allclose(result.se, result.per_seed.std(axis=0, ddof=1) / np.sqrt(5))
        name = result.names[1]
        assert result[name] == (result.mean[1], result.se[1])


def test_single_seed_has_nan_se_and_serialises():
    names, errors = random_table(3, seeds=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings for the degenerate spread
        ri = rule_importance((names, errors), "shapley")
        profile = dependence_profile((names, errors))
    assert np.isnan(ri.se).all() and np.isfinite(ri.mean).all()
    d = ri.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["se"] == [None, None, None]
    assert d["measure"] == "RI" and d["weighting"] == "shapley" and d["names"] == list(names)
    assert np.isnan(profile.se[:, 0]).all()  # one coalition of size 0 and one seed


def test_output_selection():
    rng = np.random.default_rng(5)
    by_output = 10.0 ** -rng.uniform(0.5, 4.0, size=(8, 2, 3))
    table = SimpleNamespace(rule_names=("a", "b", "c"), errors=by_output.mean(axis=-1),
                            errors_by_output=by_output, output_names=("c", "d", "e"))
    direct = rule_importance((table.rule_names, by_output[..., 1]))
    for key in (1, "d"):
        ri = rule_importance(table, output=key)
        np.testing.assert_array_equal(ri.per_seed, direct.per_seed)
        assert ri.output == "d"
    assert rule_importance(table).output is None
    np.testing.assert_array_equal(rule_importance(table).per_seed,
                                  rule_importance((table.rule_names, table.errors)).per_seed)
    for bad in ("z", 3, 1.0):
        with pytest.raises(KvqError, match="'c', 'd', 'e'"):
            interactions(table, output=bad)
    with pytest.raises(KvqError, match="no per-output"):
        full_importance((table.rule_names, table.errors), output=0)


def test_bad_inputs():
    names, errors = random_table(3, seeds=2)
    with pytest.raises(KvqError, match="2-D"):
        rule_importance((names, errors[:, 0]))
    with pytest.raises(KvqError, match="2-D"):
        rule_importance((names, errors[..., None]))
    with pytest.raises(KvqError, match=r"\[8, n_seeds"):
        rule_importance((names, errors[:7]))
    with pytest.raises(KvqError, match="zero rules"):
        rule_importance(((), np.ones((1, 1))))
    with pytest.raises(KvqError, match="'uniform', 'shapley'"):
        rule_importance((names, errors), weighting="banzhaf")
    with pytest.raises(KvqError, match="at least 2 rules"):
        interactions((("a",), errors[:2]))
    with pytest.raises(KvqError, match="unique"):
        rule_importance((("a", "a", "b"), errors))
    with pytest.raises(KvqError, match="valid names"):
        rule_importance((names, errors))["nope"]


def test_report_shows_each_outputs_importance():
    from kvq.present.report import importance_table
    from kvq.game.table import ValueTable

    rng = np.random.default_rng(5)
    by_output = 10.0 ** -rng.uniform(0.5, 4.0, size=(4, 3, 2))
    table = ValueTable(("p", "q"), by_output.mean(axis=-1), errors_by_output=by_output, output_names=("c", "d"))
    text = importance_table(table)
    assert "per output" in text
    per_output = text.split("per output", 1)[1]
    row = next(line for line in per_output.splitlines() if line.startswith("q "))
    for o in ("c", "d"):
        m, s = rule_importance(table, output=o)["q"]
        assert f"{m:+.3f} ± {s:.3f}" in row
    single = ValueTable(("p", "q"), by_output[..., 0], errors_by_output=by_output[..., :1], output_names=("c",))
    assert "per output" not in importance_table(single)
