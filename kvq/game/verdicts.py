"""Verdicts from a value table, and how sure each one is (pure numpy; no training).

- :func:`settledness`: did each rule's RI and FI stop moving over the last half of the
  training budget, and did most trainings stop by the early-stopping criterion?  A number
  that a longer budget would still change is reported as UNSETTLED.
- :func:`eliminate`: improper rules by backward elimination, so that a correct rule that
  hurts only together with a wrong one is not blamed (``improper_rules`` returns its
  removed rules).
- :func:`pair_relations`: each pair of rules as synergy, substitution or conflict.
- :func:`best_rule_set`: the subset with the lowest validation error, compared over seeds
  with all rules and with the rules the elimination keeps.

A sampled table (``table.sampling`` set) gets settledness, a one-round elimination (the
game without a rule was not trained: see :func:`eliminate`), no pair relations and the best of
its trained coalitions.

Units are decades of validation MSE throughout (see ``docs/design.md``, "Verdicts").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from kvq.core.coalitions import mask_index
from kvq.errors import KvqError
from kvq.game.importance import (
    Importance,
    full_importance,
    own_weighting,
    pair_parts,
    prepare_values,
    rule_importance,
    sampling_of,
    values,
    weighted_mean,
)
from kvq.game.measures import mean_se
from kvq.game.table import ValueTable, json_ready
from kvq.game.trend import t975

ATOL = 0.05
"""Smallest change and smallest effect (decades) kvq acts on: 0.05 decades is a 12 % change of
the validation MSE, about the seed-to-seed spread of the importance of a rule that does
nothing in the built-in problems.  A rule whose RI moved less than this over the last half of
the budget is settled; an RI above -ATOL is never called improper."""
RTOL = 0.25
"""A settled value may also move by up to this share of its own size (|RI| = 2 may drift by 0.5)."""
MAX_CAPPED = 0.5
"""At most this share of the trainings may have run into the step cap for any rule to be settled."""
SAMPLED_PAIRS = (
    "pair relations need every coalition of the other rules, and this table was sampled: run an exact scan "
    "(kvq.scan) for them"
)
SAMPLED_ELIMINATION = "a sampled table cannot re-estimate the game without a rule"


@dataclass(frozen=True, eq=False)
class Settledness:
    """Whether each rule's RI and FI have settled over the training budget.

    ``ri_drift``/``fi_drift`` [n]: mean over seeds of the change that the trainings still
    running at the cap made from the check at half the budget (``from_step``) to the end
    (``to_step``), with standard errors ``*_drift_se`` (NaN with one seed); ``tolerance_*`` [n]: ``max(atol, rtol * |value at the end|)``; a
    value is *flat* when ``|drift| + 2 se <= tolerance`` (``|drift|`` alone with one seed).
    ``capped_share``: share of the non-diverged trainings that ran into the step cap
    instead of stopping by the early-stopping criterion (NaN when not recorded).
    ``settled`` [n]: RI and FI flat and ``capped_share <= max_capped``.  ``known`` is False
    when the table holds no trajectory (estimated tables, older results, a single check):
    then ``settled`` is all False and nothing can be said.
    """

    names: tuple[str, ...]
    known: bool
    settled: np.ndarray
    ri_drift: np.ndarray
    ri_drift_se: np.ndarray
    fi_drift: np.ndarray
    fi_drift_se: np.ndarray
    tolerance_ri: np.ndarray
    tolerance_fi: np.ndarray
    capped_share: float
    from_step: int | None
    to_step: int | None
    weighting: str
    reasons: tuple[str, ...]  # how each rule's RI / FI moved when more than its tolerance ("" otherwise)
    max_capped: float = MAX_CAPPED

    @property
    def too_capped(self) -> bool:
        """More than ``max_capped`` of the trainings ran into the step cap."""
        return bool(np.isfinite(self.capped_share) and self.capped_share > self.max_capped)

    @property
    def unsettled(self) -> tuple[str, ...]:
        """Rules whose numbers have not settled (all rules when settledness is unknown)."""
        return tuple(n for n, ok in zip(self.names, self.settled) if not ok)

    def __getitem__(self, name: str) -> bool:
        if name not in self.names:
            raise KvqError(f"no rule named {name!r}; valid names: {list(self.names)}")
        return bool(self.settled[self.names.index(name)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None)."""
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


