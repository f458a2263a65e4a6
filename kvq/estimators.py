"""Perturbation estimators: the value table without training every rule subset (docs/design.md §6).

- ``finetune``: one anchor per seed (the data-only warm start, or a training with every
  rule), then ``K`` short steps per mask from it, all masks batched as in the exact scan.
- ``newton``: an anchor ``θ̂`` trained with every rule; the damped systems
  ``(C + δI) d_i = ∇L_i(θ̂)`` (``C``: Gauss-Newton or Hessian of the full objective, only
  ever applied to vectors) solved by conjugate gradients; then
  ``θ_S = θ̂ + Σ_{i∉S} w_i d_i`` for every mask ``S`` and one vmapped validation pass.  An
  optional refinement trains ``K`` steps from each ``θ_S``.

Both return the :class:`~kvq.table.ScanResult` of the exact scan, marked with the method,
its settings and diagnostics, so every importance function and plot works unchanged.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from kvq.checkpoint import Checkpoint, fingerprint
from kvq.coalitions import all_masks, mask_index
from kvq.config import ScanConfig
from kvq.curvature import conjugate_gradient, ggn_vp, hvp
from kvq.engine import (
    EXACT_RULES,
    Engine,
    Progress,
    Tabulated,
    check_inputs,
    make_result,
    result_config,
    scan,
    scan_fingerprint,
    tabulate,
    tabulate_params,
    too_many_rules,
)
from kvq.errors import KvqError
from kvq.importance import values_importance
from kvq.nn import PointModel
from kvq.rules import Problem
from kvq.sampling import (
    SAMPLERS,
    WEIGHTING,
    SampledImportance,
    SampledResult,
    adjusted_importance,
    coalitions_of,
    draws_within,
    estimate_importance,
    full_importance_from,
    full_masks,
    no_draws,
    plan_draws,
)
from kvq.train import Objective, take

METHODS = ("exact", "finetune", "newton")
PROXIES = ("newton",)
PROXY_EXACT_RULES = 12
"""Up to this many rules a proxy scores every coalition (2^12 = 4 096 validation passes per seed)."""
PROXY_CHUNK = 256
"""Coalitions whose Newton steps are formed on the host at once."""
ANCHORS = ("data", "all")
CURVATURES = ("ggn", "hessian")
SOLVES = ("shared", "per_mask")


@dataclass(frozen=True)
class Finetune:
    """Warm-start fine-tune settings.

    ``steps`` (K): optimizer steps per mask from the anchor (``None``: a third of
    ``config.steps``, the most reliable setting in ``benchmarks/estimators.py``), checked every ``config.check_every`` steps when that divides K,
    else once at the end.  ``anchor``: ``"data"`` starts every mask from the data-only warm
    start (so K = ``config.steps`` *is* the exact scan); ``"all"`` first trains every seed
    with all rules on (``config.steps``) and starts every mask from there, with that
    training's optimizer state.
    """

    steps: int | None = None
    anchor: str = "data"

    def check(self) -> None:
        if self.steps is not None:
            _whole("steps", self.steps, minimum=1)
        if self.anchor not in ANCHORS:
            raise KvqError(f"anchor must be one of {ANCHORS}; got {self.anchor!r}")


@dataclass(frozen=True)
class Newton:
    """Second-order one-shot settings.

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

    def check(self) -> None:
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


SETTINGS: dict[str, type] = {"finetune": Finetune, "newton": Newton}


