"""Rule importance from sampled coalitions: for problems with too many rules for 2^n trainings.

A *draw* is a set of coalitions chosen at random up front; kvq trains the distinct ones as
batches (:func:`kvq.estimate` with ``coalitions=``) and these functions turn their values
``v(S) = -log10(validation error)`` [M, seeds] into estimates with standard errors:

- ``"msr"``: maximum-sample-reuse Banzhaf values (Wang & Jia, Data Banzhaf, 2023): every
  coalition drawn uniformly (each rule on with probability 1/2), every draw reused for every
  rule: ``RI_i = mean v(S ∋ i) - mean v(S ∌ i)``; estimates the uniform (Banzhaf) RI.
- ``"permutation"``: antithetic permutation sampling of Shapley values: a random order of
  the rules and its reverse, the marginal contribution of each rule along both chains
  (``n + 1`` coalitions per order), averaged per pair; estimates the Shapley RI.
- ``"kernel"``: paired KernelSHAP (Lundberg & Lee 2017) in its unbiased form (Covert & Lee,
  AISTATS 2021): coalitions ``z`` drawn from the Shapley kernel (size ``s`` with probability
  proportional to ``1/(s(n - s))``, then a uniform subset of that size), each trained with its
  complement; the weighted least-squares fit of ``v(z) - v(empty)`` by ``z . phi`` under
  ``sum(phi) = v(all) - v(empty)`` is solved with the exact design matrix ``A = E[z z^T]``, so
  every pair gives its own unbiased estimate and the standard error is their spread.
  Estimates the Shapley RI; needs ``v(empty)`` and ``v(all)`` besides the pairs.
- ``"kernel-banzhaf"``: the same regression with uniform coalitions (and complements), whose
  fit is the Banzhaf value; with the exact design matrix it reduces to the pair estimate
  ``(2 z_i - 1)(v(z) - v(1 - z))``.  Estimates the uniform RI.

The standard error of an estimate has two parts, both reported: ``se_sampling`` (which
coalitions were drawn: the spread of the seed-averaged values over the draws) and
``se_seeds`` (the spread of the per-seed estimates, as for an exact table);
``se = sqrt(se_sampling^2 + se_seeds^2)``.  Against the exact table of the same seeds only
``se_sampling`` matters.  FI needs the ``n + 1`` coalitions all rules and all rules but one,
which are always trained.  docs/design.md §6.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.importance import Importance, json_ready

SAMPLERS = ("msr", "permutation", "kernel", "kernel-banzhaf")
WEIGHTING = {"msr": "uniform", "permutation": "shapley", "kernel": "shapley", "kernel-banzhaf": "uniform"}
"""The importance each sampler estimates (:func:`kvq.rule_importance`'s ``weighting``)."""


LABELS = {
    "msr": "RI uniform (msr)",
    "permutation": "RI Shapley (perm.)",
    "kernel": "RI Shapley (kernel)",
    "kernel-banzhaf": "RI uniform (kernel)",
}
DRAWN = {
    "msr": "coalitions drawn",
    "permutation": "antithetic permutation pairs",
    "kernel": "coalition-complement pairs",
    "kernel-banzhaf": "coalition-complement pairs",
}


def _known(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise KvqError(f"unknown coalition sampler {sampler!r}; choose one of {SAMPLERS}")


def no_draws(sampler: str, n: int) -> np.ndarray:
    """An empty array of ``sampler``'s draws for ``n`` rules."""
    _known(sampler)
    return np.zeros((0, n), int if sampler == "permutation" else np.int8)


def kernel_sizes(n: int) -> np.ndarray:
    """The Shapley kernel's distribution of coalition sizes ``1 .. n - 1`` [n - 1]:
    proportional to ``1 / (s (n - s))``."""
    s = np.arange(1, n)
    p = 1.0 / (s * (n - s))
    return p / p.sum()


def draw(sampler: str, n: int, count: int, rng: np.random.Generator, exclude: tuple[int, ...] = ()) -> np.ndarray:
    """``count`` draws of ``sampler`` for ``n`` rules: ``"msr"`` and ``"kernel-banzhaf"`` ->
    coalitions [count, n] (0/1, each rule on with probability 1/2); ``"kernel"`` -> coalitions
    [count, n] from the Shapley kernel; ``"permutation"`` -> rule orders [2 count, n], each
    followed by its reverse (antithetic pairs).  The kernel samplers train each coalition with
    its complement (:func:`coalitions_of`).  ``exclude`` (kernel only): pair strata ``k =
    min(|z|, n - |z|)`` never drawn (enumerated instead, :func:`plan_draws`)."""
    _known(sampler)
    if count == 0:
        return no_draws(sampler, n)
    if sampler in ("msr", "kernel-banzhaf"):
        return rng.integers(0, 2, (count, n)).astype(np.int8)
    if sampler == "kernel":
        if n < 2:
            raise KvqError("the kernel sampler needs at least 2 rules")
        p = kernel_sizes(n) * ~np.isin(np.minimum(np.arange(1, n), n - np.arange(1, n)), exclude)
        if p.sum() == 0:
            raise KvqError("every stratum of the kernel sampler is excluded: nothing left to draw")
        sizes = rng.choice(np.arange(1, n), size=count, p=p / p.sum())
        out = np.zeros((count, n), np.int8)
        for k, s in enumerate(sizes):
            out[k, rng.permutation(n)[:s]] = 1
        return out
    orders = np.stack([rng.permutation(n) for _ in range(count)])
    return np.stack([orders, orders[:, ::-1]], axis=1).reshape(-1, n)


def draws_within(
    sampler: str,
    n: int,
    budget: int,
    have: set[bytes],
    rng: np.random.Generator,
    exclude: tuple[int, ...] = (),
) -> np.ndarray:
    """Draws of ``sampler`` one at a time while the distinct coalitions they need, with
    those in ``have``, stay within ``budget`` (and at most ``2 budget`` draws); ``have``
    gains them.  ``exclude`` as in :func:`draw`."""
    taken: list[np.ndarray] = []
    while len(taken) < 2 * budget:  # draws of coalitions trained already cost nothing: a cap
        d = draw(sampler, n, 1, rng, exclude)
        new = {np.asarray(m, np.int8).tobytes() for m in coalitions_of(sampler, d)} - have
        if len(have) + len(new) > budget:
            break
        have |= new
        taken.append(d)
    return np.concatenate(taken) if taken else no_draws(sampler, n)


def pair_strata(n: int) -> dict[int, tuple[float, int]]:
    """The kernel sampler's coalition-complement pairs by stratum ``k = min(|z|, n - |z|)``,
    ``k = 1 .. n // 2``: ``{k: (probability that a draw falls in it, how many pairs it holds)}``."""
    p = kernel_sizes(n)
    return {
        k: (float(p[k - 1] + (p[n - k - 1] if 2 * k != n else 0.0)), math.comb(n, k) // (2 if 2 * k == n else 1))
        for k in range(1, n // 2 + 1)
    }


def stratum_pairs(n: int, k: int) -> np.ndarray:
    """Every pair of stratum ``k`` [C, n], each given by its side of size ``k`` (for ``2k = n``,
    the side that holds rule 0)."""
    sides = np.zeros((math.comb(n, k), n), np.int8)
    for row, c in enumerate(itertools.combinations(range(n), k)):
        sides[row, list(c)] = 1
    return sides[sides[:, 0] == 1] if 2 * k == n else sides


def stratum_of(draws: np.ndarray) -> np.ndarray:
    """Each kernel draw's pair stratum ``min(|z|, n - |z|)`` [P]."""
    size = draws.sum(axis=1)
    return np.minimum(size, draws.shape[1] - size)


def plan_draws(
    sampler: str, n: int, budget: int, have: set[bytes], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Draws within ``budget`` as :func:`draws_within`, and for ``"kernel"`` the border trick
    first: a stratum of pairs (:func:`pair_strata`) that the budget would draw at least as
    many times as it has pairs is enumerated instead, once each (the strata with the most
    probability per pair first: sizes 1 and n - 1, whose complements FI trains anyway, then
    2 and n - 2, ...), so its mean enters exactly; the rest is sampled from the kernel
    restricted to the other strata.  Returns the draws (enumerated pairs first) and the
    enumerated strata, which :func:`estimate_importance` needs."""
    if sampler != "kernel":
        return draws_within(sampler, n, budget, have, rng), ()
    ends = {np.zeros(n, np.int8).tobytes(), np.ones(n, np.int8).tobytes()}  # v(empty), v(all)
    spare = budget - len(have | ends)  # coalitions left for pairs
    enumerated: list[int] = []
    chosen: list[np.ndarray] = []
    strata = pair_strata(n)
    while True:
        rest = {k: v for k, v in strata.items() if k not in enumerated}
        mass = sum(prob for prob, _ in rest.values())
        best = None
        for k, (prob, count) in sorted(rest.items(), key=lambda kv: -kv[1][0] / kv[1][1]):
            if 0.5 * spare * prob / mass < count or 2 * count > spare:  # not drawn that often
                continue
            sides = stratum_pairs(n, k)
            new = {m.tobytes() for m in np.concatenate([sides, 1 - sides])} - have - ends
            if spare - len(new) >= MIN_SAMPLED_COALITIONS or len(rest) == 1:
                best = (k, sides, new)
                break
        if best is None:
            break
        k, sides, new = best
        enumerated.append(k)
        chosen.append(sides)
        have |= new
        spare -= len(new)
    if len(enumerated) == len(strata):  # every pair once: nothing left to sample
        have |= ends
        return np.concatenate(chosen), tuple(sorted(enumerated))
    sampled = draws_within(sampler, n, budget, have, rng, tuple(enumerated))
    return np.concatenate([*chosen, sampled]) if chosen else sampled, tuple(sorted(enumerated))


MIN_SAMPLED_COALITIONS = 16
"""The border trick keeps at least this many coalitions for the sampled strata."""


def chain_masks(orders: np.ndarray) -> np.ndarray:
    """The coalitions along each order [P, n]: [P, n + 1, n], entry k = the first k rules on."""
    P, n = orders.shape
    masks = np.zeros((P, n + 1, n), np.int8)
    for k in range(1, n + 1):
        masks[:, k] = masks[:, k - 1]
        masks[np.arange(P), k, orders[:, k - 1]] = 1
    return masks


def coalitions_of(sampler: str, draws: np.ndarray) -> np.ndarray:
    """Every coalition [*, n] the draws need (repeats included)."""
    _known(sampler)
    n = draws.shape[1]
    if sampler == "msr":
        return draws
    if sampler == "permutation":
        return chain_masks(draws).reshape(-1, n)
    pairs = np.concatenate([draws, 1 - draws]).astype(np.int8)
    if sampler == "kernel":  # the constraint's v(empty) and v(all)
        pairs = np.concatenate([np.zeros((1, n), np.int8), np.ones((1, n), np.int8), pairs])
    return pairs


def full_masks(n: int) -> np.ndarray:
    """All rules, then all rules but rule i for each i: [n + 1, n], what FI needs."""
    return np.vstack([np.ones((1, n), np.int8), 1 - np.eye(n, dtype=np.int8)])


@dataclass(frozen=True, eq=False)
class SampledImportance(Importance):
    """An :class:`~kvq.importance.Importance` estimated from sampled coalitions; ``se`` is
    the total standard error, ``se_sampling`` and ``se_seeds`` its parts [k]; ``samples``
    how many draws (msr: coalitions; permutation: antithetic pairs of orders; kernel samplers:
    coalition-complement pairs) it rests on."""

    se_sampling: np.ndarray = field(default_factory=lambda: np.zeros(0))
    se_seeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    samples: int = 0


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


def _mean_se(x: np.ndarray, single: float) -> tuple[np.ndarray, np.ndarray]:
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
    mean, se = _mean_se(per_seed, 0.0)
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
    _known(sampler)
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
    _known(sampler)
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


FEW_DRAWS = 10
"""Below this many draws the sampling standard error is itself uncertain: the table says so
(benchmarks/sampling.py: antithetic permutations from 2-3 pairs covered the exact value in
66 % of the rules at ± 2 se)."""
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
    se_terms = _mean_se(_nanmean(np.moveaxis(terms, 2, 0)), np.inf)[1]  # fewer than 2 draws: no spread
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


@dataclass(frozen=True, eq=False)
class SampledResult:
    """A sampled estimate: the distinct coalitions trained ``masks`` [M, n] and their
    validation errors ``errors`` [M, S] (NaN: diverged), the ``draws`` of ``sampler``, the
    RI estimate ``ri`` (:class:`SampledImportance`) and FI from its ``n + 1`` coalitions.
    With a proxy (``proxy``: its method, ``beta``, how many coalitions it scored, ...) ``ri``
    is the adjusted estimate and ``plain`` the same draws' estimate without it."""

    rule_names: tuple[str, ...]
    sampler: str
    masks: np.ndarray
    errors: np.ndarray
    draws: np.ndarray
    ri: SampledImportance
    fi: Importance
    seeds: tuple[int, ...] = ()
    problem: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    target_se: float | None = None
    plain: SampledImportance | None = None
    proxy: dict[str, Any] = field(default_factory=dict)
    enumerated: tuple[int, ...] = ()

    def __repr__(self) -> str:
        n = len(self.rule_names)
        return (
            f"SampledResult(problem={self.problem.get('name', '?')!r}, {n} rules, sampler={self.sampler!r}, "
            f"{len(self.masks)} of {2**n} coalitions trained x {self.errors.shape[1]} seeds, "
            f"largest se {np.nanmax(self.ri.se):.3f})"
        )

    def __str__(self) -> str:
        return f"{self!r}\n\n{self.table()}"

    def table(self) -> str:
        """RI ± se (with its sampling and seed parts) and FI ± se per rule, as text."""
        label = LABELS[self.sampler]
        width = max(len(r) for r in self.rule_names) + 2
        lines = [f"{'rule':<{width}}{label:>20}  {'se sampling':>11}  {'se seeds':>9}  {'FI ± se':>16}"]
        for k, name in enumerate(self.rule_names):
            fi = (
                f"{self.fi.mean[k]:+.3f} ± {self.fi.se[k]:.3f}"
                if np.isfinite(self.fi.se[k])
                else f"{self.fi.mean[k]:+.3f}"
            )
            lines.append(
                f"{name:<{width}}{self.ri.mean[k]:+11.3f} ± {self.ri.se[k]:.3f}  {self.ri.se_sampling[k]:11.3f}  "
                f"{self.ri.se_seeds[k]:9.3f}  {fi:>16}"
            )
        lines.append(
            f"\n{len(self.masks)} of {2 ** len(self.rule_names)} coalitions trained ({self.ri.samples} "
            f"{DRAWN[self.sampler]}{self._enumerated_note()}; FI from the "
            f"{len(self.rule_names) + 1} it needs); se = sqrt(se sampling² + se seeds²)"
        )
        if self.proxy and self.plain is not None:
            lines.append(
                f"adjusted by a {self.proxy['method']} proxy scored on {self.proxy['coalitions']} coalitions "
                f"({'its RI exact' if self.proxy['exact'] else 'its RI sampled'}; beta "
                f"{min(self.proxy['beta']):.2f}..{max(self.proxy['beta']):.2f}): largest se sampling "
                f"{np.nanmax(self.ri.se_sampling):.3f}, {np.nanmax(self.plain.se_sampling):.3f} without it"
            )
        if not np.all(np.isfinite(self.ri.se_sampling)):
            lines.append("se sampling inf: too few draws to measure the sampling error; give a larger budget")
        elif self.ri.samples < FEW_DRAWS:
            lines.append(
                f"se sampling rests on only {self.ri.samples} {DRAWN[self.sampler]}: a rough error bar "
                f"(it can miss the exact value well over 5 % of the time); give a larger budget"
            )
        return "\n".join(lines)

    def _enumerated_note(self) -> str:
        if not self.enumerated:
            return ""
        sizes = ", ".join(f"{k} and {len(self.rule_names) - k}" for k in self.enumerated)
        return f", every pair of sizes {sizes} among them, exactly"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampledResult:
        """The result a :meth:`to_dict` dict (``sampled.json``) describes."""
        if d.get("kind") != "kvq.SampledResult":
            raise KvqError(f"not a sampled estimate (kind {d.get('kind')!r}); kvq writes these as sampled.json")
        return cls(
            tuple(d["rule_names"]),
            d["sampler"],
            np.array(d["masks"], np.int8),
            np.array(d["errors"], float),
            np.array(d["draws"], int),
            _sampled_from(d["ri"]),
            _importance_from(d["fi"], Importance),
            tuple(d["seeds"]),
            d.get("problem", {}),
            d.get("config", {}),
            d.get("timing", {}),
            d.get("budget"),
            d.get("target_se"),
            plain=None if d.get("plain_ri") is None else _sampled_from(d["plain_ri"]),
            proxy=d.get("proxy") or {},
            enumerated=tuple(d.get("enumerated", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the estimates, what was trained and how."""
        return json_ready(
            {
                "kind": "kvq.SampledResult",
                "rule_names": list(self.rule_names),
                "sampler": self.sampler,
                "budget": self.budget,
                "target_se": self.target_se,
                "seeds": list(self.seeds),
                "masks": self.masks,
                "errors": self.errors,
                "draws": self.draws,
                "enumerated": list(self.enumerated),
                "ri": {
                    **self.ri.to_dict(),
                    "se_sampling": self.ri.se_sampling,
                    "se_seeds": self.ri.se_seeds,
                    "samples": self.ri.samples,
                },
                "fi": self.fi.to_dict(),
                "plain_ri": None if self.plain is None else self.plain.to_dict(),
                "proxy": self.proxy,
                "problem": self.problem,
                "config": self.config,
                "timing": self.timing,
            }
        )


def _importance_from(d: dict[str, Any], kind: type, **extra: Any) -> Any:
    """An :class:`Importance` (or ``kind``) from its ``to_dict`` (None -> NaN)."""
    return kind(
        d["measure"],
        d["weighting"],
        tuple(d["names"]),
        np.array(d["per_seed"], float),
        np.array(d["mean"], float),
        np.array(d["se"], float),
        d.get("output"),
        tuple(d.get("missing", ())),
        **extra,
    )


def _sampled_from(d: dict[str, Any]) -> SampledImportance:
    return _importance_from(
        d,
        SampledImportance,
        se_sampling=np.array(d["se_sampling"], float),
        se_seeds=np.array(d["se_seeds"], float),
        samples=int(d["samples"]),
    )
