"""The batched engine: a mask trained in the batch equals the mask trained alone; the
frozen-flag early stopping equals a plain Python loop; diverged masks are named."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import kvq
from kvq.core.coalitions import all_masks, group_by_pattern, mask_index
from kvq.engine.batched import Engine
from kvq.core.train import take

pytestmark = pytest.mark.slow  # every test here trains (tiny) models

NO_PROGRESS = lambda *a: None  # noqa: E731


def _trained(problem, config, masks):
    engine = Engine.prepare(problem, config)
    engine = engine.pretrain(NO_PROGRESS)
    state, mask_of, seed_of, _, _ = engine.train(masks, NO_PROGRESS)
    return engine, {(int(m), int(s)): jax.tree.map(lambda a: a[b], state) for b, (m, s) in enumerate(zip(mask_of, seed_of))}


def _assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("grouping", ["auto", "none"])
def test_mask_in_batch_equals_mask_alone(tiny_burgers, tiny_config, grouping):
    masks = all_masks(4)
    engine, batched = _trained(tiny_burgers, tiny_config.replace(grouping=grouping), masks)
    assert engine.expensive == ((0,) if grouping == "auto" else ())
    _, alone = _trained(tiny_burgers, tiny_config.replace(grouping=grouping, max_batch=1), masks[[0, 5, 11, 15]])
    for (k, s), state in alone.items():
        ref = batched[(int([0, 5, 11, 15][k]), s)]
        _assert_same_params(state.best_params, ref.best_params)
        assert int(state.steps_run) == int(ref.steps_run)
    # training changed the weights, and different masks ended in different places
    assert not np.allclose(jax.tree.leaves(batched[(0, 0)].best_params)[0], jax.tree.leaves(batched[(15, 0)].best_params)[0])


def test_grouped_equals_ungrouped(tiny_burgers, tiny_config):
    masks = all_masks(4)
    _, grouped = _trained(tiny_burgers, tiny_config.replace(grouping="auto"), masks)
    _, plain = _trained(tiny_burgers, tiny_config.replace(grouping="none"), masks)
    for key in grouped:
        _assert_same_params(grouped[key].best_params, plain[key].best_params)


def test_groups_split_by_expensive_rule_pattern():
    groups = group_by_pattern(all_masks(3), [0, 2])
    assert [g for g, _ in groups] == [(), (0,), (2,), (0, 2)]
    assert [list(idx) for _, idx in groups] == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert mask_index([1, 0, 1]) == 5


_COMPILED: dict = {}


def _python_loop_reference(engine, mask, seed_col, steps, check_every):
    """The paper's protocol written as a plain Python loop over single steps."""
    obj = engine.programs.objective
    pattern = tuple(i for i in engine.expensive if mask[i])
    x, y = engine.xs[seed_col], engine.ys[seed_col]
    m = jnp.asarray(mask, jnp.float32)
    if pattern not in _COMPILED:
        f = lambda p, m, x, y: obj(p, m, (x, y), engine.points, pattern)  # noqa: E731
        _COMPILED[pattern] = jax.jit(f), jax.jit(jax.grad(f))
    loss_fn, grad_fn = _COMPILED[pattern]
    loss = lambda p: loss_fn(p, m, x, y)  # noqa: E731
    grad = lambda p: grad_fn(p, m, x, y)  # noqa: E731
    opt = engine.programs.optimizer
    params = jax.tree.map(lambda a: a[seed_col], engine.params0)
    opt_state = jax.tree.map(lambda a: a[seed_col], engine.opt0)
    last, kept, ran = float(loss(params)), params, 0
    for step in range(1, steps + 1):
        updates, opt_state = opt.update(grad(params), opt_state, params)
        params = optax.apply_updates(params, updates)
        if step % check_every == 0:
            now = float(loss(params))
            ran = step
            if now > last:
                return kept, ran, True
            last, kept = now, params
    return kept, ran, False