def _flat(drift: np.ndarray, se: np.ndarray, tol: np.ndarray) -> np.ndarray:
    bound = np.abs(drift) + 2 * np.nan_to_num(se, nan=0.0)
    return np.isfinite(drift) & (bound <= tol)


def capped_share(table: Any) -> float:
    """Share of the non-diverged trainings that hit the step cap (NaN when not recorded)."""
    stopped = getattr(table, "stopped", None)
    if stopped is None:
        return float("nan")
    ok = ~np.asarray(table.missing()) if hasattr(table, "missing") else np.isfinite(table.errors)
    return float(np.mean(~stopped[ok])) if ok.any() else float("nan")


def _with_errors(table: Any, errors: np.ndarray) -> Any:
    """``table``'s game with other ``errors`` (same rows): a (names, errors) pair, or for a
    sampled table a :class:`~kvq.game.table.ValueTable` with its masks and sampling record."""
    names = tuple(table.rule_names)
    if sampling_of(table) is None:
        return names, errors
    return ValueTable(names, errors, masks=table.masks, sampling=table.sampling)


def budget_schedule(table: Any) -> bool:
    """Whether ``table`` was trained with a schedule over its budget (``ScanConfig(optimizer=
    steps -> transformation)``, recorded as ``{"kind": "budget schedule", ...}``)."""
    optimizer = (getattr(table, "config", None) or {}).get("optimizer")
    return isinstance(optimizer, dict) and optimizer.get("kind") == "budget schedule"


