"""Newton steps from one trained model: the curvature-vector products and conjugate-gradient
solves behind the ``newton`` method and the ``newton`` proxy (docs/design.md §6).

Pure JAX on one seed's weights; ``settings`` is a :class:`kvq.methods.Newton` (its curvature,
damping, CG limits, solve and anchor choices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from kvq.core.curvature import conjugate_gradient, ggn_vp, hvp
from kvq.core.nn import PointModel
from kvq.core.train import Objective


def curvature_matvec(
    kind: str,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    mask: jax.Array,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
) -> Callable[[Any], Any]:
    """``v -> C v`` with ``C`` the curvature of ``J_mask`` (``objective``) at ``params``: its
    Hessian (``kind="hessian"``) or its Gauss-Newton matrix (``"ggn"``: the data loss, when
    it is a mean square, and every rule with a residual stacked into one residual vector;
    any other data loss and the rules without a residual add their Hessian product).
    ``mask`` [n] is 0/1 (or any weights), ``residuals[i]`` is rule i's residual function or
    None, ``data`` = ``(x, y)``."""
    if kind == "hessian":
        return hvp(lambda p: objective.dense(p, mask, data, points), params)
    apply, weights, losses = objective.apply, objective.weights, objective.losses
    with_res = [i for i, r in enumerate(residuals) if r is not None]
    has_data = data[0].shape[0] > 0
    square_data = has_data and objective.data_residual(params, data) is not None

    products = []
    if with_res or square_data:
        products.append(ggn_vp(lambda p: objective.residual(p, mask, data, points, residuals), params, scale=1.0))
    if has_data and not square_data:
        products.append(hvp(lambda p: objective.data_loss(p, data), params))
    for i, r in enumerate(residuals):
        if r is None:

            def term(p: Any, i: int = i) -> jax.Array:
                return mask[i] * weights[i] * losses[i](PointModel(apply, p), points[i])

            products.append(hvp(term, params))

    def matvec(v):
        out = [f(v) for f in products]
        return jax.tree.map(lambda *a: sum(a), *out) if out else jax.tree.map(jnp.zeros_like, v)

    return matvec


def rule_gradients(
    objective: Objective, params: Any, data: tuple[jax.Array, ...], points: tuple[jax.Array, ...]
) -> tuple[Any, Any]:
    """``(∇L_data, [∇L_i])`` at ``params``: the data loss's gradient and each rule loss's
    (unweighted), the latter stacked along a leading [n] axis."""
    jac = jax.jacrev(lambda p: objective.terms(p, data, points))(params)  # [1 + n] per leaf
    return jax.tree.map(lambda g: g[0], jac), jax.tree.map(lambda g: g[1:], jac)


def newton_steps(
    settings: Any,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
    masks: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Parameter shifts ``Δ_S = θ_S - θ̂`` (flat, [M, p]) of one seed for ``masks`` [M, n],
    and the CG diagnostics (``iterations``, ``relative_residual``: one per solve).

    One Newton step on ``J_S`` from the anchor is ``Δ_S = -(C + δI)^-1 ∇J_S(θ̂)`` with
    ``∇J_S = ∇L_data + Σ_{i∈S} w_i ∇L_i``.  Without ``anchor_step`` the anchor's own
    objective is taken as stationary, its gradient dropped: from an all-rules anchor
    ``Δ_S = Σ_{i∉S} w_i d_i`` (docs/design.md §6), from the data-only anchor ``Δ_S = -Σ_{i∈S} w_i d_i``,
    with ``(C + δI) d_i = ∇L_i``.  ``shared``: ``C`` is the all-rules objective's curvature
    at the anchor (n solves, or n + 1 with ``anchor_step``); ``per_mask``: each ``J_S``'s own.
    """
    flat, unravel = ravel_pytree(params)
    n = len(objective.losses)
    coef = shift_coefficients(settings, objective, masks.astype(flat.dtype))
    if settings.solve == "shared":
        x, diagnostics = newton_directions(settings, objective, residuals, params, data, points)
        shifts = -(coef @ x[:n]) - (x[n] if settings.anchor_step else 0.0)
        return shifts, diagnostics
    g_data, g_rules = rule_gradients(objective, params, data, points)
    g_data = ravel_pytree(g_data)[0]
    G = jax.vmap(lambda g: ravel_pytree(g)[0])(g_rules)  # [n, p]

    def one(row):
        mask, c = row
        matvec = curvature_matvec(settings.curvature, objective, residuals, params, mask, data, points)
        r = _cg(settings, matvec, unravel, c @ G + (g_data if settings.anchor_step else 0.0))
        return -r.x, r.iterations, r.relative_residual

    shifts, its, rel = jax.lax.map(one, (masks, coef))
    return shifts, {"iterations": its, "relative_residual": rel}


def shift_coefficients(settings: Any, objective: Objective, masks: jax.Array) -> jax.Array:
    """[M, n]: each rule's gradient in ``∇J_S`` minus the anchor's own (weights ``w_i``), so
    that a shared-curvature shift is ``Δ_S = -coef_S @ d`` (see :func:`newton_steps`)."""
    w = jnp.asarray(objective.weights, masks.dtype)
    dropped = 0.0 if settings.anchor_step or settings.anchor == "data" else 1.0
    return w[None, :] * (masks - dropped)


def _cg(settings: Any, matvec: Callable[[Any], Any], unravel: Callable[[jax.Array], Any], b: jax.Array) -> Any:
    def flat_mv(v: jax.Array) -> jax.Array:
        return ravel_pytree(matvec(unravel(v)))[0]

    return conjugate_gradient(
        flat_mv, b, damping=settings.damping, max_iter=settings.cg_iterations, tol=settings.cg_tol
    )


def newton_directions(
    settings: Any,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The shared-curvature solutions ``d_i = (C + δI)^-1 ∇L_i(θ̂)`` of one seed, flat [n, p]
    (then ``(C + δI)^-1 ∇L_data`` as row ``n`` with ``anchor_step``), ``C`` the all-rules
    objective's curvature at ``params``; and the CG diagnostics.  Every mask's shift is
    linear in them, so any number of coalitions costs one product each."""
    flat, unravel = ravel_pytree(params)
    n = len(objective.losses)
    g_data, g_rules = rule_gradients(objective, params, data, points)
    G = jax.vmap(lambda g: ravel_pytree(g)[0])(g_rules)  # [n, p]
    matvec = curvature_matvec(settings.curvature, objective, residuals, params, jnp.ones(n, flat.dtype), data, points)
    rhs = jnp.concatenate([G, ravel_pytree(g_data)[0][None]]) if settings.anchor_step else G
    res = jax.vmap(lambda b: _cg(settings, matvec, unravel, b))(rhs)
    return res.x, {"iterations": res.iterations, "relative_residual": res.relative_residual}
