"""Value tables: the validation error of every rule mask (and seed), with provenance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvq.coalitions import all_masks
from kvq.errors import KvqError


@dataclass(frozen=True, eq=False)
class ValueTable:
    """``errors[k, s]``: validation MSE of mask ``k`` (binary order, docs/design.md §1) and seed ``s``.

    ``errors_by_output`` [2^n, S, d_out] holds the MSE of each output; NaN marks a
    training that diverged.  Any object with ``rule_names`` and ``errors`` works with the
    importance functions; this is the canonical one.

    Trained tables also hold the table over the training budget: ``errors_by_check``
    [checks, 2^n, S] (and ``errors_by_check_by_output`` [checks, 2^n, S, d_out]) is the
    error of each training's kept weights after ``check_steps[t]`` optimizer steps (what a
    run with that budget would have given; a training that stopped early carries its
    final error, one that diverged is NaN from then on), and ``stopped`` [2^n, S] marks the
    trainings that stopped by the early-stopping criterion rather than at the step cap.
    """

    rule_names: tuple[str, ...]
    errors: np.ndarray
    errors_by_output: np.ndarray | None = None
    output_names: tuple[str, ...] = ()
    masks: np.ndarray = field(default=None)  # type: ignore[arg-type]  # filled in by __post_init__
    errors_by_check: np.ndarray | None = None
    errors_by_check_by_output: np.ndarray | None = None
    check_steps: np.ndarray | None = None
    stopped: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = tuple(self.rule_names)
        object.__setattr__(self, "rule_names", names)
        if not names:
            raise KvqError("a value table needs at least one rule")
        if len(set(names)) != len(names):
            raise KvqError(f"repeated rule names in value table: {names}")
        errors = np.asarray(self.errors, np.float64)
        if errors.ndim == 1:
            errors = errors[:, None]
        n = len(names)
        if errors.ndim != 2 or errors.shape[0] != 2**n:
            raise KvqError(
                f"errors must have shape [2^{n} = {2**n}, seeds] for rules {list(names)}; got {errors.shape}"
            )
        object.__setattr__(self, "errors", errors)
        expected = all_masks(n)
        if self.masks is None:
            object.__setattr__(self, "masks", expected)
        else:
            masks = np.asarray(self.masks)
            if masks.shape != expected.shape or not np.array_equal(masks.astype(np.int8), expected):
                raise KvqError(
                    f"the masks [{masks.shape}] disagree with the {n} rule names {list(names)}: "
                    f"expected all {2**n} masks in binary order (rule 0 = lowest bit)"
                )
            object.__setattr__(self, "masks", masks.astype(np.int8))
        if self.errors_by_output is not None:
            ebo = np.asarray(self.errors_by_output, np.float64)
            if ebo.shape[:2] != errors.shape or ebo.ndim != 3:
                raise KvqError(
                    f"errors_by_output must be [{errors.shape[0]}, {errors.shape[1]}, d_out]; got {ebo.shape}"
                )
            object.__setattr__(self, "errors_by_output", ebo)
            outs = tuple(self.output_names) or tuple(f"y{j}" for j in range(ebo.shape[2]))
            if len(outs) != ebo.shape[2]:
                raise KvqError(f"{len(outs)} output names for {ebo.shape[2]} outputs")
            object.__setattr__(self, "output_names", outs)
        self._check_history()

    def __repr__(self) -> str:  # short: the arrays are the bulk of a table
        checks = "" if self.check_steps is None else f", {len(self.check_steps)} checks"
        return (
            f"{type(self).__name__}(rules={list(self.rule_names)}, {self.errors.shape[0]} masks x "
            f"{self.n_seeds} seeds{checks})"
        )

    def table(self, as_frame: bool = False) -> Any:
        """The importance table: RI (uniform, Shapley) and FI ± se and each rule's status, as
        text (what ``kvq show`` prints, with the verdicts under it), or with ``as_frame`` a
        pandas DataFrame (one row per rule; needs pandas)."""
        from kvq.report import importance_frame, importance_table  # the output layer, on request

        return importance_frame(self) if as_frame else importance_table(self)

    def _check_history(self) -> None:
        shape = self.errors.shape
        if self.stopped is not None:
            stopped = np.asarray(self.stopped, bool)
            if stopped.shape != shape:
                raise KvqError(f"stopped must have the errors' shape {shape}; got {stopped.shape}")
            object.__setattr__(self, "stopped", stopped)
        if (self.errors_by_check is None) != (self.check_steps is None):
            raise KvqError("errors_by_check and check_steps come together (the errors after each check, and its step)")
        if self.errors_by_check is None:
            if self.errors_by_check_by_output is not None:
                raise KvqError("errors_by_check_by_output needs errors_by_check and check_steps")
            return
        hist = np.asarray(self.errors_by_check, np.float64)
        steps = np.asarray(self.check_steps, np.int64).reshape(-1)
        if hist.shape != (len(steps), *shape):
            raise KvqError(f"errors_by_check must be [checks = {len(steps)}, {shape[0]}, {shape[1]}]; got {hist.shape}")
        if len(steps) == 0 or np.any(np.diff(steps) <= 0) or steps[0] <= 0:
            raise KvqError(f"check_steps must be increasing positive step counts; got {steps.tolist()}")
        object.__setattr__(self, "errors_by_check", hist)
        object.__setattr__(self, "check_steps", steps)
        if self.errors_by_check_by_output is not None:
            hbo = np.asarray(self.errors_by_check_by_output, np.float64)
            if self.errors_by_output is None or hbo.shape != (len(steps), *self.errors_by_output.shape):
                raise KvqError(
                    f"errors_by_check_by_output must be [{len(steps)}, *errors_by_output.shape]; got {hbo.shape}"
                )
            object.__setattr__(self, "errors_by_check_by_output", hbo)

    def check_index(self, step: int) -> int:
        """Index of the last check at or before optimizer step ``step``."""
        if self.check_steps is None:
            raise KvqError(
                "this value table holds no errors over the training budget (errors_by_check); "
                "it was estimated, or saved by an older kvq: importances are available at the end only"
            )
        t = int(np.searchsorted(self.check_steps, step, side="right")) - 1
        if t < 0:
            raise KvqError(
                f"step {step} is before the first check (step {int(self.check_steps[0])}); "
                f"the checks are at steps {self.check_steps.tolist()}"
            )
        return t

    def at_step(self, step: int) -> ValueTable:
        """The value table as it stood after ``step`` optimizer steps (the last check at or
        before it): what a scan with that budget would have given, including which trainings
        would have stopped early (those that stopped by then)."""
        t = self.check_index(step)  # raises without a table over the budget
        assert self.errors_by_check is not None and self.check_steps is not None
        by_out = self.errors_by_check_by_output
        return ValueTable(
            self.rule_names,
            self.errors_by_check[t],
            None if by_out is None else by_out[t],
            self.output_names,
            errors_by_check=self.errors_by_check[: t + 1],
            check_steps=self.check_steps[: t + 1],
            errors_by_check_by_output=None if by_out is None else by_out[: t + 1],
            stopped=self._stopped_by(int(self.check_steps[t])),
        )

    def _stopped_by(self, step: int) -> np.ndarray | None:
        """Which trainings a budget of ``step`` steps saw stop early: those that stopped at or
        before it (needs ``steps_run``; unknown for a plain table cut before its end)."""
        if self.stopped is None or self.check_steps is None:
            return None
        steps_run = getattr(self, "steps_run", None)
        if steps_run is None:
            return self.stopped if step >= int(self.check_steps[-1]) else None
        return self.stopped & (steps_run <= step)

    def restrict(self, rules: Sequence[str]) -> ValueTable:
        """The sub-game on ``rules`` (in this table's rule order): the coalitions in which every
        other rule is off, as a value table of those rules alone (masks in binary order of
        the remaining rules)."""
        unknown = [r for r in rules if r not in self.rule_names]
        if unknown:
            raise KvqError(f"unknown rule(s) {unknown}; the table's rules are {list(self.rule_names)}")
        keep = [j for j, name in enumerate(self.rule_names) if name in set(rules)]
        if not keep:
            raise KvqError("restrict() needs at least one rule to keep")
        sub = all_masks(len(keep)).astype(np.int64)
        rows = (sub << np.asarray(keep)).sum(axis=1)  # mask number in the full table
        pick = lambda a: None if a is None else a[rows]
        pick_h = lambda a: None if a is None else a[:, rows]
        return ValueTable(
            tuple(self.rule_names[j] for j in keep),
            self.errors[rows],
            pick(self.errors_by_output),
            self.output_names,
            errors_by_check=pick_h(self.errors_by_check),
            check_steps=self.check_steps,
            errors_by_check_by_output=pick_h(self.errors_by_check_by_output),
            stopped=pick(self.stopped),
        )

    def without(self, *rules: str) -> ValueTable:
        """The sub-game of every rule but ``rules`` (see :meth:`restrict`)."""
        unknown = [r for r in rules if r not in self.rule_names]
        if unknown:
            raise KvqError(f"unknown rule(s) {unknown}; the table's rules are {list(self.rule_names)}")
        return self.restrict([r for r in self.rule_names if r not in rules])

    @property
    def n_rules(self) -> int:
        return len(self.rule_names)

    @property
    def n_seeds(self) -> int:
        return int(self.errors.shape[1])

    def missing(self) -> np.ndarray:
        """bool [2^n, S]: entries that are not a usable error (NaN, inf or <= 0)."""
        return ~(np.isfinite(self.errors) & (self.errors > 0))

    def subset_label(self, k: int) -> str:
        """``"{pde, ic}"`` style label of mask ``k``."""
        on = [name for name, bit in zip(self.rule_names, self.masks[k]) if bit]
        return "{" + ", ".join(on) + "}"


@dataclass(frozen=True, eq=False)
class ScanResult(ValueTable):
    """A value table produced by training, with everything needed to trust and redo it.

    ``steps_run`` [2^n, S]: optimizer steps each training took before early stopping;
    ``diverged`` [2^n, S]: trainings whose loss became NaN/inf (their errors are NaN);
    ``seeds`` [S]: the seed numbers; ``problem``/``config``: JSON descriptions;
    ``timing``: seconds (``compile_s``, ``pretrain_s``, ``train_s``, ``total_s``) and
    ``subset_steps_per_s``; ``method``: ``"exact"`` for full enumeration, ``"finetune"`` or
    ``"newton"`` for an estimate (:func:`kvq.estimate`), whose settings and diagnostics (CG
    residuals, anchor) are in ``estimator``.
    """

    steps_run: np.ndarray = field(default=None)  # type: ignore[arg-type]  # zeros if not given
    diverged: np.ndarray = field(default=None)  # type: ignore[arg-type]  # all False if not given
    seeds: tuple[int, ...] = ()
    problem: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    method: str = "exact"
    estimator: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = self.errors.shape
        steps = np.zeros(shape, np.int64) if self.steps_run is None else np.asarray(self.steps_run, np.int64)
        div = np.zeros(shape, bool) if self.diverged is None else np.asarray(self.diverged, bool)
        for name, arr in (("steps_run", steps), ("diverged", div)):
            if arr.shape != shape:
                raise KvqError(f"{name} must have the errors' shape {shape}; got {arr.shape}")
        object.__setattr__(self, "steps_run", steps)
        object.__setattr__(self, "diverged", div)
        seeds = tuple(int(s) for s in self.seeds) or tuple(range(shape[1]))
        if len(seeds) != shape[1]:
            raise KvqError(f"{len(seeds)} seed numbers for {shape[1]} seed columns")
        object.__setattr__(self, "seeds", seeds)

    def __repr__(self) -> str:
        name = self.problem.get("name", "?") if isinstance(self.problem, dict) else "?"
        steps = self.config.get("steps") if isinstance(self.config, dict) else None
        return (
            f"ScanResult(problem={name!r}, rules={list(self.rule_names)}, {self.errors.shape[0]} masks x "
            f"{self.n_seeds} seeds {list(self.seeds)}, method={self.method!r}"
            + (f", {steps} steps" if steps else "")
            + ")"
        )

    def __str__(self) -> str:
        return f"{self!r}\n\n{self.table()}"

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write ``results.json``, ``table.npz`` and ``table.csv`` into ``directory``."""
        from kvq.io import save_result

        return save_result(self, directory, overwrite=overwrite)

    @classmethod
    def load(cls, directory: str | Path) -> ScanResult:
        """Read a result written by :meth:`save`."""
        from kvq.io import load_result

        return load_result(directory)
