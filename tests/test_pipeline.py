"""The pipeline refuses what it cannot do before anything trains."""

from __future__ import annotations

import pytest

import kvq


def test_out_and_checkpoint_are_not_given_together(tiny_burgers, tiny_config, tmp_path):
    with pytest.raises(kvq.KvqError, match="not both"):
        kvq.scan(tiny_burgers, tiny_config, out=tmp_path / "a", checkpoint=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_sweep_refuses_sampled_coalitions(tiny_config, tmp_path):
    with pytest.raises(kvq.KvqError, match="sample coalitions point by point"):
        kvq.sweep("burgers", tiny_config, data=[0, 8], coalitions="msr", budget=10, out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_progress_of_a_group_is_tagged_but_its_events_are_not():
    from kvq.workflows.pipeline import tagged

    seen = []
    step = tagged(lambda *a: seen.append(a), "[1/2]")
    step("train", 3, 4)
    step("loaded", 1, 1)
    assert seen == [("[1/2] train", 3, 4), ("loaded", 1, 1)]


def test_a_shapiq_game_refuses_a_sampled_table():
    import numpy as np

    from kvq.game.table import Sampling, full_masks
    from kvq.present.interop import shapiq_game

    masks = full_masks(3)
    table = kvq.SampledResult(rule_names=("a", "b", "c"), errors=np.full((4, 1), 0.1), masks=masks,
                              sampling=Sampling(sampler="msr", draws=masks))
    with pytest.raises(kvq.KvqError, match="sampled"):
        shapiq_game(table)
