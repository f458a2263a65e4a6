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
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

from kvq.core.coalitions import mask_index
from kvq.errors import KvqError
from kvq.game.table import WEIGHTING, chain_masks, full_masks, json_ready, known_sampler
from kvq.game.trend import t975

WEIGHTINGS = ("uniform", "shapley")


def values(errors: np.ndarray) -> np.ndarray:
    """Values ``-log10(E)`` of an error array (any shape); missing entries become NaN."""
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(e) & (e > 0)
    return np.where(ok, -np.log10(np.where(ok, e, 1.0)), np.nan)


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring mean and standard error (std ddof=1 / sqrt(count)) along axis 0."""
    ok = np.isfinite(x)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(ok, x, 0.0).sum(axis=0) / count, np.nan)
        var = np.where(ok, (x - mean) ** 2, 0.0).sum(axis=0) / (count - 1)
        se = np.where(count > 1, np.sqrt(var / count), np.nan)
    return mean, se


@dataclass(frozen=True, eq=False)
class Importance:
    """One importance measure for k items (rules, or rule pairs for interactions), in decades."""

    measure: str  # "RI", "FI" or "interaction"
    weighting: str  # "uniform" (Banzhaf), "shapley", or "full" (FI)
    names: tuple[str, ...]  # rule names, or "a & b" for pairs
    per_seed: np.ndarray  # [S, k]
    mean: np.ndarray  # [k], NaN-mean over seeds
    se: np.ndarray  # [k], standard error over seeds (NaN with fewer than 2 finite seeds)
    output: str | None  # selected output, None for the overall error
    missing: tuple[int, ...]  # masks with any missing entry, sorted

    def __getitem__(self, name: str) -> tuple[float, float]:
        """(mean, se) for one name."""
        if name not in self.names:
            valid = list(self.names)
            raise KvqError(f"no {self.measure} entry named {name!r}; valid names: {valid}")
        k = self.names.index(name)
        return float(self.mean[k]), float(self.se[k])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None)."""
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})

    def ci95(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % confidence interval over seeds, ``mean ± t(0.975, m - 1) · se`` with ``m``
        finite seeds per entry: (low [k], high [k]); NaN with fewer than 2 seeds."""
        m = np.isfinite(self.per_seed).sum(axis=0)
        half = t975(m - 1) * self.se
        return self.mean - half, self.mean + half


@dataclass(frozen=True, eq=False)
class DependenceProfile:
    """Marginal contribution of each rule grouped by coalition size |S| = 0..n-1, in decades."""

    names: tuple[str, ...]  # rule names
    sizes: tuple[int, ...]  # 0..n-1
    mean: np.ndarray  # [n_rules, n]: mean over seeds and coalitions of that size
    se: np.ndarray  # [n_rules, n]: standard error over the pooled (seed, coalition) samples
    samples: dict[str, tuple[np.ndarray, ...]]  # samples[name][size]: finite raw values, 1-D
    output: str | None
    missing: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None), without the raw ``samples`` (2^(n-1) per rule
        and seed; recompute them from the value table)."""
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__ if f != "samples"})


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


def _prepare(
    table: Any, output: int | str | None, step: int | None = None
) -> tuple[tuple[str, ...], np.ndarray, str | None, tuple[int, ...]]:
    """Validate a table; return names, values v [rows, S] (2**n rows in binary order, or a
    sampled table's M rows in its masks' order), output name, mask numbers with a missing
    entry (sorted): a value the result carries (``Importance.missing``), not a warning."""
    table = _at_step(table, step)
    names, errors, out = _select(table, output)
    sampled = _sampling(table) is not None
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


def _sampling(table: Any) -> Any:
    """The table's :class:`kvq.table.Sampling` record; None for a complete table (or a tuple)."""
    return getattr(table, "sampling", None)


def own_weighting(table: Any) -> str:
    """The RI weighting a table gives without asking: ``"uniform"`` for a complete table, the
    sampler's (:data:`kvq.table.WEIGHTING`) for a sampled one."""
    sampling = _sampling(table)
    return "uniform" if sampling is None else WEIGHTING[sampling.sampler]


def _every_coalition(table: Any, what: str, instead: str) -> None:
    """Refuse a sampled table for a measure that needs every coalition."""
    sampling = _sampling(table)
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


def _pair_parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    joint, a, b, sizes = _pair_parts(v)
    return joint - a - b, sizes


def _weighted(terms: np.ndarray, sizes: np.ndarray, weighting: str) -> np.ndarray:
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
    :func:`kvq.coalitions.all_masks` order (e.g. a cheap proxy's), in its units."""
    _check_weighting(weighting)
    return _weighted(*_marginals(v), weighting)


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
    mean, se = _mean_se(per_seed)
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
    sampling = _sampling(table)
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
    names, v, out, missing = _prepare(table, output, step)
    return _result("RI", weighting, names, _weighted(*_marginals(v), weighting), out, missing)


def sampled_estimates(
    table: Any, output: int | str | None = None, *, step: int | None = None
) -> tuple[SampledImportance, SampledImportance | None]:
    """A sampled table's RI estimate from its draws (docs/design.md §6) and, when its
    :class:`~kvq.table.Sampling` holds a proxy's arrays, the same draws' plain estimate:
    ``(adjusted, plain)``; ``(plain, None)`` without a proxy.  ``output``/``step`` as in
    :func:`rule_importance` (the proxy, scored once on the overall error, corrects any of them:
    a control variate stays unbiased whatever it is)."""
    table = _at_step(table, step)
    sampling = _sampling(table)
    if sampling is None:
        raise KvqError("sampled_estimates needs a sampled table (with a kvq.table.Sampling record)")
    names, v, out, missing = _prepare(table, output)
    masks, s = table.masks, sampling
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
    names, v, out, missing = _prepare(table, output)
    n = len(names)
    if _sampling(table) is None:
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
    (see :func:`kvq.verdicts.pair_relations` for synergy / substitution / conflict).

    ``weighting="shapley"`` is the Shapley interaction index, ``"uniform"`` the Banzhaf interaction.
    Needs a complete table.
    """
    _check_weighting(weighting)
    _every_coalition(table, "pair interactions", "run an exact scan (kvq.scan) of these rules for them")
    names, v, out, missing = _prepare(table, output, step)
    if len(names) < 2:
        raise KvqError(f"interactions need at least 2 rules, the table has {len(names)}")
    pairs = tuple(f"{a} & {b}" for a, b in combinations(names, 2))
    per_seed = _weighted(*_pair_terms(v), weighting)
    return _result("interaction", weighting, pairs, per_seed, out, missing)


def dependence_profile(table: Any, output: int | str | None = None, *, step: int | None = None) -> DependenceProfile:
    """Delta_i(S) of each rule grouped by coalition size |S| = 0..n-1 (mean, se, raw samples).
    Needs a complete table."""
    _every_coalition(table, "dependence profiles", "run an exact scan (kvq.scan) of these rules for them")
    names, v, out, missing = _prepare(table, output, step)
    n = len(names)
    delta, sizes = _marginals(v)
    mean, se = np.full((n, n), np.nan), np.full((n, n), np.nan)
    samples = {}
    for i, name in enumerate(names):
        per_size = []
        for k in range(n):
            x = delta[i][sizes[i] == k].ravel()
            x = x[np.isfinite(x)]
            mean[i, k], se[i, k] = _mean_se(x)
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


# ------------------------------------------------------------------ estimates from sampled coalitions
# (docs/design.md §6; the draws are planned in kvq.sampling, which re-exports these)


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