def settledness(
    table: Any,
    weighting: str | None = None,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    max_capped: float = MAX_CAPPED,
) -> Settledness:
    """Settledness of every rule's RI (``weighting``) and FI: would a longer budget change them?

    A training that stopped by the early-stopping criterion is final (a longer budget gives
    the same weights); only the trainings still running at the step cap can move the
    numbers.  The *drift* of a value is how much those trainings moved it over the last
    half of the budget: the value of the final table minus that of the table in which each
    capped training is put back to its error at the last check at or before half the budget
    (stopped ones keep their final errors), per seed.  The rule is settled when the drift of
    its RI and of its FI is below ``max(atol, rtol * |final value|)`` decades, counting two
    standard errors of the drift against it, and at most ``max_capped`` of the trainings
    ran into the cap; a table trained with a schedule over the budget (:func:`budget_schedule`)
    is judged by the drift alone, since its trainings are meant to run to the cap.  ``weighting`` None: the table's own (:func:`kvq.game.importance.own_weighting`).
    Criterion and constants: ``docs/design.md``.
    """
    weighting = weighting or own_weighting(table)
    if budget_schedule(table):
        max_capped = 1.0  # every training is meant to run to the cap: the drift alone decides
    names = tuple(table.rule_names)
    n = len(names)
    nan = np.full(n, np.nan)
    steps = getattr(table, "check_steps", None)
    capped = capped_share(table)
    half = None if steps is None else int(np.searchsorted(steps, steps[-1] // 2, side="right")) - 1
    if steps is None or half is None or half < 0 or half == len(steps) - 1:
        why = (
            "no trajectory: one check only"
            if steps is not None
            else "no trajectory over the budget (estimated table or older result)"
        )
        return Settledness(
            names,
            False,
            np.zeros(n, bool),
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            capped,
            None if steps is None or half is None or half < 0 else int(steps[half]),
            None if steps is None else int(steps[-1]),
            weighting,
            (why,) * n,
            max_capped,
        )
    end = table.errors_by_check[-1]
    stopped = getattr(table, "stopped", None)
    running = np.ones(end.shape, bool) if stopped is None else ~stopped
    before = np.where(running, table.errors_by_check[half], end)
    end_ri, mid_ri = (rule_importance(_with_errors(table, e), weighting) for e in (end, before))
    end_fi, mid_fi = (full_importance(_with_errors(table, e)) for e in (end, before))
    ri_drift, ri_se = mean_se(end_ri.per_seed - mid_ri.per_seed)
    fi_drift, fi_se = mean_se(end_fi.per_seed - mid_fi.per_seed)
    tol_ri = np.maximum(atol, rtol * np.abs(end_ri.mean))
    tol_fi = np.maximum(atol, rtol * np.abs(end_fi.mean))
    flat_ri, flat_fi = _flat(ri_drift, ri_se, tol_ri), _flat(fi_drift, fi_se, tol_fi)
    too_capped = bool(np.isfinite(capped) and capped > max_capped)
    reasons = []
    for i in range(n):
        moved: list[str] = []
        if not flat_ri[i]:
            moved.append(f"RI {ri_drift[i]:+.2f}")
        if not flat_fi[i]:
            moved.append(f"FI {fi_drift[i]:+.2f}")
        reasons.append(", ".join(moved))
    settled = flat_ri & flat_fi & (not too_capped)
    return Settledness(
        names,
        True,
        settled,
        ri_drift,
        ri_se,
        fi_drift,
        fi_se,
        tol_ri,
        tol_fi,
        capped,
        int(steps[half]),
        int(steps[-1]),
        weighting,
        tuple(reasons),
        max_capped,
    )


@dataclass(frozen=True, eq=False)
class Elimination:
    """Backward elimination of improper rules.

    ``removed``: the improper rules in the order they were removed; ``rounds``: for each
    round the rules still in the game with their RI (mean, se, 95 % interval), settledness,
    and the rule removed (None in the last round); ``final``: every remaining rule's RI in
    the final game (None when every rule was removed); ``withheld``: rules that met the
    improper criterion in some round but were not flagged because their numbers had not
    settled; ``settledness_known``: False where the table has no trajectory.  For a sampled
    table (``sampled``) there is one round only, ``final`` is None once a rule is removed, and
    ``sampled_withheld`` holds the candidates not flagged because there were several (see
    :func:`eliminate`).  ``protected``: rules that met the criterion but whose harm disappeared
    under a stronger training protocol (:func:`exonerated`), so they are not called improper.
    """

    removed: tuple[str, ...]
    rounds: tuple[dict[str, Any], ...]
    final: Importance | None
    withheld: tuple[str, ...]
    min_effect: float
    weighting: str
    settledness_known: bool
    sampled: bool = False
    sampled_withheld: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()

    @property
    def kept(self) -> tuple[str, ...]:
        """The rules not removed, in the table's order."""
        return tuple(r for r in self.rounds[0]["rules"] if r not in self.removed) if self.rounds else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None)."""
        return json_ready(
            {
                "removed": self.removed,
                "kept": self.kept,
                "withheld": self.withheld,
                "rounds": self.rounds,
                "final": None
                if self.final is None
                else {"names": self.final.names, "mean": self.final.mean, "se": self.final.se},
                "min_effect": self.min_effect,
                "weighting": self.weighting,
                "settledness_known": self.settledness_known,
                "criterion": f"RI < -{self.min_effect:g} decades with its 95% CI over seeds below 0, and settled",
                "sampled": self.sampled,
                "sampled_withheld": self.sampled_withheld,
                "protected": self.protected,
                "note": (
                    f"{SAMPLED_ELIMINATION}: one round only; a rule is flagged only when it is the one candidate"
                    if self.sampled
                    else None
                ),
            }
        )


def judge(pairs: list[dict[str, Any]]) -> str:
    """A rule's verdict from its tested pairs (``{"before", "after"}``: ``{"mean", "se"}`` of its
    marginal contribution in decades): ``"survived"`` when a pair that was harmful (below
    ``-ATOL``; the first pair if none was) is still harmful after the stronger protocol, else
    ``"protocol"``.  How much of the harm a stronger optimizer removes does not decide it: a
    planted wrong rule lost 56 % of its FI pair's harm to L-BFGS, the exact Burgers equation 52 %
    of its worst context's (benchmarks/robustness.py; docs/design.md §3)."""
    harmful = [p for p in pairs if p["before"]["mean"] < -ATOL] or pairs[:1]
    return "survived" if any(p["after"]["mean"] < -ATOL for p in harmful) else "protocol"


