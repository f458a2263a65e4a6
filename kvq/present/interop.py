"""kvq's tables in other tools: shapiq games and interaction values, pandas DataFrames.

shapiq (``pip install shapiq``) brings its plots and its approximators to a kvq value table:
:func:`shapiq_game` is a ``shapiq.Game`` whose value of a coalition is kvq's
``v(S) = -log10(validation error)`` (the mean over seeds, or one seed), so
``shapiq.ExactComputer(game, n)("BV")`` gives kvq's uniform RI and any shapiq approximator runs
on the values kvq trained.  :func:`interaction_values` wraps a kvq importance as
``shapiq.InteractionValues``.  shapiq's regression and Monte-Carlo approximators draw their
whole budget first and call the game once with a [k, n] matrix of coalitions (its permutation
samplers call it in chunks, and with single coalitions for the empty and full ones), so kvq
trains what one asks for as batches: ``kvq.estimate(problem, config,
coalitions=shapiq.KernelSHAP(n, ...), budget=B)`` (:mod:`kvq.methods.sampled`).  kvq's own
samplers (``coalitions="regression"``, ..., :func:`kvq.estimate_game`) add a standard error;
which is more accurate depends on the game and the budget (benchmarks/RESULTS.md, "Sampled
importance against shapiq's approximators").  :func:`value_frame` is the value table as a
pandas DataFrame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.game.importance import Importance

SHAPIQ_INDEX = {("uniform", 1): "BV", ("shapley", 1): "SV", ("uniform", 2): "BII", ("shapley", 2): "SII"}


def _shapiq() -> Any:
    try:
        import shapiq
    except ImportError:
        raise KvqError("this needs shapiq: pip install shapiq") from None
    return shapiq


def shapiq_game(table: Any, seed: int | None = None) -> Any:
    """A ``shapiq.Game`` over ``table``'s rules (player ``i`` = rule ``i``) whose value of a
    coalition is ``-log10(error)``: the mean over the seeds that trained it, or seed column
    ``seed``.  Not normalised (the empty coalition keeps its value)."""
    if getattr(table, "sampling", None) is not None:
        raise KvqError(
            "a shapiq Game needs the value of every coalition, and this table was sampled; run an exact scan, "
            "or give shapiq's approximators a game of your own"
        )
    shapiq = _shapiq()
    names, errors = tuple(table.rule_names), np.asarray(table.errors, float)
    if seed is not None and not 0 <= seed < errors.shape[1]:
        raise KvqError(f"seed column {seed} is not in this table (it has {errors.shape[1]})")
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -np.log10(errors if seed is None else errors[:, [seed]])
    finite = np.isfinite(v)
    values = np.where(
        finite.any(axis=1), np.where(finite, v, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1), np.nan
    )
    n = len(names)
    bits = 1 << np.arange(n)

    class KvqGame(shapiq.Game):  # type: ignore[name-defined]
        def value_function(self, coalitions: np.ndarray) -> np.ndarray:
            return values[np.asarray(coalitions, int) @ bits]

    return KvqGame(n_players=n, normalize=False, player_names=list(names))


def interaction_values(importance: Importance, baseline_value: float = 0.0) -> Any:
    """``importance`` (an RI from :func:`kvq.rule_importance`, or pair interactions from
    :func:`kvq.interactions`) as ``shapiq.InteractionValues`` of its mean over seeds (index
    BV/SV for RI, BII/SII for pairs)."""
    shapiq = _shapiq()
    order = 2 if importance.measure == "interaction" else 1
    index = SHAPIQ_INDEX.get((importance.weighting, order))
    if index is None:
        raise KvqError(f"{importance.measure} ({importance.weighting}) has no shapiq index; RI and interactions do")
    n = len(importance.names) if order == 1 else round((1 + np.sqrt(1 + 8 * len(importance.names))) / 2)
    keys = [(i,) for i in range(n)] if order == 1 else [(i, j) for i in range(n) for j in range(i + 1, n)]
    return shapiq.InteractionValues(
        np.asarray(importance.mean, float),
        index=index,
        max_order=order,
        min_order=order,
        n_players=n,
        interaction_lookup={k: pos for pos, k in enumerate(keys)},
        estimated=False,
        baseline_value=baseline_value,
    )


def value_frame(table: Any) -> Any:
    """The value table as a pandas DataFrame: one row per (mask, seed column) with a 0/1
    column per rule, ``error`` and ``value`` (-log10 error)."""
    try:
        import pandas as pd
    except ImportError:
        raise KvqError("this needs pandas: pip install 'kvq[frame]'") from None
    errors = np.asarray(table.errors, float)
    masks = np.asarray(table.masks, int)
    rows, seeds = errors.shape
    frame = pd.DataFrame(np.repeat(masks, seeds, axis=0), columns=list(table.rule_names))
    frame.insert(0, "mask", np.repeat(np.arange(rows), seeds))
    frame["seed"] = np.tile(np.asarray(getattr(table, "seeds", None) or range(seeds)), rows)
    frame["error"] = errors.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["value"] = -np.log10(frame["error"])
    return frame
