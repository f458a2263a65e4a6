"""Pieces shared by the PDE problems: point sets, the time split, condition losses.

Collocation sets (the paper's: a PDE grid, points on the initial line and on each
boundary), the reference grid the observations and validation points come from, the two
splits, and condition losses of the form ``mean((u - g)^2)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from kvq.core.derivatives import partials
from kvq.problems.rules import mean_square
from kvq.problems.sampling import Pools, extrapolating

SPLITS = {
    "interpolation": "observations and validation points both from the whole reference grid (disjoint)",
    "extrapolation": "observations from the first half of the time span, validation from the second half",
}


def at_points(solution: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``reference(points [P, 2]) -> [P, 1]`` (float64) from a scalar solution ``u(a, b)`` of
    the two input columns (broadcast arrays)."""

    def reference(points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)
        return solution(points[:, 0], points[:, 1])[:, None]

    return reference


def mesh(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """All (x, t) pairs of two 1-D grids, x-major: [len(x) * len(t), 2]."""
    xx, tt = np.meshgrid(np.asarray(x, np.float64), np.asarray(t, np.float64), indexing="ij")
    return np.stack([xx.ravel(), tt.ravel()], axis=1)


def collocation(
    x_range: tuple[float, float], t_range: tuple[float, float], n_side: int = 200, n_line: int = 200
) -> dict[str, np.ndarray]:
    """The paper's rule points: ``pde`` an n_side x n_side grid of the domain, ``initial``
    (t = t0), ``left`` (x = x0) and ``right`` (x = x1) lines of n_line points, each [P, 2]."""
    x, t = np.linspace(*x_range, n_line), np.linspace(*t_range, n_line)
    return {
        "pde": mesh(np.linspace(*x_range, n_side), np.linspace(*t_range, n_side)),
        "initial": np.stack([x, np.full_like(x, t_range[0])], axis=1),
        "left": np.stack([np.full_like(t, x_range[0]), t], axis=1),
        "right": np.stack([np.full_like(t, x_range[1]), t], axis=1),
    }


def fixed_grid(x: np.ndarray, t: np.ndarray) -> Callable[..., np.ndarray]:
    """``points(n_valid=None)`` -> :func:`mesh` of x and t [len(x) * len(t), 2], the same
    whatever ``n_valid`` (a fixed reference grid)."""

    def points(n_valid: int | None = None) -> np.ndarray:
        return mesh(x, t)

    return points


def time_split(t_range: tuple[float, float]) -> Callable[[np.ndarray], Pools]:
    """``splits(points [G, 2])``: observation and validation pools [G] for each split of
    :data:`SPLITS` (extrapolation: observations before the middle of ``t_range``)."""

    def splits(points: np.ndarray) -> Pools:
        early = points[:, 1] < 0.5 * (t_range[0] + t_range[1])
        return extrapolating(early, ~early)

    return splits


def matches(target: Callable[[jax.Array], jax.Array] | None = None) -> Callable:
    """Loss ``mean((u(p) - target(p))^2)`` over points [P, d_in] (first output; ``target``
    maps points [P, d_in] -> [P]; ``None`` means 0: a homogeneous Dirichlet condition)."""

    @mean_square
    def loss(u, points):
        pred = jax.vmap(u)(points)[:, 0]
        return pred if target is None else pred - target(points)

    return loss


@mean_square
def time_derivative_vanishes(u, points):
    """Loss ``mean(u_t^2)`` over points [P, 2] (an initial velocity of zero)."""
    (_,), (_, u_t) = partials(u, points, (0, 1))
    return u_t[:, 0]