def helps(pairs: list[dict[str, Any]]) -> bool:
    """Whether the rule helps after the change: in its FI pair (the first) by more than ``ATOL``
    decades with the 95 % interval over seeds above zero, and in no other decisive pair does it
    still hurt by the standard kvq calls a rule harmful at all (:func:`hurts`: mean below
    ``-ATOL`` with the interval below zero)."""
    if not pairs or pairs[0]["kind"] != "fi":
        return False
    fi = pairs[0]["after"]
    seeds = fi.get("seeds", 0)
    if fi["se"] is None or seeds < 2:
        return False
    reliable = fi["mean"] > ATOL and fi["mean"] - float(t975(seeds - 1)) * fi["se"] > 0
    return bool(reliable and not any(hurts(p["after"]) for p in pairs[1:]))


def hurts(gain: dict[str, Any]) -> bool:
    """Whether a marginal contribution (``{"mean", "se", "seeds"}`` in decades) is a harm by the
    standard :func:`kvq.workflows.robustness.candidates` uses: mean below ``-ATOL`` and the 95 %
    interval over seeds below zero.  With fewer than two seeds (no interval) the mean alone
    decides, and a pair that was not measured (no finite mean: every seed diverged) counts as a
    harm, so that it can never spare a rule.  Asking a tested worst context for more (its mean
    above ``-ATOL``) asked a pair whose se is a tenth or two of a decade to land in a window
    narrower than its noise."""
    mean, seeds = gain["mean"], gain.get("seeds", 0)
    if mean is None or not np.isfinite(mean):
        return True
    if gain["se"] is None or seeds < 2:
        return bool(mean < -ATOL)
    return bool(mean < -ATOL and mean + float(t975(seeds - 1)) * gain["se"] < 0)


