"""Partial derivatives of a point function ``u(p: [d_in]) -> [d_out]`` along input axes.

Three interchangeable implementations:

- ``"jvp"`` (default): nested ``jax.jvp`` (forward over forward); every order up to
  ``order`` comes out of one nested pass.  With kvq's ``sin`` activation (a custom-JVP
  polynomial kernel, :func:`kvq.nn.fast_sin`) it measured fastest: 17.7 ms per Burgers
  training step at 4 000 points vs 24.9 ms for ``jet`` with ``jnp.sin`` and 60 ms for
  nested ``grad`` (5x50 MLP, 2-core CPU; ``benchmarks/RESULTS.md``);
- ``"jet"``: ``jax.experimental.jet`` Taylor propagation, any order in one pass; it does
  not support functions with custom JVP rules, so it cannot differentiate kvq's ``sin``
  networks (use ``tanh``/``relu`` networks or plain ``jnp`` functions with it);
- ``"grad"``: nested reverse mode (``jax.jacrev``), the way eager PyTorch code does it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import jet as _jet

from kvq.errors import KvqError

METHODS = ("jvp", "jet", "grad")
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
    fns = [u]
    for _ in range(order):
        f = fns[-1]
        fns.append(lambda q, f=f: jax.jacrev(f)(q)[..., axis])
    return [f(p) for f in fns]
