"""The ways kvq fills a value table, each one object with one interface (docs/design.md §6).

- :class:`Exact`: every subset of the rules trained for every seed (the paper's protocol).
- :class:`Finetune`: one anchor per seed, then ``K`` short trainings per mask from it.
- :class:`Newton`: an all-rules anchor, then one Newton step per mask (no training per mask).
- :class:`Sampled`: only sampled coalitions trained, the importances estimated from them.

A method states what identifies its result (:meth:`record`) and its trainings
(:meth:`training`), checks that it applies (:meth:`check`) and, given a prepared engine
(:class:`kvq.engine.Engine`, warm start done), returns an :class:`Outcome`: the trained
table and what the result records about it.  :mod:`kvq.pipeline` does everything around
that, once for every method.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from kvq.core.coalitions import all_masks, mask_index
from kvq.core.config import ScanConfig
from kvq.core.newton import newton_directions, newton_steps, shift_coefficients
from kvq.core.train import take
from kvq.engine.batched import Engine, Progress, Trained
from kvq.errors import KvqError
from kvq.game.importance import values_importance
from kvq.game.sampling import (
    SAMPLERS,
    WEIGHTING,
    coalitions_of,
    draws_within,
    estimate_importance,
    full_masks,
    no_draws,
    plan_draws,
)
from kvq.game.table import Sampling
from kvq.problems.rules import Problem

EXACT_RULES = 20  # an exact scan trains 2^n subsets; beyond this, sample coalitions
PROXIES = ("newton",)
PROXY_EXACT_RULES = 12
"""Up to this many rules a proxy scores every coalition (2^12 = 4 096 validation passes per seed)."""
PROXY_CHUNK = 256
"""Coalitions whose Newton steps are formed on the host at once."""
ANCHORS = ("data", "all")
CURVATURES = ("ggn", "hessian")
SOLVES = ("shared", "per_mask")


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


def _stack(parts: list[Tabulated]) -> Tabulated:
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
    ``timing`` phases (seconds), and for a sampled table its :class:`~kvq.table.Sampling`."""

    table: Tabulated
    estimator: dict[str, Any]
    timing: dict[str, Any]
    sampling: Sampling | None = None


def too_many_rules(problem: Problem) -> str:
    """What to say when ``problem`` has too many rules for an exact table."""
    n = len(problem.rules)
    return (
        f"problem {problem.name!r} has {n} rules: an exact scan would train 2^{n} = {2**n:,} subsets per seed "
        f"(at most {EXACT_RULES} rules); estimate the importances from sampled coalitions instead, "
        "kvq.estimate(problem, config, coalitions='msr', budget=B) or --coalitions msr --budget B"
    )


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise KvqError(f"{name} must be a whole number >= {minimum}; got {value!r}")


def _every_subset(problem: Problem) -> None:
    if len(problem.rules) > EXACT_RULES:
        raise KvqError(too_many_rules(problem))


# ---------------------------------------------------------------- exact


@dataclass(frozen=True)
class Exact:
    """Every subset of the rules trained for every seed: the paper's protocol."""

    name = "exact"
    groups = True  # the masks split by the expensive rules' on/off pattern (docs/design.md §5)

    def record(self, config: ScanConfig) -> str:
        """The method as its result records it (part of the result's identity)."""
        return "exact"

    def training(self, config: ScanConfig) -> Any:
        """What besides the exact scan's identity decides the trainings (None: nothing)."""
        return None

    def check(self, problem: Problem, config: ScanConfig) -> None:
        _every_subset(problem)

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        trained = engine.train(all_masks(len(engine.problem.rules)), progress)
        return Outcome(tabulate(engine, trained), {}, {})


# ---------------------------------------------------------------- from one anchor


def _train_anchor(engine: Engine, progress: Progress) -> tuple[Any, Any, dict[str, Any]]:
    """Every seed trained with all rules on (the exact scan's protocol for that mask):
    its kept weights and optimizer state [S] and a JSON summary."""
    n = len(engine.problem.rules)
    t0 = time.perf_counter()
    trained = engine.train(np.ones((1, n), np.int8), progress, phase="anchor", tag="anchor")
    state = take(trained.state, np.argsort(trained.seed_of, kind="stable"))  # row s = seed s
    info = {
        "anchor": "all rules",
        "anchor_steps": np.asarray(state.steps_run).tolist(),
        "anchor_diverged": np.asarray(state.diverged).tolist(),
        "anchor_s": time.perf_counter() - t0,
    }
    return state.best_params, state.best_opt_state, info


