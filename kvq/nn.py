"""Fully connected networks as pure ``init``/``apply`` functions (Flax linen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kvq.errors import KvqError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sin": jnp.sin,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}

Params = Any


class MLP(nn.Module):
    """``d_in -> width x depth -> d_out`` with Glorot-normal weights and zero biases."""

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


def make_mlp(width: int, depth: int, d_in: int, d_out: int, activation: str):
    """Return pure ``(init(key) -> params, apply(params, x [..., d_in]) -> [..., d_out])``."""
    if activation not in ACTIVATIONS:
        raise KvqError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if width < 1 or depth < 1:
        raise KvqError(f"network width and depth must be >= 1; got width={width}, depth={depth}")
    module = MLP(width=width, depth=depth, d_out=d_out, activation=activation)

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((d_in,), jnp.float32))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply(params, x)

    return init, apply


def mlp_flops_per_point(width: int, depth: int, d_in: int, d_out: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of one point."""
    dims: Sequence[int] = [d_in] + [width] * depth + [d_out]
    return int(sum(2 * a * b for a, b in zip(dims[:-1], dims[1:])))
