"""Using the numbers: RI-guided rule weights, and a standard adaptive baseline.

- :func:`tune_weights`: the paper's update ``λ_i ← λ_i · 10^(μ · RI_i)``.  Each iteration
  scans (or estimates) the value table at the current weights; a proposal whose
  all-rules validation error is higher than the best so far is rolled back and ``μ`` is
  halved.  Resumable with ``out`` (every iteration's scan is a results folder).
- :func:`balance_weights`: gradient-norm balancing ("learning-rate annealing", Wang, Teng
  & Perdikaris 2021): every ``update_every`` steps ``λ̂_i = max|∇L_ref| / mean|∇L_i|``
  and ``λ_i ← (1 - α) λ_i + α λ̂_i``, with ``L_ref`` the data loss (or the first rule
  when there are no observations); one training per seed with all rules on.
- :func:`evaluate_weights`: the all-rules training at given weights, scored on the
  validation set (the comparison in ``benchmarks/tune_weights.py``).

Improper knowledge is flagged by :func:`kvq.game.importance.improper_rules`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kvq.core.config import ScanConfig
from kvq.engine.batched import Progress
from kvq.engine.identity import digest
from kvq.engine.plan import check_inputs
from kvq.errors import KvqError
from kvq.game.importance import json_ready, rule_importance
from kvq.game.table import ScanResult, provided
from kvq.methods import method_for
from kvq.problems.rules import Problem, with_weights
from kvq.store.results import (
    FOLDER_MARKERS,
    check_output_dir,
    discard,
    folder_fingerprint,
    read_meta,
    write_json,
)
from kvq.workflows.pipeline import fingerprint, prepare, run, tagged

TUNE_JSON = FOLDER_MARKERS["tuning"]
INACTIVE = 1e-6  # balance_weights: a rule gradient below this share of the reference's is left alone


@dataclass(frozen=True)
class TuneStep:
    """One iteration: the weights scanned, ``mu`` used to propose them, RI (mean, se) at
    them, the all-rules validation MSE (mean, se over seeds) and whether it was kept."""

    iteration: int
    weights: tuple[float, ...]
    mu: float
    ri: tuple[float, ...]
    ri_se: tuple[float, ...]
    mse_all: float
    mse_all_se: float
    accepted: bool


@dataclass(frozen=True, eq=False)
class TuneResult:
    """The tuning trajectory; ``best`` is the accepted step with the lowest validation MSE."""

    problem: dict[str, Any]
    rule_names: tuple[str, ...]
    history: tuple[TuneStep, ...]
    config: dict[str, Any]
    method: str
    mu0: float

    def __repr__(self) -> str:
        best = self.best
        return (
            f"TuneResult(problem={self.problem.get('name', '?')!r}, rules={list(self.rule_names)}, "
            f"{len(self.history)} iterations, best: iteration {best.iteration}, weights "
            f"{[float(f'{w:.3g}') for w in best.weights]}, all-rules MSE {best.mse_all:.3e})"
        )

    def __str__(self) -> str:
        return f"{self!r}\n\n{self.table()}"

    def table(self) -> str:
        """The tuning as text: weights, RI and validation MSE per iteration (as ``kvq tune``
        prints it)."""
        return provided("tuning_text")(self.to_dict())

    @property
    def best(self) -> TuneStep:
        return min((s for s in self.history if s.accepted), key=lambda s: s.mse_all)

    @property
    def weights(self) -> tuple[float, ...]:
        """The tuned weights (the best step's)."""
        return self.best.weights

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "format": 1,
            "kind": "kvq.TuneResult",
            "problem": self.problem,
            "rule_names": list(self.rule_names),
            "method": self.method,
            "config": self.config,
            "mu0": self.mu0,
            "history": json_ready([dataclasses.asdict(s) for s in self.history]),
            "best": json_ready(
                {
                    "iteration": best.iteration,
                    "weights": best.weights,
                    "mse_all": best.mse_all,
                    "mse_all_se": best.mse_all_se,
                }
            ),
        }


