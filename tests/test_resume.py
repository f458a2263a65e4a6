"""An interrupted scan resumes from its checkpoint and ends with the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

import kvq

pytestmark = pytest.mark.slow  # every test here trains (tiny) models


def test_interrupted_scan_resumes_to_identical_numbers(tiny_burgers, grouped_config, grouped_scan, tmp_path):
    uninterrupted = grouped_scan
    total = 16 * grouped_config.seeds * grouped_config.steps
    seen = []

    def interrupt_at_three_quarters(phase, done, total_):
        seen.append((phase, done))
        if phase == "train" and done >= 3 * total // 4:  # mid-way through the second program
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, grouped_config, progress=interrupt_at_three_quarters, checkpoint=ckpt, checkpoint_every_s=0)
    names = sorted(p.name for p in ckpt.glob("*.npz"))
    assert len(names) == 3 and names[-1] == "pretrain.npz" and all(n.startswith("batch-") for n in names[:2])

    progress = []
    resumed = kvq.scan(tiny_burgers, grouped_config, checkpoint=ckpt, checkpoint_every_s=0,
                       progress=lambda phase, done, t: progress.append((phase, done, t)))
    np.testing.assert_array_equal(resumed.errors, uninterrupted.errors)
    np.testing.assert_array_equal(resumed.steps_run, uninterrupted.steps_run)
    # the resumed run trained only what was left: one check interval of the second program
    assert resumed.timing["subset_steps"] == 8 * grouped_config.seeds * grouped_config.check_every
    # its progress counts this run's work alone (what was saved is off the total) and ends complete
    last = [(done, t) for phase, done, t in progress if phase == "train"][-1]
    assert last == (resumed.timing["subset_steps"],) * 2 and last[1] < total

    other = grouped_config.replace(learning_rate=0.05)
    with pytest.raises(kvq.KvqError, match="different scan"):
        kvq.scan(tiny_burgers, other, checkpoint=ckpt)


def test_a_resume_with_another_max_batch_reuses_finished_items_and_retrains_the_rest(
        tiny_burgers, grouped_config, grouped_scan, tmp_path):
    def interrupt_at_three_quarters(phase, done, total):
        if phase == "train" and done >= 3 * total // 4:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, grouped_config, progress=interrupt_at_three_quarters, checkpoint=ckpt, checkpoint_every_s=0)
    smaller = grouped_config.replace(max_batch=5)  # memory-only: the same scan, cut into other batches
    resumed = kvq.scan(tiny_burgers, smaller, checkpoint=ckpt, checkpoint_every_s=0)
    # the first program's 16 finished items came from the checkpoint; the second program's
    # half-trained batch held 16 items, so it does not match a batch of 5 and trains again
    assert resumed.timing["subset_steps"] == 16 * grouped_config.steps
    np.testing.assert_array_equal(resumed.steps_run, grouped_scan.steps_run)
    np.testing.assert_array_equal(resumed.errors[resumed.masks[:, 0] == 0], grouped_scan.errors[grouped_scan.masks[:, 0] == 0])
    # items trained in batches of another size: the same up to float32 rounding
    np.testing.assert_allclose(resumed.errors, grouped_scan.errors, rtol=1e-5)


def test_a_scheduled_clipped_optimizer_resumes_to_identical_numbers(tiny_burgers, tiny_config, tmp_path):
    import optax

    schedule = optax.cosine_decay_schedule(1e-2, tiny_config.steps)  # the step count lives in the optimizer state
    config = tiny_config.replace(optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)))
    uninterrupted = kvq.scan(tiny_burgers, config)

    def interrupt(phase, done, total):
        if phase == "train" and done >= total // 2:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, config, progress=interrupt, checkpoint=ckpt, checkpoint_every_s=0)
    resumed = kvq.scan(tiny_burgers, config, checkpoint=ckpt, checkpoint_every_s=0)
    assert resumed.timing["subset_steps"] < uninterrupted.timing["subset_steps"]
    np.testing.assert_array_equal(resumed.errors, uninterrupted.errors)
    np.testing.assert_array_equal(resumed.errors_by_check, uninterrupted.errors_by_check)
