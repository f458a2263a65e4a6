"""Importances of any game from sampled coalitions, without training (docs/design.md §6).

:func:`estimate_game` draws coalitions as :func:`kvq.estimate` does for a problem, asks a value
function for their values (all at once, as a [k, n] 0/1 matrix) and returns the same
:class:`~kvq.game.table.SampledResult` a trained estimate returns, so
:func:`kvq.rule_importance` and :func:`kvq.full_importance` read it; samplers can be tested and
compared on games whose values are known (e.g. sums of unanimity games).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.game.measures import WEIGHTINGS
from kvq.game.sampling import DEFAULT, SAMPLERS, WEIGHTING, coalitions_of, round_draws
from kvq.game.table import SampledResult, Sampling, full_masks

MAX_VALUE = 300.0
"""|v| above this cannot be kept as an error 10^-v in float64."""


def game_values(value: Callable[[np.ndarray], Any], masks: np.ndarray) -> np.ndarray:
    """``value`` of the coalitions ``masks`` [k, n] (0/1 int8) as values [k, S] (one column
    for a value function that returns [k]); checked for shape."""
    out = np.asarray(value(np.asarray(masks, np.int8)), np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != len(masks):
        raise KvqError(
            f"the value function returned shape {out.shape} for {len(masks)} coalitions; it must return "
            "[k] or [k, seeds] values for masks [k, n]"
        )
    if np.any(np.abs(out[np.isfinite(out)]) > MAX_VALUE):
        raise KvqError(f"game values must lie within ±{MAX_VALUE:g} (kvq keeps them as errors 10^-v); rescale the game")
    return out


def estimate_game(
    value: Callable[[np.ndarray], Any],
    rule_names: Sequence[str],
    weighting: str = "uniform",
    coalitions: str | None = None,
    *,
    budget: int,
    seed: int = 0,
    target_se: float | None = None,
) -> SampledResult:
    """Sampled importances of the game ``value`` over ``rule_names``.

    ``value(masks)``: masks [k, n] 0/1 (int8; rule ``j`` on iff column ``j`` is 1) -> values
    [k] or [k, seeds] (any units; kvq's own games use -log10 validation error, in decades; NaN
    marks a missing value).  ``coalitions``: a sampler of :data:`kvq.sampling.SAMPLERS`, or
    None for kvq's default for ``weighting`` (:data:`kvq.sampling.DEFAULT`).  ``budget``:
    at most this many distinct coalitions are evaluated, FI's ``n + 1`` included; ``seed``
    seeds the draws (``numpy.random.default_rng``).  ``target_se`` (same units as the values):
    evaluate in four rounds and stop once every rule's sampling standard error is below it.

    Returns a :class:`~kvq.game.table.SampledResult` (``method="game"``) whose
    :func:`kvq.rule_importance` is the estimate (a ``SampledImportance``: ``mean``, ``se``,
    ``se_sampling``, ``se_seeds``, ``per_seed``) and whose :func:`kvq.full_importance` is exact;
    ``timing["evaluate_s"]`` is the time spent in ``value``."""
    names = tuple(str(x) for x in rule_names)
    n = len(names)
    if weighting not in WEIGHTINGS:
        raise KvqError(f"unknown weighting {weighting!r}; valid ones: {list(WEIGHTINGS)}")
    sampler = DEFAULT[weighting] if coalitions is None else coalitions
    if sampler not in SAMPLERS:
        raise KvqError(f"unknown coalition sampler {sampler!r}; choose one of {SAMPLERS} (or None: kvq's default)")
    if WEIGHTING[sampler] != weighting:
        raise KvqError(
            f"{sampler!r} estimates the {WEIGHTING[sampler]} RI, not the {weighting} one; give weighting="
            f"{WEIGHTING[sampler]!r} or another sampler"
        )
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < n + 3:
        raise KvqError(f"budget must be a whole number >= n + 3 = {n + 3} (FI alone needs {n + 1}); got {budget!r}")
    if target_se is not None and not target_se > 0:
        raise KvqError(f"target_se must be > 0; got {target_se!r}")
    rng = np.random.default_rng(seed)
    masks = [full_masks(n)]
    have = {m.tobytes() for m in masks[0]}
    rows = [game_values(value, masks[0])]
    spent = time.perf_counter()
    rounds = 1 if target_se is None else 4
    draws = np.zeros((0, n), int if sampler == "permutation" else np.int8)
    enumerated: tuple[int, ...] = ()
    for r in range(rounds):
        known = set(have)
        new, enumerated = round_draws(sampler, n, budget, have, rng, r, rounds, enumerated)
        draws = np.concatenate([draws, new])
        fresh = {m.tobytes(): m for m in coalitions_of(sampler, new) if m.tobytes() not in known}
        if fresh:
            todo = np.array(list(fresh.values()), np.int8)
            masks.append(todo)
            rows.append(game_values(value, todo))
            if rows[-1].shape[1] != rows[0].shape[1]:
                raise KvqError("the value function returned different numbers of seed columns")
        if target_se is not None and len(draws) >= 2:
            result = _result(names, sampler, np.concatenate(masks), np.concatenate(rows), draws, enumerated, budget)
            if np.nanmax(result.ri.se_sampling) <= target_se:
                break
    if len(draws) < 2:
        raise KvqError(f"a budget of {budget} coalitions leaves too few {sampler} draws; raise it")
    timing = {"evaluate_s": time.perf_counter() - spent}
    return _result(
        names, sampler, np.concatenate(masks), np.concatenate(rows), draws, enumerated, budget, target_se, timing
    )


def _result(
    names: tuple[str, ...],
    sampler: str,
    masks: np.ndarray,
    values: np.ndarray,
    draws: np.ndarray,
    enumerated: tuple[int, ...],
    budget: int,
    target_se: float | None = None,
    timing: dict[str, Any] | None = None,
) -> SampledResult:
    with np.errstate(over="ignore"):
        errors = np.where(np.isfinite(values), 10.0 ** (-values), np.nan)
    return SampledResult(
        rule_names=names,
        errors=errors,
        masks=masks,
        diverged=~np.isfinite(values),
        sampling=Sampling(sampler, draws, enumerated, budget, target_se),
        problem={"name": "game"},
        method="sampled",
        estimator={"settings": {"method": "game", "sampler": sampler, "budget": budget}},
        timing=timing or {},
    )
