"""Partial derivatives of a point function ``u(p: [d_in]) -> [d_out]`` along input axes.

Three interchangeable implementations:

- ``"jvp"`` (default): nested ``jax.jvp`` (forward over forward); every order up to
  ``order`` comes out of one nested pass.  With kvq's ``sin`` activation (a custom-JVP
  polynomial kernel, :func:`kvq.core.nn.fast_sin`) about twice as fast as ``jet`` with
  ``jnp.sin`` or nested ``grad`` for the Burgers residual (``benchmarks/pde_step.py``);
- ``"jet"``: ``jax.experimental.jet`` Taylor propagation, any order in one pass; it does
  not support functions with custom JVP rules, so it cannot differentiate kvq's ``sin``
  networks (use ``jnp_sin``/``tanh``/``relu`` networks or plain ``jnp`` functions);
- ``"grad"``: nested reverse mode (``jax.jacrev``), the way eager PyTorch code does it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.experimental import jet as _jet

from kvq.errors import KvqError

METHODS = ("jvp", "jet", "grad")
BATCH_METHODS = ("auto", "taylor", *METHODS)
PointFn = Callable[[jax.Array], jax.Array]


def _unit(p: jax.Array, axis: int) -> jax.Array:
    return jnp.zeros_like(p).at[axis].set(1.0)


def along(u: PointFn, p: jax.Array, axis: int, order: int, method: str = "jvp") -> list[jax.Array]:
    """``[u(p), d u/dp_axis, ..., d^order u/dp_axis^order]``, each of shape [d_out].

    ``p`` is one point [d_in]; ``order >= 1``.  vmap over points outside.
    """
    if order < 1:
        raise KvqError(f"derivative order must be >= 1; got {order}")
    if method not in METHODS:
        raise KvqError(f"unknown derivative method {method!r}; choose one of {METHODS}")
    e = _unit(p, axis)
    if method == "jet":
        zeros = [jnp.zeros_like(p)] * (order - 1)
        value, series = _jet.jet(u, (p,), ([e, *zeros],))
        return [value, *series]
    if method == "jvp":

        def nested(k: int) -> Callable[[jax.Array], tuple]:
            if k == 0:
                return lambda q: (u(q),)
            inner = nested(k - 1)

            def outer(q):
                primals, tangents = jax.jvp(inner, (q,), (e,))
                return (*primals, tangents[-1])

            return outer

        return list(nested(order)(p))
    fns: list[Callable[[jax.Array], jax.Array]] = [u]
    for _ in range(order):

        def next_order(q: jax.Array, f: Callable[[jax.Array], jax.Array] = fns[-1]) -> jax.Array:
            return jax.jacrev(f)(q)[..., axis]

        fns.append(next_order)
    return [f(p) for f in fns]


def partials(u: PointFn, points: jax.Array, orders: Sequence[int], method: str = "auto") -> list[list[jax.Array]]:
    """For each input axis ``j``: ``[u, d_j u, ..., d_j^orders[j] u]`` at ``points`` [P, d_in].

    Every array is [P, d_out].  ``method="auto"`` uses the network's one-pass Taylor
    propagation when ``u`` is a kvq model (:class:`kvq.core.nn.PointModel`: value and all
    derivatives stacked through each layer's matmul; for the Burgers residual 1.4x nested
    ``jvp`` at 1 000 points, level at 4 000, ``benchmarks/pde_step.py``) and nested ``jvp``
    vmapped over the points otherwise.
    """
    if method not in BATCH_METHODS:
        raise KvqError(f"unknown derivative method {method!r}; choose one of {BATCH_METHODS}")
    if len(orders) != points.shape[-1]:
        raise KvqError(f"give one derivative order per input axis ({points.shape[-1]}); got {tuple(orders)}")
    has_taylor = getattr(u, "has_taylor", False)
    if method == "taylor" and not has_taylor:
        raise KvqError("method='taylor' needs a kvq model (kvq.core.nn.PointModel); use 'jvp' for other functions")
    if method in ("auto", "taylor") and has_taylor:
        return u.taylor(points, tuple(orders))  # type: ignore[attr-defined]
    base = "jvp" if method == "auto" else method

    def one(p: jax.Array) -> list[list[jax.Array]]:
        return [along(u, p, j, k, base) if k > 0 else [u(p)] for j, k in enumerate(orders)]

    return jax.vmap(one)(points)