def best_lighter(check: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A survived rule's weight-stage step (``check["lighter"]``, non-empty) with the largest
    FI-pair contribution, and whether its estimates lean toward help there (FI pair above
    ``ATOL``, no other pair a harm by :func:`hurts`) although the FI pair's interval does not."""
    best = max(check["lighter"], key=lambda st: st["pairs"][0]["after"]["mean"])
    leans = best["pairs"][0]["after"]["mean"] > ATOL and not any(hurts(p["after"]) for p in best["pairs"][1:])
    return best, bool(leans)


def unsure_blames(table: Any, improper: tuple[str, ...]) -> tuple[str, ...]:
    """The ``improper`` rules of ``table`` whose harm survived the robustness check but whose
    weight stage leaned toward help (:func:`best_lighter`): blamed, unsurely (docs/design.md §3)."""
    checks = getattr(table, "robustness", None) or {}
    return tuple(
        r
        for r in improper
        if (checks.get(r) or {}).get("verdict") == "survived"
        and checks[r].get("lighter")
        and best_lighter(checks[r])[1]
    )


def exonerated(table: Any) -> tuple[str, ...]:
    """The rules of ``table`` whose harm disappeared under a stronger training protocol
    (``table.robustness[rule]["verdict"] == "protocol"``: an optimization or capacity conflict
    of this protocol) or that help at a lower loss weight (``"weight"``: right knowledge weighted
    too heavily against the data): not wrong knowledge (docs/design.md §3)."""
    checks = getattr(table, "robustness", None) or {}
    return tuple(r for r in table.rule_names if (checks.get(r) or {}).get("verdict") in ("protocol", "weight"))


def eliminate(
    table: Any,
    weighting: str | None = None,
    *,
    min_effect: float = ATOL,
    require_settled: bool = True,
    protect: tuple[str, ...] | None = None,
) -> Elimination:
    """Improper rules by backward elimination on the value table.

    Each round computes every remaining rule's RI in the game restricted to coalitions
    without the rules removed so far; a rule is a candidate when its RI is below
    ``-min_effect`` decades, its whole 95 % interval over seeds is below zero, and (with
    ``require_settled``, where the table has a trajectory) its RI and FI have settled in that
    game.  The most negative candidate is removed and the next round starts; the rules
    removed are the improper ones.  A correct rule that hurts only in coalitions with a
    wrong rule recovers once the wrong one is gone, so it is not blamed.  Needs >= 2 seeds
    for an interval (a single-seed table removes nothing).

    A sampled table holds no sub-games, so only the first round can be computed: a rule is
    flagged only when it is the one candidate (the exact procedure would remove it first too);
    several candidates are all withheld (``sampled_withheld``), since which of them stay
    harmful once another is gone needs the games without them (docs/design.md §3).

    ``protect``: rules never removed (recorded in ``protected`` when they meet the criterion);
    None: :func:`exonerated`, the rules whose harm a stronger protocol made disappear.
    """
    if not hasattr(table, "restrict"):
        raise KvqError(f"eliminate needs a kvq.ValueTable or ScanResult; got {type(table).__name__}")
    weighting = weighting or own_weighting(table)
    if sampling_of(table) is not None:
        return _eliminate_sampled(table, weighting, min_effect, require_settled)
    protect = exonerated(table) if protect is None else tuple(protect)
    active = list(table.rule_names)
    removed: list[str] = []
    withheld: list[str] = []
    protected: list[str] = []
    rounds: list[dict[str, Any]] = []
    final = None
    known = False
    while active:
        r = _round(table.restrict(active), weighting, min_effect, require_settled)
        ri, settle = r["ri"], r["settle"]
        known = settle.known
        withheld += [name for name, m, s in zip(active, r["meets"], r["ok"]) if m and not s and name not in withheld]
        kept = np.array([name in protect for name in active], bool)
        protected += [
            name for name, m, k in zip(active, r["meets"] & r["ok"], kept) if m and k and name not in protected
        ]
        candidates = np.flatnonzero(r["meets"] & r["ok"] & ~kept)
        out = None if candidates.size == 0 else active[int(candidates[np.argmin(ri.mean[candidates])])]
        rounds.append(_record(active, r, out))
        if out is None:
            final = ri
            break
        removed.append(out)
        active.remove(out)
    withheld = [w for w in withheld if w not in removed]
    return Elimination(
        tuple(removed), tuple(rounds), final, tuple(withheld), min_effect, weighting, known, protected=tuple(protected)
    )


def _round(table: Any, weighting: str, min_effect: float, require_settled: bool) -> dict[str, Any]:
    """One round of elimination on ``table``'s game: RI, interval, settledness, and which rules
    meet the criterion (``meets``) and of those which have settled (``candidates``)."""
    ri = rule_importance(table, weighting)
    low, high = ri.ci95()
    settle = settledness(table, weighting)
    ok = settle.settled if (settle.known and require_settled) else np.ones(len(ri.names), bool)
    meets = np.isfinite(high) & (high < 0) & (ri.mean < -min_effect)
    return {"ri": ri, "low": low, "high": high, "settle": settle, "ok": ok, "meets": meets}


def _record(rules: list[str], r: dict[str, Any], removed: str | None) -> dict[str, Any]:
    """One round of elimination as :class:`Elimination` records it."""
    ri, settle = r["ri"], r["settle"]
    return {
        "rules": list(rules),
        "ri": ri.mean,
        "se": ri.se,
        "ci95_low": r["low"],
        "ci95_high": r["high"],
        "settled": settle.settled if settle.known else None,
        "removed": removed,
    }


def _eliminate_sampled(table: Any, weighting: str, min_effect: float, require_settled: bool) -> Elimination:
    """The first round of :func:`eliminate` on a sampled table (see there)."""
    names = list(table.rule_names)
    r = _round(table, weighting, min_effect, require_settled)
    ri, settle = r["ri"], r["settle"]
    withheld = [n for n, m, s in zip(names, r["meets"], r["ok"]) if m and not s]
    candidates = np.flatnonzero(r["meets"] & r["ok"])
    out = names[int(candidates[0])] if candidates.size == 1 else None
    several = tuple(names[int(k)] for k in candidates) if candidates.size > 1 else ()
    first = _record(names, r, out)
    return Elimination(
        () if out is None else (out,),
        (first,),
        ri if out is None else None,
        tuple(withheld),
        min_effect,
        weighting,
        settle.known,
        sampled=True,
        sampled_withheld=several,
    )


def improper_rules(table: Any, weighting: str | None = None) -> tuple[str, ...]:
    """Rules flagged as improper knowledge: those :func:`eliminate` removes (RI below
    -ATOL with its whole 95 % interval over seeds below zero in the game without the rules
    removed before it, and settled), in the order they were removed.  Needs >= 2 seeds."""
    return eliminate(table, weighting).removed


@dataclass(frozen=True, eq=False)
class PairRelations:
    """How each pair of rules combines, averaged over the coalitions of the other rules.

    ``joint`` [P]: the pair's joint contribution v(S+i+j) - v(S); ``first``/``second`` [P]:
    each rule's own contribution v(S+i) - v(S), v(S+j) - v(S); ``interaction`` = joint -
    first - second (with ``interaction_se`` over seeds).  ``relation``: ``"synergy"``
    (interaction > +min_effect: together worth more than the sum), ``"conflict"`` (interaction
    < -min_effect and the pair together worse than either rule alone), ``"substitution"``
    (interaction < -min_effect otherwise: together about as good as the better one alone,
    one can stand in for the other) or ``"independent"``; with >= 2 seeds a label also needs
    |interaction| > 2 se.
    """

    names: tuple[str, ...]  # "a & b"
    pairs: tuple[tuple[str, str], ...]
    joint: np.ndarray
    first: np.ndarray
    second: np.ndarray
    interaction: np.ndarray
    interaction_se: np.ndarray
    relation: tuple[str, ...]
    weighting: str
    min_effect: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None)."""
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


def classify_pair(
    joint: float, first: float, second: float, interaction: float, se: float, min_effect: float = ATOL
) -> str:
    """``"synergy"``, ``"substitution"``, ``"conflict"`` or ``"independent"`` (see :class:`PairRelations`)."""
    if not np.isfinite(interaction) or abs(interaction) <= max(min_effect, 2 * np.nan_to_num(se, nan=0.0)):
        return "independent"
    if interaction > 0:
        return "synergy"
    return "conflict" if joint < min(first, second) else "substitution"


def pair_relations(
    table: Any, weighting: str = "uniform", output: int | str | None = None, *, min_effect: float = ATOL
) -> PairRelations | None:
    """Synergy, substitution or conflict for every pair of rules (see :class:`PairRelations`);
    None for a sampled table, which lacks the coalitions they average over (why:
    :data:`SAMPLED_PAIRS`)."""
    if sampling_of(table) is not None:
        return None
    names, v, _, _ = prepare_values(table, output)
    if len(names) < 2:
        raise KvqError(f"pair relations need at least 2 rules, the table has {len(names)}")
    joint, first, second, sizes = pair_parts(v)
    per_seed = [weighted_mean(t, sizes, weighting) for t in (joint, first, second, joint - first - second)]
    (j, _), (a, _), (b, _), (inter, inter_se) = (mean_se(p) for p in per_seed)
    pairs = tuple(combinations(names, 2))
    relation = tuple(classify_pair(j[k], a[k], b[k], inter[k], inter_se[k], min_effect) for k in range(len(pairs)))
    return PairRelations(
        tuple(f"{p} & {q}" for p, q in pairs), pairs, j, a, b, inter, inter_se, relation, weighting, min_effect
    )


def _paired(v: np.ndarray, k: int, ref: int) -> dict[str, Any]:
    """Gain in decades of mask ``k`` over mask ``ref`` per seed: mean, se, 95 % interval."""
    d = v[k] - v[ref]
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"gain": None, "se": None, "ci95": None, "seeds": 0}
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    half = float(t975(np.array([d.size - 1]))[0]) * se if d.size > 1 else float("nan")
    return {"gain": mean, "se": se, "ci95": [mean - half, mean + half], "seeds": int(d.size)}


def best_rule_set(table: Any, kept: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The rule subset with the lowest validation error (highest mean value over seeds), and
    its paired gain over seeds (decades; > 0: the best set is better) against all rules and
    against ``kept`` (e.g. :attr:`Elimination.kept`).  JSON-ready.

    The best set is chosen on the validation set that scores it, so its gain is optimistic
    (a winner's curse over 2^n candidates); the paired interval says how sure the
    comparison is, not how the set will do on new data.  A sampled table gives the best of
    the coalitions it trained (``trained``: how many), and says so in ``note``.
    """
    names = tuple(table.rule_names)
    n = len(names)
    sampled = sampling_of(table) is not None
    v = values(table.errors)  # [rows, S]
    complete = np.isfinite(v).all(axis=1)
    if not complete.any():
        raise KvqError("every subset has a diverged training; there is no best rule set")
    mean = np.where(complete, np.nanmean(np.where(np.isfinite(v), v, np.nan), axis=1), -np.inf)
    best = int(np.argmax(mean))

    def number(row: int) -> int:  # the mask number of a row
        return mask_index(table.masks[row]) if sampled else row

    def row_of(rules: tuple[str, ...]) -> int | None:
        mask = [int(r in rules) for r in names]
        return table.row_of(mask) if sampled else mask_index(mask)

    def entry(row: int) -> dict[str, Any]:
        k = number(row)
        return {
            "mask": k,
            "rules": [nm for j, nm in enumerate(names) if k >> j & 1],
            "mse_mean": float(np.mean(table.errors[row])),
        }

    full = row_of(names)
    assert full is not None  # every table holds the all-rules coalition
    out: dict[str, Any] = {"best": entry(best), "all_rules": {**entry(full), **_paired(v, best, full)}}
    if kept is not None:
        k = row_of(tuple(kept))
        if k is not None:
            out["kept_by_elimination"] = {**entry(k), **_paired(v, best, k)}
    out["note"] = (
        "chosen on the validation set it is scored on (optimistic); gain = log10(MSE other / MSE best) per seed"
    )
    if sampled:
        out["trained"] = len(table.masks)
        out["note"] += f"; the best of the {len(table.masks)} trained coalitions, not of all {2**n}"
    return json_ready(out)


