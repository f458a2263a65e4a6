"""Statistics for importances across settings: Mann-Kendall trend tests and t intervals.

The t quantiles come from ``scipy.stats`` (installed with jax; imported on first use, as it
takes most of a second to import and most commands never need it).  The Mann-Kendall test is
written here because it needs ties in ``x`` (several seeds per sweep point) and the
continuity correction of the paper's scripts; ``tests/test_trend.py`` checks it against
``scipy.stats.kendalltau``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kvq.errors import KvqError


def t975(df: int | np.ndarray) -> np.ndarray:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (a 95 %
    two-sided interval is mean ± t975(n - 1) · se), from ``scipy.stats``; NaN for df < 1."""
    from scipy import stats

    df = np.asarray(df, float)
    return np.where(df < 1, np.nan, stats.t.ppf(0.975, np.maximum(df, 1)))


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
    var = (
        (n * (n - 1) * (2 * n + 5) - vx1 - vy1) / 18.0
        + vx2 * vy2 / (9.0 * n * (n - 1) * (n - 2))
        + vx3 * vy3 / (2.0 * n * (n - 1))
    )
    n0 = n * (n - 1) / 2.0
    denom = math.sqrt((n0 - vx3 / 2.0) * (n0 - vy3 / 2.0))
    tau = s / denom if denom > 0 else float("nan")
    if var <= 0:
        return Trend(n, s, tau, float("nan"), float("nan"), "no trend")
    shift = math.copysign(1.0, s) if continuity and s != 0 else 0.0
    z = (s - shift) / math.sqrt(var)
    from scipy import stats

    p = min(1.0, 2.0 * float(stats.norm.sf(abs(z))))
    trend = "no trend" if not p < alpha else ("increasing" if s > 0 else "decreasing")
    return Trend(n, s, tau, z, p, trend)
