"""Rule importance from a value table (pure numpy; no training).

A value table holds ``rule_names`` (n names) and ``errors`` [2**n, S]: the validation MSE ``E(S)``
of the model trained with coalition (mask) ``S``, for S seeds. Mask number ``k`` has rule ``j`` on
iff bit ``j`` of ``k`` is set. Values are ``v(S) = -log10 E(S)`` (decades; higher is better). An
entry that is NaN, inf or <= 0 is *missing* (a diverged training): every term that needs it is left
out and the remaining weights are renormalised. See docs/design.md §1 for the definitions.

A *sampled* table (``table.sampling`` set: the coalitions a sampler drew, in ``table.masks``)
has its RI estimated from the draws (:func:`estimate_importance`, or with a cheap proxy
:func:`adjusted_importance`; docs/design.md §6) and FI from the ``n + 1`` coalitions it needs;
interactions and dependence profiles need every coalition and refuse it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import combinations
from typing import Any

import numpy as np

from kvq.core.coalitions import mask_index
from kvq.errors import KvqError
from kvq.game.estimators import (
    adjusted_importance,
    estimate_importance,
    full_importance_from,
    kernel_sizes,
    pair_strata,
    stratum_of,
)
from kvq.game.measures import WEIGHTINGS, DependenceProfile, Importance, SampledImportance, mean_se, values
from kvq.game.table import WEIGHTING, full_masks, json_ready

__all__ = [  # the importance API; the estimators and result types are defined beside it
    "WEIGHTINGS",
    "DependenceProfile",
    "Importance",
    "SampledImportance",
    "adjusted_importance",
    "agreement",
    "dependence_profile",
    "estimate_importance",
    "full_importance",
    "full_importance_from",
    "interactions",
    "json_ready",
    "kernel_sizes",
    "own_weighting",
    "pair_strata",
    "rank_correlation",
    "rule_importance",
    "sampled_estimates",
    "stratum_of",
    "trajectory",
    "values",
    "values_importance",
]


def _select(table: Any, output: int | str | None) -> tuple[tuple[str, ...], np.ndarray, str | None]:
    """Rule names, errors [2**n, S] and output name from a table or a (rule_names, errors) tuple."""
    if isinstance(table, tuple) and len(table) == 2:
        names, errors = table
        by_output, output_names = None, None
    elif hasattr(table, "rule_names") and hasattr(table, "errors"):
        names, errors = table.rule_names, table.errors
        by_output = getattr(table, "errors_by_output", None)
        output_names = getattr(table, "output_names", None)
    else:
        raise KvqError(
            f"expected a value table (with rule_names and errors) or a (rule_names, "
            f"errors) tuple, got {type(table).__name__}"
        )
    if output is None:
        return tuple(names), np.asarray(errors, dtype=float), None
    if by_output is None:
        raise KvqError(
            f"output={output!r} was requested but this value table has no per-output "
            "errors; use output=None for the overall error"
        )
    by_output = np.asarray(by_output, dtype=float)
    d = by_output.shape[-1]
    labels = tuple(output_names) if output_names is not None else tuple(str(k) for k in range(d))
    if isinstance(output, str) and output in labels:
        k = labels.index(output)
    elif isinstance(output, (int, np.integer)) and -d <= output < d:
        k = int(output) % d
    else:
        raise KvqError(f"unknown output {output!r}; valid choices: names {list(labels)} or indices 0..{d - 1}")
    return tuple(names), by_output[..., k], labels[k]


def _at_step(table: Any, step: int | None) -> Any:
    """``table`` as it stood after ``step`` optimizer steps (``None``: at the end)."""
    if step is None:
        return table
    if not hasattr(table, "at_step"):
        raise KvqError(
            f"step={step!r} needs a value table with errors over the training budget (a kvq.ValueTable "
            f"or ScanResult with errors_by_check); got {type(table).__name__}"
        )
    return table.at_step(step)


def prepare_values(
    table: Any, output: int | str | None, step: int | None = None
) -> tuple[tuple[str, ...], np.ndarray, str | None, tuple[int, ...]]:
    """Validate a table; return names, values v [rows, S] (2**n rows in binary order, or a
    sampled table's M rows in its masks' order), output name, mask numbers with a missing
    entry (sorted): a value the result carries (``Importance.missing``), not a warning."""
    table = _at_step(table, step)
    names, errors, out = _select(table, output)
    sampled = sampling_of(table) is not None
    n = len(names)
    if n == 0:
        raise KvqError("the value table has zero rules; give at least one rule name")
    if len(set(names)) != n:
        raise KvqError(f"rule names must be unique, got {list(names)}; rename the duplicates")
    if errors.ndim != 2:
        raise KvqError(
            f"errors must be 2-D [2**n_rules, n_seeds], got shape {errors.shape}; "
            "add a seed axis of length 1 for a single seed"
        )
    rows = len(table.masks) if sampled else 2**n
    if errors.shape[0] != rows or errors.shape[1] == 0:
        raise KvqError(
            f"errors has shape {errors.shape} but {n} rules need [{2**n}, n_seeds >= 1] "
            "(one row per mask in binary order); check rule_names against the table"
            if not sampled
            else f"errors has shape {errors.shape} but the sampled table has {rows} masks; they need one row each"
        )
    v = values(errors)
    bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
    missing = tuple(sorted(mask_index(table.masks[k]) if sampled else int(k) for k in bad))
    return names, v, out, missing


def sampling_of(table: Any) -> Any:
    """The table's :class:`kvq.game.table.Sampling` record; None for a complete table (or a tuple)."""
    return getattr(table, "sampling", None)


