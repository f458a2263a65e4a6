"""Knowledge or optimizer?  Before kvq calls a rule improper, or reports a settled rule as
clearly harmful, it trains the coalitions that decide the rule again under a stronger
protocol (docs/design.md §3).

For each such rule the decisive coalitions are its full-importance pair (every rule, and
every rule but this one) and its worst context (the coalition where adding the rule hurt
most, averaged over seeds).  They are trained for every seed with the stronger protocol
(:data:`PROTOCOLS`) and the rule's marginal contribution is measured again in each pair.  If
a pair that was harmful stays harmful (below ``-ATOL`` decades), the harm *survived* and the
verdict stands; if the harm disappears, the rule hurts under this training protocol (an
optimization or capacity conflict) and kvq never calls it improper.  The records land in
``result.robustness`` (and ``results.json``), and every verdict reads them
(:func:`kvq.game.verdicts.exonerated`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from kvq.core.coalitions import mask_index
from kvq.core.config import ScanConfig
from kvq.core.train import take
from kvq.engine.batched import Engine, Progress, Trained
from kvq.errors import KvqError
from kvq.game.summary import summarize
from kvq.game.table import ScanResult
from kvq.game.verdicts import ATOL, helps, judge
from kvq.methods.base import tabulate
from kvq.problems.rules import Problem, with_weights

PROTOCOLS = {
    "lbfgs": "up to 1000 L-BFGS steps from where the trainings ended (with the rule: from the weights without it)",
    "longer": "four times the step budget",
    "wider": "a network twice as wide",
    "denser": "four times the collocation points per rule",
}
"""The stronger protocols a harmful rule is tested under."""
POLISH = 1_000
LIGHTER = (0.1, 0.01, 0.001)
"""A harm that survived the stronger protocol is tested once more at these fractions of the rule's
loss weight, in turn (its decisive pairs trained again from the warm start): right knowledge can
hurt only because it outweighs the data.  The rule is spared when at one of them it *helps*
(:func:`kvq.game.verdicts.helps`); a smaller harm alone proves nothing, since any rule's effect
vanishes with its weight.  benchmarks/robustness.py: the exact Burgers equation at 1 000
observations hurts at weight 1 and 0.1 and helps at 0.001; the planted wrong rules do not pass at
any of them."""
LIGHTER_SEEDS = 6
"""The weight stage trains at least this many seeds.  With 3, a help's interval rested on a spread
too small to trust (benchmarks/robustness.py, the exact Burgers equation on a 5x50 network at 0.001
of its weight: FI pair +0.21 ± 0.03 with 3 seeds, +0.29 ± 0.14 with 6).  With 6 the check spares
the exact equation at the standard preset (3x32 and 5x50 networks), at weight 1 and 0.1 and next
to a planted wrong initial condition in a cheaper protocol, and no planted wrong rule; it does not
spare it on the 5x50 network in that cheaper protocol (RESULTS.md: an open defect)."""


def stronger(config: ScanConfig, protocol: str) -> ScanConfig:
    """``config`` made stronger by ``protocol`` (a key of :data:`PROTOCOLS`)."""
    if protocol == "lbfgs":
        total = config.polish_steps + POLISH
        every = min(config.check_every, total)  # the polish is checked every check_every steps, or once
        return config.replace(polish_steps=every * -(-total // every))
    if protocol == "longer":
        return config.replace(steps=4 * config.steps)
    if protocol == "wider":
        return config.replace(width=2 * config.width)
    if protocol == "denser":
        if config.collocation is None:
            raise KvqError("the denser protocol needs ScanConfig(collocation=...): this scan uses every point already")
        return config.replace(collocation=4 * config.collocation)
    raise KvqError(f"unknown robustness protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")


def candidates(result: ScanResult) -> tuple[str, ...]:
    """The rules to test: those flagged improper, and the settled ones whose RI or FI is below
    ``-ATOL`` decades with its 95 % interval over seeds below zero."""
    try:
        summary = summarize(result)
    except KvqError:  # a table with no verdicts (e.g. every subset has a diverged training): nothing to test
        return ()
    settle, elim = summary.assessment.settledness, summary.assessment.elimination
    found = list(elim.removed) + list(elim.protected)
    if settle.known:
        for imp in (summary.ri, summary.fi):
            _, high = imp.ci95()
            for name, m, h in zip(imp.names, imp.mean, high):
                if settle[name] and m < -ATOL and np.isfinite(h) and h < 0 and name not in found:
                    found.append(name)
    return tuple(n for n in result.rule_names if n in found)


def decisive_pairs(result: ScanResult, rule: str) -> list[tuple[str, np.ndarray]]:
    """``(kind, mask without the rule)`` of the rule's decisive coalitions: its FI pair
    (``"fi"``: every other rule) and its worst context (``"worst"``: the other coalition where
    adding it lowered the value most, mean over seeds)."""
    i = result.rule_names.index(rule)
    n = len(result.rule_names)
    full_minus = np.ones(n, np.int8)
    full_minus[i] = 0
    pairs = [("fi", full_minus)]
    value = -np.log10(result.errors)  # [2^n, S]
    without = [k for k in range(2**n) if not (k >> i) & 1]  # all_masks order: rule j is bit j
    gains = [np.nanmean(value[k | (1 << i)] - value[k]) for k in without]
    worst = without[int(np.nanargmin(gains))]
    if not np.array_equal(result.masks[worst], full_minus):
        pairs.append(("worst", result.masks[worst].astype(np.int8)))
    return pairs


def check(
    problem: Problem,
    config: ScanConfig,
    result: ScanResult,
    protocol: str = "lbfgs",
    *,
    progress: Progress | None = None,
    model: Any = None,
    engine: Engine | None = None,
    trained: Trained | None = None,
) -> ScanResult:
    """``result`` with ``robustness`` records for every rule :func:`candidates` names (tested
    again until no new rule is named: sparing one rule can expose another).  ``result`` must be
    the exact scan of ``problem`` with ``config``.  With its ``engine`` and ``trained`` states
    (every mask of ``all_masks``), the ``"lbfgs"`` protocol continues the decisive trainings
    from where they ended instead of training them again from the warm start.  A harm that
    survives is then tested at lower loss weights of the rule (:data:`LIGHTER`), the other rules
    whose harm survived lowered alike: a rule that helps at one of them gets the verdict
    ``"weight"`` (right knowledge weighted too heavily, or spoilt by a suspect), which no verdict
    calls improper."""
    stronger(config, protocol)  # an unknown or impossible protocol: said before anything trains
    progress = progress or (lambda phase, done, total: None)
    records = dict(result.robustness)
    while True:
        todo = [r for r in candidates(result) if r not in records]
        if not todo:
            return result
        records.update(_test(problem, config, result, todo, protocol, progress, model, engine, trained))
        suspects = [r for r in records if records[r]["verdict"] == "survived"]
        for r in todo:
            if records[r]["verdict"] == "survived":
                others = tuple(x for x in suspects if x != r)
                records[r] = {**records[r], **_lighter(problem, config, result, r, others, progress, model)}
        result = dataclasses.replace(result, robustness=dict(records))


def _test(
    problem: Problem,
    config: ScanConfig,
    result: ScanResult,
    rules: list[str],
    protocol: str,
    progress: Progress,
    model: Any,
    engine: Engine | None,
    trained: Trained | None,
) -> dict[str, Any]:
    """Train the decisive coalitions of ``rules`` under ``protocol``; one record per rule."""
    pairs = {r: decisive_pairs(result, r) for r in rules}
    errors: dict[tuple[str, bytes], np.ndarray] = {}  # (rule, mask bytes) -> log10 error per seed
    seconds: dict[str, float] = {}
    for r, ps in pairs.items():  # one rule at a time: a mask's start depends on the rule
        t0 = time.perf_counter()
        masks_arr = _pair_masks(result.rule_names.index(r), ps)
        # both masks of a pair start where the training without the rule ended
        start = [mask_index(base.tolist()) for _, base in ps for _ in (0, 1)]
        if protocol == "lbfgs" and engine is not None and trained is not None:
            strong, again = _polished(engine, trained, masks_arr, np.array(start), progress)
        else:
            strong = Engine.prepare(problem, stronger(config, protocol), model=model).pretrain(progress)
            again = strong.train(masks_arr, progress, phase="robustness", tag="robustness")
        e = np.log10(np.nanmean(tabulate(strong, again, masks_arr).errors, axis=-1))  # [M, S]
        errors.update({(r, m.tobytes()): e[k] for k, m in enumerate(masks_arr)})
        seconds[r] = time.perf_counter() - t0
    out = {}
    for r, ps in pairs.items():
        tested = _gains(result, r, ps, errors)
        out[r] = {
            "protocol": protocol,
            "what": PROTOCOLS[protocol],
            "pairs": tested,
            "verdict": judge(tested),
            "seconds": seconds[r],
        }
    return out


def _gains(
    result: ScanResult, rule: str, pairs: list[tuple[str, np.ndarray]], errors: dict[tuple[str, bytes], np.ndarray]
) -> list[dict[str, Any]]:
    """The rule's marginal contribution in each decisive pair (``pairs``: kind, mask without it) in
    the scan (``before``) and in the trainings ``errors`` ((rule, mask bytes) -> log10 error per
    seed; ``after``), mean and se over seeds in decades."""
    n, i = len(result.rule_names), result.rule_names.index(rule)
    before = np.log10(result.errors)
    index = {result.masks[k].astype(np.int8).tobytes(): k for k in range(len(result.masks))}
    tested: list[dict[str, Any]] = []
    for kind, base in pairs:
        on = base.copy()
        on[i] = 1
        tested.append(
            {
                "kind": kind,
                "context": [result.rule_names[j] for j in range(n) if base[j]],
                "before": _mean_se(before[index[base.tobytes()]] - before[index[on.tobytes()]]),
                "after": _mean_se(errors[(rule, base.tobytes())] - errors[(rule, on.tobytes())]),
            }
        )
    return tested


def _pair_masks(rule_index: int, pairs: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Each decisive pair's masks [2 P, n]: without the rule, then with it."""
    masks = []
    for _, base in pairs:
        on = base.copy()
        on[rule_index] = 1
        masks += [base, on]
    return np.array(masks, np.int8)


