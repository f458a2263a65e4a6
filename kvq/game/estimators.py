"""Rule importance estimated from sampled coalitions (docs/design.md §6): the per-draw estimates
of each sampler, their standard errors, the kernel's strata and a proxy as control variate.
The draws are planned in :mod:`kvq.game.sampling`; a sampled table's RI comes from here."""

from __future__ import annotations

import math

import numpy as np

from kvq.errors import KvqError
from kvq.game.measures import Importance, SampledImportance
from kvq.game.regression import REGRESSION_WEIGHTING, regression_importance
from kvq.game.table import WEIGHTING, chain_masks, full_masks, known_sampler


def kernel_sizes(n: int) -> np.ndarray:
    """The Shapley kernel's distribution of coalition sizes ``1 .. n - 1`` [n - 1]:
    proportional to ``1 / (s (n - s))``."""
    s = np.arange(1, n)
    p = 1.0 / (s * (n - s))
    return p / p.sum()


def pair_strata(n: int) -> dict[int, tuple[float, int]]:
    """The kernel sampler's coalition-complement pairs by stratum ``k = min(|z|, n - |z|)``,
    ``k = 1 .. n // 2``: ``{k: (probability that a draw falls in it, how many pairs it holds)}``."""
    p = kernel_sizes(n)
    return {
        k: (float(p[k - 1] + (p[n - k - 1] if 2 * k != n else 0.0)), math.comb(n, k) // (2 if 2 * k == n else 1))
        for k in range(1, n // 2 + 1)
    }


def stratum_of(draws: np.ndarray) -> np.ndarray:
    """Each kernel draw's pair stratum ``min(|z|, n - |z|)`` [P]."""
    size = draws.sum(axis=1)
    return np.minimum(size, draws.shape[1] - size)


def _index(masks: np.ndarray) -> dict[bytes, int]:
    return {np.asarray(m, np.int8).tobytes(): k for k, m in enumerate(masks)}


def _lookup(index: dict[bytes, int], wanted: np.ndarray) -> np.ndarray:
    try:
        return np.array([index[np.asarray(m, np.int8).tobytes()] for m in wanted], int)
    except KeyError:
        raise KvqError("a coalition the draws need was not trained") from None


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over the first axis of the finite entries; NaN where there are none (no warning)."""
    finite = np.isfinite(x)
    count = finite.sum(axis=0)
    total = np.where(finite, x, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _spread(x: np.ndarray, single: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis of the finite entries of ``x`` [m, k] and its standard error
    (``single`` where fewer than 2 entries are finite; no numpy warning either way)."""
    ok = np.isfinite(x)
    finite = ok.sum(axis=0)
    mean = _nanmean(x)
    square = np.where(ok, x - np.where(np.isfinite(mean), mean, 0.0), 0.0) ** 2
    sd = np.sqrt(square.sum(axis=0) / np.maximum(finite - 1, 1))
    return mean, np.where(finite > 1, sd / np.sqrt(np.maximum(finite, 1)), single)


def _seed_stats(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-mean over seeds [S, k] and its standard error (0 with one finite seed)."""
    mean, se = _spread(per_seed, 0.0)
    return mean, np.nan_to_num(se)


def _pair_stats(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed estimates [S, n] from independent per-pair estimates ``pairs`` [P, n, S], and
    the sampling standard error [n] of their seed average (inf with one pair)."""
    P, n = pairs.shape[:2]
    pbar = np.nanmean(pairs, axis=2)  # [P, n]
    se = np.nanstd(pbar, axis=0, ddof=1) / np.sqrt(P) if P > 1 else np.full(n, np.inf)
    return np.nanmean(pairs, axis=0).T, se


def _kernel_solution(n: int) -> tuple[np.ndarray, np.ndarray]:
    """KernelSHAP's constrained least squares with the exact design matrix ``A = E[z z^T]``
    under the Shapley kernel: ``phi = M b + m (v(all) - v(empty))`` for ``b = E[z (v(z) -
    v(empty))]``; returns ``(M [n, n], m [n])``."""
    p = kernel_sizes(n)
    s = np.arange(1, n)
    off = float(np.sum(p * s * (s - 1))) / (n * (n - 1))  # P(i and j in z), i != j
    A = np.full((n, n), off) + (0.5 - off) * np.eye(n)  # P(i in z) = 1/2 by the kernel's symmetry
    Ainv = np.linalg.inv(A)
    u = Ainv @ np.ones(n)
    return Ainv - np.outer(u, u) / u.sum(), u / u.sum()


def _units(sampler: str, index: dict[bytes, int], values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per-draw estimates [U, n, S] whose mean over draws is the sampler's estimate: the
    antithetic pair averages (permutation), the pair estimates (kernel samplers), or for msr
    ``(v(z) - mean v) (z_i / q_i - (1 - z_i) / (1 - q_i))`` with ``q_i`` the share of draws
    holding rule i (its mean is ``mean v(S ∋ i) - mean v(S ∌ i)`` exactly)."""
    n = draws.shape[1]
    if sampler == "msr":
        v = values[_lookup(index, draws)]  # [D, S]
        z = draws.astype(float)
        q = z.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sign = z / q - (1 - z) / (1 - q)  # [D, n]; inf/NaN where a side has no draw
        return sign[:, :, None] * (v - _nanmean(v))[:, None, :]
    if sampler == "permutation":
        S = values.shape[1]
        chains = chain_masks(draws)  # [2P, n + 1, n]
        v = values[_lookup(index, chains.reshape(-1, n))].reshape(len(draws), n + 1, S)
        steps = np.diff(v, axis=1)  # [2P, n, S]: contribution of the k-th rule in the order
        contrib = np.empty_like(steps)
        contrib[np.arange(len(draws))[:, None], draws] = steps  # by rule
        return 0.5 * (contrib[0::2] + contrib[1::2])  # [P, n, S] antithetic averages
    known_sampler(sampler)
    z = draws.astype(float)  # [P, n]
    v = values[_lookup(index, draws)]  # [P, S]
    vc = values[_lookup(index, 1 - draws)]  # the complements
    if sampler == "kernel-banzhaf":
        return (2 * z - 1)[:, :, None] * (v - vc)[:, None, :]  # [P, n, S]
    v0 = values[_lookup(index, np.zeros((1, n), np.int8))][0]  # [S]
    v1 = values[_lookup(index, np.ones((1, n), np.int8))][0]
    g = 0.5 * (z[:, :, None] * (v - v0)[:, None, :] + (1 - z)[:, :, None] * (vc - v0)[:, None, :])
    solve, shift = _kernel_solution(n)
    return np.einsum("ij,pjs->pis", solve, g) + shift[None, :, None] * (v1 - v0)[None, None, :]


def _sampled_importance(
    weighting: str, names: tuple[str, ...], per_seed: np.ndarray, se_sampling: np.ndarray, samples: int
) -> SampledImportance:
    mean, se_seeds = _seed_stats(per_seed)
    return SampledImportance(
        "RI",
        weighting,
        tuple(names),
        per_seed,
        mean,
        np.sqrt(se_sampling**2 + se_seeds**2),
        None,
        (),
        se_sampling=se_sampling,
        se_seeds=se_seeds,
        samples=samples,
    )


def estimate_importance(
    sampler: str,
    names: tuple[str, ...],
    masks: np.ndarray,
    values: np.ndarray,
    draws: np.ndarray,
    enumerated: tuple[int, ...] = (),
) -> SampledImportance:
    """The RI that ``sampler``'s ``draws`` estimate from the trained ``masks`` [M, n] and their
    ``values`` [M, S] (-log10 error, NaN where a training diverged; a draw that meets one
    is left out for that seed).  ``enumerated`` (kernel): the pair strata the draws hold
    completely, once each (:func:`plan_draws`); they enter with their exact means."""
    known_sampler(sampler)
    if sampler in REGRESSION_WEIGHTING:
        per_seed, se_sampling, count = regression_importance(sampler, masks, values, draws, enumerated)
        return _sampled_importance(WEIGHTING[sampler], names, per_seed, se_sampling, count)
    index = _index(masks)
    n, S = masks.shape[1], values.shape[1]
    if sampler == "msr":  # each side's own mean: a draw that meets a NaN drops from its side only
        v = values[_lookup(index, draws)]  # [D, S]
        on = draws.astype(bool)  # [D, n]
        per_seed = np.empty((S, n))
        for i in range(n):
            per_seed[:, i] = _nanmean(v[on[:, i]]) - _nanmean(v[~on[:, i]])  # NaN where a side has no draw
        vbar = _nanmean(v.T)
        se_sampling = np.array(
            [
                np.sqrt(
                    np.nanvar(vbar[on[:, i]], ddof=1) / on[:, i].sum()
                    + np.nanvar(vbar[~on[:, i]], ddof=1) / (~on[:, i]).sum()
                )
                if 1 < on[:, i].sum() < len(on) - 1
                else np.inf
                for i in range(n)
            ]
        )
        return _sampled_importance("uniform", names, per_seed, se_sampling, len(draws))
    units = _units(sampler, index, values, draws)
    exact, share, rest = _enumerated_part(units, draws, enumerated)
    if not rest.any():  # every pair enumerated: no sampling error
        return _sampled_importance(WEIGHTING[sampler], names, exact, np.zeros(n), len(units))
    per_seed, se_sampling = _pair_stats(units[rest])
    return _sampled_importance(WEIGHTING[sampler], names, exact + share * per_seed, share * se_sampling, len(units))


def _enumerated_part(
    units: np.ndarray, draws: np.ndarray, enumerated: tuple[int, ...]
) -> tuple[np.ndarray, float, np.ndarray]:
    """For kernel ``units`` [P, n, S]: the enumerated strata's exact contribution
    ``sum_k q_k mean_k`` [S, n], the probability share ``Q`` of the other strata, and which
    draws are from them [P] (their mean, times ``Q``, completes the estimate)."""
    n, S = draws.shape[1], units.shape[2]
    if not enumerated:
        return np.zeros((S, units.shape[1])), 1.0, np.ones(len(units), bool)
    strata, of = pair_strata(n), stratum_of(draws)
    exact = np.zeros((S, units.shape[1]))
    for k in enumerated:
        exact += strata[k][0] * _nanmean(units[of == k]).T
    share = 1.0 - sum(strata[k][0] for k in enumerated)
    return exact, share, ~np.isin(of, enumerated)


MIN_PROXY_DRAWS = 8
"""Fewer draws than this leave every rule's plain estimate (no proxy weight is fitted)."""


def adjusted_importance(
    sampler: str,
    names: tuple[str, ...],
    masks: np.ndarray,
    values: np.ndarray,
    proxy: np.ndarray,
    draws: np.ndarray,
    proxy_per_seed: np.ndarray,
    proxy_se: np.ndarray,
    enumerated: tuple[int, ...] = (),
) -> tuple[SampledImportance, np.ndarray]:
    """A control-variate estimate: the mean over draws ``u`` of ``a_ui - β_i (b_ui - φ_i(f))``,
    with ``a``/``b`` the per-draw estimates (:func:`_units`) of the trained ``values`` and of
    the cheap ``proxy`` [M, S] on the same ``masks``, and ``φ(f)`` the proxy game's RI
    ``proxy_per_seed`` [S, n] (exact: ``proxy_se`` 0; or from an independent, larger sample
    with its sampling error ``proxy_se`` [n]).  ``β_i = cov(a_i, b_i) / var(b_i)`` over the
    draws (seed-averaged) minimizes the variance; each draw uses the ``β`` fitted without it
    (leave-one-out), so the estimate stays unbiased.  With fewer than ``MIN_PROXY_DRAWS``
    draws, or where the slope is not significant (``|t| < 2``), a rule keeps its plain
    estimate (``β = 0``): a weight fitted on noise only adds variance.  Returns the estimate
    and the ``β`` fitted on all draws [n] (0 where not used).  ``enumerated`` as in
    :func:`estimate_importance`: those strata enter exactly, and only the sampled draws are
    corrected, towards the proxy's value less its enumerated part."""
    if sampler in REGRESSION_WEIGHTING:
        raise KvqError(
            f"a proxy corrects the msr, permutation and kernel samplers; {sampler!r} fits its own model to the "
            "values: leave proxy= out, or choose one of those samplers"
        )
    index = _index(masks)
    a, b = _units(sampler, index, values, draws), _units(sampler, index, proxy, draws)  # [U, n, S]
    exact_a, share, rest = _enumerated_part(a, draws, enumerated)
    exact_b = _enumerated_part(b, draws, enumerated)[0]
    total, none = len(a), np.zeros(a.shape[1])
    if not rest.any():
        return _sampled_importance(WEIGHTING[sampler], names, exact_a, none, total), none
    a, b = a[rest], b[rest]
    target = (proxy_per_seed - exact_b) / share  # what the sampled draws' proxy mean estimates [S, n]
    abar, bbar = _nanmean(np.moveaxis(a, 2, 0)), _nanmean(np.moveaxis(b, 2, 0))  # [U, n]; NaN: no finite seed
    ok = np.isfinite(abar) & np.isfinite(bbar)
    x, y = np.where(ok, bbar, 0.0), np.where(ok, abar, 0.0)
    m = ok.sum(axis=0)  # [n]

    def slope(sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray, k: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            cov, var = sxy - sx * sy / k, sxx - sx**2 / k
            return np.where((k > 2) & (var > 1e-12 * np.maximum(sxx, 1e-300)), cov / var, 0.0)

    sx, sy, sxx, sxy = x.sum(0), y.sum(0), (x * x).sum(0), (x * y).sum(0)
    beta = slope(sx, sy, sxx, sxy, m)
    loo = slope(sx - x, sy - y, sxx - x * x, sxy - x * y, m - 1)  # [U, n]: each without its own draw
    # a weight fitted on few draws, or on a proxy no better than noise, adds variance: such a
    # rule keeps its plain estimate (at least MIN_PROXY_DRAWS draws and |t| >= 2 for the slope)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx, vy = sxx - sx**2 / m, (y * y).sum(0) - sy**2 / m
        r = np.clip(np.nan_to_num((sxy - sx * sy / m) / np.sqrt(vx * vy)), -1.0, 1.0)
        t = np.abs(r) * np.sqrt(np.maximum(m - 2, 0) / np.maximum(1 - r**2, 1e-300))
    fitted = (m >= MIN_PROXY_DRAWS) & (t >= 2.0)
    beta = np.where(fitted, beta, 0.0)
    loo = np.where(ok & fitted[None, :], loo, 0.0)
    terms = a - loo[:, :, None] * (b - target.T[None])  # [U, n, S]
    per_seed = exact_a + share * _nanmean(terms).T
    se_terms = _spread(_nanmean(np.moveaxis(terms, 2, 0)), np.inf)[1]  # fewer than 2 draws: no spread
    se_sampling = np.sqrt((share * se_terms) ** 2 + (beta * proxy_se) ** 2)
    return _sampled_importance(WEIGHTING[sampler], names, per_seed, se_sampling, total), beta


def full_importance_from(names: tuple[str, ...], masks: np.ndarray, values: np.ndarray) -> Importance:
    """FI [n] from the trained ``masks``/``values`` that hold :func:`full_masks`: per seed
    v(all) - v(all but i); mean and standard error over seeds."""
    n = masks.shape[1]
    v = values[_lookup(_index(masks), full_masks(n))]  # [n + 1, S]
    per_seed = (v[0][None, :] - v[1:]).T  # [S, n]
    mean, se = _seed_stats(per_seed)
    if per_seed.shape[0] < 2:
        se = np.full(n, np.nan)
    return Importance("FI", "full", tuple(names), per_seed, mean, se, None, ())
