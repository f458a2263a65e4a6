"""An interrupted scan resumes from its checkpoint and ends with the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

import kvq

pytestmark = pytest.mark.slow  # every test here trains (tiny) models


def test_interrupted_scan_resumes_to_identical_numbers(tiny_burgers, tiny_config, tiny_scan, tmp_path):
    uninterrupted = tiny_scan
    total = 16 * tiny_config.seeds * tiny_config.steps
    seen = []

    def interrupt_at_three_quarters(phase, done, total_):
        seen.append((phase, done))
        if phase == "train" and done >= 3 * total // 4:  # mid-way through the second program
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, tiny_config, progress=interrupt_at_three_quarters, checkpoint=ckpt, checkpoint_every_s=0)
    assert sorted(p.name for p in ckpt.glob("*.npz")) == ["batch0000.npz", "batch0001.npz", "pretrain.npz"]

    progress = []
    resumed = kvq.scan(tiny_burgers, tiny_config, checkpoint=ckpt, checkpoint_every_s=0,
                       progress=lambda phase, done, t: progress.append((phase, done)))
    np.testing.assert_array_equal(resumed.errors, uninterrupted.errors)
    np.testing.assert_array_equal(resumed.steps_run, uninterrupted.steps_run)
    # the resumed run trained only what was left: one check interval of the second program
    assert resumed.timing["subset_steps"] == 8 * tiny_config.seeds * tiny_config.check_every
    assert ("train", total) in progress

    other = tiny_config.replace(learning_rate=0.05)
    with pytest.raises(kvq.KvqError, match="different scan"):
        kvq.scan(tiny_burgers, other, checkpoint=ckpt)
