"""Partial derivatives of a point function ``u(p: [d_in]) -> [d_out]`` along input axes.

Three interchangeable implementations; ``"jet"`` (forward Taylor mode: one pass carries
u, u', u'', ... along a direction) is the default because it measured fastest for the
PDE residuals kvq trains (see ``benchmarks/RESULTS.md``):

- ``"jet"``: ``jax.experimental.jet`` Taylor propagation, any order in one pass;
- ``"jvp"``: nested ``jax.jvp`` (forward over forward);
- ``"grad"``: nested reverse mode (``jax.jacrev``), the way eager PyTorch code does it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import jet as _jet

from kvq.errors import KvqError

METHODS = ("jet", "jvp", "grad")
PointFn = Callable[[jax.Array], jax.Array]


def _unit(p: jax.Array, axis: int) -> jax.Array:
    return jnp.zeros_like(p).at[axis].set(1.0)


def along(u: PointFn, p: jax.Array, axis: int, order: int, method: str = "jet") -> list[jax.Array]:
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
        fns = [u]
        for _ in range(order):
            f = fns[-1]
            fns.append(lambda q, f=f: jax.jvp(f, (q,), (e,))[1])
        # evaluate the highest one with jvp so lower orders share the pass where possible
        value, first = jax.jvp(u, (p,), (e,))
        out = [value, first]
        for f in fns[2:]:
            out.append(f(p))
        return out
    fns = [u]
    for _ in range(order):
        f = fns[-1]
        fns.append(lambda q, f=f: jax.jacrev(f)(q)[..., axis])
    return [f(p) for f in fns]
