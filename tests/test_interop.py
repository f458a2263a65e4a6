"""kvq tables in shapiq and pandas: the same numbers, computed by the other tool."""

from __future__ import annotations

import numpy as np
import pytest

import kvq
from kvq.present.interop import interaction_values, shapiq_game, value_frame



@pytest.fixture(scope="module")
def shapiq():
    """shapiq, imported by the tests that need it (not when the suite is collected: it takes seconds)."""
    return pytest.importorskip("shapiq")


def table(n: int = 4, seeds: int = 3) -> kvq.ValueTable:
    rng = np.random.default_rng(11)
    return kvq.ValueTable(tuple(f"r{i}" for i in range(n)), 10.0 ** -rng.uniform(1, 3, (2**n, seeds)))


def test_shapiq_computes_kvqs_importances_from_the_exported_game(shapiq):
    t = table()
    exact = shapiq.ExactComputer(shapiq_game(t), n_players=4)
    for index, weighting in (("BV", "uniform"), ("SV", "shapley")):
        ours = kvq.rule_importance(t, weighting).mean  # linear in v: the game of the seed mean
        theirs = exact(index, order=1)
        np.testing.assert_allclose([theirs[(i,)] for i in range(4)], ours, atol=1e-10)
    one = shapiq.ExactComputer(shapiq_game(t, seed=2), n_players=4)("BII", order=2)
    pairs = kvq.interactions(t, "uniform").per_seed[2]
    np.testing.assert_allclose([one[(i, j)] for i in range(4) for j in range(i + 1, 4)], pairs, atol=1e-10)
    with pytest.raises(kvq.KvqError, match="seed column 5"):
        shapiq_game(t, seed=5)


def test_importances_become_interaction_values(shapiq):
    t = table()
    ri = kvq.rule_importance(t, "shapley")
    iv = interaction_values(ri)
    assert iv.index == "SV" and iv.n_players == 4
    np.testing.assert_allclose([iv[(i,)] for i in range(4)], ri.mean)
    pairs = kvq.interactions(t)
    ivp = interaction_values(pairs)
    assert ivp.index == "BII" and ivp.max_order == 2
    np.testing.assert_allclose(ivp[(1, 3)], pairs["r1 & r3"][0])
    with pytest.raises(kvq.KvqError, match="no shapiq index"):
        interaction_values(kvq.full_importance(t))


def test_the_value_table_as_a_data_frame():
    pytest.importorskip("pandas")
    t = table(3, 2)
    frame = value_frame(t)
    assert list(frame.columns) == ["mask", "r0", "r1", "r2", "seed", "error", "value"] and len(frame) == 16
    row = frame[(frame["mask"] == 5) & (frame["seed"] == 1)].iloc[0]
    assert (row["r0"], row["r1"], row["r2"]) == (1, 0, 1) and row["error"] == t.errors[5, 1]
    np.testing.assert_allclose(frame["value"], -np.log10(t.errors.ravel()))