def default_finetune_steps(config: ScanConfig) -> int:
    """K when ``Finetune.steps`` is None: a third of the exact scan's budget."""
    return max(1, config.steps // 3)


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise KvqError(f"{name} must be a whole number >= {minimum}; got {value!r}")


def settings_for(method: str, **settings: Any) -> Finetune | Newton | None:
    """The validated settings object of ``method`` (``None`` for ``"exact"``)."""
    if method not in METHODS:
        raise KvqError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "exact":
        if settings:
            raise KvqError(f"method 'exact' takes no estimator settings; got {sorted(settings)}")
        return None
    cls = SETTINGS[method]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise KvqError(f"method {method!r} has no setting(s) {unknown}; its settings are {known}")
    out = cls(**settings)
    out.check()
    return out


# ---------------------------------------------------------------- curvature of J_mask


def curvature_matvec(
    kind: str,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    mask: jax.Array,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
) -> Callable[[Any], Any]:
    """``v -> C v`` with ``C`` the curvature of ``J_mask`` (``objective``) at ``params``: its
    Hessian (``kind="hessian"``) or its Gauss-Newton matrix (``"ggn"``: the data loss, when
    it is a mean square, and every rule with a residual stacked into one residual vector;
    any other data loss and the rules without a residual add their Hessian product).
    ``mask`` [n] is 0/1 (or any weights), ``residuals[i]`` is rule i's residual function or
    None, ``data`` = ``(x, y)``."""
    if kind == "hessian":
        return hvp(lambda p: objective.dense(p, mask, data, points), params)
    apply, weights, losses = objective.apply, objective.weights, objective.losses
    with_res = [i for i, r in enumerate(residuals) if r is not None]
    has_data = data[0].shape[0] > 0
    square_data = has_data and objective.data_residual(params, data) is not None

    products = []
    if with_res or square_data:
        products.append(ggn_vp(lambda p: objective.residual(p, mask, data, points, residuals), params, scale=1.0))
    if has_data and not square_data:
        products.append(hvp(lambda p: objective.data_loss(p, data), params))
    for i, r in enumerate(residuals):
        if r is None:

            def term(p: Any, i: int = i) -> jax.Array:
                return mask[i] * weights[i] * losses[i](PointModel(apply, p), points[i])

            products.append(hvp(term, params))

    def matvec(v):
        out = [f(v) for f in products]
        return jax.tree.map(lambda *a: sum(a), *out) if out else jax.tree.map(jnp.zeros_like, v)

    return matvec


def rule_gradients(
    objective: Objective, params: Any, data: tuple[jax.Array, ...], points: tuple[jax.Array, ...]
) -> tuple[Any, Any]:
    """``(∇L_data, [∇L_i])`` at ``params``: the data loss's gradient and each rule loss's
    (unweighted), the latter stacked along a leading [n] axis."""
    jac = jax.jacrev(lambda p: objective.terms(p, data, points))(params)  # [1 + n] per leaf
    return jax.tree.map(lambda g: g[0], jac), jax.tree.map(lambda g: g[1:], jac)


def newton_steps(
    settings: Newton,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
    masks: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Parameter shifts ``Δ_S = θ_S - θ̂`` (flat, [M, p]) of one seed for ``masks`` [M, n],
    and the CG diagnostics (``iterations``, ``relative_residual``: one per solve).

    One Newton step on ``J_S`` from the anchor is ``Δ_S = -(C + δI)^-1 ∇J_S(θ̂)`` with
    ``∇J_S = ∇L_data + Σ_{i∈S} w_i ∇L_i``.  Without ``anchor_step`` the anchor's own
    objective is taken as stationary, its gradient dropped: from an all-rules anchor
    ``Δ_S = Σ_{i∉S} w_i d_i`` (docs/design.md §6), from the data-only anchor ``Δ_S = -Σ_{i∈S} w_i d_i``,
    with ``(C + δI) d_i = ∇L_i``.  ``shared``: ``C`` is the all-rules objective's curvature
    at the anchor (n solves, or n + 1 with ``anchor_step``); ``per_mask``: each ``J_S``'s own.
    """
    flat, unravel = ravel_pytree(params)
    n = len(objective.losses)
    coef = shift_coefficients(settings, objective, masks.astype(flat.dtype))
    if settings.solve == "shared":
        x, diagnostics = newton_directions(settings, objective, residuals, params, data, points)
        shifts = -(coef @ x[:n]) - (x[n] if settings.anchor_step else 0.0)
        return shifts, diagnostics
    g_data, g_rules = rule_gradients(objective, params, data, points)
    g_data = ravel_pytree(g_data)[0]
    G = jax.vmap(lambda g: ravel_pytree(g)[0])(g_rules)  # [n, p]

    def one(row):
        mask, c = row
        matvec = curvature_matvec(settings.curvature, objective, residuals, params, mask, data, points)
        r = _cg(settings, matvec, unravel, c @ G + (g_data if settings.anchor_step else 0.0))
        return -r.x, r.iterations, r.relative_residual

    shifts, its, rel = jax.lax.map(one, (masks, coef))
    return shifts, {"iterations": its, "relative_residual": rel}


def shift_coefficients(settings: Newton, objective: Objective, masks: jax.Array) -> jax.Array:
    """[M, n]: each rule's gradient in ``∇J_S`` minus the anchor's own (weights ``w_i``), so
    that a shared-curvature shift is ``Δ_S = -coef_S @ d`` (see :func:`newton_steps`)."""
    w = jnp.asarray(objective.weights, masks.dtype)
    dropped = 0.0 if settings.anchor_step or settings.anchor == "data" else 1.0
    return w[None, :] * (masks - dropped)


def _cg(settings: Newton, matvec: Callable[[Any], Any], unravel: Callable[[jax.Array], Any], b: jax.Array) -> Any:
    def flat_mv(v: jax.Array) -> jax.Array:
        return ravel_pytree(matvec(unravel(v)))[0]

    return conjugate_gradient(
        flat_mv, b, damping=settings.damping, max_iter=settings.cg_iterations, tol=settings.cg_tol
    )


def newton_directions(
    settings: Newton,
    objective: Objective,
    residuals: Sequence[Callable | None],
    params: Any,
    data: tuple[jax.Array, ...],
    points: tuple[jax.Array, ...],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The shared-curvature solutions ``d_i = (C + δI)^-1 ∇L_i(θ̂)`` of one seed, flat [n, p]
    (then ``(C + δI)^-1 ∇L_data`` as row ``n`` with ``anchor_step``), ``C`` the all-rules
    objective's curvature at ``params``; and the CG diagnostics.  Every mask's shift is
    linear in them, so any number of coalitions costs one product each."""
    flat, unravel = ravel_pytree(params)
    n = len(objective.losses)
    g_data, g_rules = rule_gradients(objective, params, data, points)
    G = jax.vmap(lambda g: ravel_pytree(g)[0])(g_rules)  # [n, p]
    matvec = curvature_matvec(settings.curvature, objective, residuals, params, jnp.ones(n, flat.dtype), data, points)
    rhs = jnp.concatenate([G, ravel_pytree(g_data)[0][None]]) if settings.anchor_step else G
    res = jax.vmap(lambda b: _cg(settings, matvec, unravel, b))(rhs)
    return res.x, {"iterations": res.iterations, "relative_residual": res.relative_residual}


# ---------------------------------------------------------------- the estimators


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


def _finetune(engine: Engine, settings: Finetune, progress: Progress) -> tuple[Tabulated, dict, dict]:
    cfg = engine.config
    K = settings.steps if settings.steps is not None else default_finetune_steps(cfg)
    info: dict[str, Any] = {"steps": K}
    if settings.anchor == "all":
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
    table = tabulate(fine, trained)
    return table, {"settings": {**dataclasses.asdict(settings), "steps": K}, "diagnostics": info}, timing


def _newton(engine: Engine, settings: Newton, progress: Progress) -> tuple[Tabulated, dict, dict]:
    problem = engine.problem
    n, S = len(problem.rules), len(engine.seeds)
    obj = engine.programs.objective
    residuals = tuple(r.residual for r in problem.rules)
    if settings.anchor == "all":
        params, opt, info = _train_anchor(engine, progress)
    else:
        params, opt, info = engine.params0, engine.opt0, {"anchor": "data-only warm start", "anchor_s": 0.0}
    timing = {"anchor_s": info.pop("anchor_s")}

    masks = all_masks(n).astype(np.float32)  # passed to every device like the points
    systems = S * (n + int(settings.anchor_step) if settings.solve == "shared" else 2**n)
    progress("solve", 0, systems)
    t0, c0 = time.perf_counter(), engine.clock.compile_s

    def per_seed(p, x, y, points, masks):
        return newton_steps(settings, obj, residuals, p, (x, y), points, masks)

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
    if settings.refine_steps:
        t1 = time.perf_counter()
        host = jax.device_get(batched)  # item k * S + s is mask k, seed s

        def starts(m_of: np.ndarray, s_of: np.ndarray) -> tuple[Any, Any]:
            return take(host, m_of * S + s_of), take(opt, s_of)

        fine = engine.with_budget(settings.refine_steps)
        trained = fine.train(all_masks(n), progress, phase="refine", tag="refine", starts=starts)
        timing["refine_s"] = time.perf_counter() - t1
        table = tabulate(fine, trained)
    else:
        t1 = time.perf_counter()
        table = tabulate_params(engine, batched, mask_of, seed_of)
        timing["evaluate_s"] = time.perf_counter() - t1
    timing["compile_after_anchor_s"] = engine.clock.compile_s - c0  # within solve_s and the phase after it
    return table, {"settings": dataclasses.asdict(settings), "diagnostics": info}, timing


def estimate(
    problem: Problem,
    config: ScanConfig | None = None,
    method: str = "exact",
    *,
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
) -> Any:
    """The value table of ``problem`` by ``method``: ``"exact"`` (:func:`kvq.scan`),
    ``"finetune"`` (settings of :class:`Finetune`) or ``"newton"`` (:class:`Newton`).

    With ``coalitions=`` one of ``"msr"``, ``"permutation"``, ``"kernel"`` or
    ``"kernel-banzhaf"`` (:mod:`kvq.sampling`) only sampled
    coalitions are trained (exactly, from the warm start), at most ``budget`` distinct ones
    including the ``n + 1`` that FI needs, drawn with ``sample_seed``; with ``target_se`` they
    are drawn and trained in rounds until every rule's sampling standard error is at most
    ``target_se`` decades or the budget is spent.  Returns a :class:`kvq.sampling.SampledResult`.
    ``proxy="newton"`` adds a control variate: one shared-curvature Newton step from each
    seed's all-rules training (trained anyway, for FI) scores every coalition (up to
    ``PROXY_EXACT_RULES`` rules; beyond, ``proxy_budget`` distinct sampled ones, default 16 x
    ``budget``) for one validation pass each, and the trained draws only correct it
    (:func:`kvq.sampling.adjusted_importance`).

    Returns a :class:`~kvq.table.ScanResult` with ``method`` set and
    ``result.estimator = {"settings": {...}, "diagnostics": {...}}`` (anchor, CG
    iterations and relative residuals, ...); ``timing`` adds the phases (``anchor_s``,
    ``solve_s``, ``finetune_s``, ``refine_s``).  ``checkpoint`` works as in :func:`kvq.scan`
    for the training phases; ``model`` as in :func:`kvq.scan`.
    """
    t_start = time.perf_counter()
    config = ScanConfig.preset("quick") if config is None else config
    if coalitions is not None:
        if method != "exact" or settings:
            raise KvqError(
                f"sampled coalitions are trained from the warm start (method 'exact'); got method {method!r}"
                + (f" with settings {sorted(settings)}" if settings else "")
            )
        if budget is None:
            raise KvqError("coalitions= needs budget=B: at most B distinct coalitions are trained")
        if proxy not in (None, *PROXIES):
            raise KvqError(f"proxy must be one of {PROXIES} (or None); got {proxy!r}")
        if proxy_budget is not None and (
            not isinstance(proxy_budget, int) or isinstance(proxy_budget, bool) or proxy_budget < 4
        ):
            raise KvqError(f"proxy_budget must be a whole number >= 4 coalitions; got {proxy_budget!r}")
        return _sampled(
            problem,
            config,
            coalitions,
            budget,
            target_se,
            sample_seed,
            progress,
            checkpoint,
            checkpoint_every_s,
            model,
            proxy,
            proxy_budget,
        )
    if proxy is not None:
        raise KvqError("proxy= corrects sampled coalitions: give coalitions= and budget= too")
    if len(problem.rules) > EXACT_RULES:
        raise KvqError(too_many_rules(problem))
    check_inputs(problem, config)
    chosen = settings_for(method, **settings)
    if chosen is None:
        return scan(
            problem,
            config,
            progress=progress,
            checkpoint=checkpoint,
            checkpoint_every_s=checkpoint_every_s,
            model=model,
        )
    if config.polish_steps:
        raise KvqError(
            f"method {method!r} does not polish (its anchors and short trainings keep one optimizer); "
            "set polish_steps=0, or use method='exact'"
        )
    progress = progress or (lambda phase, done, total: None)
    identity = estimate_fingerprint(problem, config, method, chosen, model)
    ckpt = None if checkpoint is None else Checkpoint(checkpoint, identity, checkpoint_every_s)
    one_mask = isinstance(chosen, Newton) and not chosen.refine_steps  # only the anchor is trained
    engine = Engine.prepare(problem, config, ckpt, group=not one_mask, model=model)
    engine = engine.pretrain(progress)
    if isinstance(chosen, Finetune):
        table, estimator, timing = _finetune(engine, chosen, progress)
    else:
        table, estimator, timing = _newton(engine, chosen, progress)
    bad = np.asarray(estimator["diagnostics"].get("anchor_diverged", np.zeros(len(engine.seeds), bool)), bool)
    if bad.any():  # an estimate that starts from diverged weights is no estimate
        warnings.warn(
            f"the all-rules anchor of seed(s) {[engine.seeds[s] for s in np.flatnonzero(bad)]} diverged "
            "(NaN/inf loss); every estimate of those seeds is left out of the averages",
            RuntimeWarning,
            stacklevel=2,
        )
        table = table.without_seeds(bad)
    estimator["settings"] = {"method": method, **estimator["settings"]}
    return make_result(engine, table, t_start, method=method, estimator=estimator, timing=timing)


def _sampled(
    problem: Problem,
    config: ScanConfig,
    sampler: str,
    budget: int,
    target_se: float | None,
    sample_seed: int,
    progress: Progress | None,
    checkpoint: str | Path | None,
    checkpoint_every_s: float,
    model: Any,
    proxy: str | None = None,
    proxy_budget: int | None = None,
) -> SampledResult:
    """Train the coalitions ``sampler`` draws (and FI's) within ``budget``; see :func:`estimate`."""
    t_start = time.perf_counter()
    n = len(problem.rules)
    if sampler not in SAMPLERS:
        raise KvqError(f"unknown coalition sampler {sampler!r}; choose one of {SAMPLERS}")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < n + 3:
        raise KvqError(f"budget must be a whole number >= n + 3 = {n + 3} (FI alone needs {n + 1}); got {budget!r}")
    if target_se is not None and not target_se > 0:
        raise KvqError(f"target_se must be > 0 decades; got {target_se!r}")
    check_inputs(problem, config)
    progress = progress or (lambda phase, done, total: None)
    identity = fingerprint(scan_fingerprint(problem, config, model=model), "sampled", sampler, sample_seed)
    ckpt = None if checkpoint is None else Checkpoint(checkpoint, identity, checkpoint_every_s)
    engine = Engine.prepare(problem, config, ckpt, model=model).pretrain(progress)
    rng = np.random.default_rng(sample_seed)
    first = full_masks(n)
    have = {m.tobytes() for m in first}
    rounds = 1 if target_se is None else 4
    draws = no_draws(sampler, n)
    enumerated: tuple[int, ...] = ()  # kernel strata the first round enumerates (plan_draws)
    masks = np.zeros((0, n), np.int8)
    errors = np.zeros((0, len(engine.seeds)))
    pending: list[np.ndarray] = list(first)
    ri = None
    anchor = None  # the all-rules trainings [S] (row 0 of the first batch): the proxy's anchor
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
            final = trained.history[-1]  # [items, d_out]
            bad = np.asarray(trained.state.diverged, bool) | ~np.all(np.isfinite(final), axis=-1)
            err = np.full((len(todo), len(engine.seeds)), np.nan)
            err[trained.mask_of, trained.seed_of] = np.where(bad, np.nan, final.mean(axis=-1))
            masks, errors = np.concatenate([masks, todo]), np.concatenate([errors, err])
            if anchor is None:
                rows = np.flatnonzero(trained.mask_of == 0)[np.argsort(trained.seed_of[trained.mask_of == 0])]
                anchor = (take(trained.state.best_params, rows), bad[rows])
        if len(draws) < 2:
            if r < rounds - 1:
                continue  # this round's share held no whole draw: the next ones have more
            raise KvqError(f"a budget of {budget} coalitions leaves too few {sampler} draws; raise it")
        ri = estimate_importance(sampler, problem.rule_names, masks, -np.log10(errors), draws, enumerated)
        if target_se is not None and np.nanmax(ri.se_sampling) <= target_se:
            break
    assert ri is not None and anchor is not None
    fi = full_importance_from(problem.rule_names, masks, -np.log10(errors))
    plain: SampledImportance | None = None
    proxy_info: dict[str, Any] = {}
    if proxy is not None and ri.samples < 4:
        warnings.warn(
            f"{ri.samples} {sampler} draw(s) are too few for the proxy's correction (it needs 4); "
            "the plain estimate is returned: raise the budget",
            RuntimeWarning,
            stacklevel=3,
        )
    elif proxy is not None:
        plain = ri
        ri, proxy_info = _proxy_adjusted(
            engine,
            anchor,
            sampler,
            masks,
            -np.log10(errors),
            (draws, enumerated),
            proxy_budget or 16 * budget,
            sample_seed,
            progress,
        )
    clock = engine.clock
    return SampledResult(
        problem.rule_names,
        sampler,
        masks,
        errors,
        draws,
        ri,
        fi,
        tuple(engine.seeds),
        problem=problem.identity(len(engine.seeds)),
        config=result_config(config, engine.model),
        timing={
            "compile_s": clock.compile_s,
            "pretrain_s": clock.pretrain_s,
            "train_s": clock.train_s,
            "subset_steps": clock.subset_steps,
            "total_s": time.perf_counter() - t_start,
            "devices": engine.n_devices,
        },
        budget=budget,
        target_se=target_se,
        plain=plain,
        proxy=proxy_info,
        enumerated=enumerated,
    )


def _proxy_adjusted(
    engine: Engine,
    anchor: tuple[Any, np.ndarray],
    sampler: str,
    masks: np.ndarray,
    values: np.ndarray,
    drawn: tuple[np.ndarray, tuple[int, ...]],
    proxy_budget: int,
    sample_seed: int,
    progress: Progress,
) -> tuple[SampledImportance, dict[str, Any]]:
    """The Newton proxy's values on the trained ``masks`` and on the proxy's own coalitions
    (all of them up to ``PROXY_EXACT_RULES`` rules, else a sample drawn apart from the
    trained one), and the adjusted RI."""
    t0, c0 = time.perf_counter(), engine.clock.compile_s
    draws, enumerated = drawn  # the trained draws, and the kernel strata they enumerate
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

    names, weighting = problem.rule_names, WEIGHTING[sampler]
    exact = n <= PROXY_EXACT_RULES
    if exact:
        every = all_masks(n)
        f_all = scores(every)
        proxy_per_seed, proxy_se = values_importance(f_all, weighting), np.zeros(n)
        f = f_all[[mask_index(m) for m in masks]]
        scored = len(every)
    else:
        rng = np.random.default_rng([sample_seed, 1])  # apart from the trained draws' stream
        pdraws, penum = plan_draws(sampler, n, proxy_budget, set(), rng)
        pmasks = np.unique(coalitions_of(sampler, pdraws), axis=0)
        both = scores(np.concatenate([masks, pmasks]))
        f, f_p = both[: len(masks)], both[len(masks) :]
        sampled = estimate_importance(sampler, names, pmasks, f_p, pdraws, penum)
        proxy_per_seed, proxy_se = sampled.per_seed, sampled.se_sampling
        scored = len(pmasks)
    adjusted, beta = adjusted_importance(sampler, names, masks, values, f, draws, proxy_per_seed, proxy_se, enumerated)
    ok = np.isfinite(values) & np.isfinite(f)
    info = {
        "method": "newton",
        "settings": dataclasses.asdict(settings),
        "coalitions": int(scored),
        "exact": exact,
        "beta": beta.tolist(),
        "correlation": float(np.corrcoef(values[ok], f[ok])[0, 1]) if ok.sum() > 2 else float("nan"),
        "values": np.where(np.isfinite(f), f, np.nan).tolist(),  # -log10 error [M, S] of the trained masks
        "proxy_s": time.perf_counter() - t0,
        "proxy_compile_s": engine.clock.compile_s - c0,
    }
    return adjusted, info


def estimate_fingerprint(
    problem: Problem, config: ScanConfig, method: str, settings: Finetune | Newton | None, model: Any = None
) -> str:
    """What identifies an estimate (as :func:`kvq.engine.scan_fingerprint` for a scan)."""
    if settings is None:
        return scan_fingerprint(problem, config, model=model)
    resolved = dataclasses.asdict(settings)
    if method == "finetune" and resolved["steps"] is None:
        resolved["steps"] = default_finetune_steps(config)
    return scan_fingerprint(problem, config, {"method": method, **resolved}, model=model)
