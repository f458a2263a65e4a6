"""Statistics for importances across settings: Mann-Kendall trend tests and t intervals.

Pure numpy (no scipy at run time); ``tests/test_trend.py`` checks both against scipy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kvq.errors import KvqError

# two-sided 95 % quantiles of Student's t (0.975 quantile) for 1..30 degrees of freedom
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)
_Z975 = 1.959963984540054


def t975(df: int | np.ndarray) -> np.ndarray:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (a 95 %
    two-sided interval is mean ± t975(n - 1) · se).  Table for df <= 30, a Cornish-Fisher
    expansion beyond (error < 1e-5); NaN for df < 1."""
    df = np.asarray(df)
    z = _Z975
    d = np.maximum(df, 1).astype(float)
    approx = (z + (z**3 + z) / (4 * d) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * d**2)
              + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * d**3))
    table = np.asarray(_T975)[np.clip(df, 1, 30).astype(int) - 1]
    return np.where(df < 1, np.nan, np.where(df <= 30, table, approx))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _tie_sums(a: np.ndarray) -> tuple[float, float, float]:
    _, counts = np.unique(a, return_counts=True)
    t = counts.astype(float)
    return float(np.sum(t * (t - 1) * (2 * t + 5))), float(np.sum(t * (t - 1) * (t - 2))), float(np.sum(t * (t - 1)))


@dataclass(frozen=True)
class Trend:
    """Mann-Kendall test of a monotonic trend of ``y`` along ``x``.

    ``s``: Kendall's statistic Σ_{i<j} sign(x_j - x_i) sign(y_j - y_i); ``tau``: Kendall's
    tau-b; ``z``: the continuity-corrected normal score of ``s``; ``p``: its two-sided
    p-value; ``trend``: ``"increasing"``/``"decreasing"`` where ``p < alpha``, else
    ``"no trend"``; ``n``: pairs of finite values used.
    """

    n: int
    s: float
    tau: float
    z: float
    p: float
    trend: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in asdict(self).items()}


def mann_kendall(x: Any, y: Any, alpha: float = 0.05, continuity: bool = True) -> Trend:
    """Mann-Kendall trend test of ``y`` [m] along ``x`` [m] (NaNs dropped).

    ``x`` may repeat (several seeds at one sweep point): pairs with equal ``x`` do not
    count, and the variance of ``s`` has Kendall's corrections for ties in ``x`` and in
    ``y``.  With distinct ``x`` and no ties this is the classical Mann-Kendall test of the
    series ``y`` ordered by ``x``.  The p-value is the normal approximation (as in the
    paper's scripts); it is coarse for fewer than ~8 values.  ``continuity=False`` drops
    the usual ±1 continuity correction of ``s`` (as ``scipy.stats.kendalltau`` does).
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise KvqError(f"mann_kendall needs x and y of one length; got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 3 or np.unique(x).size < 2:
        return Trend(n, float("nan"), float("nan"), float("nan"), float("nan"), "no trend")
    sx = np.sign(x[None, :] - x[:, None])
    sy = np.sign(y[None, :] - y[:, None])
    s = float(np.sum(np.triu(sx * sy, 1)))
    vx1, vx2, vx3 = _tie_sums(x)
    vy1, vy2, vy3 = _tie_sums(y)
    var = ((n * (n - 1) * (2 * n + 5) - vx1 - vy1) / 18.0
           + vx2 * vy2 / (9.0 * n * (n - 1) * (n - 2)) + vx3 * vy3 / (2.0 * n * (n - 1)))
    n0 = n * (n - 1) / 2.0
    denom = math.sqrt((n0 - vx3 / 2.0) * (n0 - vy3 / 2.0))
    tau = s / denom if denom > 0 else float("nan")
    if var <= 0:
        return Trend(n, s, tau, float("nan"), float("nan"), "no trend")
    shift = math.copysign(1.0, s) if continuity and s != 0 else 0.0
    z = (s - shift) / math.sqrt(var)
    p = min(1.0, 2.0 * _normal_sf(abs(z)))
    trend = "no trend" if not p < alpha else ("increasing" if s > 0 else "decreasing")
    return Trend(n, s, tau, z, p, trend)