def test_frozen_flag_matches_python_loop(tiny_burgers, tiny_config):
    # a large learning rate makes the total loss rise at some checks: early stopping must trigger
    config = tiny_config.replace(learning_rate=0.1, steps=100, check_every=10, seeds=1, warm_start=False)
    masks = all_masks(4)
    engine, batched = _trained(tiny_burgers, config, masks)
    stopped_early = 0
    _COMPILED.clear()
    for k in range(16):
        params, ran, stopped = _python_loop_reference(engine, masks[k], 0, config.steps, config.check_every)
        state = batched[(k, 0)]
        assert int(state.steps_run) == ran, f"mask {k}"
        assert bool(state.frozen & ~state.diverged) == stopped, f"mask {k}"
        _assert_same_params(state.best_params, params)
        stopped_early += ran < config.steps
    assert stopped_early >= 2


def _diverging_problem():
    """A rule that is finite at the initial weights and drives its log's argument below
    zero within a few steps (NaN)."""
    base = kvq.problems.get("burgers", n_data=16, n_valid=64)
    bad = kvq.Rule("blowup", lambda u, pts: jnp.log(1.5 - jnp.mean(jax.vmap(u)(pts) ** 2)), base.rules[1].points)
    return kvq.Problem("burgers+blowup", (*base.rules[1:3], bad), base.train, base.valid, sampler=base.sampler)


def test_a_rule_that_is_not_finite_at_the_start_is_named_before_training(tiny_config):
    base = kvq.problems.get("burgers", n_data=16, n_valid=64)
    bad = kvq.Rule("log_of_negative", lambda u, pts: jnp.log(-1.0 - jnp.mean(jax.vmap(u)(pts) ** 2)),
                   base.rules[1].points)
    problem = kvq.Problem("burgers+nan", (base.rules[1], bad), base.train, base.valid)
    with pytest.raises(kvq.KvqError, match=r"not finite at the initial weights: 'log_of_negative' \(nan\)"):
        kvq.scan(problem, tiny_config)


def _seed_one_overflows():
    """Burgers whose seed-1 observations are so large that their squared error is inf in
    float32: that seed's data-only warm start (and its all-rules anchor) diverge."""
    base = kvq.problems.get("burgers", n_data=16, n_valid=64)

    def sampler(seed):
        d = base.sampler(seed)
        return kvq.Dataset(d.x, d.y * 1e20) if seed == 1 else d

    return kvq.Problem("burgers-overflow", base.rules[1:3], base.train, base.valid, sampler=sampler)


def test_a_diverged_warm_start_is_named_and_not_used(tiny_config):
    with pytest.warns(RuntimeWarning) as record:
        result = kvq.scan(_seed_one_overflows(), tiny_config)
    messages = [str(w.message) for w in record]
    assert any("warm start of seed(s) [1] diverged" in m and "initial weights instead" in m for m in messages)
    assert result.diverged[:, 1].all() and not result.diverged[:, 0].any()


def test_a_diverged_anchor_leaves_its_seed_out_of_an_estimate(tiny_config):
    with pytest.warns(RuntimeWarning) as record:
        result = kvq.estimate(_seed_one_overflows(), tiny_config.replace(warm_start=False), "finetune",
                              steps=20, anchor="all")
    assert any("anchor of seed(s) [1] diverged" in str(w.message) for w in record)
    assert result.estimator["diagnostics"]["anchor_diverged"] == [False, True]
    assert result.diverged[:, 1].all() and np.isnan(result.errors[:, 1]).all()
    assert np.isfinite(result.errors[:, 0]).all()


def test_diverged_masks_are_named_and_left_out(tiny_config):
    problem = _diverging_problem()
    with pytest.warns(RuntimeWarning, match="diverged") as record:
        result = kvq.scan(problem, tiny_config)
    message = str(record[0].message)
    blowup_on = all_masks(3)[:, 2] == 1
    # some trainings with the rule on reach its pole (others stop early before); none without it
    assert result.diverged[blowup_on].sum() >= 2 and not result.diverged[~blowup_on].any()
    for k, s in zip(*np.nonzero(result.diverged)):
        assert f"{result.subset_label(k)} (seed {s})" in message
    np.testing.assert_array_equal(np.isnan(result.errors), result.diverged)
    ri = kvq.rule_importance(result)  # the diverged masks are a value of the result (warned at scan time)
    assert set(ri.missing) == {int(k) for k in np.flatnonzero(result.diverged.any(axis=1))}
    assert np.isfinite(ri.mean[:2]).all()  # the healthy rules still get a number


