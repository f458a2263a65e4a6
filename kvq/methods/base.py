"""What every method shares: the table it fills (:class:`Tabulated`), placing trained items in it,
and what a method hands the pipeline (:class:`Outcome`)."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from kvq.engine.batched import Engine, Trained
from kvq.errors import KvqError
from kvq.game.sampling import DEFAULT
from kvq.game.table import Sampling
from kvq.problems.rules import Problem

EXACT_RULES = 20  # an exact scan trains 2^n subsets; beyond this, sample coalitions


class Tabulated(NamedTuple):
    """Trainings placed in a value table of ``M`` rows (``masks`` [M, n]; None: all 2^n in
    binary order): per-output ``errors`` [M, S, d_out] (NaN where diverged), ``steps_run``,
    ``diverged`` and ``stopped`` [M, S] (stopped by the early-stopping check rather than at
    the step cap; None when nothing was trained) and, for trained tables, ``history``
    [checks, M, S, d_out] with ``check_steps`` [checks]."""

    errors: np.ndarray
    steps_run: np.ndarray
    diverged: np.ndarray
    stopped: np.ndarray | None = None
    history: np.ndarray | None = None
    check_steps: np.ndarray | None = None
    masks: np.ndarray | None = None

    def without_seeds(self, bad: np.ndarray) -> Tabulated:
        """The table with every training of the seed columns ``bad`` [S] (bool) marked
        diverged: NaN errors, left out of every average."""
        bad = np.asarray(bad, bool)
        errors, history = self.errors.copy(), None if self.history is None else self.history.copy()
        errors[:, bad] = np.nan
        if history is not None:
            history[:, :, bad] = np.nan
        return self._replace(errors=errors, diverged=self.diverged | bad[None, :], history=history)

    def columns(self, cols: slice) -> Tabulated:
        """The seed columns ``cols`` of every array."""
        pick = lambda a, axis=1: None if a is None else a[(slice(None),) * axis + (cols,)]
        return self._replace(
            errors=self.errors[:, cols],
            steps_run=self.steps_run[:, cols],
            diverged=self.diverged[:, cols],
            stopped=pick(self.stopped),
            history=pick(self.history, 2),
        )


def _place(
    rows: int, n_seeds: int, mask_of: np.ndarray, seed_of: np.ndarray, *items: tuple[Any, Any]
) -> list[np.ndarray]:
    """Each ``(per-item values [B, ...], fill)`` placed at (mask_of, seed_of) of a [rows, S, ...] array."""
    out = []
    for vals, fill in items:
        vals = np.asarray(vals)
        a = np.full((rows, n_seeds, *vals.shape[1:]), fill, vals.dtype)
        a[mask_of, seed_of] = vals
        out.append(a)
    return out


def tabulate(engine: Engine, trained: Trained, masks: np.ndarray | None = None) -> Tabulated:
    """Place trained items in the value table of ``masks`` (the masks they were trained for,
    ``trained.mask_of`` indexing them; None: all 2^n); the errors are those of the last check."""
    state = trained.state
    rows = 2 ** len(engine.problem.rules) if masks is None else len(masks)
    history = np.moveaxis(trained.history, 0, 1)  # [B, checks, d_out]
    steps, div, stopped, hist = _place(
        rows,
        len(engine.seeds),
        trained.mask_of,
        trained.seed_of,
        (state.steps_run, 0),
        (state.diverged, False),
        (state.frozen & ~state.diverged, False),
        (history, np.nan),
    )
    hist = np.moveaxis(hist, 2, 0)  # [checks, M, S, d_out]
    errors = hist[-1].copy()
    div |= ~np.all(np.isfinite(errors), axis=-1)
    errors[div] = np.nan
    return Tabulated(errors, steps.astype(np.int64), div, stopped & ~div, hist, np.asarray(trained.check_steps), masks)


def tabulate_params(engine: Engine, params: Any, mask_of: np.ndarray, seed_of: np.ndarray) -> Tabulated:
    """Score batched ``params`` (item ``b`` = mask ``mask_of[b]``, seed column ``seed_of[b]``)
    that were not trained here (e.g. a Newton step) on the validation set."""
    rows = 2 ** len(engine.problem.rules)
    (errors,) = _place(rows, len(engine.seeds), mask_of, seed_of, (engine.validation_errors(params), np.nan))
    div = ~np.all(np.isfinite(errors), axis=-1)
    errors[div] = np.nan
    return Tabulated(errors, np.zeros(div.shape, np.int64), div)


def stack_tables(parts: list[Tabulated]) -> Tabulated:
    """Tables of other masks (one per round of a sampled estimate) as one table."""
    if len(parts) == 1:
        return parts[0]
    cat = lambda name, axis=0: np.concatenate([getattr(p, name) for p in parts], axis=axis)
    return Tabulated(
        cat("errors"),
        cat("steps_run"),
        cat("diverged"),
        cat("stopped"),
        cat("history", 1),
        parts[0].check_steps,
        cat("masks"),
    )


class Outcome(NamedTuple):
    """What a method hands the pipeline: the ``table``, the ``estimator`` record
    (``{"settings": ..., "diagnostics": ...}``; empty for an exact scan), the method's own
    ``timing`` phases (seconds), for a sampled table its :class:`~kvq.game.table.Sampling`, and
    for an exact scan its ``trained`` states (every mask of ``all_masks``: what a robustness check
    continues, :mod:`kvq.workflows.robustness`)."""

    table: Tabulated
    estimator: dict[str, Any]
    timing: dict[str, Any]
    sampling: Sampling | None = None
    trained: Trained | None = None


def too_many_rules(problem: Problem) -> str:
    """What to say when ``problem`` has too many rules for an exact table."""
    n = len(problem.rules)
    return (
        f"problem {problem.name!r} has {n} rules: an exact scan would train 2^{n} = {2**n:,} subsets per seed "
        f"(at most {EXACT_RULES} rules); estimate the importances from sampled coalitions instead, "
        f"kvq.estimate(problem, config, coalitions={DEFAULT['uniform']!r}, budget=B) or "
        f"--coalitions {DEFAULT['uniform']} --budget B (the most accurate sampler of the uniform RI; "
        f"{DEFAULT['shapley']!r} for the Shapley RI)"
    )


def require_whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise KvqError(f"{name} must be a whole number >= {minimum}; got {value!r}")


def require_every_subset(problem: Problem) -> None:
    if len(problem.rules) > EXACT_RULES:
        raise KvqError(too_many_rules(problem))
