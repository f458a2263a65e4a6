"""Observation and validation sets drawn from a problem's reference grid.

Validation points are fixed (independent of the seed) so every seed is scored on the same
points; observations are drawn per seed from the points left for training, with Gaussian
noise of ``noise % x std(reference on the grid)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping

import numpy as np

from kvq.errors import KvqError
from kvq.problems.rules import Dataset, ObservationSampler, Problem, Rule
from kvq.problems.spec import Spec

VALIDATION_SEED = 20240101  # fixed: the validation set never depends on the scan's seed
Pools = Mapping[str, tuple[np.ndarray, np.ndarray]]  # split -> (train_pool, valid_pool), boolean [G] each


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
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        count = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        count = int(float(value))
    else:
        raise KvqError(f"{name} must be a whole number >= 0; got {value!r}")
    if count < 0:
        raise KvqError(f"{name} must be >= 0; got {count}")
    return count


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
    noise_pool: np.ndarray | None = None,
) -> tuple[Dataset, ObservationSampler]:
    """Fixed validation set and a per-seed observation sampler on a reference grid.

    ``points`` [G, d_in], ``values`` [G, d_out]; ``train_pool``/``valid_pool`` boolean [G]
    select where observations and validation points may come from.  When the pools
    overlap (interpolation), validation points are removed from the training pool.  The
    noise scale is each output's std over ``noise_pool`` (boolean [G]; default all points).
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
    scale = noise / 100.0 * values[slice(None) if noise_pool is None else noise_pool].std(axis=0)
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


def extrapolating(train_pool: np.ndarray, valid_pool: np.ndarray) -> Pools:
    """The usual two splits over G points: ``interpolation`` draws observations and
    validation points from all of them (disjoint), ``extrapolation`` observes ``train_pool``
    and validates on ``valid_pool`` (boolean [G] each)."""
    everywhere = np.ones(len(train_pool), bool)
    return {"interpolation": (everywhere, everywhere), "extrapolation": (train_pool, valid_pool)}


def check_options(
    spec: Spec, n_data: object, noise: object, split: str, seed: object, n_valid: object
) -> tuple[int, float, int, int]:
    """``(n_data, noise, seed, n_valid)`` of a built-in problem, checked, or a KvqError."""
    count, valid = check_count("n_data", n_data), check_count("n_valid", n_valid)
    percent, first_seed = check_noise(noise), check_count("seed", seed)
    if split not in spec.splits:
        raise KvqError(f"unknown split {split!r} for problem {spec.name!r}; choose one of {tuple(spec.splits)}")
    if valid < 1:
        raise KvqError("n_valid must be >= 1: importance needs held-out points")
    return count, percent, first_seed, valid


def assemble(
    spec: Spec,
    rules: tuple[Rule, ...],
    points: np.ndarray,
    values: np.ndarray,
    pools: Pools,
    *,
    reference: Callable[[np.ndarray], np.ndarray],
    n_data: int,
    noise: float,
    split: str,
    seed: int,
    n_valid: int,
    noisy_validation: bool = False,
) -> Problem:
    """A built-in problem from its rules and a reference point set.

    ``points`` [G, d_in] and ``values`` [G, d_out] are where observations and validation
    points come from; ``pools[split] = (train_pool, valid_pool)`` (boolean [G]) say which
    of them each may use under each split (see :func:`grid_split`).  Noise is scaled by
    each output's std over the interpolation split's observation pool (the in-distribution
    domain), whatever the split.
    """
    n_data, noise, seed, n_valid = check_options(spec, n_data, noise, split, seed, n_valid)
    if tuple(r.name for r in rules) != spec.rule_names:  # pragma: no cover - a library bug, caught by tests
        raise KvqError(f"problem {spec.name!r}: rules {[r.name for r in rules]} differ from its spec")
    train_pool, valid_pool = pools[split]
    valid, sampler = grid_split(
        points,
        values,
        train_pool,
        valid_pool,
        n_data=n_data,
        noise=noise,
        n_valid=n_valid,
        split=split,
        noisy_validation=noisy_validation,
        noise_pool=pools["interpolation"][0],
    )
    info = {
        **spec.info(),
        "n_data": n_data,
        "noise_pct": noise,
        "split": split,
        "split_meaning": spec.splits[split],
        "noisy_validation": bool(noisy_validation),
        "n_valid": len(valid),
    }
    return Problem(spec.name, rules, sampler(seed), valid, reference=reference, sampler=sampler, seed=seed, info=info)
