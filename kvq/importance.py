"""Rule importance from a value table (pure numpy; no training).

A value table holds ``rule_names`` (n names) and ``errors`` [2**n, S]: the validation MSE ``E(S)``
of the model trained with coalition (mask) ``S``, for S seeds. Mask number ``k`` has rule ``j`` on
iff bit ``j`` of ``k`` is set. Values are ``v(S) = -log10 E(S)`` (decades; higher is better). An
entry that is NaN, inf or <= 0 is *missing* (a diverged training): every term that needs it is left
out and the remaining weights are renormalised. See docs/design.md §1 for the definitions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.trend import t975

WEIGHTINGS = ("uniform", "shapley")


def values(errors: np.ndarray) -> np.ndarray:
    """Values ``-log10(E)`` of an error array (any shape); missing entries become NaN."""
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(e) & (e > 0)
    return np.where(ok, -np.log10(np.where(ok, e, 1.0)), np.nan)


def json_ready(x: Any) -> Any:
    """JSON-ready copy of ``x``: dicts, lists, ints, floats, bools; NaN/inf -> None."""
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, dict):
        return {str(k): json_ready(y) for k, y in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(y) for y in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


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
    """Validate a table; return names, values v [2**n, S], output name, missing masks; warn once."""
    names, errors, out = _select(_at_step(table, step), output)
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
    if errors.shape[0] != 2**n or errors.shape[1] == 0:
        raise KvqError(
            f"errors has shape {errors.shape} but {n} rules need [{2**n}, n_seeds >= 1] "
            "(one row per mask in binary order); check rule_names against the table"
        )
    v = values(errors)
    missing = tuple(int(k) for k in np.flatnonzero(~np.isfinite(v).all(axis=1)))
    if missing:

        def label(k: int) -> str:
            return f"{k} ({'+'.join(nm for j, nm in enumerate(names) if k >> j & 1) or 'no rules'})"

        shown = ", ".join(label(k) for k in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        warnings.warn(
            f"{len(missing)} of {2**n} masks have missing errors (NaN, inf or <= 0, e.g. "
            f"a diverged training): masks {shown}{more}; terms involving them were left "
            "out of the averages and the remaining weights renormalised",
            RuntimeWarning,
            stacklevel=3,
        )
    return names, v, out, missing


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
    table: Any, weighting: str = "uniform", output: int | str | None = None, *, step: int | None = None
) -> Importance:
    """Rule Importance RI_i: weighted mean of Delta_i(S) over S without i, per seed, in decades.

    ``weighting="uniform"``: Banzhaf value (the paper's numbers); ``"shapley"``: Shapley value.
    ``step``: the importance as it stood after that many optimizer steps (the last check at or
    before it; needs a table with ``errors_by_check``).
    """
    _check_weighting(weighting)
    names, v, out, missing = _prepare(table, output, step)
    return _result("RI", weighting, names, _weighted(*_marginals(v), weighting), out, missing)


def full_importance(table: Any, output: int | str | None = None, *, step: int | None = None) -> Importance:
    """Full Importance FI_i = v(R) - v(R minus i) per seed, in decades (``step`` as in
    :func:`rule_importance`)."""
    names, v, out, missing = _prepare(table, output, step)
    full = v.shape[0] - 1
    per_seed = (v[full] - v[full ^ (1 << np.arange(len(names)))]).T
    return _result("FI", "full", names, per_seed, out, missing)


def interactions(
    table: Any, weighting: str = "uniform", output: int | str | None = None, *, step: int | None = None
) -> Importance:
    """Pairwise interactions of rules i<j (names "a & b"), per seed, in decades; > 0 = synergy
    (see :func:`kvq.verdicts.pair_relations` for synergy / substitution / conflict).

    ``weighting="shapley"`` is the Shapley interaction index, ``"uniform"`` the Banzhaf interaction.
    """
    _check_weighting(weighting)
    names, v, out, missing = _prepare(table, output, step)
    if len(names) < 2:
        raise KvqError(f"interactions need at least 2 rules, the table has {len(names)}")
    pairs = tuple(f"{a} & {b}" for a, b in combinations(names, 2))
    per_seed = _weighted(*_pair_terms(v), weighting)
    return _result("interaction", weighting, pairs, per_seed, out, missing)


def dependence_profile(table: Any, output: int | str | None = None, *, step: int | None = None) -> DependenceProfile:
    """Delta_i(S) of each rule grouped by coalition size |S| = 0..n-1 (mean, se, raw samples)."""
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


def trajectory(table: Any, weighting: str = "uniform") -> dict[str, Any] | None:
    """RI (``weighting``) and FI as they stood after every check of the training budget:
    ``{"steps": [C], "ri": [C, n], "ri_se": [C, n], "fi": [C, n], "fi_se": [C, n], "names"}``
    (seed mean and standard error, decades); None for a table without ``errors_by_check``."""
    steps = getattr(table, "check_steps", None)
    if steps is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ri = [rule_importance(table, weighting, step=int(t)) for t in steps]
        fi = [full_importance(table, step=int(t)) for t in steps]
    return {
        "names": list(table.rule_names),
        "weighting": weighting,
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


def agreement(estimate: Any, reference: Any, weighting: str = "uniform") -> dict[str, float]:
    """How well ``estimate``'s importances match ``reference``'s (e.g. an estimator's table
    against the exact scan), per measure (``ri``: RI with ``weighting``; ``fi``):

    - ``{m}_spearman``: rank correlation of the seed-mean values;
    - ``{m}_sign``: share of rules whose mean has the same sign;
    - ``{m}_sign_decisive``: the same over rules whose reference mean is at least two
      standard errors from 0 (NaN if there is none), and ``{m}_decisive``: their count;
    - ``{m}_mae``: mean absolute difference of the means (decades).
    """
    if tuple(estimate.rule_names) != tuple(reference.rule_names):
        raise KvqError(f"the tables have different rules: {list(estimate.rule_names)} vs {list(reference.rule_names)}")
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
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
