"""Rule importance from sampled coalitions: for problems with too many rules for 2^n trainings.

A *draw* is a set of coalitions chosen at random up front; kvq trains the distinct ones as
batches (:func:`kvq.estimate` with ``coalitions=``) and these functions turn their values
``v(S) = -log10(validation error)`` [M, seeds] into estimates with standard errors:

- ``"msr"``: maximum-sample-reuse Banzhaf values (Wang & Jia, Data Banzhaf, 2023): every
  coalition drawn uniformly (each rule on with probability 1/2), every draw reused for every
  rule: ``RI_i = mean v(S ∋ i) - mean v(S ∌ i)``; estimates the uniform (Banzhaf) RI.
- ``"permutation"``: antithetic permutation sampling of Shapley values: a random order of
  the rules and its reverse, the marginal contribution of each rule along both chains
  (``n + 1`` coalitions per order), averaged per pair; estimates the Shapley RI.
- ``"kernel"``: paired KernelSHAP (Lundberg & Lee 2017) in its unbiased form (Covert & Lee,
  AISTATS 2021): coalitions ``z`` drawn from the Shapley kernel (size ``s`` with probability
  proportional to ``1/(s(n - s))``, then a uniform subset of that size), each trained with its
  complement; the weighted least-squares fit of ``v(z) - v(empty)`` by ``z . phi`` under
  ``sum(phi) = v(all) - v(empty)`` is solved with the exact design matrix ``A = E[z z^T]``, so
  every pair gives its own unbiased estimate and the standard error is their spread.
  Estimates the Shapley RI; needs ``v(empty)`` and ``v(all)`` besides the pairs.
- ``"kernel-banzhaf"``: the same regression with uniform coalitions (and complements), whose
  fit is the Banzhaf value; with the exact design matrix it reduces to the pair estimate
  ``(2 z_i - 1)(v(z) - v(1 - z))``.  Estimates the uniform RI.
- ``"regression"`` and ``"regression-banzhaf"`` (kvq's defaults, :mod:`kvq.game.regression`):
  coalition-complement pairs stratified by size, and a small model (a value per size, a weight
  per rule, a weight per pair) fitted to the values.  Shapley: the model's importance plus a
  cross-fitted Monte Carlo estimate of its residual's (unbiased).  Uniform: the fit itself,
  each coalition weighted by what it stands for (consistent, not unbiased; jackknife se).

The standard error of an estimate has two parts, both reported: ``se_sampling`` (which
coalitions were drawn: the spread of the seed-averaged values over the draws) and
``se_seeds`` (the spread of the per-seed estimates, as for an exact table);
``se = sqrt(se_sampling^2 + se_seeds^2)``.  Against the exact table of the same seeds only
``se_sampling`` matters.  FI needs the ``n + 1`` coalitions all rules and all rules but one,
which are always trained.  docs/design.md §6.

This module plans the draws.  A table of the trained coalitions is a :class:`kvq.ValueTable`
with a :class:`~kvq.game.table.Sampling` record (:class:`SampledResult` for a run); the estimators
(:func:`estimate_importance`, :func:`adjusted_importance`) live in :mod:`kvq.game.importance`,
where :func:`kvq.rule_importance` calls them, and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from kvq.errors import KvqError
from kvq.game.estimators import (  # the estimators live beside the importances (one-way dependency)
    MIN_PROXY_DRAWS,
    SampledImportance,
    adjusted_importance,
    estimate_importance,
    full_importance_from,
    kernel_sizes,
    pair_strata,
    stratum_of,
)
from kvq.game.importance import sampled_estimates
from kvq.game.regression import (
    REGRESSION_WEIGHTING,
    next_stratum,
    plan_pairs,
    random_pairs,
    regression_strata,
    stratum_pairs,
)
from kvq.game.table import (  # what a sampled table records and checks
    GIVEN,
    SAMPLERS,
    WEIGHTING,
    SampledResult,
    Sampling,
    chain_masks,
    coalitions_of,
    full_masks,
    known_sampler,
)

__all__ = [
    "DEFAULT",
    "DRAWN",
    "FEW_DRAWS",
    "GIVEN",
    "LABELS",
    "MIN_PROXY_DRAWS",
    "MIN_SAMPLED_COALITIONS",
    "PROXY_SAMPLERS",
    "SAMPLERS",
    "WEIGHTING",
    "SampledImportance",
    "SampledResult",
    "Sampling",
    "adjusted_importance",
    "chain_masks",
    "coalitions_of",
    "draw",
    "draws_within",
    "estimate_importance",
    "few_draws",
    "full_importance_from",
    "full_masks",
    "kernel_sizes",
    "no_draws",
    "pair_strata",
    "plan_draws",
    "round_draws",
    "sampled_estimates",
    "stratum_of",
    "stratum_pairs",
]


LABELS = {
    "msr": "RI uniform (msr)",
    "permutation": "RI Shapley (perm.)",
    "kernel": "RI Shapley (kernel)",
    "kernel-banzhaf": "RI uniform (kernel)",
    "shapiq-shapley": "RI Shapley (shapiq)",
    "shapiq-uniform": "RI uniform (shapiq)",
    "regression": "RI Shapley (regr.)",
    "regression-banzhaf": "RI uniform (regr.)",
}
DRAWN = {
    "msr": "coalitions drawn",
    "permutation": "antithetic permutation pairs",
    "kernel": "coalition-complement pairs",
    "kernel-banzhaf": "coalition-complement pairs",
    "regression": "coalition-complement pairs",
    "regression-banzhaf": "coalition-complement pairs",
    "shapiq-shapley": "coalitions the approximator asked for",
    "shapiq-uniform": "coalitions the approximator asked for",
}
PROXY_SAMPLERS = ("msr", "permutation", "kernel", "kernel-banzhaf")
"""The samplers a proxy can correct (the regression samplers fit their own model)."""
DEFAULT = {"uniform": "regression-banzhaf", "shapley": "regression"}
"""kvq's default sampler for each weighting (chosen by benchmarks/sampling_accuracy.py: the
most accurate at equal budgets on unanimity games and on the trained tables)."""


def no_draws(sampler: str, n: int) -> np.ndarray:
    """An empty array of ``sampler``'s draws for ``n`` rules."""
    known_sampler(sampler)
    return np.zeros((0, n), int if sampler == "permutation" else np.int8)


