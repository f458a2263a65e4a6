"""The one pipeline every method and workflow runs through (docs/design.md §4, §6).

validate -> identity -> results folder (load a finished run) -> checkpoint -> prepare ->
warm start -> the method -> result -> save.  :func:`scan` and :func:`estimate` are its
public faces; sweeps and tuning call :func:`run` (or, for points trained together,
:func:`prepare` and :func:`make_result`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kvq.core.coalitions import all_masks, group_by_pattern
from kvq.core.config import ScanConfig
from kvq.engine.batched import Engine, Progress
from kvq.engine.checkpoint import Checkpoint, stored_fingerprint
from kvq.engine.identity import recorded_config, run_fingerprint, training_fingerprint
from kvq.engine.plan import check_inputs
from kvq.engine.runner import environment
from kvq.errors import KvqError
from kvq.game.table import SampledResult, ScanResult
from kvq.methods import Method, Outcome, method_for
from kvq.problems.rules import Dataset, Problem
from kvq.store import results as io
from kvq.workflows import robustness as robust

CHECKPOINT_DIR = ".checkpoint"
"""Where a run saved into a folder keeps its training states: while it runs (an interrupted
run resumes) and after its result is written (a longer budget continues them)."""
EVENTS = ("loaded", "resumed", "continued")
"""Progress phases that are events, not counts (see :func:`run`)."""


def tagged(progress: Progress, tag: str) -> Progress:
    """``progress`` with ``tag`` before every counted phase (``"[1/2] train"``); events pass as they are."""
    return lambda phase, done, total: progress(phase if phase in EVENTS else f"{tag} {phase}", done, total)


def _quiet(phase: str, done: int, total: int) -> None:
    return None


def fingerprint(problem: Problem, config: ScanConfig, method: Method, model: Any = None) -> str:
    """The identity of ``method``'s result on ``problem`` (:mod:`kvq.engine.identity`)."""
    return run_fingerprint(problem, config, method.record(config), model)


def prepare(
    problem: Problem,
    config: ScanConfig,
    progress: Progress,
    checkpoint: Checkpoint | None = None,
    *,
    group: bool = True,
    columns: Sequence[tuple[int, Dataset]] | None = None,
    model: Any = None,
) -> Engine:
    """The engine of ``problem`` and ``config`` after every seed's data-only warm start
    (:meth:`kvq.engine.Engine.prepare`, :meth:`~kvq.engine.Engine.pretrain`).  The caller has
    checked the inputs (:func:`kvq.engine.plan.check_inputs`)."""
    return Engine.prepare(problem, config, checkpoint, group=group, columns=columns, model=model).pretrain(progress)