def _lighter(
    problem: Problem,
    config: ScanConfig,
    result: ScanResult,
    rule: str,
    suspects: tuple[str, ...],
    progress: Progress,
    model: Any,
) -> dict[str, Any]:
    """The weight stage of :func:`check` for ``rule``: its decisive pairs trained again (warm
    start, ``config`` with at least :data:`LIGHTER_SEEDS` seeds) at each fraction of
    :data:`LIGHTER` of its loss weight in turn, until it helps; the other rules whose harm
    survived too (``suspects``) stay in the pairs at the same fraction of their weights (a right
    rule may need a suspect's context: the Burgers equation its initial condition).
    ``{"lighter": [{"factor", "pairs", "helps", "seconds"}, ...], "lowered_with": suspects,
    "verdict": "weight" | "survived"}``."""
    i = result.rule_names.index(rule)
    lowered = [i, *(result.rule_names.index(x) for x in suspects)]
    pairs = decisive_pairs(result, rule)
    masks = _pair_masks(i, pairs)
    sees = masks[:, lowered].any(axis=1)  # a training with none of the lowered rules does not see the factor
    weights = np.array([r.weight for r in problem.rules], float)
    stage = config.replace(seeds=max(config.seeds, LIGHTER_SEEDS))
    steps: list[dict[str, Any]] = []
    errors: dict[tuple[str, bytes], np.ndarray] = {}
    for factor in LIGHTER:
        t0 = time.perf_counter()
        w = weights.copy()
        w[lowered] *= factor
        engine = Engine.prepare(with_weights(problem, w), stage, model=model).pretrain(progress)
        todo = masks[sees] if errors else masks
        again = engine.train(todo, progress, phase="robustness", tag="robustness")
        e = np.log10(np.nanmean(tabulate(engine, again, todo).errors, axis=-1))  # [M, S]
        errors.update({(rule, m.tobytes()): e[k] for k, m in enumerate(todo)})
        tested = _gains(result, rule, pairs, errors)
        steps.append({"factor": factor, "pairs": tested, "helps": helps(tested), "seconds": time.perf_counter() - t0})
        if steps[-1]["helps"]:
            break
    return {"lighter": steps, "lowered_with": list(suspects), "verdict": "weight" if steps[-1]["helps"] else "survived"}


