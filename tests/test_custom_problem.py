"""A problem defined entirely in user code with the public API (the README's example):
the 1-D heat equation with its PDE, a boundary rule and a deliberately wrong initial
condition.  The scan must find the PDE helpful (RI > 0) and the wrong knowledge harmful
(RI < 0)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import kvq
from kvq.derivatives import partials

ALPHA = 0.1


def exact(x, t):
    return np.sin(np.pi * x) * np.exp(-ALPHA * np.pi**2 * t)


def heat_pde(u, pts):  # u_t = ALPHA u_xx on (x, t)
    (_, _, u_xx), (_, u_t) = partials(u, pts, (2, 1))
    return jnp.mean((u_t - ALPHA * u_xx) ** 2)


def wrong_ic(u, pts):  # improper knowledge: u(x, 0) = -sin(pi x) (the sign is wrong)
    return jnp.mean((jax.vmap(u)(pts)[:, 0] + jnp.sin(jnp.pi * pts[:, 0])) ** 2)


def boundary(u, pts):  # u(0, t) = u(1, t) = 0
    return jnp.mean(jax.vmap(u)(pts)[:, 0] ** 2)


def heat_problem() -> kvq.Problem:
    rng = np.random.default_rng(0)
    x_val = rng.uniform([0, 0], [1, 1], (400, 2))

    def sampler(seed: int) -> kvq.Dataset:  # a new observation draw per seed
        x = np.random.default_rng(seed).uniform([0, 0], [1, 1], (12, 2))
        return kvq.Dataset(x, exact(*x.T))

    t = np.linspace(0, 1, 40)
    return kvq.Problem(
        name="heat",
        rules=(
            kvq.Rule("pde", heat_pde, rng.uniform([0, 0], [1, 1], (256, 2))),
            kvq.Rule("wrong_ic", wrong_ic, np.stack([np.linspace(0, 1, 40), np.zeros(40)], 1), kind="local"),
            kvq.Rule("boundary", boundary, np.concatenate([np.stack([np.zeros(40), t], 1),
                                                           np.stack([np.ones(40), t], 1)]), kind="local"),
        ),
        train=sampler(0),
        valid=kvq.Dataset(x_val, exact(*x_val.T)),
        sampler=sampler,
        reference=lambda p: exact(p[:, 0], p[:, 1])[:, None],
    )


def test_user_defined_problem_ranks_correct_and_wrong_knowledge():
    problem = heat_problem()
    config = kvq.ScanConfig(width=16, depth=2, activation="tanh", learning_rate=1e-2, steps=1000,
                            check_every=200, pretrain_steps=400, seeds=2)
    result = kvq.scan(problem, config)
    assert result.errors.shape == (8, 2) and np.isfinite(result.errors).all()
    ri = kvq.rule_importance(result)
    by_name = dict(zip(result.rule_names, ri.mean))
    assert by_name["pde"] > 0.05, ri
    assert by_name["wrong_ic"] < -0.05, ri
    # and per seed, not only on average: the wrong rule hurts under every seed
    assert np.all(ri.per_seed[:, list(result.rule_names).index("wrong_ic")] < 0)
