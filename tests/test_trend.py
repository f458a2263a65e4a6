"""Mann-Kendall and t quantiles against scipy (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kvq.game.trend import mann_kendall, t975


def test_t975_matches_scipy():
    df = np.arange(1, 200)
    np.testing.assert_allclose(t975(df), stats.t.ppf(0.975, df), rtol=2e-5)
    assert np.isnan(t975(0))


@pytest.mark.parametrize("seed", range(6))
def test_mann_kendall_matches_scipy_kendalltau_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = np.repeat([0, 10, 100, 1000], 3)  # sweep points x seeds: ties in x
    y = np.round(0.1 * rng.standard_normal(x.size) - 0.02 * np.log1p(x) * (seed % 2), 2)  # ties in y too
    got = mann_kendall(x, y, continuity=False)
    ref = stats.kendalltau(x, y, method="asymptotic")
    np.testing.assert_allclose(got.tau, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(got.p, ref.pvalue, rtol=1e-9)


def test_mann_kendall_classical_series():
    # strictly increasing series of 10: S = 45, Var = n(n-1)(2n+5)/18, z = (S-1)/sqrt(Var)
    y = np.arange(10.0) ** 2
    got = mann_kendall(np.arange(10), y)
    var = 10 * 9 * 25 / 18
    assert got.s == 45 and got.tau == 1.0
    np.testing.assert_allclose(got.z, 44 / np.sqrt(var))
    np.testing.assert_allclose(got.p, 2 * stats.norm.sf(44 / np.sqrt(var)))
    assert got.trend == "increasing"
    assert mann_kendall(np.arange(10), -y).trend == "decreasing"


def test_mann_kendall_degenerate_inputs():
    assert mann_kendall([1, 2], [3, 4]).trend == "no trend"  # too few
    assert np.isnan(mann_kendall([1, 1, 1], [1, 2, 3]).p)  # one x value
    r = mann_kendall([0, 1, 2, 3, np.nan], [1, 2, np.nan, 4, 5])
    assert r.n == 3
    flat = mann_kendall([0, 1, 2, 3], [1, 1, 1, 1])
    assert flat.s == 0 and flat.trend == "no trend"