def draw(sampler: str, n: int, count: int, rng: np.random.Generator, exclude: tuple[int, ...] = ()) -> np.ndarray:
    """``count`` draws of ``sampler`` for ``n`` rules: ``"msr"`` and ``"kernel-banzhaf"`` ->
    coalitions [count, n] (0/1, each rule on with probability 1/2); ``"kernel"`` -> coalitions
    [count, n] from the Shapley kernel; ``"permutation"`` -> rule orders [2 count, n], each
    followed by its reverse (antithetic pairs).  The kernel samplers train each coalition with
    its complement (:func:`coalitions_of`).  ``exclude`` (kernel only): pair strata ``k =
    min(|z|, n - |z|)`` never drawn (enumerated instead, :func:`plan_draws`)."""
    known_sampler(sampler)
    if sampler in GIVEN:
        raise KvqError(f"{sampler!r} draws come from a shapiq approximator: pass the approximator as coalitions=")
    if count == 0:
        return no_draws(sampler, n)
    if sampler in ("msr", "kernel-banzhaf"):
        return rng.integers(0, 2, (count, n)).astype(np.int8)
    if sampler in REGRESSION_WEIGHTING:
        rest = {k: s for k, s in regression_strata(REGRESSION_WEIGHTING[sampler], n).items() if k not in exclude}
        if not rest:
            raise KvqError("every stratum of the regression sampler is excluded: nothing left to draw")
        return random_pairs(n, count, rest, rng)
    if sampler == "kernel":
        if n < 2:
            raise KvqError("the kernel sampler needs at least 2 rules")
        p = kernel_sizes(n) * ~np.isin(np.minimum(np.arange(1, n), n - np.arange(1, n)), exclude)
        if p.sum() == 0:
            raise KvqError("every stratum of the kernel sampler is excluded: nothing left to draw")
        sizes = rng.choice(np.arange(1, n), size=count, p=p / p.sum())
        out = np.zeros((count, n), np.int8)
        for k, s in enumerate(sizes):
            out[k, rng.permutation(n)[:s]] = 1
        return out
    orders = np.stack([rng.permutation(n) for _ in range(count)])
    return np.stack([orders, orders[:, ::-1]], axis=1).reshape(-1, n)


