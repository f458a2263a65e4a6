"""Rule-weight tuning (RI-guided with roll-back), gradient-norm balancing, improper rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import kvq
import kvq.tune as tune
from kvq.core.coalitions import all_masks
from kvq.core.nn import PointModel
from kvq.present.report import importance_table
from kvq.engine.batched import Engine
from kvq.core.models import resolve
from kvq.workflows.tune import balance_weights, evaluate_weights, tune_weights, with_weights


def _fake_errors(problem, n_seeds):
    """An additive game whose rule effects depend on the weights: rule 0 helps most at
    log10 w = 0.4 (so a full RI step overshoots), rule 1 always helps a little."""
    logw = np.log10([r.weight for r in problem.rules])
    effect = np.array([0.5 - 3.0 * (logw[0] - 0.4) ** 2, 0.05 + 0.0 * logw[1]])
    masks = all_masks(2)
    errors = 0.1 * 10.0 ** -(masks @ effect)
    seeds = 1.0 + 0.01 * np.arange(n_seeds)  # slightly different seeds
    return errors[:, None] * seeds[None, :]


@pytest.fixture
def fake_training(monkeypatch):
    """The pipeline with its training replaced by :func:`_fake_errors` (no compiling): the
    folders, identities and resume logic stay real.  Returns the list of trainings run."""
    from types import SimpleNamespace

    from kvq.workflows import pipeline
    from kvq.engine.runner import Clock
    from kvq.methods import Exact, Outcome, Tabulated

    calls = []

    def prepare(problem, config, progress, checkpoint=None, **_):
        model = resolve(None, config, problem.d_in, problem.d_out).description
        return SimpleNamespace(problem=problem, seeds=tuple(range(config.seeds)), config=config, clock=Clock(),
                               model=model, expensive=(), n_devices=1)

    def run(self, engine, progress):
        calls.append(1)
        errors = _fake_errors(engine.problem, len(engine.seeds))
        return Outcome(Tabulated(errors[..., None], np.zeros(errors.shape, int), np.zeros(errors.shape, bool)), {}, {})

    monkeypatch.setattr(pipeline, "prepare", prepare)
    monkeypatch.setattr(Exact, "run", run)
    return calls


def test_a_tuning_folder_resumes_only_the_same_tuning(fake_training, tiny_burgers, tiny_config, tmp_path):
    calls = fake_training
    problem = kvq.Problem("toy", tiny_burgers.rules[1:3], tiny_burgers.train, tiny_burgers.valid)
    out = tmp_path / "tuning"
    first = tune_weights(problem, tiny_config, iterations=1, out=out)
    assert len(calls) == 2
    again = tune_weights(problem, tiny_config.replace(max_batch=3), iterations=1, out=out)  # memory only: resumed
    assert len(calls) == 2 and again.history == first.history
    # the same rules on other observations: not the same tuning, whatever the names say
    moved = kvq.Problem("toy", problem.rules, kvq.Dataset(problem.train.x, problem.train.y + 0.1), problem.valid)
    with pytest.raises(kvq.KvqError, match="different tuning"):
        tune_weights(moved, tiny_config, iterations=1, out=out)
    tune_weights(moved, tiny_config, iterations=1, out=out, overwrite=True)
    assert len(calls) == 4
    with pytest.raises(kvq.KvqError, match="holds a kvq tuning"):
        kvq.sweeps.sweep("burgers", tiny_config, data=[0, 8], out=out)


def test_tuning_follows_the_update_rule_with_roll_back(fake_training, tiny_burgers, tiny_config):
    problem = kvq.Problem("toy", tiny_burgers.rules[1:3], tiny_burgers.train, tiny_burgers.valid)
    result = tune_weights(problem, tiny_config.replace(seeds=3), iterations=5, mu=1.0)
    hist = result.history
    assert len(hist) == 6 and hist[0].weights == (1.0, 1.0) and hist[0].accepted
    assert any(not s.accepted for s in hist)  # mu = 1 overshoots rule 0's optimum
    best, mu = hist[0], 1.0
    for prev, step in zip(hist, hist[1:]):
        if not prev.accepted:
            mu /= 2
        assert step.mu == pytest.approx(mu)
        expected = np.asarray(best.weights) * 10.0 ** (mu * np.asarray(best.ri))
        np.testing.assert_allclose(step.weights, expected, rtol=1e-12)
        assert step.accepted == (step.mse_all <= best.mse_all)
        if step.accepted:
            best = step
    assert result.best == min((s for s in hist if s.accepted), key=lambda s: s.mse_all)
    assert result.best.mse_all < hist[0].mse_all
    assert result.best.weights[0] > 1.5  # moved towards the optimum 10^0.4


def test_with_weights_and_bad_input(tiny_burgers, tiny_config):
    p = with_weights(tiny_burgers, [2.0, 1.0, 0.5, 1.0])
    assert [r.weight for r in p.rules] == [2.0, 1.0, 0.5, 1.0] and p.rules[0].residual is tiny_burgers.rules[0].residual
    with pytest.raises(kvq.KvqError, match="finite numbers > 0"):
        with_weights(tiny_burgers, [1.0, 0.0, 1.0, 1.0])
    with pytest.raises(kvq.KvqError, match="iterations"):
        tune_weights(tiny_burgers, tiny_config, iterations=-1)
    with pytest.raises(kvq.KvqError, match="update_every"):
        balance_weights(tiny_burgers, tiny_config, update_every=7)


@pytest.mark.slow
def test_evaluate_weights_equals_the_scans_all_rules_entry(tiny_burgers, tiny_config, tiny_scan):
    scan = tiny_scan
    np.testing.assert_allclose(evaluate_weights(tiny_burgers, tiny_config, np.ones(4)), scan.errors[-1], rtol=1e-4)


@pytest.mark.slow
def test_gradient_norm_balancing_first_update(tiny_burgers, tiny_config):
    cfg = tiny_config.replace(steps=20, check_every=20)
    got = balance_weights(tiny_burgers, cfg, alpha=1.0, update_every=20)
    assert got.trajectory.shape == (1, cfg.seeds, 4) and got.errors.shape == (cfg.seeds,)
    # independently: lambda_hat_i = max|grad L_data| / mean|grad L_i| at the warm start
    engine = Engine.prepare(tiny_burgers, cfg, group=False)
    engine = engine.pretrain(lambda *a: None)
    obj = engine.programs.objective
    for s in range(cfg.seeds):
        params = jax.tree.map(lambda a: a[s], engine.params0)
        flat = lambda g: jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)])  # noqa: E731
        g_data = flat(jax.grad(lambda p: obj.data_loss(p, (engine.xs[s], engine.ys[s])))(params))
        for i, (loss, pts) in enumerate(zip(obj.losses, engine.points)):
            g = flat(jax.grad(lambda p: loss(PointModel(obj.apply, p), pts))(params))
            np.testing.assert_allclose(got.trajectory[0, s, i], jnp.max(jnp.abs(g_data)) / jnp.mean(jnp.abs(g)),
                                       rtol=1e-4)


def _table(per_seed_effects):
    """Additive game: E(S) = 0.1 * 10^-(sum of the effects of the rules in S), per seed."""
    eff = np.asarray(per_seed_effects, float)  # [S, n]
    masks = all_masks(eff.shape[1])
    return kvq.ValueTable(("a", "b", "c"), 0.1 * 10.0 ** -(masks @ eff.T))


def test_improper_rules_need_the_whole_confidence_interval_below_zero():
    rng = np.random.default_rng(0)
    eff = np.stack([np.full(4, 0.3), np.full(4, -0.2), np.full(4, -0.05)], axis=1)
    eff += 0.01 * rng.standard_normal(eff.shape)
    eff[:, 2] += np.array([0.2, -0.2, 0.1, -0.1])  # negative on average, but the interval crosses 0
    table = _table(eff)
    assert kvq.improper_rules(table) == ("b",)
    ri = kvq.rule_importance(table)
    low, high = ri.ci95()
    ref = stats.t.interval(0.95, df=3, loc=ri.mean, scale=ri.se)
    np.testing.assert_allclose(low, ref[0], rtol=1e-5)
    np.testing.assert_allclose(high, ref[1], rtol=1e-5)
    assert high[2] > 0 > ri.mean[2]
    assert kvq.improper_rules(_table(eff[:1])) == ()  # one seed: no interval, no flag
    text = importance_table(table)
    assert "IMPROPER knowledge (backward elimination, in order): b (RI -0.20" in text
    assert text.splitlines()[0].split()[-4:] == ["FI", "±", "se", "status"]
    clean = importance_table(_table(np.abs(eff)))
    assert clean.splitlines()[0].rstrip().endswith("FI ± se") and "IMPROPER" not in clean


def test_wrong_rule_options_change_only_that_rule():
    right, wrong = kvq.problems.get("equations"), kvq.problems.get("equations", wrong="e_law")
    assert wrong.describe()["wrong"]["rule"] == "e_law" and "wrong" not in right.describe()
    x = jnp.asarray(right.rules[0].points[:50], jnp.float32)
    u = lambda z: jnp.array([0.3, 0.1, 0.6, 0.2]) + 0 * z[0]  # noqa: E731
    for r, w in zip(right.rules, wrong.rules):
        same = np.isclose(float(r.loss(u, x)), float(w.loss(u, x)))
        assert same == (r.name != "e_law"), r.name
    np.testing.assert_array_equal(right.valid.y, wrong.valid.y)  # the data stay true
    b_right, b_wrong = kvq.problems.get("burgers", n_valid=64), kvq.problems.get("burgers", n_valid=64, wrong="ic")
    pts = jnp.asarray(b_right.rules[1].points, jnp.float32)
    truth = lambda z: -jnp.sin(jnp.pi * z[:1])  # noqa: E731
    assert float(b_right.rules[1].loss(truth, pts)) < 1e-10 < float(b_wrong.rules[1].loss(truth, pts))
