"""Curvature-vector products and a conjugate-gradient solver over parameter pytrees.

The building blocks of the second-order estimator (DESIGN §3): ``H v`` and Gauss-Newton
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


def _dot(a: Tree, b: Tree) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _axpy(alpha: jax.Array, x: Tree, y: Tree) -> Tree:
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def hvp(loss: Callable[[Tree], jax.Array], params: Tree) -> MatVec:
    """``v -> H v`` with ``H`` the Hessian of scalar ``loss`` at ``params`` (forward over
    reverse: ``jax.jvp`` of ``jax.grad``)."""
    grad = jax.grad(loss)
    return lambda v: jax.jvp(grad, (params,), (v,))[1]


def ggn_vp(residuals: Callable[[Tree], jax.Array], params: Tree) -> MatVec:
    """``v -> G v`` with ``G = (2 / m) J^T J`` the Gauss-Newton matrix of
    ``loss = mean(residuals(params)^2)`` (``J``: Jacobian of the m residuals): a ``jax.jvp``
    then a ``jax.vjp``.  ``G`` is positive semi-definite even where ``H`` is not."""
    r, pullback = jax.vjp(residuals, params)
    scale = 2.0 / r.size

    def matvec(v: Tree) -> Tree:
        _, jv = jax.jvp(residuals, (params,), (v,))
        return jax.tree.map(lambda g: scale * g, pullback(jv)[0])

    return matvec


class CGResult(NamedTuple):
    """Solution ``x``, iterations run, and the final relative residual ||b - A x|| / ||b||."""

    x: Tree
    iterations: jax.Array
    relative_residual: jax.Array


def conjugate_gradient(matvec: MatVec, b: Tree, *, damping: float = 0.0, max_iter: int = 100,
                       tol: float = 1e-6) -> CGResult:
    """Solve ``(A + damping I) x = b`` for symmetric positive (semi-)definite ``A``
    (given as ``matvec``) by conjugate gradients from ``x = 0``; stops after ``max_iter``
    iterations or once the relative residual is below ``tol``."""

    def apply(v: Tree) -> Tree:
        return _axpy(damping, v, matvec(v))

    b_norm = jnp.sqrt(_dot(b, b))
    x0 = jax.tree.map(jnp.zeros_like, b)
    state = (x0, b, b, _dot(b, b), jnp.zeros((), jnp.int32))

    def cond(s):
        _, _, _, rr, k = s
        return (k < max_iter) & (jnp.sqrt(rr) > tol * b_norm)

    def body(s):
        x, r, p, rr, k = s
        ap = apply(p)
        alpha = rr / _dot(p, ap)
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        rr_new = _dot(r, r)
        p = _axpy(rr_new / rr, p, r)
        return x, r, p, rr_new, k + 1

    x, _, _, rr, k = jax.lax.while_loop(cond, body, state)
    residual = jnp.where(b_norm > 0, jnp.sqrt(rr) / jnp.where(b_norm > 0, b_norm, 1.0), 0.0)
    return CGResult(x, k, residual)