def draws_within(
    sampler: str,
    n: int,
    budget: int,
    have: set[bytes],
    rng: np.random.Generator,
    exclude: tuple[int, ...] = (),
) -> np.ndarray:
    """Draws of ``sampler`` one at a time while the distinct coalitions they need, with
    those in ``have``, stay within ``budget`` (and at most ``2 budget`` draws); ``have``
    gains them.  ``exclude`` as in :func:`draw`."""
    taken: list[np.ndarray] = []
    while len(taken) < 2 * budget:  # draws of coalitions trained already cost nothing: a cap
        d = draw(sampler, n, 1, rng, exclude)
        new = {np.asarray(m, np.int8).tobytes() for m in coalitions_of(sampler, d)} - have
        if len(have) + len(new) > budget:
            break
        have |= new
        taken.append(d)
    return np.concatenate(taken) if taken else no_draws(sampler, n)


def plan_draws(
    sampler: str, n: int, budget: int, have: set[bytes], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Draws within ``budget`` as :func:`draws_within`, and for ``"kernel"`` the border trick
    first: a stratum of pairs (:func:`pair_strata`) that the budget would draw at least as
    many times as it has pairs is enumerated instead, once each (the strata with the most
    probability per pair first: sizes 1 and n - 1, whose complements FI trains anyway, then
    2 and n - 2, ...), so its mean enters exactly; the rest is sampled from the kernel
    restricted to the other strata.  Returns the draws (enumerated pairs first) and the
    enumerated strata, which :func:`estimate_importance` needs."""
    if sampler in REGRESSION_WEIGHTING:
        return plan_pairs(REGRESSION_WEIGHTING[sampler], n, budget, have, rng)
    if sampler != "kernel":
        return draws_within(sampler, n, budget, have, rng), ()
    ends = {np.zeros(n, np.int8).tobytes(), np.ones(n, np.int8).tobytes()}  # v(empty), v(all)
    spare = budget - len(have | ends)  # coalitions left for pairs
    enumerated: list[int] = []
    chosen: list[np.ndarray] = []
    strata = pair_strata(n)
    while True:
        rest = {k: v for k, v in strata.items() if k not in enumerated}
        best = next_stratum(n, rest, spare, have | ends, MIN_SAMPLED_COALITIONS)
        if best is None:
            break
        k, sides, new = best
        enumerated.append(k)
        chosen.append(sides)
        have |= new
        spare -= len(new)
    if len(enumerated) == len(strata):  # every pair once: nothing left to sample
        have |= ends
        return np.concatenate(chosen), tuple(sorted(enumerated))
    sampled = draws_within(sampler, n, budget, have, rng, tuple(enumerated))
    return np.concatenate([*chosen, sampled]) if chosen else sampled, tuple(sorted(enumerated))


def round_draws(
    sampler: str,
    n: int,
    budget: int,
    have: set[bytes],
    rng: np.random.Generator,
    r: int,
    rounds: int,
    enumerated: tuple[int, ...],
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The draws of round ``r`` of ``rounds`` that spend an even share of what is left of
    ``budget`` (the last round: all of it): :func:`plan_draws` in the first round (the
    enumerated strata it chose are returned), :func:`draws_within` outside ``enumerated`` after."""
    share = budget if r == rounds - 1 else len(have) + (budget - len(have)) // (rounds - r)
    if r == 0:
        return plan_draws(sampler, n, share, have, rng)
    return draws_within(sampler, n, share, have, rng, enumerated), enumerated


MIN_SAMPLED_COALITIONS = 16
"""The border trick keeps at least this many coalitions for the sampled strata."""


FEW_DRAWS = 16
"""Below this many draws the sampling standard error is itself uncertain: the table says so
(benchmarks/sampling.py: antithetic permutations from 2-3 pairs covered the exact value in
66 % of the rules at ± 2 se; benchmarks/sampling_accuracy.py: ``kernel-banzhaf`` from about 14
coalition-complement pairs on the trained 2-D table, 89 % over 10 draws, where normal values would
give 92-93 %: the values of a trained table are skewed, and its se needs more draws)."""


def few_draws(sampler: str, samples: int, n: int) -> int | None:
    """The number of draws below which ``samples`` draws of ``sampler`` over ``n`` rules give a
    rough sampling se (:data:`FEW_DRAWS`; for the regression samplers also ``2n`` sampled pairs,
    as their model fits a weight per rule: at 38 pairs (100 coalitions) for 21 rules, ± 2 se missed
    a 4x-budget reference for 3 rules of 21, benchmarks/many_rules.py; 14 pairs for 7 rules covered
    89 % over 50 draws, benchmarks/sampling_accuracy.py), or None when there are enough."""
    floor = max(FEW_DRAWS, 2 * n) if sampler.startswith("regression") else FEW_DRAWS
    return floor if samples < floor else None
