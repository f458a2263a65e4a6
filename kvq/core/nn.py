"""Fully connected networks as pure ``init``/``apply`` functions (Flax linen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kvq.errors import KvqError

# Cody-Waite split of pi/2 (float32): k * _PIO2_HI is exact for |k| < 2^16
_PIO2_HI, _PIO2_MID, _PIO2_LO = 1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8


def _sincos(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sin(x), cos(x) by range reduction to [-pi/4, pi/4] and Taylor polynomials.

    Float32 accuracy equals ``jnp.sin``'s (about 4e-6 absolute at |x| <= 50), at a
    fraction of the cost on CPUs, where XLA's own sin/cos are far slower than tanh.
    """
    k = jnp.round(x * (2.0 / np.pi))
    r = ((x - k * _PIO2_HI) - k * _PIO2_MID) - k * _PIO2_LO
    r2 = r * r
    s = r + r * r2 * (-1 / 6 + r2 * (1 / 120 + r2 * (-1 / 5040 + r2 * (1 / 362880))))
    c = 1 + r2 * (-0.5 + r2 * (1 / 24 + r2 * (-1 / 720 + r2 * (1 / 40320 + r2 * (-1 / 3628800)))))
    q = k.astype(jnp.int32) & 3
    sin = jnp.where(q == 0, s, jnp.where(q == 1, c, jnp.where(q == 2, -s, -c)))
    cos = jnp.where(q == 0, c, jnp.where(q == 1, -s, jnp.where(q == 2, -c, s)))
    return sin, cos


@jax.custom_jvp
def fast_sin(x: jax.Array) -> jax.Array:
    """sin with a cheap polynomial kernel; derivatives of any order via :func:`fast_cos`."""
    return _sincos(x)[0]


@jax.custom_jvp
def fast_cos(x: jax.Array) -> jax.Array:
    """cos with a cheap polynomial kernel (see :func:`fast_sin`)."""
    return _sincos(x)[1]


fast_sin.defjvp(lambda primals, tangents: (fast_sin(primals[0]), fast_cos(primals[0]) * tangents[0]))
fast_cos.defjvp(lambda primals, tangents: (fast_cos(primals[0]), -fast_sin(primals[0]) * tangents[0]))

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sin": fast_sin,
    "tanh": jnp.tanh,
    "jnp_sin": jnp.sin,  # XLA's own sin: for jax.experimental.jet, which cannot trace fast_sin
    "relu": jax.nn.relu,
}

PyTree = Any
"""A nested structure (dicts, tuples, lists) of arrays: what jax.tree functions walk."""
Params = PyTree
"""A network's weights: a pytree of float32 arrays (per item; batched with a leading axis)."""
OptState = PyTree
"""An optax optimizer's state for one set of weights (batched like them)."""


class MLP(nn.Module):
    """``d_in -> width x depth -> d_out`` with Glorot-normal weights and zero biases
    (``depth = 0``: an affine model ``W x + b``)."""

    width: int
    depth: int
    d_out: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        init = nn.initializers.glorot_normal()
        for _ in range(self.depth):
            x = act(nn.Dense(self.width, kernel_init=init)(x))
        return nn.Dense(self.d_out, kernel_init=init)(x)


def activation_derivatives(activation: str, z: jax.Array, order: int) -> list[jax.Array]:
    """``[s(z), s'(z), ..., s^(order)(z)]`` for an activation ``s`` (order <= 4)."""
    if activation == "sin":
        s, c = fast_sin(z), fast_cos(z)
        return [s, c, -s, -c, s][: order + 1]
    if activation == "jnp_sin":
        s, c = jnp.sin(z), jnp.cos(z)
        return [s, c, -s, -c, s][: order + 1]
    if activation == "tanh":
        t = jnp.tanh(z)
        d1 = 1 - t * t
        return [t, d1, -2 * t * d1, d1 * (6 * t * t - 2), t * d1 * (16 - 24 * t * t)][: order + 1]
    step = (z > 0).astype(z.dtype)
    return [z * step, step, *[jnp.zeros_like(z)] * 3][: order + 1]


def _mul(*factors):
    """Product of factors, ``None`` standing for an exact zero (skips the work)."""
    if any(f is None for f in factors):
        return None
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


