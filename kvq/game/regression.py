"""Regression-adjusted Monte Carlo for the Shapley and Banzhaf values (docs/design.md §6).

The game is split as ``v = g + r``: ``g`` a small model fitted by least squares to the
sampled values (a value per coalition size, one weight per rule and, when the budget
affords them, one per pair of rules), whose importance is known in closed form, and ``r``
the residual, whose importance is estimated by Monte Carlo (Witter et al., "Regression-adjusted
Monte Carlo estimators for Shapley values and probabilistic values", 2025).  The coalitions
come in pairs ``(z, 1 - z)`` (antithetic) by pair stratum ``k = min(|z|, n - |z|)``; a stratum
the budget would draw at least as often as it has pairs is enumerated instead (the border
trick) and enters exactly, the others are sampled with probability ``q_k``.

Both weightings are sums over coalition sizes ``t`` of the mean value of the size-``t``
coalitions with and without rule ``i``: ``phi_i = sum_t w+_t m+_i(t) - w-_t m-_i(t)`` (Shapley:
``w = 1/n``; Banzhaf: ``w+_t = C(n-1, t-1)/2^(n-1)``, ``w-_t = C(n-1, t)/2^(n-1)``).  For a
coalition ``z`` of size ``t`` the unbiased one-coalition estimate of its size's part is
``h_i(z) = r(z) (A_t z_i - B_t (1 - z_i))`` with ``A_t = w+_t n/t``, ``B_t = w-_t n/(n - t)``;
a sampled pair contributes ``(h(z) + h(1 - z)) / q_k`` (half that in the middle stratum of an
even ``n``), whose mean over the pairs is unbiased for the residual's importance.  ``g`` is
cross-fitted: the draws are cut into two folds by position and each fold's residual uses
the ``g`` fitted without it, so the estimate stays unbiased whatever ``g`` is, and its
standard error is the spread of the per-pair totals.  Without ``g`` this is an antithetic,
stratified Horvitz-Thompson estimate; with a ``g`` that explains the game the sampling error
vanishes.  At budgets too small for the cross-fitted model the fitted model itself is the
estimate (:data:`SMALL_BUDGET`).

For the uniform (Banzhaf) weighting the fitted model is the estimate at every budget
(:data:`FITTED_WEIGHTINGS`): a model the coalitions afford (of those, the one that predicts
held-out coalitions best), fitted by least squares with each coalition weighted by what it
stands for in the weighting (:func:`design_weights`), is consistent (over every coalition its importance is the exact value, whatever the model's
level) and, on kvq's trained tables and on unanimity games, errs less than the cross-fitted
estimate (benchmarks/sampling_accuracy.py); its error bar is a grouped jackknife.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from kvq.errors import KvqError

REGRESSION_WEIGHTING = {"regression": "shapley", "regression-banzhaf": "uniform"}
"""The regression-adjusted samplers and the importance each estimates."""
FIT_ROWS = 20_000
"""At most this many coalitions (a fixed subsample beyond) fit the model."""
FOLDS = 10
"""The model is cross-fitted: each of this many folds of the sampled pairs uses the model fitted
without it, so the estimate is unbiased whatever the model (two folds above FEW_FOLDS_ABOVE pairs)."""
FEW_FOLDS_ABOVE = 2000
ROWS_PER_WEIGHT = 3
"""A model enters once there are at least this many coalitions per weight it fits."""
SMALL_BUDGET = "fitted"
"""Below that (some fold's model would lack coalitions), the estimate is the model itself:
``"fitted"``, an intercept-and-rules model fitted to every coalition held under
:func:`design_weights` (the sampling design undone, as KernelSHAP does; the empty and full
coalitions ten times the heaviest size, a soft efficiency constraint for the Shapley weighting),
under a :data:`RIDGE` penalty; its standard
error is the larger of a grouped jackknife over the sampled pairs (:data:`FOLDS` groups) and the
unbiased estimate's own.  Consistent but not unbiased, and its error bar is rough at such budgets
(the table says so, :func:`kvq.game.sampling.few_draws`).
``"unbiased"``: no model, the plain stratified Horvitz-Thompson estimate.
benchmarks/small_budgets.py and benchmarks/sampling_accuracy.py measured the choice."""
FITTED_WEIGHTINGS = ("uniform",)
"""The weightings whose estimate is the design-weighted fit at every budget (:func:`fitted_importance`:
of the models with :data:`ROWS_PER_WEIGHT` coalitions per weight, the one with the lowest
held-out error, no ridge; the ridge-penalised intercept-and-rules fit below the cross-fitted
model's threshold).  For the Shapley weighting the
cross-fitted estimate stays: on unanimity games of 10 to 30 rules it erred less than the fit
(e.g. 20 rules at 10 % of the coalitions: MAE 0.0017 against 0.0039), on the trained tables a
little more (benchmarks/sampling_accuracy.py)."""
RIDGE_ROWS_PER_WEIGHT = 3.5
"""For :data:`FITTED_WEIGHTINGS`, the ridge-penalised small-budget fit is used below this many
coalitions per weight of the intercept-and-rules model: placed in trials between Kovasznay's table
at 41 coalitions for 11 rules (3.4 per weight), which erred less with the ridge, and the 2-D
problem's at 32 for 7 rules (4 per weight), which erred less without it."""
RIDGE = 0.03
"""The ridge penalty of the small-budget fit: this share of its Gram matrix's mean diagonal on
every rule weight (not on the intercept)."""
END_MASS = 10.0
"""The small-budget Shapley fit weighs the empty and the full coalition this many times the
heaviest size's mass (their kernel weight is infinite: a soft efficiency constraint; in a trial not
kept as a benchmark, a stiffer one erred more at 10-20 coalitions)."""


def stratum_weights(weighting: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The factors ``A_t`` and ``B_t`` [n + 1] of the one-coalition estimate ``h_i(z) = r(z)
    (A_t z_i - B_t (1 - z_i))`` of size ``t``'s part of ``weighting``'s value (``A_0 = B_n = 0``)."""
    t = np.arange(n + 1)
    if weighting == "shapley":
        with np.errstate(divide="ignore"):
            a = np.where(t > 0, 1.0 / np.maximum(t, 1), 0.0)
            b = np.where(t < n, 1.0 / np.maximum(n - t, 1), 0.0)
        return a, b
    if weighting == "uniform":
        c = np.array([math.comb(n, int(s)) for s in t], float) / 2.0 ** (n - 1)
        return np.where(t > 0, c, 0.0), np.where(t < n, c, 0.0)
    raise KvqError(f"unknown weighting {weighting!r}; valid ones: ['uniform', 'shapley']")


def size_weights(weighting: str, n: int) -> np.ndarray:
    """``w+_t - w-_t`` [n + 1]: the importance of a game that depends on the coalition size
    only, ``v = f(|z|)``, is ``sum_t f(t) (w+_t - w-_t)`` for every rule."""
    t = np.arange(n + 1)
    if weighting == "shapley":
        return ((t > 0).astype(float) - (t < n)) / n
    c = np.array([math.comb(n - 1, int(s) - 1) if s > 0 else 0 for s in t], float)
    d = np.array([math.comb(n - 1, int(s)) if s < n else 0 for s in t], float)
    return (c - d) / 2.0 ** (n - 1)


def regression_strata(weighting: str, n: int) -> dict[int, tuple[float, int]]:
    """The pair strata ``k = 1 .. n // 2`` with the probability ``q_k`` a draw falls in each
    and how many pairs it holds: ``{k: (q_k, pairs)}``.  ``q_k`` is the allocation that
    minimises the variance for a residual of equal spread in every stratum (Neyman):
    ``∝ 1 / sqrt(k (n - k))`` for Shapley, ``∝ C(n, k)`` (uniform pairs) for Banzhaf."""
    ks = np.arange(1, n // 2 + 1)
    pairs = np.array([math.comb(n, int(k)) // (2 if 2 * k == n else 1) for k in ks])
    if weighting == "shapley":
        mass = 1.0 / np.sqrt(ks * (n - ks)) * np.where(2 * ks == n, 0.5, 1.0)
    else:
        mass = np.array([math.comb(n, int(k)) * (0.5 if 2 * k == n else 1.0) for k in ks], float)
    q = mass / mass.sum()
    return {int(k): (float(q[j]), int(pairs[j])) for j, k in enumerate(ks)}


def features(masks: np.ndarray, level: str) -> np.ndarray:
    """The design [M, p] of model ``level`` (:data:`LEVELS`): an intercept ("rules") or a
    one-hot coalition size (n + 1), then the rules (n), then ("pairs") every product ``z_j z_l``
    (j < l)."""
    z = np.asarray(masks, float)
    M, n = z.shape
    if level == "none":
        return np.zeros((M, 0))
    if level == "rules":
        return np.concatenate([np.ones((M, 1)), z], axis=1)
    size = np.zeros((M, n + 1))
    size[np.arange(M), z.sum(axis=1).astype(int)] = 1.0
    parts = [size, z]
    if level == "pairs":
        j, l = np.triu_indices(n, 1)
        parts.append(z[:, j] * z[:, l])
    return np.concatenate(parts, axis=1)


def predict(masks: np.ndarray, coef: np.ndarray, level: str) -> np.ndarray:
    """The model ``coef`` of ``level`` at the coalitions ``masks`` [M, n] -> [M]; the same as
    ``features(masks, level) @ coef`` without forming the design."""
    z = np.asarray(masks, float)
    M, n = z.shape
    if level == "none":
        return np.zeros(M)
    if level == "rules":
        return coef[0] + z @ coef[1:]
    out = coef[: n + 1][z.sum(axis=1).astype(int)] + z @ coef[n + 1 : 2 * n + 1]
    if level == "pairs":
        j, l = np.triu_indices(n, 1)
        w = np.zeros((n, n))
        w[j, l] = coef[2 * n + 1 :]
        out = out + ((z @ w) * z).sum(axis=1)
    return out


def model_importance(weighting: str, n: int, coef: np.ndarray, level: str) -> np.ndarray:
    """The importance [n] of the fitted model ``coef`` (:func:`features`' order): the size
    values through :func:`size_weights` (an intercept: none), a rule's own weight, half of
    each pair weight."""
    if level == "none":
        return np.zeros(n)
    if level == "rules":
        return np.asarray(coef[1:], float)
    phi = coef[: n + 1] @ size_weights(weighting, n) + coef[n + 1 : 2 * n + 1]
    if level == "pairs":
        j, l = np.triu_indices(n, 1)
        w = np.zeros((n, n))
        w[j, l] = coef[2 * n + 1 :]
        phi = phi + 0.5 * (w.sum(axis=0) + w.sum(axis=1))
    return phi


def fit(
    masks: np.ndarray, v: np.ndarray, level: str, ridge: float = 0.0, weights: np.ndarray | None = None
) -> np.ndarray:
    """Least squares of ``v`` [M] on :func:`features` of ``level``, each coalition weighted by
    ``weights`` [M] (default: alike; a tiny ridge, 1e-8 of the mean diagonal, keeps the collinear
    sizes and sums and the sizes not held determined); ``ridge``: a penalty of that share of the
    mean diagonal on every weight but the "rules" model's intercept; coefficients [p]."""
    X = features(masks, level)
    Xw = X if weights is None else X * weights[:, None]
    return solve(Xw.T @ X, Xw.T @ v, level, ridge)


def solve(gram: np.ndarray, rhs: np.ndarray, level: str, ridge: float = 0.0) -> np.ndarray:
    """The coefficients [p] (or [p, k] for ``rhs`` [p, k]) of the normal equations ``gram``
    [p, p] under :func:`fit`'s penalty."""
    scale = max(float(np.trace(gram)) / len(gram), 1e-300)
    penalty = np.full(len(gram), max(ridge, 1e-8) * scale)
    if level == "rules":
        penalty[0] = 1e-8 * scale  # the intercept is the game's level: not shrunk
    return np.linalg.solve(gram + np.diag(penalty), rhs)


def one_coalition(weighting: str, masks: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``h_i(z)`` [M, n] for residuals ``r`` [M] (module docstring)."""
    z = np.asarray(masks, float)
    n = z.shape[1]
    a, b = stratum_weights(weighting, n)
    t = z.sum(axis=1).astype(int)
    return r[:, None] * (a[t][:, None] * z - b[t][:, None] * (1 - z))


def pair_totals(
    weighting: str,
    draws: np.ndarray,
    enumerated: tuple[int, ...],
    lookup: dict[bytes, int],
    v: np.ndarray,
    masks: np.ndarray,
) -> np.ndarray:
    """The per-draw totals [U, n] of one game ``v`` [M] on the table's ``masks`` (``lookup``:
    a coalition's row): the model's importance plus the residual's exactly known parts (the
    empty and full coalitions, the enumerated strata) plus the draw's own pair estimate
    (NaN for a draw that meets a diverged training), each with the model fitted without its
    fold (:data:`FOLDS`); the mean over the sampled draws is the estimate, their spread its
    standard error."""
    n = masks.shape[1]
    strata = regression_strata(weighting, n)
    of = _stratum_of(draws)
    rows_z = np.array([lookup[k] for k in _keys(draws)], int)
    rows_c = np.array([lookup[k] for k in _keys(1 - draws)], int)
    ends = [lookup[bytes(n)], lookup[bytes([1] * n)]]
    ok = np.isfinite(v)
    share = 1.0 - sum(strata[k][0] for k in enumerated)
    sampled = np.flatnonzero(~np.isin(of, enumerated))
    folds = FOLDS if len(sampled) <= FEW_FOLDS_ABOVE else 2
    fold = np.full(len(draws), -1)
    fold[sampled] = np.arange(len(sampled)) % folds  # by position: the draws are in random order
    totals = np.full((len(draws), n), np.nan)
    for f in range(folds):
        mine = np.flatnonzero(fold == f)
        if not len(mine):
            continue
        fit_rows = ok.copy()
        fit_rows[rows_z[mine]] = fit_rows[rows_c[mine]] = False  # the fold's own coalitions stay out
        coef, level = _model(masks[fit_rows], v[fit_rows], n)
        r = np.where(ok, v - predict(masks, coef, level), np.nan)
        h = one_coalition(weighting, masks, r)  # [M, n]
        known = model_importance(weighting, n, coef, level) + h[ends[0]] + h[ends[1]]
        for k in enumerated:
            sel = of == k
            known = known + (0.5 if 2 * k == n else 1.0) * np.mean(h[rows_z[sel]] + h[rows_c[sel]], axis=0)
        scale = np.array([(0.5 if 2 * k == n else 1.0) * share / strata[int(k)][0] for k in of[mine]])
        totals[mine] = known[None, :] + (h[rows_z[mine]] + h[rows_c[mine]]) * scale[:, None]
    return totals


LEVELS = ("none", "rules", "sizes", "pairs")
"""The models, each richer than the one before: nothing; an intercept and a weight per rule; a
value per coalition size and a weight per rule; and a weight per pair of rules."""


def _model(masks: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, str]:
    """The model fitted to every coalition held (a fixed subsample of :data:`FIT_ROWS` beyond):
    the richest of :data:`LEVELS` with at least :data:`ROWS_PER_WEIGHT` coalitions per weight."""
    if len(masks) > FIT_ROWS:
        pick = np.random.default_rng(0).choice(len(masks), FIT_ROWS, replace=False)
        masks, v = masks[pick], v[pick]
    level = richest_level(masks)
    if level == "none":
        return np.zeros(0), level
    return fit(masks, v, level), level


def richest_level(masks: np.ndarray) -> str:
    """The richest of :data:`LEVELS` that the coalitions ``masks`` [M, n] fit with at least
    :data:`ROWS_PER_WEIGHT` coalitions per weight."""
    n = masks.shape[1]
    sizes = len(np.unique(masks.sum(axis=1)))
    count = {"rules": n + 1, "sizes": sizes + n, "pairs": sizes + n + n * (n - 1) // 2}
    level = "none"
    for name in LEVELS[1:]:
        if len(masks) >= ROWS_PER_WEIGHT * count[name]:
            level = name
    return level


def _stratum_of(draws: np.ndarray) -> np.ndarray:
    size = draws.sum(axis=1)
    return np.minimum(size, draws.shape[1] - size)


MIN_SAMPLED = 16
"""The border trick keeps at least this many coalitions for the sampled strata."""


def stratum_pairs(n: int, k: int) -> np.ndarray:
    """Every pair of stratum ``k`` [C, n], each given by its side of size ``k`` (for ``2k = n``,
    the side that holds rule 0)."""
    sides = np.zeros((math.comb(n, k), n), np.int8)
    for row, c in enumerate(itertools.combinations(range(n), k)):
        sides[row, list(c)] = 1
    return sides[sides[:, 0] == 1] if 2 * k == n else sides


def next_stratum(
    n: int, rest: dict[int, tuple[float, int]], spare: int, have: set[bytes], keep: int
) -> tuple[int, np.ndarray, set[bytes]] | None:
    """The border trick's next step: the stratum of ``rest`` (size -> (probability, pairs))
    that ``spare`` coalitions would draw at least as often as it has pairs, the most probable
    per pair first, if enumerating it leaves ``keep`` coalitions for sampling (or it is the
    last); returns ``(size, its pairs [C, n], the coalitions it adds to have)`` or None."""
    mass = sum(prob for prob, _ in rest.values())
    for k, (prob, count) in sorted(rest.items(), key=lambda kv: -kv[1][0] / kv[1][1]):
        if 0.5 * spare * prob / mass < count or 2 * count > spare:  # not drawn that often
            continue
        sides = stratum_pairs(n, k)
        new = set(_keys(np.concatenate([sides, 1 - sides]))) - have
        if spare - len(new) >= keep or len(rest) == 1:
            return k, sides, new
    return None


def _keys(masks: np.ndarray) -> list[bytes]:
    m = np.ascontiguousarray(np.asarray(masks, np.int8))
    return [row.tobytes() for row in m]


def random_pairs(n: int, count: int, strata: dict[int, tuple[float, int]], rng: np.random.Generator) -> np.ndarray:
    """``count`` coalitions [count, n]: a pair stratum with probability ``q_k`` (renormalised
    over ``strata``), a side of size ``k`` or ``n - k`` with probability 1/2, then a uniform
    coalition of that size."""
    ks = np.array(sorted(strata))
    q = np.array([strata[k][0] for k in ks])
    k = rng.choice(ks, size=count, p=q / q.sum())
    size = np.where(rng.random(count) < 0.5, k, n - k)
    rank = np.argsort(np.argsort(rng.random((count, n)), axis=1), axis=1)
    return (rank < size[:, None]).astype(np.int8)


def plan_pairs(
    weighting: str, n: int, budget: int, have: set[bytes], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Coalition-complement pairs within ``budget`` distinct coalitions (those in ``have``,
    e.g. FI's, and the empty and full coalitions count; ``have`` gains the new ones): the
    border trick first (a stratum the budget would draw at least as often as it has pairs is
    enumerated, the strata with the most probability per pair first), then pairs drawn from
    the other strata while they fit (at most ``2 budget`` draws).  Returns the draws [U, n]
    (each pair by one side; enumerated pairs first) and the enumerated strata."""
    if n < 2:
        raise KvqError("the regression samplers need at least 2 rules")
    have |= set(_keys(np.stack([np.zeros(n, np.int8), np.ones(n, np.int8)])))
    strata = regression_strata(weighting, n)
    enumerated: list[int] = []
    chosen: list[np.ndarray] = []
    while True:
        spare = budget - len(have)
        rest = {k: s for k, s in strata.items() if k not in enumerated}
        if not rest:
            break
        every = {k: stratum_pairs(n, k) for k in rest} if sum(c for _, c in rest.values()) <= spare else {}
        if (
            every
            and len(set(_keys(np.concatenate([*every.values(), *(1 - x for x in every.values())]))) - have) <= spare
        ):
            for k, sides in every.items():  # the budget holds every pair left: no sampling at all
                enumerated.append(k)
                chosen.append(sides)
                have |= set(_keys(np.concatenate([sides, 1 - sides])))
            break
        best = next_stratum(n, rest, spare, have, MIN_SAMPLED)
        if best is None:
            break
        k, sides, new = best
        enumerated.append(k)
        chosen.append(sides)
        have |= new
    rest = {k: s for k, s in strata.items() if k not in enumerated}
    taken: list[np.ndarray] = []
    tries = 0
    while rest and len(have) < budget and tries < 2 * budget:
        chunk = random_pairs(n, min(4096, 2 * budget - tries), rest, rng)
        tries += len(chunk)
        full = False
        for z, kz, kc in zip(chunk, _keys(chunk), _keys(1 - chunk), strict=True):
            new = {kz, kc} - have
            if len(have) + len(new) > budget:
                full = True
                break
            have |= new
            taken.append(z)
        if full:
            break
    draws = [*chosen, np.array(taken, np.int8).reshape(-1, n)]
    return np.concatenate(draws), tuple(sorted(enumerated))


def regression_importance(
    sampler: str,
    masks: np.ndarray,
    values: np.ndarray,
    draws: np.ndarray,
    enumerated: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, int]:
    """``sampler``'s (:data:`REGRESSION_WEIGHTING`) estimate from the table's ``masks`` [M, n]
    and ``values`` [M, S] (NaN: diverged): the per-seed estimate [S, n], the sampling
    standard error [n] of its seed average (inf with fewer than 2 sampled pairs; 0 when every
    pair is enumerated) and the number of pairs."""
    weighting = REGRESSION_WEIGHTING[sampler]
    n, S = masks.shape[1], values.shape[1]
    lookup = {k: row for row, k in enumerate(_keys(masks))}
    if any(k not in lookup for k in _keys(np.concatenate([draws, 1 - draws]))):
        raise KvqError("a coalition the draws need was not trained")
    sampled = ~np.isin(_stratum_of(draws), enumerated)
    if not sampled.any():  # every pair enumerated: exact (the fold models cancel)
        exact = np.stack([_exact_part(weighting, draws, lookup, values[:, s], masks) for s in range(S)])
        return exact, np.zeros(n), len(draws)
    finite = np.isfinite(values).all(axis=1)
    few = _too_few(masks, values, draws, sampled, lookup)  # below the cross-fitted model's threshold
    if weighting in FITTED_WEIGHTINGS:
        few = few or finite.sum() < RIDGE_ROWS_PER_WEIGHT * (n + 1)
    if weighting in FITTED_WEIGHTINGS and not few:  # enough coalitions for the rules model at least
        level = richest_level(masks[finite])
        per_seed, se = fitted_importance(weighting, masks, values, draws, sampled, lookup, level)
        return per_seed, se, len(draws)
    totals = np.stack(
        [pair_totals(weighting, draws, enumerated, lookup, values[:, s], masks) for s in range(S)], axis=2
    )  # [U, n, S]
    units = totals[sampled]
    with np.errstate(invalid="ignore"):
        per_seed = np.nanmean(units, axis=0).T  # [S, n]
        pbar = np.nanmean(units, axis=2)  # [U, n]
    ok = np.isfinite(pbar).all(axis=1)
    se = np.nanstd(pbar[ok], axis=0, ddof=1) / np.sqrt(ok.sum()) if ok.sum() > 1 else np.full(n, np.inf)
    if _distinct_pairs(draws[sampled]) < 2:  # one pair drawn from both sides is one pair: no spread to see
        se = np.full(n, np.inf)
    if SMALL_BUDGET == "fitted" and few:
        per_seed, se_fit = fitted_importance(weighting, masks, values, draws, sampled, lookup, "rules", RIDGE)
        se = np.maximum(se, se_fit)  # the unbiased estimate's error bar bounds the fit's bias as well
    return per_seed, se, len(draws)


def _distinct_pairs(draws: np.ndarray) -> int:
    """The number of distinct coalition-complement pairs among ``draws`` [U, n]."""
    side = np.where(draws[:, :1] == 1, draws, 1 - draws)  # each pair by its side that holds rule 0
    return len(set(_keys(side)))


def _too_few(
    masks: np.ndarray, values: np.ndarray, draws: np.ndarray, sampled: np.ndarray, lookup: dict[bytes, int]
) -> bool:
    """Whether some fold's model (:func:`pair_totals`) would have fewer than
    :data:`ROWS_PER_WEIGHT` coalitions per weight of the smallest model."""
    n = masks.shape[1]
    ok = np.isfinite(values).all(axis=1)
    idx = np.flatnonzero(sampled)
    folds = FOLDS if len(idx) <= FEW_FOLDS_ABOVE else 2
    if ok.sum() - 2 * -(-len(idx) // folds) >= ROWS_PER_WEIGHT * (n + 1):  # no fold holds that many coalitions
        return False
    for f in range(folds):
        out = {lookup[k] for d in draws[idx[f::folds]] for k in _keys(np.stack([d, 1 - d]))}
        if ok.sum() - sum(ok[r] for r in out) < ROWS_PER_WEIGHT * (n + 1):
            return True
    return False


def fitted_importance(
    weighting: str,
    masks: np.ndarray,
    values: np.ndarray,
    draws: np.ndarray,
    sampled: np.ndarray,
    lookup: dict[bytes, int],
    level: str = "rules",
    ridge: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted estimate from the table's ``masks`` [M, n] and ``values`` [M, S]: the
    importance of a model fitted to every coalition held under :func:`design_weights` and the
    ``ridge`` penalty (:func:`solve`), per seed [S, n] (each seed's finite values), and the
    grouped jackknife standard error [n] of the seed-mean estimate over the ``sampled`` draws
    [U] (:data:`FOLDS` groups; a group's pairs leave out their coalitions of sizes 1 to n - 2:
    FI's and the ends are held whatever is drawn); inf with fewer than 2 sampled pairs.  The
    model: ``level``, or without a ridge the one of :data:`LEVELS` up to ``level`` whose fits
    without each group predict that group's coalitions best (design-weighted squared error)."""
    n, S = masks.shape[1], values.shape[1]
    idx = np.flatnonzero(sampled)
    groups = min(FOLDS, len(idx))
    group = np.full(len(masks), groups)  # the last bucket is never left out
    size = masks.sum(axis=1)
    inner = (size > 0) & (size < n - 1)
    for g in range(groups):
        rows = [lookup[k] for d in draws[idx[g::groups]] for k in _keys(np.stack([d, 1 - d]))]
        rows = [r for r in rows if inner[r] and group[r] == groups]
        group[rows] = g
    with np.errstate(invalid="ignore"):
        vbar = np.nanmean(values, axis=1)
    if groups < 2:
        per_seed = np.stack([_fit_importance(weighting, masks, values[:, s], ridge, level) for s in range(S)])
        return per_seed, np.full(n, np.inf)
    candidates = LEVELS[1 : LEVELS.index(level) + 1] if ridge == 0 else (level,)
    equations = {lev: _normal_equations(weighting, masks, vbar, lev, group, groups + 1) for lev in candidates}
    if len(candidates) > 1:  # the simplest of equally good models: min keeps the first
        level = min(candidates, key=lambda lev: _held_out_error(weighting, masks, vbar, lev, group, *equations[lev]))
    per_seed = np.stack([_fit_importance(weighting, masks, values[:, s], ridge, level) for s in range(S)])
    gram, rhs = equations[level]
    total_g, total_r = gram.sum(axis=0), rhs.sum(axis=0)
    theta = np.array(
        [
            model_importance(weighting, n, solve(total_g - gram[g], total_r - rhs[g], level, ridge), level)
            for g in range(groups)
        ]
    )
    se = np.sqrt((groups - 1) / groups * ((theta - theta.mean(axis=0)) ** 2).sum(axis=0))
    return per_seed, se


def _held_out_error(
    weighting: str, masks: np.ndarray, v: np.ndarray, level: str, group: np.ndarray, gram: np.ndarray, rhs: np.ndarray
) -> float:
    """The design-weighted squared error of each group's coalitions (``group`` [M]; the last of
    ``gram``'s [G, p, p] groups is never left out) under model ``level`` fitted without them."""
    ok = np.isfinite(v)
    masks, v, group = masks[ok], v[ok], group[ok]
    w = design_weights(weighting, masks)
    total_g, total_r = gram.sum(axis=0), rhs.sum(axis=0)
    error = 0.0
    for g in range(len(gram) - 1):
        sel = group == g
        if sel.any():
            coef = solve(total_g - gram[g], total_r - rhs[g], level)
            error += float(np.sum(w[sel] * (v[sel] - predict(masks[sel], coef, level)) ** 2))
    return error


CHUNK = 8192
"""Coalitions per block of the design matrix when the normal equations are summed."""


def _normal_equations(
    weighting: str, masks: np.ndarray, v: np.ndarray, level: str, group: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """``X^T W X`` [G, p, p] and ``X^T W v`` [G, p] of :func:`features` of ``level`` under
    :func:`design_weights`, summed per ``group`` [M] (0 .. G - 1) over the coalitions whose
    value ``v`` [M] is finite, block by block (:data:`CHUNK`)."""
    ok = np.isfinite(v)
    masks, v, group = masks[ok], v[ok], group[ok]
    w = design_weights(weighting, masks)
    p = features(masks[:1], level).shape[1]
    gram, rhs = np.zeros((groups, p, p)), np.zeros((groups, p))
    for lo in range(0, len(masks), CHUNK):
        X = features(masks[lo : lo + CHUNK], level)
        Xw = X * w[lo : lo + CHUNK, None]
        g = group[lo : lo + CHUNK]
        for k in np.unique(g):
            sel = g == k
            gram[k] += Xw[sel].T @ X[sel]
            rhs[k] += Xw[sel].T @ v[lo : lo + CHUNK][sel]
    return gram, rhs


def design_weights(weighting: str, masks: np.ndarray) -> np.ndarray:
    """The weight [M] of each coalition held in the fit: what it stands for in ``weighting``.
    A size whose coalitions are all held shares its mass (Banzhaf ``C(n, t)/2^n``; Shapley the
    kernel's ``(n - 1)/(t(n - t))``, the empty and full coalitions :data:`END_MASS` times the
    heaviest size) equally; the other sizes share the rest of the mass by importance sampling,
    each coalition its size's mass over the probability that :func:`random_pairs` draws it
    (the design of :func:`regression_strata`), as KernelSHAP weighs its draws.  Mean 1."""
    z = np.asarray(masks)
    n = z.shape[1]
    t = np.arange(n + 1)
    comb = np.array([math.comb(n, int(k)) for k in t], float)
    if weighting == "shapley":
        mass = np.zeros(n + 1)
        mass[1:n] = (n - 1) / (t[1:n] * (n - t[1:n]))
        mass[[0, n]] = END_MASS * mass[1:n].max()
    else:
        mass = comb / 2.0**n
    strata = regression_strata(weighting, n)
    k = np.minimum(t, n - t)
    draw = np.array(
        [strata[int(j)][0] * (1.0 if 2 * j == n else 0.5) / comb[i] if j > 0 else 1.0 for i, j in enumerate(k)]
    )
    size = z.sum(axis=1).astype(int)
    complete = np.bincount(size, minlength=n + 1) == comb
    w = np.where(complete[size], mass[size] / comb[size], 0.0)
    part = ~complete[size]
    if part.any():
        ratio = mass[size[part]] / comb[size[part]] / draw[size[part]]
        w[part] = mass[~complete].sum() * ratio / ratio.sum()
    return w / w.mean()


def _fit_importance(
    weighting: str, masks: np.ndarray, v: np.ndarray, ridge: float = 0.0, level: str = "rules"
) -> np.ndarray:
    """The importance [n] of model ``level`` fitted to ``v`` [M] at ``masks`` [M, n] under
    :func:`design_weights` and the ``ridge`` penalty."""
    gram, rhs = _normal_equations(weighting, masks, v, level, np.zeros(len(masks), int), 1)
    return model_importance(weighting, masks.shape[1], solve(gram[0], rhs[0], level, ridge), level)


def _exact_part(
    weighting: str, draws: np.ndarray, lookup: dict[bytes, int], v: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """The value [n] when every pair stratum is enumerated: the mean of each stratum's pairs."""
    n = masks.shape[1]
    rows = np.array([lookup[k] for k in _keys(draws)], int)
    crow = np.array([lookup[k] for k in _keys(1 - draws)], int)
    h = one_coalition(weighting, masks, v.astype(float))
    ends = lookup[bytes(n)], lookup[bytes([1] * n)]
    total = h[ends[0]] + h[ends[1]]
    of = _stratum_of(draws)
    for k in np.unique(of):
        sel = of == k
        total = total + (0.5 if 2 * k == n else 1.0) * np.mean(h[rows[sel]] + h[crow[sel]], axis=0)
    return total
