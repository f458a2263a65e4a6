"""Estimates from one anchor per seed: :class:`Finetune` (short trainings from it) and
:class:`Newton` (one Newton step per mask, no training per mask); docs/design.md §6."""

from __future__ import annotations

import dataclasses
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from kvq.core.coalitions import all_masks
from kvq.core.config import ScanConfig
from kvq.core.newton import newton_steps
from kvq.core.train import take
from kvq.engine.batched import Engine, Progress
from kvq.errors import KvqError
from kvq.methods.base import Outcome, Tabulated, require_every_subset, require_whole, tabulate, tabulate_params
from kvq.problems.rules import Problem

ANCHORS = ("data", "all")
CURVATURES = ("ggn", "hessian")
SOLVES = ("shared", "per_mask")


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
    continues = False  # its trainings start from an anchor that depends on the step cap

    def __post_init__(self) -> None:
        if self.steps is not None:
            require_whole("steps", self.steps, minimum=1)
        if self.anchor not in ANCHORS:
            raise KvqError(f"anchor must be one of {ANCHORS}; got {self.anchor!r}")

    def check(self, problem: Problem | None = None, config: ScanConfig | None = None) -> None:
        if problem is not None:
            require_every_subset(problem)
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
    continues = False  # its anchor and refinements depend on the step cap

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
        require_whole("cg_iterations", self.cg_iterations, minimum=1)
        require_whole("refine_steps", self.refine_steps, minimum=0)
        if not isinstance(self.anchor_step, bool):
            raise KvqError(f"anchor_step must be True or False; got {self.anchor_step!r}")

    @property
    def groups(self) -> bool:
        """Only the anchor trains unless it refines: one program is enough."""
        return bool(self.refine_steps)

    def check(self, problem: Problem | None = None, config: ScanConfig | None = None) -> None:
        if problem is not None:
            require_every_subset(problem)
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
