"""Viscous Burgers: u_t + u u_x - (0.01/pi) u_xx = 0 on x in [-1, 1], t in [0, 1].

Rules (in order): ``pde``; ``ic`` u(x, 0) = -sin(pi x); ``bc_left`` u(-1, t) = 0;
``bc_right`` u(1, t) = 0.  The reference is the exact Cole-Hopf solution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kvq.derivatives import partials
from kvq.errors import KvqError
from kvq.problems.sampling import check_count, check_noise, grid_split
from kvq.rules import Problem, Rule

NU = 0.01 / np.pi
X_RANGE = (-1.0, 1.0)
T_RANGE = (0.0, 1.0)
SPLITS = ("interpolation", "extrapolation")


def cole_hopf(x: np.ndarray, t: np.ndarray, nodes: int = 100) -> np.ndarray:
    """Exact solution u(x, t) (float64, broadcast shapes of x and t).

    Cole-Hopf: u = -int sin(pi(x-y)) f(x-y) g(y) dy / int f(x-y) g(y) dy with
    f(s) = exp(-cos(pi s) / (2 pi nu)) and the heat kernel g; the integrals are done by
    Gauss-Hermite quadrature with ``nodes`` nodes in log-space (no overflow).
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    z, w = np.polynomial.hermite.hermgauss(nodes)
    s = x[..., None] - 2.0 * np.sqrt(NU * t[..., None]) * z
    expo = -np.cos(np.pi * s) / (2.0 * np.pi * NU)
    weights = w * np.exp(expo - expo.max(axis=-1, keepdims=True))
    u = -np.sum(weights * np.sin(np.pi * s), axis=-1) / np.sum(weights, axis=-1)
    return np.where(t == 0.0, -np.sin(np.pi * x), u)


def reference(points: np.ndarray) -> np.ndarray:
    """Exact solution at points [P, 2] (columns x, t) -> [P, 1]."""
    points = np.asarray(points, np.float64)
    return cole_hopf(points[:, 0], points[:, 1])[:, None]


def grid() -> tuple[np.ndarray, np.ndarray]:
    """The paper's reference grid: 256 x in [-1, 1] by 100 t in [0, 0.99] -> ([G, 2], [G, 1])."""
    x = np.linspace(*X_RANGE, 256)
    t = np.linspace(0.0, 0.99, 100)
    xx, tt = np.meshgrid(x, t, indexing="ij")
    pts = np.stack([xx.ravel(), tt.ravel()], axis=1)
    return pts, reference(pts)


def pde_loss(u, points):
    """Mean squared Burgers residual at points [P, 2]."""

    (value, u_x, u_xx), (_, u_t) = partials(u, points, (2, 1))
    return jnp.mean((u_t + value * u_x - NU * u_xx)[:, 0] ** 2)


def ic_loss(u, points):
    """Mean squared misfit of u(x, 0) = -sin(pi x) at points [P, 2] (t = 0)."""
    pred = jax.vmap(u)(points)[:, 0]
    return jnp.mean((pred + jnp.sin(jnp.pi * points[:, 0])) ** 2)


def zero_loss(u, points):
    """Mean squared value of u at points [P, 2] (a homogeneous Dirichlet condition)."""
    return jnp.mean(jax.vmap(u)(points)[:, 0] ** 2)


def make_rules(n_pde_side: int = 200, n_boundary: int = 200) -> tuple[Rule, ...]:
    """The paper's rules: PDE on an n x n grid, 200 points per initial/boundary rule."""
    x = np.linspace(*X_RANGE, n_pde_side)
    t = np.linspace(*T_RANGE, n_pde_side)
    xx, tt = np.meshgrid(x, t, indexing="ij")
    pde_pts = np.stack([xx.ravel(), tt.ravel()], axis=1)
    xb = np.linspace(*X_RANGE, n_boundary)
    tb = np.linspace(*T_RANGE, n_boundary)
    return (
        Rule("pde", pde_loss, pde_pts, kind="global"),
        Rule("ic", ic_loss, np.stack([xb, np.zeros_like(xb)], axis=1), kind="local"),
        Rule("bc_left", zero_loss, np.stack([np.full_like(tb, X_RANGE[0]), tb], axis=1), kind="local"),
        Rule("bc_right", zero_loss, np.stack([np.full_like(tb, X_RANGE[1]), tb], axis=1), kind="local"),
    )


def make(
    n_data: int = 100,
    noise: float = 0.0,
    split: str = "interpolation",
    seed: int = 0,
    n_valid: int = 10_000,
    noisy_validation: bool = False,
) -> Problem:
    """Burgers with ``n_data`` observations (noise in % of std(u)) and a split.

    ``interpolation``: observations and validation drawn from the whole reference grid
    (disjoint); ``extrapolation``: observations from t < 0.5, validation from t >= 0.5.
    """
    n_data = check_count("n_data", n_data)
    noise = check_noise(noise)
    seed = check_count("seed", seed)
    if split not in SPLITS:
        raise KvqError(f"unknown split {split!r}; choose one of {SPLITS}")
    pts, u = grid()
    if split == "interpolation":
        train_pool = valid_pool = np.ones(len(pts), bool)
    else:
        train_pool = pts[:, 1] < 0.5
        valid_pool = ~train_pool
    valid, sampler = grid_split(
        pts, u, train_pool, valid_pool, n_data=n_data, noise=noise, n_valid=n_valid,
        split=split, noisy_validation=noisy_validation,
    )
    info = {
        "equation": "u_t + u u_x - (0.01/pi) u_xx = 0",
        "domain": {"x": list(X_RANGE), "t": list(T_RANGE)},
        "inputs": ["x", "t"],
        "outputs": ["u"],
        "n_data": n_data,
        "noise_pct": noise,
        "split": split,
        "noisy_validation": bool(noisy_validation),
        "n_valid": len(valid),
    }
    return Problem("burgers", make_rules(), sampler(seed), valid, reference=reference,
                   sampler=sampler, seed=seed, info=info)
