"""Forward-mode (jet, nested jvp) and reverse-mode derivatives agree with calculus."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kvq.core.derivatives import METHODS, along


def u(p):  # u(x, t) = [sin(2x) exp(-t), x^3 t]
    x, t = p[0], p[1]
    return jnp.stack([jnp.sin(2 * x) * jnp.exp(-t), x**3 * t])


def exact(x, t, axis, order):
    if axis == 0:
        first = [np.sin(2 * x), 2 * np.cos(2 * x), -4 * np.sin(2 * x), -8 * np.cos(2 * x)][order] * np.exp(-t)
        second = [x**3, 3 * x**2, 6 * x, 6.0][order] * t
    else:
        first = (-1) ** order * np.sin(2 * x) * np.exp(-t)
        second = x**3 * (t if order == 0 else (1.0 if order == 1 else 0.0))
    return np.array([first, second])


class DerivativeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_all_methods_match_exact_derivatives(self):
        p = jnp.array([0.3, 0.7])
        for method in METHODS:
            for axis in (0, 1):
                f = self.variant(lambda q, axis=axis, method=method: jnp.stack(along(u, q, axis, 3, method)))
                got = f(p)
                chex.assert_shape(got, (4, 2))
                want = np.stack([exact(0.3, 0.7, axis, k) for k in range(4)])
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"{method} axis {axis}")


def test_vmapped_over_points_matches_finite_differences():
    pts = np.random.default_rng(0).uniform(-1, 1, (16, 2))
    _, d1, d2 = jax.vmap(lambda q: jnp.stack(along(u, q, 0, 2)))(jnp.asarray(pts, jnp.float32)).transpose(1, 0, 2)

    def u64(p):  # the same function in float64 numpy, for finite differences
        return np.stack([np.sin(2 * p[:, 0]) * np.exp(-p[:, 1]), p[:, 0] ** 3 * p[:, 1]], axis=1)

    h, shift = 1e-4, np.array([1e-4, 0.0])
    fd1 = (u64(pts + shift) - u64(pts - shift)) / (2 * h)
    fd2 = (u64(pts + shift) - 2 * u64(pts) + u64(pts - shift)) / h**2
    np.testing.assert_allclose(d1, fd1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d2, fd2, rtol=1e-3, atol=1e-3)


def test_bad_arguments():
    from kvq.errors import KvqError

    with pytest.raises(KvqError, match="order"):
        along(u, jnp.zeros(2), 0, 0)
    with pytest.raises(KvqError, match="method"):
        along(u, jnp.zeros(2), 0, 1, "finite-differences")


@pytest.mark.parametrize("activation", ["sin", "jnp_sin", "tanh", "relu"])
def test_one_pass_taylor_equals_nested_jvp_on_networks(activation):
    from kvq.core.derivatives import partials
    from kvq.core.nn import PointModel, make_mlp

    init, apply = make_mlp(16, 3, 2, 3, activation)
    model = PointModel(apply, init(jax.random.PRNGKey(0)))
    pts = jax.random.uniform(jax.random.PRNGKey(1), (9, 2), minval=-1, maxval=1)
    for orders in [(2, 1), (4, 0), (0, 4), (3, 2)]:
        fast = partials(model, pts, orders)  # auto: the one-pass Taylor propagation
        ref = partials(model, pts, orders, "jvp")
        assert [len(axis) for axis in fast] == [k + 1 for k in orders]
        for axis_fast, axis_ref in zip(fast, ref):
            for a, b in zip(axis_fast, axis_ref):
                chex.assert_shape(a, (9, 3))
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_partials_of_a_plain_function():
    from kvq.core.derivatives import partials
    from kvq.errors import KvqError

    pts = jnp.array([[0.3, 0.7], [-0.5, 0.1]])
    (v, ux, uxx), (_, ut) = partials(u, pts, (2, 1))
    for i, (x, t) in enumerate(np.asarray(pts, np.float64)):
        np.testing.assert_allclose(uxx[i], exact(x, t, 0, 2), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ut[i], exact(x, t, 1, 1), rtol=1e-5, atol=1e-5)
    with pytest.raises(KvqError, match="taylor"):
        partials(u, pts, (1, 1), "taylor")
    with pytest.raises(KvqError, match="one derivative order per input"):
        partials(u, pts, (1,))