def test_scan_result_shapes_and_timing(tiny_scan, tiny_config):
    result = tiny_scan
    assert result.masks.shape == (16, 4) and result.errors.shape == (16, 2)
    assert result.errors_by_output.shape == (16, 2, 1)
    assert np.all(result.errors > 0) and np.all(np.isfinite(result.errors))
    assert result.steps_run.max() <= tiny_config.steps and result.steps_run.min() >= tiny_config.check_every
    assert result.timing["programs"] == 1 and result.timing["expensive_rules"] == []  # TINY: grouping "none"
    assert result.timing["subset_steps"] > 0 and result.timing["subset_steps_per_s"] > 0
    # only the steps of trainings still running are trained (and counted): a stopped one's are skipped
    assert result.timing["subset_steps"] == result.steps_run.sum()
    assert result.seeds == (0, 1)
    # the two seeds differ (init and data draw), so the table is not degenerate
    assert not np.allclose(result.errors[:, 0], result.errors[:, 1])


@pytest.mark.parametrize("vectorize", [1, 3])
def test_sequential_chunks_equal_lockstep_vmap(tiny_burgers, tiny_config, vectorize):
    masks = all_masks(4)
    _, lockstep = _trained(tiny_burgers, tiny_config.replace(vectorize=16), masks)
    engine, chunked = _trained(tiny_burgers, tiny_config.replace(vectorize=vectorize), masks)
    assert engine.vectorize((0,), 16) == vectorize
    for key in lockstep:
        _assert_same_params(chunked[key].best_params, lockstep[key].best_params)
        assert int(chunked[key].steps_run) == int(lockstep[key].steps_run)


def test_automatic_vectorize_on_cpu(tiny_burgers, tiny_config):
    engine = Engine.prepare(tiny_burgers, tiny_config.replace(collocation=None))
    assert engine.vectorize((), 16) == 16  # no expensive rule on: everything in lock-step,
    assert engine.vectorize((), 63) == 63
    assert engine.vectorize((), 96) == 16  # but a large batch in chunks, so that stopped trainings are skipped
    assert engine.vectorize((0,), 16) == 1  # 40 000 PDE points: one training at a time


def test_chunking_the_mask_axis_gives_identical_results(tiny_burgers, tiny_config, monkeypatch):
    import importlib

    scan_module = importlib.import_module("kvq.engine.batched")

    config = tiny_config.replace(vectorize=1)
    whole = kvq.scan(tiny_burgers, config)
    chunked = kvq.scan(tiny_burgers, config.replace(max_batch=3))
    np.testing.assert_array_equal(chunked.errors, whole.errors)
    np.testing.assert_array_equal(chunked.steps_run, whole.steps_run)
    # the automatic bound: with little free memory the engine cuts the groups into chunks
    engine = Engine.prepare(tiny_burgers, tiny_config.replace(max_batch=None, grouping="auto"))
    per_item = engine.item_bytes((0,))
    assert per_item > 3 * sum(np.asarray(a).nbytes for a in jax.tree.leaves(take(engine.params0, 0)))
    monkeypatch.setattr(scan_module, "available_memory", lambda: int(5 * per_item / scan_module.MEMORY_SHARE))
    assert engine.max_batch((0,), 16) == 5
    pde_on = [b for b in engine.batches(all_masks(4)) if b.pattern == (0,)]
    assert [len(b.mask_of) for b in pde_on] == [5, 5, 5, 1]  # 8 masks x 2 seeds in chunks of 5
    # (chunks train as max_batch chunks do: the equality above)
    monkeypatch.setattr(scan_module, "available_memory", lambda: None)
    assert engine.max_batch((0,), 16) == 16


