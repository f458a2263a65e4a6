"""Perturbation estimators (kvq.estimate): exact on a quadratic objective, the curvature of
the masked objective against dense jax.hessian / Jacobians, the shared Newton step against
a dense formula, and finetune with the full budget against the exact scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import kvq
from kvq.core.coalitions import all_masks
from kvq.core.derivatives import partials
from kvq.game.importance import agreement, rank_correlation
from kvq.core.nn import make_mlp
from kvq.cli import parse_settings
from kvq.methods import Newton
from kvq.core.newton import curvature_matvec, newton_steps
from kvq.core.train import Objective

# ------------------------------------------------------------------ a quadratic problem
# u(p) = w . p + b (depth 0: affine), rules quadratic in (w, b): the objective of every
# mask is a quadratic whose minimizer a normal-equation solve gives in float64.

RNG = np.random.default_rng(3)
OBS_X = RNG.uniform(-1, 1, (24, 2))
OBS_Y = np.sin(2.0 * OBS_X[:, :1]) + 0.3 * OBS_X[:, 1:]
VAL_X = RNG.uniform(-1, 1, (64, 2))
VAL_Y = np.sin(2.0 * VAL_X[:, :1]) + 0.3 * VAL_X[:, 1:]
LINE = np.stack([np.linspace(-1, 1, 16), np.full(16, 0.5)], 1)  # where rule "level" holds
SLOPE_PTS = RNG.uniform(-1, 1, (10, 2))
MEAN_PTS = RNG.uniform(-1, 1, (12, 2))


def _level(u, pts):  # u = 0.4 on the line y = 0.5 (residual form)
    return jax.vmap(u)(pts)[:, 0] - 0.4


def _slope(u, pts):  # du/dx = 1.5 (a derivative rule, residual form)
    (_, u_x), _ = partials(u, pts, (1, 0))
    return u_x[:, 0] - 1.5


def _opaque(u, pts):  # an opaque loss (no residual): 2 (mean(u) - 0.1)^2
    return 2.0 * (jnp.mean(jax.vmap(u)(pts)[:, 0]) - 0.1) ** 2


def _quadratic_problem() -> kvq.Problem:
    rules = (
        kvq.Rule("level", points=LINE, residual=_level, weight=2.0),
        kvq.Rule("slope", points=SLOPE_PTS, residual=_slope),
        kvq.Rule("mean", _opaque, MEAN_PTS, weight=0.5),
    )
    return kvq.Problem("quadratic", rules, kvq.Dataset(OBS_X, OBS_Y), kvq.Dataset(VAL_X, VAL_Y))


def _design(x):
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)  # u = [x, 1] @ theta, theta = (w1, w2, b)


def _exact_errors() -> np.ndarray:
    """Validation MSE of the exact minimizer of J_S for every mask (float64)."""
    X = _design(OBS_X)
    L, Sl, M = _design(LINE), np.tile([1.0, 0.0, 0.0], (len(SLOPE_PTS), 1)), _design(MEAN_PTS).mean(0, keepdims=True)
    terms = [  # (A, b, scale): scale * ||A theta - b||^2
        (L, np.full(len(LINE), 0.4), 2.0 / len(LINE)),
        (Sl, np.full(len(SLOPE_PTS), 1.5), 1.0 / len(SLOPE_PTS)),
        (M, np.array([0.1]), 0.5 * 2.0),
    ]
    out = []
    for mask in all_masks(3):
        A = X.T @ X / len(X)
        rhs = X.T @ OBS_Y[:, 0] / len(X)
        for on, (Ai, bi, s) in zip(mask, terms):
            if on:
                A, rhs = A + s * Ai.T @ Ai, rhs + s * Ai.T @ bi
        theta = np.linalg.solve(A, rhs)
        out.append(np.mean((_design(VAL_X) @ theta - VAL_Y[:, 0]) ** 2))
    return np.asarray(out)


QUAD_CONFIG = kvq.ScanConfig(width=1, depth=0, activation="tanh", learning_rate=1e-2, steps=200, check_every=100,
                             pretrain_steps=100, seeds=2)


@pytest.mark.slow
@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_newton_on_a_quadratic_objective_equals_exact_retraining(curvature):
    problem = _quadratic_problem()
    result = kvq.estimate(problem, QUAD_CONFIG, "newton", curvature=curvature, solve="per_mask", anchor_step=True,
                          damping=0.0, cg_iterations=20, cg_tol=0.0)
    exact = _exact_errors()
    for s in range(QUAD_CONFIG.seeds):  # every seed's anchor differs; the Newton step lands on the same minimizer
        np.testing.assert_allclose(result.errors[:, s], exact, rtol=1e-6)
    assert result.method == "newton" and result.estimator["settings"]["curvature"] == curvature
    assert result.estimator["diagnostics"]["rules_without_residual"] == ["mean"]
    # a meaningful table: rules do change the error
    assert np.ptp(exact) > 1e-2


@pytest.mark.slow
def test_newton_without_anchor_step_is_off_by_the_anchor_gradient():
    """The default (anchor taken as stationary) is not exact when the anchor is not a
    minimum: the test above is not passing by accident."""
    problem = _quadratic_problem()
    result = kvq.estimate(problem, QUAD_CONFIG.replace(steps=100, check_every=100), "newton", solve="per_mask",
                          damping=0.0, cg_iterations=20, cg_tol=0.0)
    assert np.max(np.abs(result.errors[:, 0] / _exact_errors() - 1)) > 1e-3


# ------------------------------------------------------------------ the curvature of J_mask


def _tiny_net_terms(with_residuals: bool):
    init, apply = make_mlp(5, 2, 2, 1, "tanh")
    params = init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (7, 2))
    y = jnp.cos(x[:, :1])
    pts = (jax.random.uniform(jax.random.PRNGKey(2), (6, 2)), jax.random.uniform(jax.random.PRNGKey(3), (5, 2)))
    residuals = (_slope, _level)
    losses = tuple(kvq.Rule(f"r{i}", points=np.asarray(p), residual=r).loss for i, (r, p) in enumerate(zip(residuals, pts)))
    return apply, params, x, y, pts, losses, (residuals if with_residuals else (None, None))


def _dense(matvec, params):
    flat, unravel = ravel_pytree(params)
    columns = jax.jit(jax.vmap(lambda e: ravel_pytree(matvec(unravel(e)))[0]))  # one program, not op by op
    return np.asarray(columns(jnp.eye(flat.size, dtype=jnp.float32))).T


@pytest.mark.slow
@pytest.mark.parametrize("mask", [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)])
def test_masked_curvature_matches_dense_hessian_and_gauss_newton(mask):
    apply, params, x, y, pts, losses, residuals = _tiny_net_terms(True)
    weights, m = (1.0, 3.0), jnp.asarray(mask)
    flat, unravel = ravel_pytree(params)

    def objective(f):
        p = unravel(f)
        u = kvq.nn.PointModel(apply, p)
        return jnp.mean((apply(p, x) - y) ** 2) + sum(mi * w * li(u, q) for mi, w, li, q in zip(m, weights, losses, pts))

    H = np.asarray(jax.jit(jax.hessian(objective))(flat))  # compiled once, not op by op
    objective = Objective(apply, losses, weights, frozenset())
    got_h = _dense(curvature_matvec("hessian", objective, residuals, params, m, (x, y), pts), params)
    np.testing.assert_allclose(got_h, H, rtol=1e-3, atol=1e-4)

    # Gauss-Newton: 2 J^T J of the data residual (mean) and each rule's (sum / P, weighted)
    def jac(fn):
        return np.asarray(jax.jit(jax.jacfwd(lambda f: fn(unravel(f)).ravel()))(flat))

    Jd = jac(lambda p: apply(p, x) - y)
    G = 2.0 * Jd.T @ Jd / y.size
    for mi, w, r, q in zip(mask, weights, residuals, pts):
        Jr = jac(lambda p, r=r, q=q: r(kvq.nn.PointModel(apply, p), q))
        G = G + mi * w * 2.0 * Jr.T @ Jr / len(q)
    got_g = _dense(curvature_matvec("ggn", objective, residuals, params, m, (x, y), pts), params)
    np.testing.assert_allclose(got_g, G, rtol=1e-3, atol=1e-4)
    assert np.min(np.linalg.eigvalsh((got_g + got_g.T) / 2)) > -1e-4  # PSD
    assert np.max(np.abs(G - H)) > 1e-3  # a different matrix on a network

    # a rule given only as a loss contributes its exact Hessian: data GGN + rule Hessians
    _, _, _, _, _, _, none = _tiny_net_terms(False)
    mixed = _dense(curvature_matvec("ggn", objective, none, params, m, (x, y), pts), params)
    H_rules = H - np.asarray(jax.jit(jax.hessian(lambda f: jnp.mean((apply(unravel(f), x) - y) ** 2)))(flat))
    np.testing.assert_allclose(mixed, 2.0 * Jd.T @ Jd / y.size + H_rules, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_curvature_follows_the_data_loss():
    """A weighted mean square keeps its Gauss-Newton form (2 J^T W J); any other data loss
    (Huber) contributes its exact Hessian; rule terms are unchanged."""
    apply, params, x, y, pts, losses, residuals = _tiny_net_terms(True)
    flat, unravel = ravel_pytree(params)
    off = jnp.zeros(2)  # rules off: the data term alone
    Jd = np.asarray(jax.jit(jax.jacfwd(lambda f: (apply(unravel(f), x) - y).ravel()))(flat))
    weighted = Objective(apply, losses, (1.0, 1.0), frozenset(), "mse", (2.5,))
    got = _dense(curvature_matvec("ggn", weighted, residuals, params, off, (x, y), pts), params)
    np.testing.assert_allclose(got, 2.5 * 2.0 * Jd.T @ Jd / y.size, rtol=1e-3, atol=1e-5)
    huber = Objective(apply, losses, (1.0, 1.0), frozenset(), "huber")
    got = _dense(curvature_matvec("ggn", huber, residuals, params, off, (x, y), pts), params)
    H = np.asarray(jax.jit(jax.hessian(lambda f: huber.data_loss(unravel(f), (x, y))))(flat))
    np.testing.assert_allclose(got, H, rtol=1e-3, atol=1e-5)
    assert np.max(np.abs(H - 2.0 * Jd.T @ Jd / y.size)) > 1e-3  # not the mean square's


@pytest.mark.slow
@pytest.mark.parametrize("anchor", ["all", "data"])
@pytest.mark.parametrize("anchor_step", [False, True])
def test_shared_newton_step_matches_the_dense_formula(anchor, anchor_step):
    apply, params, x, y, pts, losses, residuals = _tiny_net_terms(True)
    weights = (1.0, 3.0)
    settings = Newton(anchor=anchor, anchor_step=anchor_step, damping=0.05, cg_iterations=200, cg_tol=1e-7)
    masks = jnp.asarray(all_masks(2), jnp.float32)
    objective = Objective(apply, losses, weights, frozenset())
    shifts, cg = newton_steps(settings, objective, residuals, params, (x, y), pts, masks)

    flat, unravel = ravel_pytree(params)
    C = _dense(curvature_matvec("ggn", objective, residuals, params, jnp.ones(2), (x, y), pts), params)
    A = C + 0.05 * np.eye(flat.size)

    def grad(fn):
        return np.asarray(jax.jit(jax.grad(lambda f: fn(unravel(f))))(flat))

    g_data = grad(lambda p: jnp.mean((apply(p, x) - y) ** 2))
    g = [grad(lambda p, li=li, q=q: li(kvq.nn.PointModel(apply, p), q)) for li, q in zip(losses, pts)]
    for k, mask in enumerate(all_masks(2)):
        grad_S = g_data + sum(w * gi for on, w, gi in zip(mask, weights, g) if on)
        own = g_data + (sum(w * gi for w, gi in zip(weights, g)) if anchor == "all" else 0.0)
        expected = -np.linalg.solve(A, grad_S - (0.0 if anchor_step else own))
        np.testing.assert_allclose(shifts[k], expected, rtol=2e-3, atol=1e-5)
    assert np.all(np.asarray(cg["relative_residual"]) < 1e-4)
    assert shifts.shape == (4, flat.size)


# ------------------------------------------------------------------ end to end on Burgers


@pytest.mark.slow
def test_finetune_with_the_full_budget_reproduces_the_exact_scan(tiny_burgers, tiny_config, tiny_scan):
    exact = tiny_scan
    fine = kvq.estimate(tiny_burgers, tiny_config, "finetune", steps=tiny_config.steps, anchor="data")
    np.testing.assert_allclose(fine.errors, exact.errors, rtol=1e-5)
    np.testing.assert_array_equal(fine.steps_run, exact.steps_run)
    assert fine.method == "finetune" and fine.estimator["settings"] == {"method": "finetune", "steps": 40, "anchor": "data"}
    short = kvq.estimate(tiny_burgers, tiny_config, "finetune", steps=20)
    assert not np.allclose(short.errors, exact.errors)  # a shorter budget is a different (estimated) table
    assert short.steps_run.max() <= 20


@pytest.mark.slow
def test_newton_estimate_end_to_end_saves_loads_and_feeds_importance(tiny_burgers, tiny_config, tiny_scan, tmp_path):
    r = kvq.estimate(tiny_burgers, tiny_config, "newton", damping=1e-2, cg_iterations=30)
    assert r.errors.shape == (16, 2) and np.all(np.isfinite(r.errors))
    diag = r.estimator["diagnostics"]
    assert np.asarray(diag["cg_relative_residual"]).shape == (2, 4)  # seeds x rules
    assert np.asarray(diag["cg_iterations"]).max() <= 30
    assert r.timing["solve_s"] > 0 and r.timing["anchor_s"] > 0
    exact_full = tiny_scan.errors[-1]
    np.testing.assert_allclose(r.errors[-1], exact_full, rtol=1e-4)  # all rules on: the trained anchor itself
    ri = kvq.rule_importance(r)
    assert ri.names == tiny_burgers.rule_names and np.all(np.isfinite(ri.mean))
    r.save(tmp_path / "res")
    back = kvq.ScanResult.load(tmp_path / "res")
    assert back.method == "newton" and back.estimator["settings"]["damping"] == 1e-2
    np.testing.assert_array_equal(back.errors, r.errors)
    refined = kvq.estimate(tiny_burgers, tiny_config, "newton", damping=1e-2, cg_iterations=30, refine_steps=20)
    assert refined.steps_run.max() <= 20 and refined.timing["refine_s"] > 0


@pytest.mark.parametrize("method,settings,message", [
    ("bogus", {}, "unknown method"),
    ("exact", {"steps": 3}, "takes no estimator settings"),
    ("newton", {"dampin": 1.0}, "has no setting"),
    ("newton", {"damping": -1.0}, "damping must be"),
    ("newton", {"curvature": "fisher"}, "curvature must be"),
    ("finetune", {"steps": 0}, "steps must be"),
    ("finetune", {"anchor": "none"}, "anchor must be"),
])
def test_bad_estimator_settings_are_clear_errors(tiny_burgers, tiny_config, method, settings, message):
    with pytest.raises(kvq.KvqError, match=message):
        kvq.estimate(tiny_burgers, tiny_config, method, **settings)


def test_parse_settings_and_agreement():
    assert parse_settings(["damping=1e-2", "solve=per_mask", "refine_steps=3", "anchor_step=true"]) == {
        "damping": 0.01, "solve": "per_mask", "refine_steps": 3, "anchor_step": True}
    with pytest.raises(kvq.KvqError, match="NAME=VALUE"):
        parse_settings(["damping"])
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 3, 5).astype(float), rng.normal(size=5)
        expected = scipy_stats.spearmanr(a, b)[0]
        got = rank_correlation(a, b)
        assert (np.isnan(expected) and np.isnan(got)) or abs(got - expected) < 1e-12
    table = kvq.ValueTable(("a", "b"), np.array([[1.0, 1.1], [0.5, 0.6], [0.9, 1.0], [0.4, 0.45]]))
    same = agreement(table, table)
    assert same["ri_spearman"] == pytest.approx(1.0) and same["ri_sign"] == 1.0 and same["ri_mae"] == 0.0
    flipped = kvq.ValueTable(("a", "b"), table.errors[[0, 2, 1, 3]])  # the rules' roles swapped
    assert agreement(flipped, table)["ri_spearman"] == pytest.approx(-1.0)