def _no_polish(name: str, config: ScanConfig) -> None:
    if config.polish_steps:
        raise KvqError(
            f"method {name!r} does not polish (its anchors and short trainings keep one optimizer); "
            "set polish_steps=0, or use method='exact'"
        )


def _anchored(engine: Engine, table: Tabulated, diagnostics: dict[str, Any]) -> Tabulated:
    """``table`` with the seeds whose all-rules anchor diverged left out (warned)."""
    bad = np.asarray(diagnostics.get("anchor_diverged", np.zeros(len(engine.seeds), bool)), bool)
    if not bad.any():
        return table
    warnings.warn(  # an estimate that starts from diverged weights is no estimate
        f"the all-rules anchor of seed(s) {[engine.seeds[s] for s in np.flatnonzero(bad)]} diverged "
        "(NaN/inf loss); every estimate of those seeds is left out of the averages",
        RuntimeWarning,
        stacklevel=2,
    )
    return table.without_seeds(bad)


def default_finetune_steps(config: ScanConfig) -> int:
    """K when ``Finetune.steps`` is None: a third of the exact scan's budget."""
    return max(1, config.steps // 3)


@dataclass(frozen=True)
class Finetune:
    """Warm-start fine-tune.

    ``steps`` (K): optimizer steps per mask from the anchor (``None``: a third of
    ``config.steps``, the most reliable setting in ``benchmarks/estimators.py``), checked every
    ``config.check_every`` steps when that divides K, else once at the end.  ``anchor``:
    ``"data"`` starts every mask from the data-only warm start (so K = ``config.steps`` *is*
    the exact scan); ``"all"`` first trains every seed with all rules on (``config.steps``) and
    starts every mask from there, with that training's optimizer state.
    """

    steps: int | None = None
    anchor: str = "data"

    name = "finetune"
    groups = True

    def __post_init__(self) -> None:
        if self.steps is not None:
            _whole("steps", self.steps, minimum=1)
        if self.anchor not in ANCHORS:
            raise KvqError(f"anchor must be one of {ANCHORS}; got {self.anchor!r}")

    def check(self, problem: Problem | None = None, config: ScanConfig | None = None) -> None:
        if problem is not None:
            _every_subset(problem)
        if config is not None:
            _no_polish(self.name, config)

    def resolved(self, config: ScanConfig) -> dict[str, Any]:
        """The settings with ``steps`` resolved for ``config``."""
        return {**dataclasses.asdict(self), "steps": self.steps or default_finetune_steps(config)}

    def record(self, config: ScanConfig) -> dict[str, Any]:
        return {"method": self.name, **self.resolved(config)}

    def training(self, config: ScanConfig) -> Any:
        return self.record(config)

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        cfg = engine.config
        K = self.resolved(cfg)["steps"]
        info: dict[str, Any] = {"steps": K}
        if self.anchor == "all":
            params, opt, anchor = _train_anchor(engine, progress)
            engine = engine.with_starts(params, opt)
            info.update(anchor)
        else:
            info["anchor"] = "data-only warm start" if cfg.warm_start and engine.xs.shape[1] else "initialization"
        timing = {"anchor_s": info.pop("anchor_s", 0.0)}
        t0 = time.perf_counter()
        fine = engine.with_budget(K)
        trained = fine.train(all_masks(len(engine.problem.rules)), progress, tag="finetune")
        timing["finetune_s"] = time.perf_counter() - t0
        table = _anchored(engine, tabulate(fine, trained), info)
        return Outcome(table, {"settings": self.record(cfg), "diagnostics": info}, timing)


@dataclass(frozen=True)
class Newton:
    """Second-order one-shot estimate.

    ``curvature``: ``"ggn"`` (Gauss-Newton of every term with a residual; a rule given
    only as an opaque loss contributes its exact Hessian product) or ``"hessian"``.
    ``damping`` δ is added to the curvature (same units as the loss's curvature).  Each
    system runs conjugate gradients for at most ``cg_iterations`` iterations or until
    its relative residual is below ``cg_tol``.  ``solve="shared"`` uses the full
    objective's curvature for every mask (n solves, linear in the mask, docs/design.md §6);
    ``"per_mask"`` solves each mask's own system ``(C_S + δI) Δ_S = b_S`` (2^n solves).
    ``anchor_step`` also takes the Newton step of the anchor's remaining gradient
    ``∇J_all(θ̂)`` (each ``θ_S`` becomes one Newton step on ``J_S`` from ``θ̂``, exact for
    quadratic objectives); off, the all-rules mask keeps the trained anchor.
    ``refine_steps`` (K): optional training steps from every ``θ_S`` (0: none).
    """

    anchor: str = "all"
    curvature: str = "ggn"
    damping: float = 1e-3
    cg_iterations: int = 100
    cg_tol: float = 1e-4
    solve: str = "shared"
    anchor_step: bool = False
    refine_steps: int = 0

    name = "newton"

    def __post_init__(self) -> None:
        if self.anchor not in ANCHORS:
            raise KvqError(f"anchor must be one of {ANCHORS}; got {self.anchor!r}")
        if self.curvature not in CURVATURES:
            raise KvqError(f"curvature must be one of {CURVATURES}; got {self.curvature!r}")
        if self.solve not in SOLVES:
            raise KvqError(f"solve must be one of {SOLVES}; got {self.solve!r}")
        for name in ("damping", "cg_tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(float(v)) or v < 0:
                raise KvqError(f"{name} must be a finite number >= 0; got {v!r}")
        _whole("cg_iterations", self.cg_iterations, minimum=1)
        _whole("refine_steps", self.refine_steps, minimum=0)
        if not isinstance(self.anchor_step, bool):
            raise KvqError(f"anchor_step must be True or False; got {self.anchor_step!r}")

    @property
    def groups(self) -> bool:
        """Only the anchor trains unless it refines: one program is enough."""
        return bool(self.refine_steps)

    def check(self, problem: Problem | None = None, config: ScanConfig | None = None) -> None:
        if problem is not None:
            _every_subset(problem)
        if config is not None:
            _no_polish(self.name, config)

    def record(self, config: ScanConfig) -> dict[str, Any]:
        return {"method": self.name, **dataclasses.asdict(self)}

    def training(self, config: ScanConfig) -> Any:
        return self.record(config)

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        problem = engine.problem
        n, S = len(problem.rules), len(engine.seeds)
        obj = engine.programs.objective
        residuals = tuple(r.residual for r in problem.rules)
        if self.anchor == "all":
            params, opt, info = _train_anchor(engine, progress)
        else:
            params, opt, info = engine.params0, engine.opt0, {"anchor": "data-only warm start", "anchor_s": 0.0}
        timing = {"anchor_s": info.pop("anchor_s")}

        masks = all_masks(n).astype(np.float32)  # passed to every device like the points
        systems = S * (n + int(self.anchor_step) if self.solve == "shared" else 2**n)
        progress("solve", 0, systems)
        t0, c0 = time.perf_counter(), engine.clock.compile_s

        def per_seed(p, x, y, points, masks):
            return newton_steps(self, obj, residuals, p, (x, y), points, masks)

        shifts, cg = engine.per_seed(per_seed, (params, engine.xs, engine.ys), (engine.points, masks))  # [S, 2^n, p]
        timing["solve_s"] = time.perf_counter() - t0
        progress("solve", systems, systems)

        flat0 = jax.vmap(lambda p: ravel_pytree(p)[0])(params)  # [S, p]
        unravel = ravel_pytree(take(params, 0))[1]
        mask_of, seed_of = np.repeat(np.arange(2**n), S), np.tile(np.arange(S), 2**n)
        moved = flat0[seed_of] + shifts[seed_of, mask_of]  # [2^n S, p]
        batched = jax.vmap(unravel)(moved)
        step_norm = np.linalg.norm(np.asarray(shifts), axis=-1)  # [S, 2^n]
        info.update(
            {
                "cg_iterations": np.asarray(cg["iterations"]).tolist(),
                "cg_relative_residual": np.asarray(cg["relative_residual"]).tolist(),
                "cg_relative_residual_max": float(np.max(cg["relative_residual"])),
                "step_norm_max": float(step_norm.max()),
                "anchor_norm": np.linalg.norm(np.asarray(flat0), axis=-1).tolist(),
                "rules_without_residual": [r.name for r in problem.rules if r.residual is None],
            }
        )
        if self.refine_steps:
            t1 = time.perf_counter()
            host = jax.device_get(batched)  # item k * S + s is mask k, seed s

            def starts(m_of: np.ndarray, s_of: np.ndarray) -> tuple[Any, Any]:
                return take(host, m_of * S + s_of), take(opt, s_of)

            fine = engine.with_budget(self.refine_steps)
            trained = fine.train(all_masks(n), progress, phase="refine", tag="refine", starts=starts)
            timing["refine_s"] = time.perf_counter() - t1
            table = tabulate(fine, trained)
        else:
            t1 = time.perf_counter()
            table = tabulate_params(engine, batched, mask_of, seed_of)
            timing["evaluate_s"] = time.perf_counter() - t1
        timing["compile_after_anchor_s"] = engine.clock.compile_s - c0  # within solve_s and the phase after it
        table = _anchored(engine, table, info)
        return Outcome(table, {"settings": self.record(engine.config), "diagnostics": info}, timing)


# ---------------------------------------------------------------- sampled coalitions


@dataclass(frozen=True)
class Sampled:
    """Only sampled coalitions trained (exactly, from the warm start), at most ``budget``
    distinct ones including the ``n + 1`` that FI needs, drawn by ``sampler``
    (:mod:`kvq.sampling`) with ``sample_seed``; with ``target_se`` they are drawn and trained
    in four rounds until every rule's sampling standard error is at most ``target_se``
    decades or the budget is spent.  ``proxy="newton"`` adds a control variate: one
    shared-curvature Newton step from each seed's all-rules training (trained anyway, for
    FI) scores every coalition (up to ``PROXY_EXACT_RULES`` rules; beyond, ``proxy_budget``
    distinct sampled ones, default 16 x ``budget``) for one validation pass each."""

    sampler: str
    budget: int
    target_se: float | None = None
    sample_seed: int = 0
    proxy: str | None = None
    proxy_budget: int | None = None

    name = "sampled"
    groups = True

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise KvqError(f"unknown coalition sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if not isinstance(self.budget, int) or isinstance(self.budget, bool):
            raise KvqError(f"budget must be a whole number of coalitions; got {self.budget!r}")
        if self.target_se is not None and not self.target_se > 0:
            raise KvqError(f"target_se must be > 0 decades; got {self.target_se!r}")
        if self.proxy not in (None, *PROXIES):
            raise KvqError(f"proxy must be one of {PROXIES} (or None); got {self.proxy!r}")
        if self.proxy_budget is not None and (
            not isinstance(self.proxy_budget, int) or isinstance(self.proxy_budget, bool) or self.proxy_budget < 4
        ):
            raise KvqError(f"proxy_budget must be a whole number >= 4 coalitions; got {self.proxy_budget!r}")

    def check(self, problem: Problem, config: ScanConfig) -> None:
        n = len(problem.rules)
        if self.budget < n + 3:
            raise KvqError(
                f"budget must be a whole number >= n + 3 = {n + 3} (FI alone needs {n + 1}); got {self.budget!r}"
            )

    def record(self, config: ScanConfig) -> dict[str, Any]:
        return {"method": self.name, **dataclasses.asdict(self)}

    def training(self, config: ScanConfig) -> Any:
        # a coalition trains the same whatever the budget: a larger budget resumes every one trained
        return ["sampled", self.sampler, self.sample_seed]

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        problem, sampler, budget = engine.problem, self.sampler, self.budget
        n = len(problem.rules)
        rng = np.random.default_rng(self.sample_seed)
        first = full_masks(n)
        have = {m.tobytes() for m in first}
        rounds = 1 if self.target_se is None else 4
        draws = no_draws(sampler, n)
        enumerated: tuple[int, ...] = ()  # kernel strata the first round enumerates (plan_draws)
        parts: list[Tabulated] = []
        pending: list[np.ndarray] = list(first)
        anchor = None  # the all-rules trainings [S] (row 0 of the first batch): the proxy's anchor
        samples = 0
        for r in range(rounds):
            share = budget if r == rounds - 1 else len(have) + (budget - len(have)) // (rounds - r)
            known = set(have)
            if r == 0:
                new_draws, enumerated = plan_draws(sampler, n, share, have, rng)
            else:
                new_draws = draws_within(sampler, n, share, have, rng, enumerated)
            draws = np.concatenate([draws, new_draws])
            fresh = [m for m in coalitions_of(sampler, new_draws) if m.tobytes() not in known]
            unique = {m.tobytes(): m for m in [*pending, *fresh]}
            pending = []
            if unique:
                todo = np.array(list(unique.values()), np.int8)
                trained = engine.train(todo, progress, tag="sampled")
                parts.append(tabulate(engine, trained, todo))
                if anchor is None:
                    rows = np.flatnonzero(trained.mask_of == 0)[np.argsort(trained.seed_of[trained.mask_of == 0])]
                    anchor = (take(trained.state.best_params, rows), parts[0].diverged[0])
            if len(draws) < 2:
                if r < rounds - 1:
                    continue  # this round's share held no whole draw: the next ones have more
                raise KvqError(f"a budget of {budget} coalitions leaves too few {sampler} draws; raise it")
            table = _stack(parts)
            assert table.masks is not None  # every part holds the masks it trained
            ri = estimate_importance(sampler, problem.rule_names, table.masks, _values(table.errors), draws, enumerated)
            samples = ri.samples
            if self.target_se is not None and np.nanmax(ri.se_sampling) <= self.target_se:
                break
        assert anchor is not None
        table = _stack(parts)
        assert table.masks is not None
        info: dict[str, Any] = {"coalitions": len(table.masks), "draws": samples}
        timing: dict[str, Any] = {}
        proxy: dict[str, Any] = {}
        arrays: tuple[Any, Any, Any] = (None, None, None)
        if self.proxy is not None and samples < 4:
            warnings.warn(
                f"{samples} {sampler} draw(s) are too few for the proxy's correction (it needs 4); "
                "the plain estimate is returned: raise the budget",
                RuntimeWarning,
                stacklevel=3,
            )
        elif self.proxy is not None:
            proxy, arrays = _newton_proxy(
                engine,
                anchor,
                sampler,
                table.masks,
                _values(table.errors),
                self.proxy_budget or 16 * budget,
                self.sample_seed,
                progress,
            )
            timing["proxy_s"] = proxy["proxy_s"]
        sampling = Sampling(
            sampler=sampler,
            draws=draws,
            enumerated=enumerated,
            budget=budget,
            target_se=self.target_se,
            proxy=proxy,
            proxy_values=arrays[0],
            proxy_per_seed=arrays[1],
            proxy_se=arrays[2],
        )
        return Outcome(table, {"settings": self.record(engine.config), "diagnostics": info}, timing, sampling)


def _values(errors: np.ndarray) -> np.ndarray:
    """v = -log10 of the mean error over outputs [M, S] (NaN where diverged)."""
    mean = errors.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(mean) & (mean > 0), -np.log10(mean), np.nan)


def _newton_proxy(
    engine: Engine,
    anchor: tuple[Any, np.ndarray],
    sampler: str,
    masks: np.ndarray,
    values: np.ndarray,
    proxy_budget: int,
    sample_seed: int,
    progress: Progress,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The Newton proxy of a sampled table: its values on the trained ``masks`` [M, S] and its
    own RI per seed [S, n] with that RI's sampling se [n] (exact, se 0, up to
    ``PROXY_EXACT_RULES`` rules; beyond, from a sample drawn apart from the trained one), and
    a JSON record of it (``kvq.sampling.adjusted_importance`` combines them with the table)."""
    t0, c0 = time.perf_counter(), engine.clock.compile_s
    problem, settings = engine.problem, Newton()
    n, S = len(problem.rules), len(engine.seeds)
    params, diverged = anchor
    obj = engine.programs.objective
    residuals = tuple(r.residual for r in problem.rules)

    def per_seed(p, x, y, points):
        return newton_directions(settings, obj, residuals, p, (x, y), points)[0]

    progress("proxy", 0, S * n)
    directions = np.asarray(engine.per_seed(per_seed, (params, engine.xs, engine.ys), (engine.points,)))  # [S, n, p]
    progress("proxy", S * n, S * n)
    flat0 = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(params))  # [S, p]
    unravel = ravel_pytree(take(params, 0))[1]

    def scores(wanted: np.ndarray) -> np.ndarray:
        """-log10 validation error [M, S] of each seed's Newton step to each mask [M, n]."""
        out = []
        for lo in range(0, len(wanted), PROXY_CHUNK):
            part = wanted[lo : lo + PROXY_CHUNK]
            coef = np.asarray(shift_coefficients(settings, obj, jnp.asarray(part, jnp.float32)), np.float64)
            moved = flat0[None] - np.einsum("mn,snp->msp", coef, directions)  # [m, S, p]: Δ_S = -coef_S @ d
            batched = jax.vmap(unravel)(jnp.asarray(moved.reshape(-1, flat0.shape[1]), flat0.dtype))
            err = engine.validation_errors(batched).mean(axis=-1).reshape(len(part), S)
            out.append(np.where(np.isfinite(err) & ~diverged[None, :], -np.log10(err), np.nan))
        return np.concatenate(out) if out else np.zeros((0, S))

    exact = n <= PROXY_EXACT_RULES
    if exact:
        every = all_masks(n)
        f_all = scores(every)
        proxy_per_seed, proxy_se = values_importance(f_all, WEIGHTING[sampler]), np.zeros(n)
        f = f_all[[mask_index(m) for m in masks]]
        scored = len(every)
    else:
        rng = np.random.default_rng([sample_seed, 1])  # apart from the trained draws' stream
        pdraws, penum = plan_draws(sampler, n, proxy_budget, set(), rng)
        pmasks = np.unique(coalitions_of(sampler, pdraws), axis=0)
        both = scores(np.concatenate([masks, pmasks]))
        f, f_p = both[: len(masks)], both[len(masks) :]
        sampled = estimate_importance(sampler, problem.rule_names, pmasks, f_p, pdraws, penum)
        proxy_per_seed, proxy_se = sampled.per_seed, sampled.se_sampling
        scored = len(pmasks)
    ok = np.isfinite(values) & np.isfinite(f)
    info = {
        "method": "newton",
        "settings": dataclasses.asdict(settings),
        "coalitions": int(scored),
        "exact": exact,
        "correlation": float(np.corrcoef(values[ok], f[ok])[0, 1]) if ok.sum() > 2 else float("nan"),
        "proxy_s": time.perf_counter() - t0,
        "proxy_compile_s": engine.clock.compile_s - c0,
    }
    return info, (f, np.asarray(proxy_per_seed), np.asarray(proxy_se))


# ---------------------------------------------------------------- lookup

METHODS = ("exact", "finetune", "newton")
"""The methods :func:`method_for` builds by name (sampled coalitions are chosen with ``coalitions=``)."""
SETTINGS: dict[str, type] = {"finetune": Finetune, "newton": Newton}

Method = Exact | Finetune | Newton | Sampled


def method_for(
    method: str = "exact",
    *,
    coalitions: str | None = None,
    budget: int | None = None,
    target_se: float | None = None,
    sample_seed: int = 0,
    proxy: str | None = None,
    proxy_budget: int | None = None,
    **settings: Any,
) -> Method:
    """The method object that :func:`kvq.estimate`'s arguments name, validated."""
    if coalitions is not None:
        if method != "exact" or settings:
            raise KvqError(
                f"sampled coalitions are trained from the warm start (method 'exact'); got method {method!r}"
                + (f" with settings {sorted(settings)}" if settings else "")
            )
        if budget is None:
            raise KvqError("coalitions= needs budget=B: at most B distinct coalitions are trained")
        return Sampled(coalitions, budget, target_se, sample_seed, proxy, proxy_budget)
    if proxy is not None:
        raise KvqError("proxy= corrects sampled coalitions: give coalitions= and budget= too")
    if method not in METHODS:
        raise KvqError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "exact":
        if settings:
            raise KvqError(f"method 'exact' takes no estimator settings; got {sorted(settings)}")
        return Exact()
    cls = SETTINGS[method]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise KvqError(f"method {method!r} has no setting(s) {unknown}; its settings are {known}")
    return cls(**settings)


def settings_for(method: str, **settings: Any) -> Finetune | Newton | None:
    """The validated settings object of ``method`` (``None`` for ``"exact"``)."""
    chosen = method_for(method, **settings)
    return None if isinstance(chosen, Exact) else chosen  # type: ignore[return-value]