def _add(*terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def _chain(sig: list[jax.Array], z: list) -> list:
    """Derivatives 1..k of s(z(x)) from those of z (Faa di Bruno, k <= 4; None = 0)."""
    z1, z2, z3, z4 = (z + [None] * 4)[:4]
    k = len(z)
    out = [_mul(sig[1], z1)]
    if k >= 2:
        out.append(_add(_mul(sig[2], z1, z1), _mul(sig[1], z2)))
    if k >= 3:
        out.append(_add(_mul(sig[3], z1, z1, z1), _mul(3.0, sig[2], z1, z2), _mul(sig[1], z3)))
    if k >= 4:
        out.append(
            _add(
                _mul(sig[4], z1, z1, z1, z1),
                _mul(6.0, sig[3], z1, z1, z2),
                _mul(sig[2], _add(_mul(3.0, z2, z2), _mul(4.0, z1, z3))),
                _mul(sig[1], z4),
            )
        )
    return out


class MLPApply:
    """``apply(params, x [..., d_in]) -> [..., d_out]`` of an :class:`MLP`, plus
    :meth:`taylor`: derivatives along input axes in one forward pass."""

    def __init__(self, module: MLP) -> None:
        self.module = module

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        return self.module.apply(params, x)  # type: ignore[return-value]

    def taylor(self, params: Params, points: jax.Array, orders: Sequence[int]) -> list[list[jax.Array]]:
        """For each input axis j, ``[u, d_j u, ..., d_j^orders[j] u]`` at points [P, d_in].

        One pass carries the value and every requested derivative through the network
        (each layer: one matmul for all of them stacked); orders <= 4.  Each array is
        [P, d_out].
        """
        if max(orders, default=0) > 4 or min(orders, default=0) < 0:
            raise KvqError(f"Taylor propagation supports derivative orders 0..4; got {tuple(orders)}")
        layers = params["params"]
        n = len(layers)
        P = points.shape[0]
        a = points
        # series[j] = derivatives 1..orders[j] of the current layer's input along axis j
        series: list[list] = [
            [jnp.broadcast_to(jnp.eye(points.shape[1], dtype=points.dtype)[j], points.shape)] + [None] * (k - 1)
            for j, k in enumerate(orders)
            if k > 0
        ]
        for i in range(n):
            dense = layers[f"Dense_{i}"]
            w, b = dense["kernel"], dense["bias"]
            live = [t for s in series for t in s if t is not None]
            stacked = jnp.concatenate([a, *live], axis=0) @ w if live else a @ w
            z, parts = stacked[:P] + b, iter(jnp.split(stacked[P:], len(live)) if live else [])
            zs = [[None if t is None else next(parts) for t in s] for s in series]
            if i == n - 1:
                a, series = z, zs
                break
            sig = activation_derivatives(self.module.activation, z, max(orders, default=0))
            a, series = sig[0], [_chain(sig, s) for s in zs]
        out, it = [], iter(series)
        for k in orders:
            derivs = next(it) if k > 0 else []
            out.append([a] + [jnp.zeros_like(a) if d is None else d for d in derivs])
        return out


def make_mlp(width: int, depth: int, d_in: int, d_out: int, activation: str):
    """Return pure ``(init(key) -> params, apply(params, x [..., d_in]) -> [..., d_out])``.

    ``apply`` is an :class:`MLPApply`: it also offers ``apply.taylor`` for derivatives.
    """
    if activation not in ACTIVATIONS:
        raise KvqError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if width < 1 or depth < 0:
        raise KvqError(f"network width must be >= 1 and depth >= 0; got width={width}, depth={depth}")
    module = MLP(width=width, depth=depth, d_out=d_out, activation=activation)

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((d_in,), jnp.float32))

    return init, MLPApply(module)


class PointModel:
    """The model with fixed parameters as a function of ONE point: ``u(p [d_in]) -> [d_out]``.

    This is the ``u`` a rule's loss receives.  :func:`kvq.core.derivatives.partials` uses its
    :meth:`taylor` (when the network offers one) for whole-batch derivatives.
    """

    def __init__(self, apply: Callable[[Params, jax.Array], jax.Array], params: Params) -> None:
        self.apply, self.params = apply, params

    def __call__(self, p: jax.Array) -> jax.Array:
        return self.apply(self.params, p)

    @property
    def has_taylor(self) -> bool:
        return hasattr(self.apply, "taylor")

    def taylor(self, points: jax.Array, orders: Sequence[int]) -> list[list[jax.Array]]:
        return self.apply.taylor(self.params, points, orders)  # type: ignore[attr-defined]