def _step(iteration: int, weights: np.ndarray, mu: float, result: ScanResult, weighting: str) -> TuneStep:
    ri = rule_importance(result, weighting)
    every = result.errors[result.row_of([1] * result.n_rules)]  # every table holds the all-rules coalition
    full = every[np.isfinite(every)]
    se = full.std(ddof=1) / np.sqrt(full.size) if full.size > 1 else float("nan")
    mse = float(full.mean()) if full.size else float("inf")
    return TuneStep(
        iteration,
        tuple(float(w) for w in weights),
        float(mu),
        tuple(map(float, ri.mean)),
        tuple(map(float, ri.se)),
        mse,
        float(se),
        False,
    )


def _tuning_dir(directory: str | Path, fp: str, overwrite: bool) -> Path:
    """Make ``directory`` ready for the tuning ``fp``: refuse (or with ``overwrite`` clear)
    a folder that holds a different tuning; refuse a scan's or a sweep's folder."""
    path = check_output_dir(directory, fp, overwrite, "tuning")
    if (path / TUNE_JSON).exists() and folder_fingerprint(path, "tuning") != fp:  # overwrite was given
        discard(*path.glob("iter-*"), path / TUNE_JSON)
    return path


def tune_weights(
    problem: Problem,
    config: ScanConfig | None = None,
    *,
    iterations: int = 4,
    mu: float = 1.0,
    method: str = "exact",
    weighting: str = "uniform",
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    model: Any = None,
    **settings: Any,
) -> TuneResult:
    """RI-guided rule weights (the paper's scheme) starting from the problem's weights.

    Iteration 0 scans at the starting weights; each of the ``iterations`` proposals is
    ``best_weights · 10^(μ · RI(best))``, scanned by ``method`` (``settings`` as in
    :func:`kvq.estimate`).  A proposal whose all-rules validation MSE (mean over seeds)
    rises above the best is rejected (rolled back) and ``μ`` halved.  RI that is NaN
    (diverged trainings) counts as 0.  With ``out`` each iteration's scan is saved to
    ``out/iter-K/`` and ``out/tune.json`` is rewritten; running again resumes.  ``model``:
    the network, as in :func:`kvq.scan`.
    """
    config = ScanConfig.preset("quick") if config is None else config
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise KvqError(f"iterations must be a whole number >= 0; got {iterations!r}")
    if not (isinstance(mu, (int, float)) and np.isfinite(mu) and mu > 0):
        raise KvqError(f"mu must be a number > 0; got {mu!r}")
    chosen = method_for(method, **settings)
    progress = progress or (lambda phase, done, total: None)
    weights = np.array([r.weight for r in problem.rules], float)
    identity = ("tune", fingerprint(problem, config, chosen, model), method, settings, mu, weighting)
    path = None if out is None else _tuning_dir(out, digest(*identity), overwrite)
    history: list[TuneStep] = []
    best: TuneStep | None = None
    step_mu = float(mu)
    for it in range(iterations + 1):
        current = with_weights(problem, weights)
        folder = None if path is None else path / f"iter-{it}"
        step_progress = tagged(progress, f"[iter {it}/{iterations}]")
        result = run(current, config, chosen, out=folder, overwrite=True, model=model, progress=step_progress)
        step = _step(it, weights, step_mu, result, weighting)
        accepted = best is None or step.mse_all <= best.mse_all
        step = dataclasses.replace(step, accepted=accepted)
        history.append(step)
        if accepted:
            best = step
        else:
            step_mu /= 2.0
        assert best is not None  # iteration 0 is always accepted
        ri = np.nan_to_num(np.asarray(best.ri), nan=0.0)
        weights = np.asarray(best.weights) * 10.0 ** (step_mu * ri)
        tuned = TuneResult(problem.describe(), problem.rule_names, tuple(history), config.to_dict(), method, float(mu))
        if path is not None:
            write_json(
                path / TUNE_JSON,
                {
                    **tuned.to_dict(),
                    "fingerprint": digest(*identity),
                    "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                },
            )
    return tuned


def load_tuning(directory: str | Path) -> dict[str, Any]:
    """The ``tune.json`` of a tuning folder (JSON, as written)."""
    return read_meta(Path(directory) / TUNE_JSON, "kvq.TuneResult", "kvq weight tuning")


# ---------------------------------------------------------------- baselines and evaluation


def evaluate_weights(
    problem: Problem, config: ScanConfig, weights: Any, progress: Progress | None = None
) -> np.ndarray:
    """Validation MSE [S] of the all-rules training at ``weights`` (the scan's protocol:
    warm start, ``config.steps`` steps with early stopping), one entry per seed."""
    check_inputs(problem, config)
    progress = progress or (lambda phase, done, total: None)
    engine = prepare(with_weights(problem, weights), config, progress, group=False)
    trained = engine.train(np.ones((1, len(problem.rules)), np.int8), progress)
    state, seed_of = trained.state, trained.seed_of
    errors = trained.history[-1].mean(axis=-1)
    out = np.full(len(engine.seeds), np.nan)
    out[seed_of] = np.where(np.asarray(state.diverged), np.nan, errors)
    return out


@dataclass(frozen=True)
class Balanced:
    """Gradient-norm balancing: ``weights`` [S, n] at the end, ``trajectory`` [updates, S, n]
    (seed-mean shown in reports) and the validation MSE [S] of the final weights' model."""

    weights: np.ndarray
    trajectory: np.ndarray
    errors: np.ndarray
    seconds: float


def balance_weights(
    problem: Problem,
    config: ScanConfig,
    *,
    alpha: float = 0.1,
    update_every: int = 100,
    progress: Progress | None = None,
) -> Balanced:
    """Train every seed with all rules on while balancing the rule weights by gradient
    norms (Wang, Teng & Perdikaris 2021; see the module docstring; a rule whose mean
    gradient is below ``INACTIVE`` times the reference's keeps its weight), from the data-only
    warm start, for ``config.steps`` steps (no early stopping: the objective changes as the
    weights do; the last weights are scored)."""
    if not 0 < alpha <= 1:
        raise KvqError(f"alpha must be in (0, 1]; got {alpha}")
    if update_every < 1 or config.steps % update_every:
        raise KvqError(f"update_every ({update_every}) must divide config.steps ({config.steps})")
    check_inputs(problem, config)
    t0 = time.perf_counter()
    progress = progress or (lambda phase, done, total: None)
    engine = prepare(problem, config, progress, group=False)
    obj, opt = engine.programs.objective, engine.programs.optimizer
    n = len(problem.rules)
    has_data = engine.rows() > 0
    w0 = np.asarray([r.weight for r in problem.rules], np.float32)

    def per_seed(params, opt_state, data, with_data, points):
        def terms(p, data):
            return obj.terms(p, data, points)

        def update(carry, _):
            params, opt_state, lam = carry
            jac = jax.jacrev(terms)(params, data)  # [n + 1] per leaf
            flat = jnp.concatenate([g.reshape(n + 1, -1) for g in jax.tree.leaves(jac)], axis=1)
            size = jnp.abs(flat)
            ref = jnp.where(with_data, jnp.max(size[0]), jnp.max(size[1]))
            mean = jnp.mean(size[1:], axis=1)
            # a rule whose gradient vanishes (a satisfied penalty, e.g. a range rule) keeps its
            # weight: ref / 0 would send it to infinity
            hat = jnp.where(mean > INACTIVE * ref, ref / jnp.maximum(mean, 1e-30), lam)
            lam = (1.0 - alpha) * lam + alpha * hat
            lam = jnp.where(with_data, lam, lam.at[0].set(w0[0]))  # no data: rule 0 is the reference

            def step(c, _):
                p, s = c
                g = jax.grad(lambda q: obj.weighted(q, lam, data, points))(p)
                upd, s = opt.update(g, s, p)
                return (jax.tree.map(lambda a, b: a + b, p, upd), s), None

            (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), None, length=update_every)
            return (params, opt_state, lam), lam

        (params, _, lam), traj = jax.lax.scan(
            update, (params, opt_state, w0), None, length=config.steps // update_every
        )
        return params, lam, traj

    progress("balance", 0, len(engine.seeds) * config.steps)
    params, lam, traj = engine.per_seed(
        per_seed, (engine.params0, engine.opt0, engine.data, has_data), (engine.points,)
    )
    progress("balance", len(engine.seeds) * config.steps, len(engine.seeds) * config.steps)
    errors = engine.validation_errors(params).mean(axis=-1)
    return Balanced(np.asarray(lam), np.swapaxes(np.asarray(traj), 0, 1), np.asarray(errors), time.perf_counter() - t0)
