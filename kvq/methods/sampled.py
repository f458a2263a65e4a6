"""Sampled coalitions: only the drawn coalitions trained, the importances estimated from them
(:mod:`kvq.game.sampling`), optionally corrected by a Newton proxy; docs/design.md §6."""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from kvq.core.coalitions import all_masks, mask_index
from kvq.core.config import ScanConfig
from kvq.core.newton import newton_directions, shift_coefficients
from kvq.core.train import take
from kvq.engine.batched import Engine, Progress
from kvq.errors import KvqError
from kvq.game.importance import values, values_importance
from kvq.game.sampling import (
    GIVEN,
    SAMPLERS,
    WEIGHTING,
    coalitions_of,
    estimate_importance,
    full_masks,
    no_draws,
    plan_draws,
    round_draws,
)
from kvq.game.table import Sampling
from kvq.methods.anchored import Newton
from kvq.methods.base import Outcome, Tabulated, stack_tables, tabulate
from kvq.problems.rules import Problem

PROXIES = ("newton",)
PROXY_EXACT_RULES = 12
"""Up to this many rules a proxy scores every coalition (2^12 = 4 096 validation passes per seed)."""
PROXY_CHUNK = 256
"""Coalitions whose Newton steps are formed on the host at once."""


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

    sampler: Any  # a name of SAMPLERS, or a shapiq approximator (instance or class)
    budget: int
    target_se: float | None = None
    sample_seed: int = 0
    proxy: str | None = None
    proxy_budget: int | None = None

    name = "sampled"
    groups = True
    continues = True  # a longer step cap continues its trainings (kvq.engine.identity.training_fingerprint)

    def __post_init__(self) -> None:
        if not isinstance(self.sampler, str):
            if not callable(getattr(self.sampler, "approximate", None)):
                raise KvqError(
                    f"coalitions= takes a sampler name of {SAMPLERS} or a shapiq approximator (an object or class "
                    f"with .approximate(budget, game)); got {type(self.sampler).__name__}"
                )
            if self.target_se is not None or self.proxy is not None:
                raise KvqError("a shapiq approximator draws its own budget: target_se= and proxy= do not apply")
        elif self.sampler not in SAMPLERS or self.sampler in GIVEN:
            raise KvqError(f"unknown coalition sampler {self.sampler!r}; choose one of {SAMPLERS[:6]}")
        if not isinstance(self.budget, int) or isinstance(self.budget, bool):
            raise KvqError(f"budget must be a whole number of coalitions; got {self.budget!r}")
        if self.target_se is not None and not self.target_se > 0:
            raise KvqError(f"target_se must be > 0 decades; got {self.target_se!r}")
        if self.proxy not in (None, *PROXIES):
            raise KvqError(f"proxy must be one of {PROXIES} (or None); got {self.proxy!r}")
        if self.proxy is not None and str(self.sampler).startswith("regression"):
            raise KvqError(
                f"proxy= corrects the msr, permutation and kernel samplers; {self.sampler!r} fits its own model "
                "to the trained values: leave proxy= out"
            )
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
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.sampler, str):
            fields["sampler"] = describe_approximator(self.sampler)
        return {"method": self.name, **fields}

    def training(self, config: ScanConfig) -> Any:
        # a coalition trains the same whatever the budget: a larger budget resumes every one trained
        if not isinstance(self.sampler, str):
            return ["sampled", "shapiq", describe_approximator(self.sampler)]
        return ["sampled", self.sampler, self.sample_seed]

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        if not isinstance(self.sampler, str):
            return _approximated(self, engine, progress)
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
            known = set(have)
            new_draws, enumerated = round_draws(sampler, n, budget, have, rng, r, rounds, enumerated)
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
            table = stack_tables(parts)
            assert table.masks is not None  # every part holds the masks it trained
            ri = estimate_importance(
                sampler, problem.rule_names, table.masks, values(table.errors.mean(axis=-1)), draws, enumerated
            )
            samples = ri.samples
            if self.target_se is not None and np.nanmax(ri.se_sampling) <= self.target_se:
                break
        assert anchor is not None
        table = stack_tables(parts)
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
                values(table.errors.mean(axis=-1)),
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


