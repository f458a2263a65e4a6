"""Value tables: the validation error of every rule mask (and seed), or of the coalitions a
sampler drew (:class:`Sampling`), with provenance."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvq.core.coalitions import all_masks, mask_index
from kvq.errors import KvqError

SAMPLERS = (
    "msr",
    "permutation",
    "kernel",
    "kernel-banzhaf",
    "regression",
    "regression-banzhaf",
    "shapiq-shapley",
    "shapiq-uniform",
)
WEIGHTING = {
    "msr": "uniform",
    "permutation": "shapley",
    "kernel": "shapley",
    "kernel-banzhaf": "uniform",
    "regression": "shapley",
    "regression-banzhaf": "uniform",
    "shapiq-shapley": "shapley",  # a shapiq approximator's estimate, kept with the table (``Sampling.given``)
    "shapiq-uniform": "uniform",
}
GIVEN = ("shapiq-shapley", "shapiq-uniform")
"""Samplers whose estimate an outside approximator made: kept with the table, not recomputed."""
"""The importance each sampler estimates (:func:`kvq.rule_importance`'s ``weighting``)."""


def json_ready(x: Any) -> Any:
    """JSON-ready copy of ``x``: dicts, lists, ints, floats, bools; NaN/inf -> None."""
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, dict):
        return {str(k): json_ready(y) for k, y in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(y) for y in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def known_sampler(sampler: str) -> None:
    """Raise unless ``sampler`` is one of :data:`SAMPLERS`."""
    if sampler not in SAMPLERS:
        raise KvqError(f"unknown coalition sampler {sampler!r}; choose one of {SAMPLERS}")


def full_masks(n: int) -> np.ndarray:
    """All rules, then all rules but rule i for each i: [n + 1, n], what FI needs."""
    return np.vstack([np.ones((1, n), np.int8), 1 - np.eye(n, dtype=np.int8)])


def chain_masks(orders: np.ndarray) -> np.ndarray:
    """The coalitions along each order [P, n]: [P, n + 1, n], entry k = the first k rules on."""
    P, n = orders.shape
    masks = np.zeros((P, n + 1, n), np.int8)
    for k in range(1, n + 1):
        masks[:, k] = masks[:, k - 1]
        masks[np.arange(P), k, orders[:, k - 1]] = 1
    return masks


def coalitions_of(sampler: str, draws: np.ndarray) -> np.ndarray:
    """Every coalition [*, n] the draws need (repeats included)."""
    known_sampler(sampler)
    n = draws.shape[1]
    if sampler == "msr" or sampler in GIVEN:  # an approximator's draws: the coalitions it asked for
        return draws
    if sampler == "permutation":
        return chain_masks(draws).reshape(-1, n)
    pairs = np.concatenate([draws, 1 - draws]).astype(np.int8)
    if sampler in ("kernel", "regression", "regression-banzhaf"):  # v(empty) and v(all)
        pairs = np.concatenate([np.zeros((1, n), np.int8), np.ones((1, n), np.int8), pairs])
    return pairs


PROXY_ARRAYS = ("proxy_values", "proxy_per_seed", "proxy_se")


PROVIDED: dict[str, Callable[..., Any]] = {}
"""What a result's conveniences call in the layers above, registered by those modules when they
are imported (``import kvq`` imports them all), so that no import goes upward
(docs/design.md §8): ``"text"``, ``"frame"``, ``"sweep_text"`` and ``"tuning_text"``
(:mod:`kvq.present.report`), ``"save"`` and ``"load"`` (:mod:`kvq.store.results`)."""


def provided(name: str) -> Callable[..., Any]:
    """The function registered as ``name`` in :data:`PROVIDED`."""
    try:
        return PROVIDED[name]
    except KeyError:
        raise KvqError(f"this needs the rest of kvq ({name!r} is not registered): import kvq first") from None


@dataclass(frozen=True, eq=False)
class Sampling:
    """How a table of *some* coalitions was drawn (docs/design.md §6, "Sampled coalitions").

    ``sampler``: one of :data:`SAMPLERS`; ``draws``: its draws (coalitions [D, n] 0/1, or for
    ``"permutation"`` rule orders [2P, n], each followed by its reverse); ``enumerated``
    (kernel): the pair strata the draws hold completely, once each; ``budget``/``target_se``:
    what the run was asked for.  With a cheap proxy as a control variate: ``proxy`` its JSON
    description (method, settings, beta, coalitions, exact, correlation, proxy_s, ...),
    ``proxy_values`` [M, S] its -log10 error on the table's masks, ``proxy_per_seed`` [S, n]
    the proxy game's own RI per seed and ``proxy_se`` [n] that RI's sampling error (0 when
    exact); the three arrays come together.  ``given`` [S, n]: for the :data:`GIVEN` samplers
    (a shapiq approximator that asked for the coalitions in ``draws``), its estimate per seed.
    """

    sampler: str
    draws: np.ndarray
    enumerated: tuple[int, ...] = ()
    budget: int | None = None
    target_se: float | None = None
    proxy: dict[str, Any] = field(default_factory=dict)
    proxy_values: np.ndarray | None = None
    proxy_per_seed: np.ndarray | None = None
    proxy_se: np.ndarray | None = None
    given: np.ndarray | None = None

    def __post_init__(self) -> None:
        known_sampler(self.sampler)
        if (self.given is not None) != (self.sampler in GIVEN):
            raise KvqError(f"the {GIVEN} samplers, and only they, come with their estimate (given [S, n])")
        if self.given is not None:
            object.__setattr__(self, "given", np.asarray(self.given, np.float64))
        draws = np.asarray(self.draws)
        if draws.ndim != 2:
            raise KvqError(f"draws must be 2-D [draws, rules]; got shape {draws.shape}")
        object.__setattr__(self, "draws", draws.astype(int if self.sampler == "permutation" else np.int8))
        object.__setattr__(self, "enumerated", tuple(int(k) for k in self.enumerated))
        object.__setattr__(self, "proxy", dict(self.proxy or {}))
        given = [getattr(self, a) is not None for a in PROXY_ARRAYS]
        if any(given) and not all(given):
            raise KvqError(f"{', '.join(PROXY_ARRAYS)} come together (the proxy's values, its RI and that RI's se)")
        for a in PROXY_ARRAYS:
            if getattr(self, a) is not None:
                object.__setattr__(self, a, np.asarray(getattr(self, a), np.float64))

    @property
    def weighting(self) -> str:
        """The importance the sampler estimates: ``"uniform"`` or ``"shapley"``."""
        return WEIGHTING[self.sampler]

    @property
    def has_proxy(self) -> bool:
        """Whether the proxy's arrays are here (the estimate can be adjusted by them)."""
        return self.proxy_values is not None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description (no big arrays; those are :meth:`arrays`)."""
        return json_ready(
            {
                "sampler": self.sampler,
                "draws": len(self.draws),
                "enumerated": list(self.enumerated),
                "budget": self.budget,
                "target_se": self.target_se,
                "proxy": self.proxy,
            }
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays for ``table.npz``: ``draws`` and, with a proxy, ``proxy_values``,
        ``proxy_per_seed`` and ``proxy_se`` (the caller may prefix the names in the file)."""
        out = {"draws": self.draws}
        for a in (*PROXY_ARRAYS, "given"):
            if getattr(self, a) is not None:
                out[a] = getattr(self, a)
        return out

    @classmethod
    def from_saved(cls, meta: dict[str, Any], arrays: Any) -> Sampling:
        """The record :meth:`to_json` and :meth:`arrays` describe (``arrays``: a mapping with
        :meth:`arrays`' names; other keys are ignored)."""
        if "draws" not in arrays:
            raise KvqError("a sampled table's arrays lack its draws; the saved result is damaged")
        return cls(
            meta["sampler"],
            np.asarray(arrays["draws"]),
            tuple(meta.get("enumerated", ())),
            meta.get("budget"),
            meta.get("target_se"),
            meta.get("proxy") or {},
            **{a: (np.asarray(arrays[a]) if a in arrays else None) for a in PROXY_ARRAYS},
            given=np.asarray(arrays["given"]) if "given" in arrays else None,
        )


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

    A *sampled* table (``sampling`` set, docs/design.md §6) holds only the coalitions a
    sampler drew: ``masks`` [M, n] are distinct 0/1 rows in any order (FI's all-rules and
    all-but-one among them), and every array above has M rows instead of 2^n.
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
    sampling: Sampling | None = None

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
        object.__setattr__(self, "errors", errors)
        if self.sampling is not None:
            self._check_sampled()
        elif errors.ndim != 2 or errors.shape[0] != 2**n:
            raise KvqError(
                f"errors must have shape [2^{n} = {2**n}, seeds] for rules {list(names)}; got {errors.shape}"
            )
        elif self.masks is None:
            object.__setattr__(self, "masks", all_masks(n))
        else:
            expected = all_masks(n)
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

    def _check_sampled(self) -> None:
        """A sampled table's masks: distinct 0/1 rows, one per row of errors, FI's among them,
        and every coalition the draws need."""
        assert self.sampling is not None
        names, errors = self.rule_names, self.errors
        n = len(names)
        if not isinstance(self.sampling, Sampling):
            raise KvqError(f"sampling must be a kvq.game.table.Sampling; got {type(self.sampling).__name__}")
        if self.masks is None:
            raise KvqError("a sampled table needs its masks [M, n]: which coalition each row of errors holds")
        masks = np.asarray(self.masks)
        if errors.ndim != 2 or masks.shape != (errors.shape[0], n):
            raise KvqError(
                f"a sampled table needs masks [M, {n}] and errors [M, seeds] with the same M; got masks "
                f"{masks.shape} and errors {errors.shape}"
            )
        if not np.isin(masks, (0, 1)).all():
            raise KvqError("masks must be 0/1 (rule on/off)")
        masks = masks.astype(np.int8)
        have = {m.tobytes() for m in masks}
        if len(have) != len(masks):
            raise KvqError("a sampled table's masks must be distinct coalitions (one row each)")
        if any(m.tobytes() not in have for m in full_masks(n)):
            raise KvqError(
                "a sampled table must hold all rules and every all-but-one coalition (FI needs them: "
                "kvq.sampling.full_masks)"
            )
        draws = self.sampling.draws
        if len(draws) and draws.shape[1] != n:
            raise KvqError(f"the draws are over {draws.shape[1]} rules; the table has {n}")
        if len(draws) and any(m.tobytes() not in have for m in coalitions_of(self.sampling.sampler, draws)):
            raise KvqError("a coalition the draws need is not among the table's masks")
        pv = self.sampling.proxy_values
        if pv is not None and pv.shape != errors.shape:
            raise KvqError(f"proxy_values must have the errors' shape {errors.shape}; got {pv.shape}")
        object.__setattr__(self, "masks", masks)

    def __repr__(self) -> str:  # short: the arrays are the bulk of a table
        checks = "" if self.check_steps is None else f", {len(self.check_steps)} checks"
        of = "" if self.complete else f" of {2**self.n_rules} ({self.sampling.sampler})"  # type: ignore[union-attr]
        return (
            f"{type(self).__name__}(rules={list(self.rule_names)}, {self.errors.shape[0]} masks{of} x "
            f"{self.n_seeds} seeds{checks})"
        )

    @property
    def complete(self) -> bool:
        """True for a table of every coalition (all 2^n masks in binary order), False for a sampled one."""
        return self.sampling is None

    def row_of(self, mask: Sequence[int]) -> int | None:
        """The row of ``errors`` that holds coalition ``mask`` [n] (0/1), None if it was not trained."""
        if self.complete:
            return mask_index(mask)
        want = np.asarray(mask, np.int8)
        hits = np.flatnonzero((self.masks == want[None, :]).all(axis=1))
        return int(hits[0]) if hits.size else None

    def table(self, as_frame: bool = False) -> Any:
        """The importance table: RI (uniform, Shapley) and FI ± se and each rule's status, as
        text (what ``kvq show`` prints, with the verdicts under it), or with ``as_frame`` a
        pandas DataFrame (one row per rule; needs pandas)."""
        return provided("frame" if as_frame else "text")(self)

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
            masks=self.masks,
            errors_by_check=self.errors_by_check[: t + 1],
            check_steps=self.check_steps[: t + 1],
            errors_by_check_by_output=None if by_out is None else by_out[: t + 1],
            stopped=self._stopped_by(int(self.check_steps[t])),
            sampling=self.sampling,
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
        if not self.complete:
            raise KvqError(
                "a sampled table has no sub-games: the game without a rule needs coalitions that were not "
                "trained (run an exact scan, or sample the problem without that rule)"
            )
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
        """bool [M, S] (M = 2^n for a complete table): entries that are not a usable error (NaN, inf or <= 0)."""
        return ~(np.isfinite(self.errors) & (self.errors > 0))

    def subset_label(self, k: int) -> str:
        """``"{pde, ic}"`` style label of row ``k`` (mask number ``k`` of a complete table)."""
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
    residuals, anchor) are in ``estimator``, ``"sampled"`` for a table of sampled coalitions
    (``sampling`` set; see :class:`SampledResult`).  The arrays have one row per mask (2^n, or
    M for a sampled table).  ``robustness``: rule name -> the knowledge-or-optimizer check of a
    rule that hurts (:mod:`kvq.workflows.robustness`; ``"verdict"`` is ``"survived"``,
    ``"protocol"`` or ``"weight"``); the verdicts read it.
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
    robustness: dict[str, Any] = field(default_factory=dict)

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
        return provided("save")(self, directory, overwrite=overwrite)

    @classmethod
    def load(cls, directory: str | Path) -> ScanResult:
        """Read a result written by :meth:`save`."""
        return provided("load")(directory)