def own_weighting(table: Any) -> str:
    """The RI weighting a table gives without asking: ``"uniform"`` for a complete table, the
    sampler's (:data:`kvq.game.table.WEIGHTING`) for a sampled one."""
    sampling = sampling_of(table)
    return "uniform" if sampling is None else WEIGHTING[sampling.sampler]


def _every_coalition(table: Any, what: str, instead: str) -> None:
    """Refuse a sampled table for a measure that needs every coalition."""
    sampling = sampling_of(table)
    if sampling is not None:
        raise KvqError(
            f"{what} need every coalition, and this table was sampled ({len(table.masks)} of "
            f"{2 ** len(table.rule_names)} coalitions trained, {sampling.sampler!r}): {instead}"
        )


def _popcount(k: np.ndarray, n: int) -> np.ndarray:
    """Number of set bits among the lowest n bits of integers k (coalition sizes)."""
    return np.sum([(k >> b) & 1 for b in range(n)], axis=0) if n else np.zeros_like(k)


def _insert_zero_bit(r: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Insert a 0 bit at position i into integers r (shifting higher bits up)."""
    return ((r >> i) << (i + 1)) | (r & ((1 << i) - 1))


def _marginals(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delta_i(S) for each rule i, S without i: values [n, 2**(n-1), seeds], sizes [n, 2**(n-1)]."""
    n = v.shape[0].bit_length() - 1
    i = np.arange(n)[:, None]
    lo = _insert_zero_bit(np.arange(2 ** (n - 1))[None, :], i)
    return v[lo | (1 << i)] - v[lo], _popcount(lo, n)


def pair_parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For pairs i<j (combinations order) and S without i, j: the joint contribution
    v(S+i+j) - v(S) and the single ones v(S+i) - v(S), v(S+j) - v(S), each
    [P, 2**(n-2), seeds], and the coalition sizes [P, 2**(n-2)]."""
    n = v.shape[0].bit_length() - 1
    i, j = (np.array(a)[:, None] for a in zip(*combinations(range(n), 2)))
    lo = _insert_zero_bit(_insert_zero_bit(np.arange(2 ** (n - 2))[None, :], i), j)
    bi, bj = 1 << i, 1 << j
    return v[lo | bi | bj] - v[lo], v[lo | bi] - v[lo], v[lo | bj] - v[lo], _popcount(lo, n)


def _pair_terms(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delta_ij(S) for pairs i<j (combinations order): [P, 2**(n-2), seeds], sizes [P, 2**(n-2)]."""
    joint, a, b, sizes = pair_parts(v)
    return joint - a - b, sizes


def weighted_mean(terms: np.ndarray, sizes: np.ndarray, weighting: str) -> np.ndarray:
    """Weighted mean over coalitions of terms [k, 2**others, S] -> [S, k]; NaN terms dropped.

    Weights: 2**-others (uniform) or 1/((others+1) C(others, |S|)) (shapley), renormalised per seed
    over the finite terms.
    """
    others = terms.shape[1].bit_length() - 1
    if weighting == "shapley":
        w = np.array([1 / ((others + 1) * math.comb(others, s)) for s in range(others + 1)])[sizes]
    else:
        w = np.full(sizes.shape, 2.0**-others)
    ok = np.isfinite(terms)
    num = np.where(ok, terms * w[..., None], 0.0).sum(axis=1)
    den = np.where(ok, w[..., None], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan).T


def values_importance(v: np.ndarray, weighting: str = "uniform") -> np.ndarray:
    """RI per seed [S, n] of a complete game: ``v`` [2^n, S] the value of every coalition in
    :func:`kvq.core.coalitions.all_masks` order (e.g. a cheap proxy's), in its units."""
    _check_weighting(weighting)
    return weighted_mean(*_marginals(v), weighting)


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise KvqError(
            f"unknown weighting {weighting!r}; valid ones: {list(WEIGHTINGS)} "
            "('uniform' = Banzhaf, as in the paper; 'shapley' = Shapley value)"
        )


def _result(
    measure: str,
    weighting: str,
    names: tuple[str, ...],
    per_seed: np.ndarray,
    out: str | None,
    missing: tuple[int, ...],
) -> Importance:
    mean, se = mean_se(per_seed)
    return Importance(measure, weighting, names, per_seed, mean, se, out, missing)


def rule_importance(
    table: Any, weighting: str | None = None, output: int | str | None = None, *, step: int | None = None
) -> Importance:
    """Rule Importance RI_i: weighted mean of Delta_i(S) over S without i, per seed, in decades.

    ``weighting="uniform"``: Banzhaf value (the paper's numbers); ``"shapley"``: Shapley value;
    ``None``: the table's own (:func:`own_weighting`: uniform for a complete table, the
    sampler's for a sampled one, which gives only that one).  ``step``: the importance as it
    stood after that many optimizer steps (the last check at or before it; needs a table with
    ``errors_by_check``).  A sampled table gives its estimate, a :class:`SampledImportance`
    (:func:`sampled_estimates`).
    """
    if weighting is not None:
        _check_weighting(weighting)
    sampling = sampling_of(table)
    if sampling is not None:
        own = WEIGHTING[sampling.sampler]
        if weighting not in (None, own):
            value = "Shapley" if own == "shapley" else "uniform (Banzhaf)"
            raise KvqError(
                f"this table was sampled with {sampling.sampler!r} for the {value} RI; ask for "
                f"weighting={own!r} or run an exact scan"
            )
        return sampled_estimates(table, output, step=step)[0]
    weighting = weighting or "uniform"
    names, v, out, missing = prepare_values(table, output, step)
    return _result("RI", weighting, names, weighted_mean(*_marginals(v), weighting), out, missing)


def sampled_estimates(
    table: Any, output: int | str | None = None, *, step: int | None = None
) -> tuple[SampledImportance, SampledImportance | None]:
    """A sampled table's RI estimate from its draws (docs/design.md §6) and, when its
    :class:`~kvq.game.table.Sampling` holds a proxy's arrays, the same draws' plain estimate:
    ``(adjusted, plain)``; ``(plain, None)`` without a proxy.  ``output``/``step`` as in
    :func:`rule_importance` (the proxy, scored once on the overall error, corrects any of them:
    a control variate stays unbiased whatever it is)."""
    table = _at_step(table, step)
    sampling = sampling_of(table)
    if sampling is None:
        raise KvqError("sampled_estimates needs a sampled table (with a kvq.game.table.Sampling record)")
    names, v, out, missing = prepare_values(table, output)
    masks, s = table.masks, sampling
    if s.given is not None:  # an outside approximator's estimate, per seed: no sampling error of its own
        mean, se = mean_se(s.given)
        nan = np.full(len(names), np.nan)
        given = SampledImportance(
            "RI", WEIGHTING[s.sampler], names, s.given, mean, se, out, missing,
            se_sampling=nan, se_seeds=se, samples=len(s.draws),
        )  # fmt: skip
        return given, None
    plain = estimate_importance(s.sampler, names, masks, v, s.draws, s.enumerated)
    plain = replace(plain, output=out, missing=missing)
    if s.proxy_values is None:
        return plain, None
    adjusted = adjusted_importance(
        s.sampler, names, masks, v, s.proxy_values, s.draws, s.proxy_per_seed, s.proxy_se, s.enumerated
    )[0]
    return replace(adjusted, output=out, missing=missing), plain


def full_importance(table: Any, output: int | str | None = None, *, step: int | None = None) -> Importance:
    """Full Importance FI_i = v(R) - v(R minus i) per seed, in decades (``step`` as in
    :func:`rule_importance`).  A sampled table holds the ``n + 1`` coalitions it needs."""
    table = _at_step(table, step)
    names, v, out, missing = prepare_values(table, output)
    n = len(names)
    if sampling_of(table) is None:
        full = v.shape[0] - 1
        per_seed = (v[full] - v[full ^ (1 << np.arange(n))]).T
    else:
        rows = [table.row_of(m) for m in full_masks(n)]
        if any(r is None for r in rows):
            raise KvqError("FI needs the all-rules and every all-but-one coalition; this table lacks some")
        per_seed = (v[rows[0]][None, :] - v[rows[1:]]).T
    return _result("FI", "full", names, per_seed, out, missing)


def interactions(
    table: Any, weighting: str = "uniform", output: int | str | None = None, *, step: int | None = None
) -> Importance:
    """Pairwise interactions of rules i<j (names "a & b"), per seed, in decades; > 0 = synergy
    (see :func:`kvq.game.verdicts.pair_relations` for synergy / substitution / conflict).

    ``weighting="shapley"`` is the Shapley interaction index, ``"uniform"`` the Banzhaf interaction.
    Needs a complete table.
    """
    _check_weighting(weighting)
    _every_coalition(table, "pair interactions", "run an exact scan (kvq.scan) of these rules for them")
    names, v, out, missing = prepare_values(table, output, step)
    if len(names) < 2:
        raise KvqError(f"interactions need at least 2 rules, the table has {len(names)}")
    pairs = tuple(f"{a} & {b}" for a, b in combinations(names, 2))
    per_seed = weighted_mean(*_pair_terms(v), weighting)
    return _result("interaction", weighting, pairs, per_seed, out, missing)


def dependence_profile(table: Any, output: int | str | None = None, *, step: int | None = None) -> DependenceProfile:
    """Delta_i(S) of each rule grouped by coalition size |S| = 0..n-1 (mean, se, raw samples).
    Needs a complete table."""
    _every_coalition(table, "dependence profiles", "run an exact scan (kvq.scan) of these rules for them")
    names, v, out, missing = prepare_values(table, output, step)
    n = len(names)
    delta, sizes = _marginals(v)
    mean, se = np.full((n, n), np.nan), np.full((n, n), np.nan)
    samples = {}
    for i, name in enumerate(names):
        per_size = []
        for k in range(n):
            x = delta[i][sizes[i] == k].ravel()
            x = x[np.isfinite(x)]
            mean[i, k], se[i, k] = mean_se(x)
            per_size.append(x)
        samples[name] = tuple(per_size)
    return DependenceProfile(names, tuple(range(n)), mean, se, samples, out, missing)


def trajectory(table: Any, weighting: str | None = None) -> dict[str, Any] | None:
    """RI (``weighting``; None: the table's own, :func:`own_weighting`) and FI as they stood
    after every check of the training budget:
    ``{"steps": [C], "ri": [C, n], "ri_se": [C, n], "fi": [C, n], "fi_se": [C, n], "names"}``
    (seed mean and standard error, decades); None for a table without ``errors_by_check``."""
    steps = getattr(table, "check_steps", None)
    if steps is None:
        return None
    ri = [rule_importance(table, weighting, step=int(t)) for t in steps]
    fi = [full_importance(table, step=int(t)) for t in steps]
    return {
        "names": list(table.rule_names),
        "weighting": weighting or own_weighting(table),
        "steps": np.asarray(steps),
        "ri": np.array([r.mean for r in ri]),
        "ri_se": np.array([r.se for r in ri]),
        "fi": np.array([f.mean for f in fi]),
        "fi_se": np.array([f.se for f in fi]),
    }


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-D arrays (average ranks for ties); NaN when
    either is constant or has fewer than 2 finite pairs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return float("nan")

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for value in np.unique(x):  # ties share their average rank
            tie = x == value
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(estimate: Any, reference: Any, weighting: str | None = None) -> dict[str, float]:
    """How well ``estimate``'s importances match ``reference``'s (e.g. an estimator's table
    against the exact scan), per measure (``ri``: RI with ``weighting``, by default the
    estimate's own, :func:`own_weighting`; ``fi``):

    - ``{m}_spearman``: rank correlation of the seed-mean values;
    - ``{m}_sign``: share of rules whose mean has the same sign;
    - ``{m}_sign_decisive``: the same over rules whose reference mean is at least two
      standard errors from 0 (NaN if there is none), and ``{m}_decisive``: their count;
    - ``{m}_mae``: mean absolute difference of the means (decades).
    """
    if tuple(estimate.rule_names) != tuple(reference.rule_names):
        raise KvqError(f"the tables have different rules: {list(estimate.rule_names)} vs {list(reference.rule_names)}")
    out: dict[str, float] = {}
    weighting = weighting or own_weighting(estimate)
    pairs = {
        "ri": (rule_importance(estimate, weighting), rule_importance(reference, weighting)),
        "fi": (full_importance(estimate), full_importance(reference)),
    }
    for m, (est, ref) in pairs.items():
        same = np.sign(est.mean) == np.sign(ref.mean)
        decisive = np.abs(ref.mean) >= 2 * np.nan_to_num(ref.se, nan=np.inf)
        out[f"{m}_spearman"] = rank_correlation(est.mean, ref.mean)
        out[f"{m}_sign"] = float(np.mean(same))
        out[f"{m}_sign_decisive"] = float(np.mean(same[decisive])) if decisive.any() else float("nan")
        out[f"{m}_decisive"] = int(decisive.sum())
        out[f"{m}_mae"] = float(np.nanmean(np.abs(est.mean - ref.mean)))
    return out