def test_the_table_over_the_budget_is_what_shorter_scans_give(tiny_burgers, tiny_config):
    config = tiny_config.replace(learning_rate=0.05, steps=60, check_every=20)
    long = kvq.scan(tiny_burgers, config)
    assert long.errors_by_check.shape == (3, 16, 2) and long.check_steps.tolist() == [20, 40, 60]
    np.testing.assert_array_equal(long.errors_by_check[-1], long.errors)
    # the trajectory moved: the budget matters for this table
    assert not np.allclose(long.errors_by_check[0], long.errors_by_check[-1])
    short = kvq.scan(tiny_burgers, config.replace(steps=40))
    np.testing.assert_allclose(long.errors_by_check[1], short.errors, rtol=1e-6)
    np.testing.assert_allclose(kvq.rule_importance(long, step=40).mean, kvq.rule_importance(short).mean, atol=1e-6)
    np.testing.assert_allclose(kvq.full_importance(long, step=59).mean, kvq.full_importance(short).mean, atol=1e-6)
    # a training that stopped early carries its final error; one at the cap did not stop
    stopped_before_end = long.steps_run < config.steps
    assert np.all(long.stopped[stopped_before_end])
    for t in range(3):
        done = long.steps_run <= long.check_steps[t]
        np.testing.assert_array_equal(long.errors_by_check[t][done & long.stopped], long.errors[done & long.stopped])


@pytest.mark.slow
def test_batches_of_other_sizes_reuse_the_compiled_program_and_its_numbers(tiny_burgers, tiny_config, monkeypatch):
    import kvq.engine.runner as runner

    config = tiny_config.replace(vectorize=1, grouping="none")
    engine = Engine.prepare(tiny_burgers, config)
    compiles = []
    real_compile = runner.compile_timed
    monkeypatch.setattr(runner, "compile_timed", lambda *a: compiles.append(1) or real_compile(*a))
    monkeypatch.setattr(runner, "_programs", type(runner._programs)())  # this test's own program cache
    masks = all_masks(4)
    engine.train(masks[:5], lambda *a: None)  # 10 items: 16 rows (a power of two of chunks)
    again = engine.train(masks[5:12], lambda *a: None)  # 14 items: the same 16 rows, no compile
    assert len(compiles) == 1
    # a new engine of the same problem and settings (a resumed run, a longer budget, a notebook
    # cell run twice) reuses the process's program: nothing traced or compiled again ...
    fresh = Engine.prepare(tiny_burgers, config).train(masks[5:12], lambda *a: None)
    assert len(compiles) == 1
    # ... and anything that changes what the program computes compiles its own
    Engine.prepare(tiny_burgers, config.replace(learning_rate=2e-2)).train(masks[:5], lambda *a: None)
    heavier_ic = tuple(dataclasses.replace(r, weight=3.0) if r.name == "ic" else r for r in tiny_burgers.rules)
    Engine.prepare(dataclasses.replace(tiny_burgers, rules=heavier_ic), config).train(masks[:5], lambda *a: None)
    assert len(compiles) == 3
    with jax.default_matmul_precision("highest"):  # traced under other JAX settings: its own program
        Engine.prepare(tiny_burgers, config).train(masks[:5], lambda *a: None)
    assert len(compiles) == 4

    class Unhashable:  # a user's loss object that cannot be a key: trained, compiled every time
        __hash__ = None

        def __init__(self, loss):
            self.loss = loss

        def __call__(self, u, points):
            return self.loss(u, points)

    own = tuple(dataclasses.replace(r, loss=Unhashable(r.loss), residual=None) if r.name == "ic" else r
                for r in tiny_burgers.rules)
    for _ in range(2):
        Engine.prepare(dataclasses.replace(tiny_burgers, rules=own), config).train(masks[:5], lambda *a: None)
    assert len(compiles) == 6
    np.testing.assert_array_equal(again.history, fresh.history)  # padding never changes a number