@dataclass(frozen=True, eq=False)
class SampledResult(ScanResult):
    """A :class:`ScanResult` of sampled coalitions (``sampling`` set, ``method="sampled"``):
    every importance function, verdict, report and plot takes it like any table.  The
    properties below are conveniences kept from the former separate type: ``ri`` is
    :func:`kvq.rule_importance` of the table (the sampler's weighting; with a proxy, the
    adjusted estimate), ``plain`` the same draws' estimate without the proxy, ``fi`` FI."""

    method: str = "sampled"

    def __post_init__(self) -> None:
        if self.sampling is None:
            raise KvqError("a SampledResult needs its sampling record (kvq.game.table.Sampling)")
        super().__post_init__()

    @property
    def _sampling(self) -> Sampling:
        assert self.sampling is not None
        return self.sampling

    @property
    def sampler(self) -> str:
        return self._sampling.sampler

    @property
    def draws(self) -> np.ndarray:
        return self._sampling.draws

    @property
    def enumerated(self) -> tuple[int, ...]:
        return self._sampling.enumerated

    @property
    def budget(self) -> int | None:
        return self._sampling.budget

    @property
    def target_se(self) -> float | None:
        return self._sampling.target_se

    @property
    def proxy(self) -> dict[str, Any]:
        return self._sampling.proxy

    @property
    def ri(self) -> Any:
        """The RI estimate (a :class:`kvq.game.importance.SampledImportance`)."""
        from kvq.game.importance import rule_importance

        return rule_importance(self)

    @property
    def fi(self) -> Any:
        """FI from the ``n + 1`` coalitions it needs (a :class:`kvq.game.importance.Importance`)."""
        from kvq.game.importance import full_importance

        return full_importance(self)

    @property
    def plain(self) -> Any:
        """The estimate of the same draws without the proxy; None without a proxy."""
        from kvq.game.importance import sampled_estimates

        return sampled_estimates(self)[1]

    def __repr__(self) -> str:
        name = self.problem.get("name", "?") if isinstance(self.problem, dict) else "?"
        return (
            f"SampledResult(problem={name!r}, {self.n_rules} rules, sampler={self.sampler!r}, "
            f"{len(self.masks)} of {2**self.n_rules} coalitions trained x {self.n_seeds} seeds)"
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampledResult:
        """The result an older kvq's ``sampled.json`` (kind ``"kvq.SampledResult"``) describes.
        That format kept the proxy's values on the trained coalitions but not the proxy game's
        own RI, so an estimate it adjusted reads back as the plain estimate of the same draws
        (the report says so)."""
        if d.get("kind") != "kvq.SampledResult":
            raise KvqError(f"not a sampled estimate (kind {d.get('kind')!r}); older kvq wrote these as sampled.json")
        errors = np.array(d["errors"], float)
        proxy = {k: v for k, v in (d.get("proxy") or {}).items() if k != "values"}
        if proxy:
            proxy["arrays_saved"] = False
        sampling = Sampling(
            d["sampler"],
            np.array(d["draws"], int).reshape(-1, len(d["rule_names"])),
            tuple(d.get("enumerated", ())),
            d.get("budget"),
            d.get("target_se"),
            proxy,
        )
        return cls(
            rule_names=tuple(d["rule_names"]),
            errors=errors,
            masks=np.array(d["masks"], np.int8),
            diverged=~np.isfinite(errors),
            seeds=tuple(d["seeds"]),
            problem=d.get("problem", {}),
            config=d.get("config", {}),
            timing=d.get("timing", {}),
            sampling=sampling,
        )
