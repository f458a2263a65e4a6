"""The MLP and kvq's fast sin activation (a custom-JVP polynomial kernel)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kvq.core.derivatives import along
from kvq.errors import KvqError
from kvq.core.nn import fast_cos, fast_sin, make_mlp


def test_fast_sin_matches_numpy_to_float32_accuracy():
    x = np.linspace(-100, 100, 200_001).astype(np.float32)
    x64 = x.astype(np.float64)
    assert np.max(np.abs(np.asarray(fast_sin(jnp.asarray(x))) - np.sin(x64))) < 1e-5
    assert np.max(np.abs(np.asarray(fast_cos(jnp.asarray(x))) - np.cos(x64))) < 1e-5
    # as good as XLA's own sin on the same float32 inputs
    err_ours = np.abs(np.asarray(fast_sin(jnp.asarray(x))) - np.sin(x64)).mean()
    err_xla = np.abs(np.asarray(jnp.sin(jnp.asarray(x))) - np.sin(x64)).mean()
    assert err_ours < 2 * err_xla + 1e-8


def test_fast_sin_nonfinite_input_stays_nonfinite():
    out = fast_sin(jnp.array([jnp.nan, jnp.inf, -jnp.inf]))
    assert not np.any(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("x0", [-7.3, -0.4, 0.0, 1.2, 3.9, 25.0])
def test_fast_sin_derivatives_of_every_order(x0):
    exact = [np.sin(x0), np.cos(x0), -np.sin(x0), -np.cos(x0), np.sin(x0)]
    f = lambda q: fast_sin(q)  # noqa: E731
    got = along(lambda p: f(p), jnp.array([x0], jnp.float32), 0, 4, "jvp")
    np.testing.assert_allclose([float(g[0]) for g in got], exact, atol=2e-5)
    g = f
    for k in range(1, 5):
        g = jax.grad(g)
        assert float(g(jnp.float32(x0))) == pytest.approx(exact[k], abs=2e-5)


class MLPTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_and_activation(self):
        for act in ("sin", "tanh", "relu"):
            init, apply = make_mlp(16, 3, 2, 4, act)
            params = init(jax.random.PRNGKey(0))
            out = self.variant(apply)(params, jnp.ones((7, 2)))
            chex.assert_shape(out, (7, 4))
            chex.assert_type(out, jnp.float32)
            chex.assert_shape(self.variant(apply)(params, jnp.ones(2)), (4,))

    def test_sin_network_equals_jnp_sin_network(self):
        init, apply = make_mlp(20, 3, 2, 1, "sin")
        params = init(jax.random.PRNGKey(1))
        x = jax.random.uniform(jax.random.PRNGKey(2), (50, 2), minval=-1, maxval=1)
        h = x
        layers = params["params"]
        for i in range(3):
            h = jnp.sin(h @ layers[f"Dense_{i}"]["kernel"] + layers[f"Dense_{i}"]["bias"])
        ref = h @ layers["Dense_3"]["kernel"] + layers["Dense_3"]["bias"]
        np.testing.assert_allclose(apply(params, x), ref, atol=1e-5)


def test_bad_network_settings():
    with pytest.raises(KvqError, match="activation"):
        make_mlp(8, 2, 2, 1, "gelu")
    with pytest.raises(KvqError, match="width"):
        make_mlp(0, 2, 2, 1, "tanh")
