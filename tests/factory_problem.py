"""A user's problem written as a factory (imported by the tests as ``factory_problem:make``):
the 1-D heat equation u_t = 0.1 u_xx with a boundary condition, sized for the tests."""

from __future__ import annotations

import jax
import numpy as np

import kvq
from kvq.core.derivatives import partials


def exact(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * x) * np.exp(-0.1 * np.pi**2 * t)


def heat(u, pts):
    (_, _, u_xx), (_, u_t) = partials(u, pts, (2, 1))
    return (u_t - 0.1 * u_xx)[:, 0]


def boundary(u, pts):
    return jax.vmap(u)(pts)[:, 0]


def make(n_data: int | None, noise: float, split: str, seed: int) -> kvq.Problem:
    """``n_data`` observations (8 if None) with ``noise`` % noise; ``split`` is ignored."""

    def observations(s: int) -> kvq.Dataset:
        rng = np.random.default_rng(s)
        x = rng.uniform([0, 0], [1, 1], (8 if n_data is None else int(n_data), 2))
        y = exact(*x.T)
        return kvq.Dataset(x, y + noise / 100 * y.std() * rng.standard_normal(y.shape))

    rng = np.random.default_rng(123)
    xv = rng.uniform([0, 0], [1, 1], (64, 2))
    t = np.linspace(0, 1, 8)
    edges = np.concatenate([np.stack([np.zeros(8), t], 1), np.stack([np.ones(8), t], 1)])
    rules = (kvq.Rule("pde", points=rng.uniform([0, 0], [1, 1], (32, 2)), residual=heat),
             kvq.Rule("boundary", points=edges, residual=boundary, kind="local"))
    return kvq.Problem("heat", rules, train=observations(seed), sampler=observations, valid=kvq.Dataset(xv, exact(*xv.T)))


def small_network():
    """A model for ``--model factory_problem:small_network``: a pure (init, apply) pair."""
    import jax.numpy as jnp

    def init(key, d_in, d_out):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (d_in, 6)) / 2, "w2": jax.random.normal(k2, (6, d_out)) / 3}

    def apply(params, x):
        return jnp.tanh(x @ params["w1"]) @ params["w2"]

    return init, apply
