"""Curvature-vector products against dense jax.hessian / Jacobians, and conjugate gradients
against a direct solve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from kvq.core.curvature import conjugate_gradient, ggn_vp, hvp
from kvq.core.nn import make_mlp


def _tiny():
    init, apply = make_mlp(4, 2, 2, 1, "tanh")
    params = init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (9, 2))
    y = jnp.sin(x[:, :1] * 2.0)
    residuals = lambda p: (apply(p, x) - y).ravel()  # noqa: E731
    loss = lambda p: jnp.mean(residuals(p) ** 2)  # noqa: E731
    return params, residuals, loss


def _dense(matvec, params):
    flat, unravel = ravel_pytree(params)
    columns = jax.jit(jax.vmap(lambda e: ravel_pytree(matvec(unravel(e)))[0]))  # one program, not op by op
    return np.asarray(columns(jnp.eye(flat.size, dtype=jnp.float32))).T


def test_hessian_vector_products_match_jax_hessian():
    params, _, loss = _tiny()
    flat, unravel = ravel_pytree(params)
    dense = jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat)
    np.testing.assert_allclose(_dense(hvp(loss, params), params), dense, rtol=1e-4, atol=1e-5)


def test_gauss_newton_products_match_the_jacobian_form():
    params, residuals, loss = _tiny()
    flat, unravel = ravel_pytree(params)
    jac = jax.jit(jax.jacobian(lambda f: residuals(unravel(f))))(flat)
    expected = 2.0 / jac.shape[0] * jac.T @ jac
    got = _dense(ggn_vp(residuals, params), params)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got, got.T, atol=1e-6)
    assert np.linalg.eigvalsh(got.astype(np.float64)).min() > -1e-5  # positive semi-definite
    # the Hessian differs from G by the residual-weighted second derivatives: not equal here
    hessian = jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat)
    assert np.abs(np.asarray(hessian) - got).max() > 1e-4


def test_conjugate_gradient_reaches_the_direct_solve():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 12))
    spd = a @ a.T + 0.5 * np.eye(12)
    tree_b = {"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32), "b": jnp.asarray(rng.standard_normal(6), jnp.float32)}
    flat_b, unravel = ravel_pytree(tree_b)
    matvec = lambda v: unravel(jnp.asarray(spd, jnp.float32) @ ravel_pytree(v)[0])  # noqa: E731
    for damping in (0.0, 0.3):
        out = jax.jit(lambda b, d=damping: conjugate_gradient(matvec, b, damping=d, max_iter=50, tol=1e-7))(tree_b)
        direct = np.linalg.solve(spd + damping * np.eye(12), np.asarray(flat_b, np.float64))
        np.testing.assert_allclose(ravel_pytree(out.x)[0], direct, rtol=1e-3, atol=1e-4)
        assert float(out.relative_residual) < 1e-5 and 0 < int(out.iterations) <= 50
    # an iteration budget is respected and the residual says how far it got
    short = conjugate_gradient(matvec, tree_b, max_iter=2)
    assert int(short.iterations) == 2 and float(short.relative_residual) > 1e-3
    zero = conjugate_gradient(matvec, jax.tree.map(jnp.zeros_like, tree_b))
    assert int(zero.iterations) == 0 and float(zero.relative_residual) == 0.0
