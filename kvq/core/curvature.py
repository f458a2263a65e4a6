"""Curvature-vector products and a conjugate-gradient solver over parameter pytrees.

The building blocks of the second-order estimator (docs/design.md §6): ``H v`` and Gauss-Newton
``G v`` products that never form a matrix, and ``(M + damping I) x = b`` solved by
conjugate gradients.  All functions are pure and jit-able; vectors are pytrees shaped like
the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Tree = Any
MatVec = Callable[[Tree], Tree]


def _dot(a: Tree, b: Tree) -> Any:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _axpy(alpha: jax.Array | float, x: Tree, y: Tree) -> Tree:
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def hvp(loss: Callable[[Tree], jax.Array], params: Tree) -> MatVec:
    """``v -> H v`` with ``H`` the Hessian of scalar ``loss`` at ``params`` (forward over
    reverse: ``jax.jvp`` of ``jax.grad``, linearized once so each product reuses the
    forward pass)."""
    _, matvec = jax.linearize(jax.grad(loss), params)
    return matvec


def ggn_vp(residuals: Callable[[Tree], jax.Array], params: Tree, scale: float | None = None) -> MatVec:
    """``v -> G v`` with ``G = 2 scale J^T J`` the Gauss-Newton matrix of
    ``loss = scale * sum(residuals(params)^2)`` (``J``: Jacobian of the residuals;
    ``scale`` defaults to 1 / their count, i.e. a mean): a ``jax.jvp`` then its transpose,
    both from one linearization.  ``G`` is positive semi-definite even where ``H`` is not."""
    r, jvp = jax.linearize(residuals, params)
    vjp = jax.linear_transpose(jvp, params)
    factor = 2.0 * (1.0 / r.size if scale is None else scale)

    def matvec(v: Tree) -> Tree:
        return jax.tree.map(lambda g: factor * g, vjp(jvp(v))[0])

    return matvec


class CGResult(NamedTuple):
    """Solution ``x``, iterations run, and the final relative residual ||b - A x|| / ||b||."""

    x: Tree
    iterations: jax.Array
    relative_residual: jax.Array


def conjugate_gradient(
    matvec: MatVec, b: Tree, *, damping: float = 0.0, max_iter: int = 100, tol: float = 1e-6
) -> CGResult:
    """Solve ``(A + damping I) x = b`` for symmetric positive (semi-)definite ``A``
    (given as ``matvec``) by conjugate gradients from ``x = 0``; stops after ``max_iter``
    iterations, once the relative residual is below ``tol``, or where a search direction
    has no positive curvature (``A`` indefinite: the iterate so far is returned)."""

    def apply(v: Tree) -> Tree:
        return _axpy(damping, v, matvec(v))

    b_norm = jnp.sqrt(_dot(b, b))
    x0 = jax.tree.map(jnp.zeros_like, b)
    state = (x0, b, b, _dot(b, b), jnp.zeros((), jnp.int32), jnp.zeros((), bool))

    def cond(s):
        _, _, _, rr, k, stop = s
        return (k < max_iter) & (jnp.sqrt(rr) > tol * b_norm) & ~stop

    def body(s):
        x, r, p, rr, k, _ = s
        ap = apply(p)
        pap = _dot(p, ap)
        # no positive curvature along p (an indefinite Hessian, or a solved system in
        # float rounding): stop with the current x (truncated CG)
        stop = ~(pap > 0) | ~(rr > 0)
        alpha = jnp.where(stop, 0.0, rr / jnp.where(stop, 1.0, pap))
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        rr_new = jnp.where(stop, rr, _dot(r, r))
        p = _axpy(jnp.where(stop, 0.0, rr_new / jnp.where(stop, 1.0, rr)), p, r)
        return x, r, p, rr_new, k + jnp.where(stop, 0, 1), stop

    x, _, _, rr, k, _ = jax.lax.while_loop(cond, body, state)
    residual = jnp.where(b_norm > 0, jnp.sqrt(rr) / jnp.where(b_norm > 0, b_norm, 1.0), 0.0)
    return CGResult(x, k, residual)
