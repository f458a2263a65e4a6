"""The optimizers behind ``ScanConfig(optimizer="adam" | "adamw")``: optax's update rules,
with Adam's bias correction applied as a multiplication by a scalar reciprocal.

optax divides each moment by ``1 - b^t``.  XLA rewrites that division by a broadcast scalar
into a multiplication when it compiles a program for one device, but keeps the division in a
program partitioned over several devices, so the two differ in the last float32 bits.
Written as a multiplication here, both compile to the same arithmetic: a scan gives the same
bits on any number of devices (docs/design.md §5).  The state is optax's
``ScaleByAdamState``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam's scaling (``optax.scale_by_adam`` with ``eps_root=0``): moments ``mu``, ``nu``
    and the update ``mu_hat / (sqrt(nu_hat) + eps)``, the bias corrections as reciprocals."""

    def init(params: optax.Params) -> optax.ScaleByAdamState:
        return optax.ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(jnp.zeros_like, params),
            nu=jax.tree.map(jnp.zeros_like, params),
        )

    def update(
        updates: optax.Updates, state: optax.ScaleByAdamState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.ScaleByAdamState]:
        del params
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates, state.nu)
        count = optax.safe_increment(state.count)
        step = count.astype(jnp.float32)
        c1, c2 = 1.0 / (1.0 - b1**step), 1.0 / (1.0 - b2**step)  # scalars: one division each
        out = jax.tree.map(lambda m, v: (m * c1.astype(m.dtype)) / (jnp.sqrt(v * c2.astype(v.dtype)) + eps), mu, nu)
        return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def adam(
    learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam (``optax.adam``'s defaults) with :func:`scale_by_adam`."""
    return optax.chain(scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
    """AdamW (``optax.adamw``'s defaults, decay on every parameter) with :func:`scale_by_adam`."""
    return optax.chain(
        scale_by_adam(b1, b2, eps), optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(learning_rate)
    )
