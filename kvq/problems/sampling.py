"""Observation and validation sets drawn from a problem's reference grid.

Validation points are fixed (independent of the seed) so every seed is scored on the same
points; observations are drawn per seed from the points left for training, with Gaussian
noise of ``noise % x std(reference on the grid)``.
"""

from __future__ import annotations

import numbers

import numpy as np

from kvq.errors import KvqError
from kvq.rules import Dataset, ObservationSampler

VALIDATION_SEED = 20240101  # fixed: the validation set never depends on the scan's seed


def check_noise(noise: object) -> float:
    """Return noise (percent of the target's std) as a float, or raise a KvqError."""
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        try:
            noise = float(noise)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise KvqError(f"noise must be a number (percent of the target's std); got {noise!r}") from None
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise KvqError(f"noise must be a finite percentage >= 0; got {noise}")
    return noise


def check_count(name: str, value: object) -> int:
    """Return a non-negative integer count, or raise a KvqError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise KvqError(f"{name} must be a whole number >= 0; got {value!r}")
    if value < 0:
        raise KvqError(f"{name} must be >= 0; got {value}")
    return int(value)


def grid_split(
    points: np.ndarray,
    values: np.ndarray,
    train_pool: np.ndarray,
    valid_pool: np.ndarray,
    *,
    n_data: int,
    noise: float,
    n_valid: int,
    split: str,
    noisy_validation: bool = False,
) -> tuple[Dataset, ObservationSampler]:
    """Fixed validation set and a per-seed observation sampler on a reference grid.

    ``points`` [G, d_in], ``values`` [G, d_out]; ``train_pool``/``valid_pool`` boolean [G]
    select where observations and validation points may come from.  When the pools
    overlap (interpolation), validation points are removed from the training pool.
    """
    rng = np.random.default_rng(VALIDATION_SEED)
    valid_idx = np.flatnonzero(valid_pool)
    valid_idx = np.sort(rng.choice(valid_idx, size=min(n_valid, valid_idx.size), replace=False))
    pool = train_pool.copy()
    pool[valid_idx] = False
    pool_idx = np.flatnonzero(pool)
    if n_data > pool_idx.size:
        raise KvqError(
            f"n_data={n_data} is larger than the {pool_idx.size} grid points available for "
            f"observations with split={split!r}; use at most {pool_idx.size}"
        )
    scale = noise / 100.0 * values.std(axis=0)
    valid_y = values[valid_idx]
    if noisy_validation and noise > 0:
        valid_y = valid_y + scale * rng.standard_normal(valid_y.shape)
    valid = Dataset(points[valid_idx], valid_y)

    def sample(seed: int) -> Dataset:
        r = np.random.default_rng([seed, 1])
        idx = r.choice(pool_idx, size=n_data, replace=False)
        y = values[idx] + scale * r.standard_normal((n_data, values.shape[1]))
        return Dataset(points[idx], y)

    return valid, sample
