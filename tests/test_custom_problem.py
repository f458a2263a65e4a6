"""A problem defined entirely in user code with the public API (the README's example):
the 1-D heat equation with its PDE, a boundary rule and a deliberately wrong initial
condition.  The scan must find the PDE helpful (RI > 0) and the wrong knowledge harmful
(RI < 0)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kvq
from kvq.core.derivatives import partials

pytestmark = pytest.mark.slow  # every test here trains (tiny) models

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


# ------------------------------------------------------------------ a correct rule that spreads a wrong one


def poisson_problem() -> kvq.Problem:
    """u'' = -pi^2 sin(pi x) on [0, 1] with u(0) = u(1) = 0 (so u = sin(pi x)), 16 noisy
    observations (1 % noise, also on the validation targets) and a wrong slope u'(0) = -pi
    (the truth is +pi): the correct ODE carries the wrong slope into the whole domain."""

    def exact(x):
        return np.sin(np.pi * x)

    def ode(u, pts):
        (_, _, u_xx), = partials(u, pts, (2,))
        return u_xx[:, 0] + jnp.pi**2 * jnp.sin(jnp.pi * pts[:, 0])

    def boundary(u, pts):
        return jax.vmap(u)(pts)[:, 0]

    def wrong_slope(u, pts):
        (_, u_x), = partials(u, pts, (1,))
        return u_x[:, 0] + jnp.pi

    def sampler(seed: int) -> kvq.Dataset:
        x = np.random.default_rng(seed).uniform(0.0, 1.0, (16, 1))
        return kvq.Dataset(x, exact(x) + 0.01 * np.random.default_rng(seed + 100).standard_normal(x.shape))

    xv = np.linspace(0, 1, 201)[:, None]
    return kvq.Problem(
        "poisson",
        (kvq.Rule("ode", points=np.linspace(0, 1, 64)[:, None], residual=ode),
         kvq.Rule("boundary", points=np.array([[0.0], [1.0]]), residual=boundary, kind="local"),
         kvq.Rule("wrong_slope", points=np.array([[0.0]]), residual=wrong_slope, kind="local")),
        train=sampler(0), sampler=sampler,
        valid=kvq.Dataset(xv, exact(xv) + 0.01 * np.random.default_rng(99).standard_normal(xv.shape)),
    )


def test_elimination_blames_the_wrong_condition_not_the_correct_law_that_spreads_it(monkeypatch):
    from kvq.workflows import robustness

    monkeypatch.setattr(robustness, "POLISH", 60)  # the L-BFGS phase of the robustness check, short
    monkeypatch.setattr(robustness, "LIGHTER", (0.1, 0.01))  # two lower weights for a surviving harm
    monkeypatch.setattr(robustness, "LIGHTER_SEEDS", 4)  # one more than the scan's (the default: six)
    config = kvq.ScanConfig(width=16, depth=2, activation="tanh", learning_rate=1e-2, steps=2000, check_every=200,
                            pretrain_steps=400, seeds=3, max_batch=64)
    trained, seeds = [], []  # the masks each weight-stage training ran, and its number of seeds
    train = robustness.Engine.train

    def counted(self, masks, progress, **kwargs):
        if kwargs.get("phase") == "robustness":
            trained.append(np.asarray(masks).copy())
            seeds.append(len(self.seeds))
        return train(self, masks, progress, **kwargs)

    monkeypatch.setattr(robustness.Engine, "train", counted)
    result = kvq.scan(poisson_problem(), config)
    # both harmful rules were trained again with L-BFGS from where they ended: the wrong slope's harm
    # survives (knowledge, not the optimizer), and so does the ODE's in the coalitions with the wrong slope
    checks = result.robustness
    assert set(checks) == {"ode", "wrong_slope"} and checks["wrong_slope"]["verdict"] == "survived"
    # at a hundredth of its weight, the ODE (under suspicion too) lowered alike, the wrong slope does not
    # help either: the knowledge, not its weight
    lighter = checks["wrong_slope"]["lighter"]
    assert [(step["factor"], step["helps"]) for step in lighter] == [(0.1, False), (0.01, False)]
    assert checks["wrong_slope"]["lowered_with"] == ["ode"] and checks["ode"]["lowered_with"] == ["wrong_slope"]
    # the pairs keep their contexts: the FI pair has the ODE in it
    assert lighter[0]["pairs"][0]["context"] == ["ode", "boundary"]
    # per rule: its pairs at the first weight (FI pair and worst context: 4 masks), then only the masks
    # holding a lowered rule (a training with neither does not see the weights)
    assert [len(m) for m in trained[0::2]] == [4, 4] and set(seeds) == {4}  # more seeds than the scan's 3
    assert all(len(m) and (m[:, 0].astype(bool) | m[:, 2].astype(bool)).all() for m in trained[1::2])
    fi_pair = checks["wrong_slope"]["pairs"][0]
    assert fi_pair["kind"] == "fi" and fi_pair["context"] == ["ode", "boundary"] and fi_pair["after"]["mean"] < -1
    worst = checks["ode"]["pairs"][-1]
    assert worst["kind"] == "worst" and "wrong_slope" in worst["context"] and worst["before"]["mean"] < -1
    ri = kvq.rule_importance(result)
    _, high = ri.ci95()
    # on average the correct ODE hurts, reliably: a flag on the sign of RI alone would blame it
    assert ri["ode"][0] < -0.5 and high[0] < 0, ri
    settle = kvq.settledness(result)
    assert settle["ode"] and settle["wrong_slope"], settle.reasons
    elim = kvq.eliminate(result)
    assert elim.removed == ("wrong_slope",), elim.to_dict()
    assert kvq.improper_rules(result) == ("wrong_slope",)
    assert elim.final["ode"][0] > 0.1  # without the wrong slope the ODE helps
    pairs = kvq.pair_relations(result)
    assert pairs.relation[pairs.names.index("ode & wrong_slope")] == "conflict"
    best = kvq.best_rule_set(result, elim.kept)
    assert "wrong_slope" not in best["best"]["rules"] and best["all_rules"]["ci95"][0] > 0
