"""Any optax transformation as the optimizer: schedules, chains, clipping."""

from __future__ import annotations

import numpy as np
import optax
import pytest

import kvq
from kvq.engine import scan_fingerprint


def test_custom_optimizers_are_identified_by_what_they_do(tiny_burgers, tiny_config):
    adam = tiny_config.replace(optimizer=optax.adam(1e-2))
    assert adam.to_dict()["optimizer"] == tiny_config.replace(optimizer=optax.adam(1e-2)).to_dict()["optimizer"]
    assert adam.to_dict()["optimizer"] != tiny_config.replace(optimizer=optax.adam(2e-2)).to_dict()["optimizer"]
    clipped = tiny_config.replace(optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)))
    assert clipped.to_dict()["optimizer"] != adam.to_dict()["optimizer"]  # the probe's large gradients get clipped
    assert scan_fingerprint(tiny_burgers, adam) != scan_fingerprint(tiny_burgers, clipped)
    assert tiny_config.to_dict()["optimizer"] == "adam"  # the names stay as they were
    with pytest.raises(kvq.KvqError, match="optax.lbfgs is not supported"):
        tiny_config.replace(optimizer=optax.lbfgs())
    with pytest.raises(kvq.KvqError, match="or an optax.GradientTransformation"):
        tiny_config.replace(optimizer=42)
    with pytest.raises(kvq.KvqError, match="cannot be rebuilt"):
        kvq.ScanConfig.from_dict(adam.to_dict())


@pytest.mark.slow
def test_an_optax_transformation_trains_like_the_named_optimizer(tiny_burgers, tiny_config, tiny_scan):
    same = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=optax.adam(tiny_config.learning_rate)))
    np.testing.assert_array_equal(same.errors, tiny_scan.errors)  # optax.adam(lr) is what "adam" means
    schedule = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(1e-2, 40)))
    result = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=schedule))
    assert np.isfinite(result.errors).all() and result.config["optimizer"]["kind"] == "optax"
    assert not np.allclose(result.errors, tiny_scan.errors)


def test_validation_scores_match_their_formulas():
    from kvq.train import SCORES

    rng = np.random.default_rng(0)
    pred, y = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    np.testing.assert_allclose(SCORES["mse"](pred, y), ((pred - y) ** 2).mean(0), rtol=1e-6)
    np.testing.assert_allclose(SCORES["relative_l2"](pred, y),
                               np.linalg.norm(pred - y, axis=0) / np.linalg.norm(y, axis=0), rtol=1e-6)
    np.testing.assert_allclose(SCORES["max_error"](pred, y), np.abs(pred - y).max(0), rtol=1e-6)
    with pytest.raises(kvq.KvqError, match="unknown score"):
        kvq.ScanConfig(score="r2")


@pytest.mark.slow
def test_a_scan_scored_by_relative_l2_scores_the_same_trainings(tiny_burgers, tiny_config, tiny_scan):
    result = kvq.scan(tiny_burgers, tiny_config.replace(score="relative_l2"))
    # the score does not change the training: ||p - y|| / ||y|| = sqrt(V * MSE / sum y^2) of the same weights
    vy = tiny_burgers.valid.y
    expected = np.sqrt(tiny_scan.errors * len(vy) / np.sum(vy**2))
    np.testing.assert_allclose(result.errors, expected, rtol=1e-4)
    np.testing.assert_array_equal(result.steps_run, tiny_scan.steps_run)
    assert "validation relative L2 error, all rules" in result.table()
