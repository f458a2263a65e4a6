"""Runs saved into a folder (``out=``): a finished run is loaded, an interrupted one resumes,
and a damaged file costs only what it held (docs/design.md §4)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

import kvq
from kvq.engine.identity import result_fingerprint
from kvq.store.results import load_result
from kvq.workflows.pipeline import CHECKPOINT_DIR, fingerprint
from kvq.methods import method_for

pytestmark = pytest.mark.slow  # every test here trains (tiny) models


def _events(sink):
    return lambda phase, done, total: sink.append((phase, done, total))


def _interrupt_in_second_program(phase, done, total):
    if phase == "train" and done >= 3 * total // 4:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def saved_scan(tiny_burgers, tiny_config, tmp_path_factory):
    """A finished scan saved with ``out=``: (folder, result)."""
    folder = tmp_path_factory.mktemp("saved") / "scan"
    return folder, kvq.scan(tiny_burgers, tiny_config, out=folder)


def test_a_finished_run_rerun_into_its_folder_trains_nothing(saved_scan, tiny_burgers, tiny_config, tiny_scan):
    folder, first = saved_scan
    assert sorted(p.name for p in folder.iterdir()) == [".checkpoint", "results.json", "table.csv", "table.npz"]
    np.testing.assert_array_equal(first.errors, tiny_scan.errors)
    seen: list = []
    again = kvq.scan(tiny_burgers, tiny_config, out=folder, progress=_events(seen))
    assert seen == [("loaded", 1, 1)]  # no warm start, no training step
    np.testing.assert_array_equal(again.errors, first.errors)
    np.testing.assert_array_equal(again.errors_by_check, first.errors_by_check)


def test_a_different_run_is_refused_or_replaced(saved_scan, tiny_burgers, tiny_config, tmp_path):
    folder, _ = saved_scan
    other = tiny_config.replace(learning_rate=2e-2)
    with pytest.raises(kvq.KvqError, match="different scan"):
        kvq.scan(tiny_burgers, other, out=folder)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    replaced = kvq.scan(tiny_burgers, other, out=copy, overwrite=True)
    assert result_fingerprint(load_result(copy)) == result_fingerprint(replaced) != result_fingerprint(load_result(folder))


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_damaged_checkpoint_file_is_named_and_only_its_batch_trains_again(
        damage, tiny_burgers, grouped_config, grouped_scan, tmp_path):
    folder = tmp_path / "scan"
    with pytest.raises(KeyboardInterrupt):
        kvq.scan(tiny_burgers, grouped_config, out=folder, progress=_interrupt_in_second_program, checkpoint_every_s=0)
    batches = sorted((folder / CHECKPOINT_DIR).glob("batch-*.npz"), key=lambda p: p.stat().st_mtime)
    finished, unfinished = batches[0], batches[1]  # the first program's batch finished before the interrupt
    raw = finished.read_bytes()
    if damage == "truncate":  # a kill or a full disk in the middle of writing
        finished.write_bytes(raw[: len(raw) // 2])
    else:  # damage on disk: bytes in the middle overwritten
        finished.write_bytes(raw[:200] + bytes(len(raw) - 400) + raw[-200:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = kvq.scan(tiny_burgers, grouped_config, out=folder, checkpoint_every_s=0)
    named = [str(w.message) for w in caught if finished.name in str(w.message)]
    assert len(named) == 1 and "damaged" in named[0], "\n".join(str(w.message)[-150:] for w in caught)
    # the damaged batch (8 masks x 2 seeds) trains again; the other resumes its last check interval
    assert resumed.timing["subset_steps"] == 16 * grouped_config.steps + 16 * grouped_config.check_every
    np.testing.assert_array_equal(resumed.errors, grouped_scan.errors)
    assert unfinished.name != finished.name


@pytest.mark.parametrize("damage", ["results.json", "table.npz"])
def test_a_damaged_result_file_is_named_and_the_run_computed_again(
        damage, saved_scan, tiny_burgers, tiny_config, tmp_path):
    folder, first = saved_scan
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    target = copy / damage
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = kvq.scan(tiny_burgers, tiny_config, out=copy)
    assert any("damaged" in str(w.message) and str(copy) in str(w.message) for w in caught)
    np.testing.assert_array_equal(again.errors, first.errors)
    json.loads((copy / "results.json").read_text())  # rewritten whole


@pytest.mark.parametrize(
    "method, options",
    [
        ("exact", {}),
        ("finetune", {"steps": 20}),
        ("newton", {"cg_iterations": 5}),
        ("exact", {"coalitions": "msr", "budget": 10}),
    ],
)
def test_the_fingerprint_of_a_live_run_and_of_its_saved_folder_agree(
        method, options, tiny_burgers, tiny_config, tmp_path):
    chosen = method_for(method, **options)
    live = kvq.estimate(tiny_burgers, tiny_config, method, out=tmp_path / "run", **options)
    expected = fingerprint(tiny_burgers, tiny_config, chosen)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["fingerprint"]
    assert result_fingerprint(live) == expected == saved == result_fingerprint(load_result(tmp_path / "run"))
    assert type(load_result(tmp_path / "run")) is type(live)


@pytest.mark.slow
def test_a_longer_budget_continues_the_saved_trainings_to_the_numbers_of_a_fresh_run(tiny_burgers, tiny_config,
                                                                                       tmp_path):
    shorter = tiny_config.replace(check_every=10)  # 4 checks: a few trainings stop early, most are capped
    longer = shorter.replace(steps=2 * shorter.steps)
    fresh = kvq.scan(tiny_burgers, longer)
    folder = tmp_path / "scan"
    first = kvq.scan(tiny_burgers, shorter, out=folder)
    capped = ~first.stopped & ~first.diverged
    assert capped.any() and (first.stopped.any() or first.diverged.any())  # both kinds of training to handle
    events = []
    continued = kvq.scan(tiny_burgers, longer, out=folder, progress=lambda phase, done, total: events.append(phase))
    assert "continued" in events and "loaded" not in events
    for name in ("errors", "errors_by_check", "steps_run", "stopped", "diverged"):
        np.testing.assert_array_equal(getattr(continued, name), getattr(fresh, name), err_msg=name)
    # only the extra check intervals of the batches that held a capped training ran
    assert continued.timing["subset_steps"] == fresh.timing["subset_steps"] - first.timing["subset_steps"] > 0
    assert result_fingerprint(load_result(folder)) == result_fingerprint(fresh)
    with pytest.raises(kvq.KvqError, match="longer budget"):
        kvq.scan(tiny_burgers, shorter, out=folder)
    assert kvq.scan(tiny_burgers, longer, out=folder, progress=lambda p, d, t: events.append(p)) is not None
    assert events[-1] == "loaded"
