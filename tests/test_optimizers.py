"""The open training recipe: any optax transformation as the optimizer (schedules, chains,
clipping), an L-BFGS polish phase, your own data loss, and the validation scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import kvq
from kvq.engine.identity import run_fingerprint as scan_fingerprint


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
    with pytest.raises(kvq.KvqError, match="an optax.GradientTransformation or a function steps"):
        tiny_config.replace(optimizer=42)
    with pytest.raises(kvq.KvqError, match="cannot be rebuilt"):
        kvq.ScanConfig.from_dict(adam.to_dict())


@pytest.mark.slow
def test_an_optax_transformation_trains_like_the_named_optimizer(tiny_burgers, tiny_config, tiny_scan):
    same = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=kvq.optimizers.adam(tiny_config.learning_rate)))
    np.testing.assert_array_equal(same.errors, tiny_scan.errors)  # kvq.optimizers.adam(lr) is what "adam" means
    theirs = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=optax.adam(tiny_config.learning_rate)))
    np.testing.assert_allclose(theirs.errors, tiny_scan.errors, rtol=1e-3)  # optax's Adam, up to float32 rounding
    def over(steps):  # a schedule over the budget, as a factory of it
        return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(1e-2, steps)))

    result = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=over(tiny_config.steps)))
    assert np.isfinite(result.errors).all() and result.config["optimizer"]["kind"] == "optax"
    assert not np.allclose(result.errors, tiny_scan.errors)
    built = kvq.scan(tiny_burgers, tiny_config.replace(optimizer=over))
    np.testing.assert_array_equal(built.errors, result.errors)  # built for the config's budget
    assert built.config["optimizer"]["kind"] == "budget schedule" and built.config["optimizer"]["factory"].endswith("over")
    assert tiny_config.replace(optimizer=over, steps=80).to_dict() != tiny_config.replace(optimizer=over).to_dict()
    # every training runs to the cap by design: settledness is the drift's alone, and the output says so
    assert kvq.settledness(built).max_capped == 1.0 and kvq.settledness(result).max_capped < 1.0
    text = kvq.report.importance_table(built)
    assert "judged by the drift alone" in text and "fixed optax transformation" not in text
    if not kvq.settledness(result).known or kvq.settledness(result).unsettled:
        assert "fixed optax transformation" in kvq.report.importance_table(result)
    with pytest.raises(kvq.KvqError, match="must return an optax.GradientTransformation"):
        kvq.ScanConfig(optimizer=lambda steps: steps)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_kvq_adam_is_optax_adam_up_to_float32_rounding(name):
    """Same moments, same bias correction (as a multiplication by its reciprocal, so that
    partitioned programs compute the same bits): 200 updates under gradients from 1e-3 to 10
    agree with optax's to a few float32 ulps, and the state is optax's."""
    from kvq.core import optimizers

    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "b": jnp.asarray(rng.normal(size=3), jnp.float32)}
    mine, theirs = getattr(optimizers, name)(1e-2), getattr(optax, name)(1e-2)
    s1, s2 = mine.init(params), theirs.init(params)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    for _ in range(200):
        g = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 10.0 ** rng.integers(-3, 2), jnp.float32),
                         params)
        u1, s1 = mine.update(g, s1, params)
        u2, s2 = theirs.update(g, s2, params)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-12)


def test_validation_scores_match_their_formulas():
    from kvq.core.train import SCORES

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


# ------------------------------------------------------------------ data losses


def test_data_losses_match_their_formulas_and_ignore_padded_rows():
    from kvq.core.train import DATA_LOSSES, HUBER_DELTA, Objective

    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (30, 2)).astype(np.float32), rng.standard_normal((30, 2)).astype(np.float32)
    pred = x[:, ::-1] * 2.0  # the "network" below: apply(params, x) = params * x[:, ::-1]
    e = pred - y
    huber = np.where(np.abs(e) <= HUBER_DELTA, 0.5 * e**2, HUBER_DELTA * (np.abs(e) - 0.5 * HUBER_DELTA))
    expected = {"mse": (e**2).mean(0), "relative_l2": np.linalg.norm(e, axis=0) / np.linalg.norm(y, axis=0),
                "huber": huber.mean(0)}
    w = np.ones(30, np.float32)
    for name, want in expected.items():
        np.testing.assert_allclose(DATA_LOSSES[name](pred, y, w), want, rtol=1e-5)
    apply = lambda p, z: p * z[..., ::-1]  # noqa: E731
    pad = lambda a: np.concatenate([a, 9.0 * np.ones((7, 2), np.float32)])  # noqa: E731
    padded = (pad(x), pad(y), np.concatenate([w, np.zeros(7, np.float32)]))
    for name, want in expected.items():
        for ow in (None, (1.0, 3.0)):
            obj = Objective(apply, (), (), frozenset(), name, ow)
            weights = np.ones(2) if ow is None else np.asarray(ow)
            np.testing.assert_allclose(obj.data_loss(2.0, (x, y)), np.mean(weights * want), rtol=1e-5)
            np.testing.assert_allclose(obj.data_loss(2.0, padded), np.mean(weights * want), rtol=1e-5)
    # the Gauss-Newton residual of a weighted mean square: sum(r^2) is the loss
    obj = Objective(apply, (), (), frozenset(), "mse", (1.0, 3.0))
    np.testing.assert_allclose(jnp.sum(obj.data_residual(2.0, padded) ** 2), obj.data_loss(2.0, padded), rtol=1e-5)
    assert Objective(apply, (), (), frozenset(), "huber").data_residual(2.0, (x, y)) is None


def l1_loss(pred, y, w):
    """Mean absolute error over the real rows (a user's data loss)."""
    return jnp.sum(w[:, None] * jnp.abs(pred - y)) / (jnp.sum(w) * y.shape[-1])


def test_data_loss_settings_are_checked_and_recorded(tiny_burgers, tiny_config):
    own = tiny_config.replace(data_loss=l1_loss)
    assert own.to_dict()["data_loss"] == {"kind": "function", "name": "test_optimizers.l1_loss"}
    assert scan_fingerprint(tiny_burgers, own) != scan_fingerprint(tiny_burgers, tiny_config)
    assert scan_fingerprint(tiny_burgers, tiny_config.replace(data_loss="huber")) != scan_fingerprint(
        tiny_burgers, tiny_config)
    with pytest.raises(kvq.KvqError, match="pass the function"):
        kvq.ScanConfig.from_dict(own.to_dict())
    assert kvq.ScanConfig.from_dict(tiny_config.replace(output_weights=(2,)).to_dict()).output_weights == (2.0,)
    with pytest.raises(kvq.KvqError, match="unknown data_loss"):
        tiny_config.replace(data_loss="l3")
    with pytest.raises(kvq.KvqError, match="output_weights must be"):
        tiny_config.replace(output_weights=(0.0,))
    with pytest.raises(kvq.KvqError, match="weights its outputs itself"):
        own.replace(output_weights=(1.0,))
    with pytest.raises(kvq.KvqError, match="has 1 output"):
        kvq.scan(tiny_burgers, tiny_config.replace(output_weights=(1.0, 2.0)))


@pytest.mark.slow
def test_a_custom_data_loss_trains_and_a_mean_square_written_by_hand_trains_like_mse(tiny_burgers, tiny_config,
                                                                                     tiny_scan):
    def by_hand(pred, y, w):
        return jnp.sum(w[:, None] * (pred - y) ** 2) / (jnp.sum(w) * y.shape[-1])

    same = kvq.scan(tiny_burgers, tiny_config.replace(data_loss=by_hand))
    np.testing.assert_allclose(same.errors, tiny_scan.errors, rtol=1e-4)
    l1 = kvq.scan(tiny_burgers, tiny_config.replace(data_loss=l1_loss))
    assert np.isfinite(l1.errors).all() and not np.allclose(l1.errors, tiny_scan.errors, rtol=1e-3)
    assert l1.config["data_loss"]["name"] == "test_optimizers.l1_loss"
    assert "trained with data loss test_optimizers.l1_loss" in l1.table()
    assert "trained with" not in tiny_scan.table()


# ------------------------------------------------------------------ the L-BFGS polish


@pytest.mark.slow
def test_the_polish_reaches_the_exact_minimiser_of_every_subset():
    """On an affine model every J_S is a quadratic: a few Adam steps leave each subset far
    from its minimiser, and the L-BFGS polish lands on it (the normal equations' solution)."""
    from test_estimators import QUAD_CONFIG, _exact_errors, _quadratic_problem

    config = QUAD_CONFIG.replace(steps=100, check_every=100, polish_steps=40, seeds=1)
    exact = _exact_errors()
    rough = kvq.scan(_quadratic_problem(), config.replace(polish_steps=0))
    assert np.max(np.abs(rough.errors[:, 0] / exact - 1)) > 1e-2
    polished = kvq.scan(_quadratic_problem(), config)
    np.testing.assert_allclose(polished.errors[:, 0], exact, rtol=1e-4)
    # the table over the budget continues with the polish checks
    assert polished.check_steps.tolist() == [100, 140]
    np.testing.assert_array_equal(polished.errors_by_check[0], rough.errors)
    np.testing.assert_array_equal(polished.errors_by_check[-1], polished.errors)
    assert np.all(polished.steps_run > 100) and polished.config["polish_steps"] == 40
    assert "trained with adam for up to 100 steps, then up to 40 L-BFGS polish steps" in polished.table()
    with pytest.raises(kvq.KvqError, match="does not polish"):
        kvq.estimate(_quadratic_problem(), config, "finetune")


@pytest.mark.slow
def test_an_interrupted_polish_resumes_to_the_same_numbers(tiny_burgers, tiny_config, tmp_path):
    config = tiny_config.replace(polish_steps=20, check_every=10, steps=20, pretrain_steps=20, grouping="none")
    whole = kvq.scan(tiny_burgers, config)

    def interrupt(phase, done, total):
        if phase == "train polish" and done >= total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, config, progress=interrupt, checkpoint=tmp_path, checkpoint_every_s=0)
    assert any(p.name.startswith("batch-polish") for p in tmp_path.glob("*.npz"))
    phases = []
    resumed = kvq.scan(tiny_burgers, config, checkpoint=tmp_path, checkpoint_every_s=0,
                       progress=lambda phase, done, total: phases.append(phase))
    np.testing.assert_array_equal(resumed.errors_by_check, whole.errors_by_check)
    np.testing.assert_array_equal(resumed.steps_run, whole.steps_run)
    assert "train polish" in phases
    # the polish improved on the first phase, and every training was polished
    assert np.all(whole.steps_run > 20) and np.nanmean(np.log10(whole.errors_by_check[1] / whole.errors)) > 0