@dataclass(frozen=True, eq=False)
class Assessment:
    """Every verdict on one value table, computed once for the printed table, ``results.json``
    and reports: settledness, backward elimination, pair relations (None with one rule or a
    sampled table) and the best rule set; ``notes``: why a verdict is missing or limited
    (for a sampled table: ``"pair_relations"``, ``"elimination"``, ``"best_rule_set"``);
    ``unsure``: the improper rules blamed unsurely (:func:`unsure_blames`)."""

    settledness: Settledness
    elimination: Elimination
    pairs: PairRelations | None
    best: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)
    unsure: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain Python (NaN -> None)."""
        return {
            "settledness": self.settledness.to_dict(),
            "unsettled": list(self.settledness.unsettled) if self.settledness.known else None,
            "capped_share": json_ready(self.settledness.capped_share),
            "elimination": self.elimination.to_dict(),
            "improper": list(self.elimination.removed),
            "improper_unsure": list(self.unsure),
            "pair_relations": None if self.pairs is None else self.pairs.to_dict(),
            "best_rule_set": self.best,
            "notes": dict(self.notes),
        }


def assess(table: Any, weighting: str | None = None) -> Assessment:
    """Settledness, improper rules (backward elimination), pair relations and the best rule
    set of ``table`` (RI with ``weighting``; None: the table's own)."""
    weighting = weighting or own_weighting(table)
    settle = settledness(table, weighting)
    elim = eliminate(table, weighting)
    pairs = pair_relations(table, weighting) if len(table.rule_names) >= 2 else None
    best = best_rule_set(table, elim.kept)
    notes = {}
    if sampling_of(table) is not None:
        notes = {
            "pair_relations": SAMPLED_PAIRS,
            "elimination": f"{SAMPLED_ELIMINATION}: one round only (docs/design.md §3)",
            "best_rule_set": best["note"],
        }
    return Assessment(settle, elim, pairs, best, notes, unsure_blames(table, elim.removed))