def _polished(
    engine: Engine, trained: Trained, masks: np.ndarray, start: np.ndarray, progress: Progress
) -> tuple[Engine, Trained]:
    """The trainings of ``masks`` (every seed) continued with :func:`stronger`'s L-BFGS phase,
    mask ``k`` from where the exact scan's training of mask ``start[k]`` (an ``all_masks``
    index) ended, with that seed (``trained``: the exact scan's, every mask)."""
    strong = dataclasses.replace(engine, config=stronger(engine.config, "lbfgs"))
    order = [(int(m), int(s)) for _, ms, ss in strong.items(masks) for m, s in zip(ms, ss)]
    row = {(int(m), int(s)): k for k, (m, s) in enumerate(zip(trained.mask_of, trained.seed_of))}
    rows = np.array([row[(int(start[m]), s)] for m, s in order])
    first = Trained(
        take(trained.state, rows),
        np.array([m for m, _ in order]),
        np.array([s for _, s in order]),
        trained.history[:, rows],
        trained.check_steps,
    )
    return strong, strong.polish(masks, first, progress, "robustness", "robustness")


def _mean_se(gains: np.ndarray) -> dict[str, float | None]:
    g = np.asarray(gains, float)
    g = g[np.isfinite(g)]
    if g.size == 0:
        return {"mean": float("nan"), "se": None, "seeds": 0}
    se = float(g.std(ddof=1) / np.sqrt(g.size)) if g.size > 1 else None
    return {"mean": float(g.mean()), "se": se, "seeds": int(g.size)}
