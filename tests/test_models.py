"""Bring your own network: a pure pair, a Flax Linen module, a Flax NNX module."""

from __future__ import annotations

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import kvq
from kvq.engine.batched import Engine
from kvq.engine.identity import run_fingerprint as scan_fingerprint
from kvq.core.models import nnx_factory, resolve
from kvq.core.nn import MLP


class FourierFeatures(nnx.Module):
    """Random Fourier features of the input, then a tanh layer: a common PINN network."""

    def __init__(self, rngs: nnx.Rngs, d_in: int = 2, features: int = 6, width: int = 8):
        self.B = nnx.Param(2.0 * jax.random.normal(rngs.params(), (d_in, features)))
        self.hidden = nnx.Linear(2 * features, width, rngs=rngs)
        self.out = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, x):
        z = x @ self.B
        return self.out(jnp.tanh(self.hidden(jnp.concatenate([jnp.sin(z), jnp.cos(z)], -1))))


def pure_init(key, d_in, d_out):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (d_in, 8)) / 2, "b1": jnp.zeros(8), "w2": jax.random.normal(k2, (8, d_out)) / 3}


def pure_apply(params, x):  # one point [d_in] -> [d_out]
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


@pytest.mark.slow
def test_a_linen_module_equal_to_kvqs_mlp_gives_kvqs_numbers(tiny_burgers, tiny_config, tiny_scan):
    same = MLP(width=tiny_config.width, depth=tiny_config.depth, d_out=1, activation=tiny_config.activation)
    result = kvq.scan(tiny_burgers, tiny_config, model=same)
    # the same weights and objective; only the derivative path differs (nested jvp, not kvq's Taylor pass)
    np.testing.assert_allclose(result.errors, tiny_scan.errors, rtol=2e-3)
    assert result.config["model"]["kind"] == "flax.linen" and tiny_scan.config["model"]["kind"] == "kvq.MLP"
    assert scan_fingerprint(tiny_burgers, tiny_config, model=same) != scan_fingerprint(tiny_burgers, tiny_config)


@pytest.mark.slow
def test_a_pure_pair_and_an_nnx_module_train_and_are_recorded(tiny_burgers, tiny_config, tmp_path):
    pair = kvq.scan(tiny_burgers, tiny_config, model=(pure_init, pure_apply), checkpoint=tmp_path / "ckpt")
    assert np.isfinite(pair.errors).all()
    assert pair.config["model"]["apply"] == "test_models.pure_apply" and pair.config["model"]["parameters"] == 32
    with pytest.raises(kvq.KvqError, match="different scan"):  # the checkpoint knows which network it trained
        kvq.scan(tiny_burgers, tiny_config, checkpoint=tmp_path / "ckpt")
    fourier = kvq.estimate(tiny_burgers, tiny_config, "finetune", steps=20, model=nnx_factory(FourierFeatures))
    assert np.isfinite(fourier.errors).all() and fourier.config["model"]["kind"] == "flax.nnx"
    pair.save(tmp_path / "saved")
    assert kvq.ScanResult.load(tmp_path / "saved").config["model"] == pair.config["model"]


def test_seeds_start_from_their_own_weights_unless_the_model_is_one_instance(tiny_burgers, tiny_config):
    def first_seeds(model):
        engine = Engine.prepare(tiny_burgers, tiny_config.replace(grouping="none"), model=model)
        a, b = (jax.tree.map(lambda x, s=s: x[s], engine.params0) for s in (0, 1))
        return [bool(np.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]

    assert not all(first_seeds(nnx_factory(FourierFeatures)))  # random weights differ (zero biases do not)
    assert not all(first_seeds((pure_init, pure_apply)))
    assert all(first_seeds(FourierFeatures(nnx.Rngs(0))))  # one instance: one set of initial weights


def test_models_that_do_not_fit_the_problem_are_refused(tiny_config):
    with pytest.raises(kvq.KvqError, match="model must be None"):
        resolve("mlp", tiny_config, 2, 1)
    with pytest.raises(kvq.KvqError, match=r"to shape \(8,\)"):
        resolve((pure_init, lambda p, x: jnp.tanh(x @ p["w1"])), tiny_config, 2, 1)
    with pytest.raises(kvq.KvqError, match="failed on one point of 3 inputs"):
        resolve(FourierFeatures(nnx.Rngs(0)), tiny_config, 3, 1)

    class Two(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(2)(x)

    with pytest.raises(kvq.KvqError, match=r"needs \[1\]"):
        resolve(Two(), tiny_config, 2, 1)
