"""What kvq's importance functions return: per-seed values with their mean and standard error
(:class:`Importance`, :class:`SampledImportance`, :class:`DependenceProfile`), in decades."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.game.table import json_ready
from kvq.game.trend import t975

WEIGHTINGS = ("uniform", "shapley")


def values(errors: np.ndarray) -> np.ndarray:
    """Values ``-log10(E)`` of an error array (any shape); missing entries become NaN."""
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(e) & (e > 0)
    return np.where(ok, -np.log10(np.where(ok, e, 1.0)), np.nan)


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


@dataclass(frozen=True, eq=False)
class SampledImportance(Importance):
    """An :class:`~kvq.game.importance.Importance` estimated from sampled coalitions; ``se`` is
    the total standard error, ``se_sampling`` and ``se_seeds`` its parts [k]; ``samples``
    how many draws (msr: coalitions; permutation: antithetic pairs of orders; kernel samplers:
    coalition-complement pairs) it rests on."""

    se_sampling: np.ndarray = field(default_factory=lambda: np.zeros(0))
    se_seeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    samples: int = 0
