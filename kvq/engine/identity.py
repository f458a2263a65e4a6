"""What identifies a run: one place for every fingerprint kvq writes or compares.

A saved run (results folder, training checkpoint, sweep or tuning folder) is reused only by
the run that would compute the same numbers (docs/design.md §4).  Its fingerprint is a hash
of four records, and the live run and its saved folder build them the same way:

- the problem: :meth:`kvq.Problem.identity` (description, a hash of every array, the rule
  functions' names), as the result records it in ``result.problem``;
- the config as the result records it (:func:`recorded_config`: the settings plus the
  network's description) without its memory-only settings (:func:`kvq.core.config.config_identity`);
- the rule names;
- the method: ``"exact"``, or a method's settings as a dict (``{"method": ..., ...}``), as
  the result records it in ``result.estimator["settings"]``.

A checkpoint is keyed by what its trainings compute, which can be less than what the result
holds: a sampled estimate's trainings do not depend on its coalition budget, so a larger
budget resumes every coalition already trained, and a training with a named optimizer does
not depend on its step cap up to that cap, so a longer ``steps`` continues the trainings of a
shorter one (:func:`training_fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kvq.core.config import ScanConfig, config_identity
from kvq.core.models import resolve as resolve_model
from kvq.problems.rules import Problem


def digest(*parts: Any) -> str:
    """A short hash of JSON-able ``parts`` (what a run computes, not when or where)."""
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recorded_config(config: ScanConfig, model: dict[str, Any]) -> dict[str, Any]:
    """The config as a result records it: :meth:`ScanConfig.to_dict` plus the model's description."""
    return {**config.to_dict(), "model": model}


def _of(problem_identity: Any, config_record: dict[str, Any], rule_names: Any, method: Any) -> str:
    # JSON round trip first: a live record (tuples, numpy scalars) and the same record read
    # back from results.json hash alike by construction, not by luck
    records = json.loads(
        json.dumps([problem_identity, config_identity(config_record), list(rule_names), method], default=str)
    )
    return digest(*records)


def run_fingerprint(
    problem: Problem, config: ScanConfig, method: str | dict[str, Any] = "exact", model: Any = None
) -> str:
    """The fingerprint of the result of running ``method`` (``"exact"`` or a method's settings
    dict) on ``problem`` with ``config`` and ``model`` (:mod:`kvq.core.models`)."""
    described = resolve_model(model, config, problem.d_in, problem.d_out).description
    return _of(problem.identity(config.seeds), recorded_config(config, described), problem.rule_names, method)


def result_fingerprint(result: Any) -> str:
    """The fingerprint of the run that produced ``result`` (a :class:`kvq.ScanResult`, live or
    loaded): equal to :func:`run_fingerprint` of that run."""
    return _of(result.problem, result.config, result.rule_names, method_record(result))


def method_record(result: Any) -> str | dict[str, Any]:
    """The method as ``result`` records it: its settings dict, or ``"exact"``."""
    return result.estimator.get("settings", result.method) if result.estimator else result.method


def training_fingerprint(
    problem: Problem, config: ScanConfig, training: Any, model: Any = None, *, continues: bool = False
) -> str:
    """The fingerprint of a checkpoint: the exact scan's identity plus what else decides the
    trainings (``training``: ``None`` for an exact scan's, else a JSON-able record).

    ``continues`` (a method whose trainings are plain subset trainings from the warm start):
    the step cap ``config.steps`` is left out when the optimizer is a named one, whose updates
    do not depend on it, so the states a shorter budget saved are continued by a longer one.
    A user's optax transformation may schedule over the budget: its cap stays in."""
    described = resolve_model(model, config, problem.d_in, problem.d_out).description
    record = recorded_config(config, described)
    if continues and isinstance(config.optimizer, str):
        record["steps"] = "continued"
    base = _of(problem.identity(config.seeds), record, problem.rule_names, "exact")
    return base if training is None else digest(base, training)