SHAPIQ_WEIGHTING = {"SV": "shapley", "FSII": "shapley", "SII": "shapley", "k-SII": "shapley", "STII": "shapley",
                    "kADD-SHAP": "shapley", "BV": "uniform", "FBII": "uniform", "BII": "uniform"}  # fmt: skip
"""What a shapiq index is at order 1: the Shapley or the uniform (Banzhaf) RI."""


def describe_approximator(approximator: Any) -> dict[str, Any]:
    """A JSON record of a shapiq approximator (instance or class): its class, index, order and
    random state (what identifies the coalitions it asks for)."""
    kind = approximator if isinstance(approximator, type) else type(approximator)
    return {
        "approximator": f"{kind.__module__.split('.')[0]}.{kind.__name__}",
        "index": getattr(approximator, "index", None) if not isinstance(approximator, type) else None,
        "max_order": getattr(approximator, "max_order", None) if not isinstance(approximator, type) else None,
        "random_state": getattr(approximator, "_random_state", None),
    }


def _approximated(method: Sampled, engine: Engine, progress: Progress) -> Outcome:
    """A shapiq approximator's estimate of ``engine``'s problem: the approximator calls its game
    with [k, n] coalitions; kvq trains the new ones as one batch for every seed and answers with
    the seed mean; then a fresh copy of the approximator (same random state, so the same
    coalitions) runs on each seed's values alone, giving the estimate per seed.  The result is
    a sampled table of the coalitions it asked for (and FI's) whose RI is that estimate."""
    n = len(engine.problem.rules)
    approximator = method.sampler
    if isinstance(approximator, type):
        approximator = approximator(n, random_state=method.sample_seed)
    if getattr(approximator, "n", n) != n:
        raise KvqError(f"the approximator is for {approximator.n} players; the problem has {n} rules")
    index, order = getattr(approximator, "index", None), getattr(approximator, "max_order", 1)
    if index not in SHAPIQ_WEIGHTING or order != 1:
        raise KvqError(
            f"kvq's RI is a Shapley or Banzhaf value (order 1); the approximator estimates {index!r} of order "
            f"{order}: use e.g. KernelSHAP, PermutationSamplingSV, SVARM, RegressionFBII(max_order=1)"
        )
    pristine = copy.deepcopy(approximator)
    rows: dict[bytes, int] = {}
    parts: list[Tabulated] = []
    asked: dict[bytes, np.ndarray] = {}
    cache: list[np.ndarray] = []  # values [M, S] of the rows so far

    def train(masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(np.asarray(masks)).astype(np.int8)
        todo = {m.tobytes(): m for m in masks if m.tobytes() not in rows}
        if todo:
            batch = np.array(list(todo.values()), np.int8)
            trained = engine.train(batch, progress, tag="sampled")
            parts.append(tabulate(engine, trained, batch))
            for m in batch:
                rows[m.tobytes()] = len(rows)
            cache[:] = [values(stack_tables(parts).errors.mean(axis=-1))]
        return cache[0][[rows[m.tobytes()] for m in masks]]  # [k, S]

    def game(column: int | None) -> Any:
        def value(coalitions: np.ndarray) -> np.ndarray:
            masks = np.atleast_2d(np.asarray(coalitions)).astype(np.int8)
            asked.update({m.tobytes(): m for m in masks})
            v = train(masks)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a coalition diverged for every seed: NaN
                return np.nanmean(v, axis=1) if column is None else v[:, column]

        return value

    t0 = time.perf_counter()
    train(full_masks(n))
    own = max(method.budget - (n + 1), 2)  # FI's coalitions count in kvq's budget
    approximator.approximate(own, game(None))
    per_seed = []
    for s in range(len(engine.seeds)):
        estimate = copy.deepcopy(pristine).approximate(own, game(s))
        per_seed.append([float(estimate[(i,)]) for i in range(n)])
    table = stack_tables(parts)
    assert table.masks is not None
    draws = np.array(list(asked.values()), np.int8).reshape(-1, n)
    sampler = "shapiq-" + SHAPIQ_WEIGHTING[index]
    info = {"coalitions": len(table.masks), "asked": len(draws), "approximator": describe_approximator(pristine)}
    sampling = Sampling(sampler=sampler, draws=draws, budget=method.budget, given=np.array(per_seed))
    record = {"settings": method.record(engine.config), "diagnostics": info}
    return Outcome(table, record, {"approximate_s": time.perf_counter() - t0}, sampling)