def make_result(
    engine: Engine,
    outcome: Outcome,
    t_start: float,
    method: str = "exact",
    *,
    problem: Problem | None = None,
    seeds: Sequence[int] | None = None,
) -> ScanResult:
    """The :class:`ScanResult` of a method's ``outcome`` (warns about diverged trainings).

    ``problem``/``seeds``: what the table's seed columns are when they are a part of the
    engine's (a sweep point among the points trained together); default the engine's."""
    problem = engine.problem if problem is None else problem
    seeds = tuple(engine.seeds if seeds is None else seeds)
    config, clock, table = engine.config, engine.clock, outcome.table
    errors, diverged = table.errors, table.diverged
    fields: dict[str, Any] = {
        "rule_names": problem.rule_names,
        "errors": errors.mean(axis=-1),
        "errors_by_output": errors,
        "output_names": problem.outputs,
        "errors_by_check": None if table.history is None else table.history.mean(axis=-1),
        "errors_by_check_by_output": table.history,
        "check_steps": table.check_steps,
        "stopped": table.stopped,
        "steps_run": table.steps_run,
        "diverged": diverged,
        "seeds": seeds,
        "problem": problem.identity(len(seeds)),
        "config": recorded_config(config, engine.model),
        "timing": {
            "compile_s": clock.compile_s,
            "pretrain_s": clock.pretrain_s,
            "train_s": clock.train_s,
            **outcome.timing,
            "total_s": time.perf_counter() - t_start,
            "subset_steps": clock.subset_steps,
            "subset_steps_per_s": clock.subset_steps / clock.train_s if clock.train_s > 0 else None,
            "programs": len(
                group_by_pattern(
                    all_masks(len(problem.rules)) if table.masks is None else table.masks, engine.expensive
                )
            ),
            "devices": engine.n_devices,
            "expensive_rules": [problem.rule_names[i] for i in engine.expensive],
        },
        "environment": environment(),
        "method": method,
        "estimator": outcome.estimator,
    }
    if outcome.sampling is not None and table.masks is not None:
        result: ScanResult = SampledResult(masks=table.masks, sampling=outcome.sampling, **fields)
    else:
        result = ScanResult(**fields)
    if diverged.any():
        bad = [f"{result.subset_label(k)} (seed {seeds[s]})" for k, s in zip(*np.nonzero(diverged))]
        warnings.warn(
            f"{len(bad)} training(s) diverged (NaN/inf loss) and are left out of the averages: {', '.join(bad)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return result


def run(
    problem: Problem,
    config: ScanConfig,
    method: Method,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
    model: Any = None,
    robustness: str | None = "lbfgs",
) -> ScanResult:
    """``method``'s value table of ``problem`` (see :func:`estimate`); the one pipeline.

    ``robustness``: the stronger protocol (:data:`kvq.workflows.robustness.PROTOCOLS`) under
    which an exact scan trains again the coalitions that decide a rule it would call improper
    or clearly harmful, before it says so (None: no such check).

    ``progress(phase, done, total)`` also receives three events: ``("loaded", 1, 1)`` when
    ``out`` holds this run finished (nothing is trained), ``("resumed", 1, 1)`` when a
    checkpoint of it is found, and ``("continued", 1, 1)`` when ``out`` holds the same run at a
    shorter budget (``config.steps``): its trainings continue where they were capped, those that
    stopped early are reused, and the folder then holds the longer run."""
    t_start = time.perf_counter()
    if out is not None and checkpoint is not None:
        raise KvqError("give out= (a results folder, which keeps its own checkpoint) or checkpoint=, not both")
    check_inputs(problem, config)
    method.check(problem, config)
    if robustness is not None:
        robust.stronger(config, robustness)  # an unknown or impossible protocol: said before anything trains
    progress = progress or _quiet
    folder, shorter = None, False
    identity = None  # the checkpoint's fingerprint: only where there is a folder to keep states in
    if out is not None or checkpoint is not None:
        identity = training_fingerprint(problem, config, method.training(config), model, continues=method.continues)
    if out is not None:
        fp = fingerprint(problem, config, method, model)
        shorter = not overwrite and _shorter_run(Path(out), fp, identity, config)
        folder = io.results_folder(out, fp, overwrite or shorter, "scan")
        finished = io.load_finished(folder, fp)
        if finished is not None:
            progress("loaded", 1, 1)
            return finished
        checkpoint = folder / CHECKPOINT_DIR
        if shorter:
            progress("continued", 1, 1)
    ckpt = None
    if checkpoint is not None and identity is not None:
        if stored_fingerprint(checkpoint) == identity and not shorter:
            progress("resumed", 1, 1)
        ckpt = Checkpoint(checkpoint, identity, checkpoint_every_s, replace=overwrite and folder is not None)
    engine = prepare(problem, config, progress, ckpt, group=method.groups, model=model)
    outcome = method.run(engine, progress)
    result = make_result(engine, outcome, t_start, method.name)
    if robustness is not None and method.name == "exact":
        result = robust.check(
            problem, config, result, robustness, progress=progress, model=model, engine=engine, trained=outcome.trained
        )
    if folder is not None:
        io.save_result(result, folder, overwrite=True)
    return result


def _shorter_run(folder: Path, fp: str, identity: str | None, config: ScanConfig) -> bool:
    """Whether ``folder`` holds this run at a shorter budget, whose training states a run
    of ``config.steps`` continues; a KvqError when it holds it at a longer one (that result
    would be lost, and its states are past this budget)."""
    if stored_fingerprint(folder / CHECKPOINT_DIR) != identity or io.folder_fingerprint(folder) in (None, fp):
        return False
    steps = io.stored_config(folder).get("steps")
    if isinstance(steps, int) and steps > config.steps:
        raise KvqError(
            f"{str(folder)!r} holds this scan at a longer budget ({steps} steps, not {config.steps}); its "
            "numbers at any shorter budget are in its errors_by_check: choose another output folder, or pass "
            "--overwrite (overwrite=True) to replace it"
        )
    return True


def scan(
    problem: Problem,
    config: ScanConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
    model: Any = None,
    robustness: str | None = "lbfgs",
) -> ScanResult:
    """Train every subset of ``problem``'s rules for every seed; return the value table.

    ``config`` defaults to ``ScanConfig.preset("quick")``.  With ``out`` (a folder) the
    result is saved there (``results.json``, ``table.npz``, ``table.csv``) and the training
    state kept in ``out/.checkpoint`` until it is: running the same scan again resumes an
    interrupted run, and returns a finished one from the folder without training anything.
    A folder holding a different run is refused unless ``overwrite``.  ``checkpoint`` (a
    folder; without ``out``) keeps only the training state, saved at most every
    ``checkpoint_every_s`` seconds and after each batch.  Each training is scored by the
    validation MSE of the weights it ended with (docs/design.md §2); a training whose loss
    became NaN/inf is marked diverged, its error is NaN and it is named in a warning (the
    importance functions leave it out of their averages).  ``model``: the network to train
    (:mod:`kvq.core.models`: a pure ``(init, apply)`` pair, a Flax Linen or NNX module; default
    kvq's MLP from the config).  ``robustness``: before a rule is called improper or clearly
    harmful, the coalitions that decide it are trained again under this stronger protocol
    (``"lbfgs"``, ``"longer"``, ``"wider"``; None: not checked), and a rule whose harm disappears
    is reported as hurting under this training protocol, never as improper
    (:mod:`kvq.workflows.robustness`).
    """
    config = ScanConfig.preset("quick") if config is None else config
    return run(
        problem,
        config,
        method_for("exact"),
        out=out,
        overwrite=overwrite,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every_s=checkpoint_every_s,
        model=model,
        robustness=robustness,
    )


def estimate(
    problem: Problem,
    config: ScanConfig | None = None,
    method: str = "exact",
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
    model: Any = None,
    coalitions: str | None = None,
    budget: int | None = None,
    target_se: float | None = None,
    sample_seed: int = 0,
    proxy: str | None = None,
    proxy_budget: int | None = None,
    **settings: Any,
) -> ScanResult:
    """The value table of ``problem`` by ``method``: ``"exact"`` (:func:`scan`),
    ``"finetune"`` (settings of :class:`kvq.methods.Finetune`) or ``"newton"``
    (:class:`kvq.methods.Newton`); or with ``coalitions=`` one of ``"msr"``,
    ``"permutation"``, ``"kernel"`` or ``"kernel-banzhaf"`` only sampled coalitions, at most
    ``budget`` (:class:`kvq.methods.Sampled`: ``target_se``, ``sample_seed``, ``proxy``,
    ``proxy_budget``).

    Every method returns a :class:`~kvq.game.table.ScanResult` (a sampled one a
    :class:`~kvq.game.table.SampledResult`, the same family, holding the coalitions it trained)
    with ``method`` set and ``result.estimator = {"settings": {...}, "diagnostics": {...}}``
    (anchor, CG iterations and relative residuals, ...); ``timing`` adds the phases
    (``anchor_s``, ``solve_s``, ``finetune_s``, ``refine_s``, ``proxy_s``).  ``out``,
    ``overwrite``, ``checkpoint`` and ``model`` work as in :func:`scan`.
    """
    config = ScanConfig.preset("quick") if config is None else config
    chosen = method_for(
        method,
        coalitions=coalitions,
        budget=budget,
        target_se=target_se,
        sample_seed=sample_seed,
        proxy=proxy,
        proxy_budget=proxy_budget,
        **settings,
    )
    return run(
        problem,
        config,
        chosen,
        out=out,
        overwrite=overwrite,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every_s=checkpoint_every_s,
        model=model,
    )
