"""Everything kvq reports about one value table, computed once (docs/design.md §3).

:func:`summarize` computes the importances (RI in each weighting the table supports, FI, the
dependence profile and pair interactions, per output too), the verdicts
(:func:`kvq.game.verdicts.assess`) and the trajectory over the budget.  ``results.json``, the
printed table, the HTML/Markdown report, the figures and sweep summaries all read this one
:class:`Summary`.  What a table cannot give is a value, not a warning: ``not_available``
says what is missing and why (a sampled table has its sampler's RI alone), and ``missing``
lists the masks with a missing error (a diverged training).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from kvq.game.importance import (
    DependenceProfile,
    Importance,
    dependence_profile,
    full_importance,
    interactions,
    own_weighting,
    rule_importance,
    sampled_estimates,
    trajectory,
)
from kvq.game.measures import WEIGHTINGS
from kvq.game.table import json_ready
from kvq.game.verdicts import Assessment, assess


@dataclass(frozen=True, eq=False)
class Measures:
    """The importances of one error column (the overall error, or one output's): ``ri`` by
    weighting (only the weightings the table gives), ``fi``, and where the table holds every
    coalition the dependence profile and the pair interactions by weighting."""

    ri: dict[str, Importance]
    fi: Importance
    dependence: DependenceProfile | None = None
    interactions: dict[str, Importance] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, keyed as ``results.json`` has always been (``ri_uniform``, ``fi``, ...)."""
        out: dict[str, Any] = {f"ri_{w}": r.to_dict() for w, r in self.ri.items()}
        out["fi"] = self.fi.to_dict()
        out["dependence"] = None if self.dependence is None else self.dependence.to_dict()
        out.update({f"interactions_{w}": i.to_dict() for w, i in self.interactions.items()})
        return out


@dataclass(frozen=True, eq=False)
class Summary:
    """One value table's importances and verdicts (see the module docstring).

    ``overall``: the :class:`Measures` of the overall error; ``per_output``: of each output's
    error (tables with several outputs); ``weighting``: the RI the verdicts use;
    ``plain``: a proxy-adjusted sampled table's estimate without the proxy (else None);
    ``assessment``: every verdict; ``trajectory``: RI and FI over the budget (None without
    checks); ``missing``: mask numbers with a missing error in some seed; ``not_available``:
    what the table cannot give, and why."""

    overall: Measures
    per_output: dict[str, Measures]
    weighting: str
    plain: Importance | None
    assessment: Assessment
    trajectory: dict[str, Any] | None
    missing: tuple[int, ...]
    not_available: dict[str, str]
    robustness: dict[str, Any] = field(default_factory=dict)

    @property
    def ri(self) -> Importance:
        """The RI the verdicts use (``weighting``)."""
        return self.overall.ri[self.weighting]

    @property
    def fi(self) -> Importance:
        return self.overall.fi

    def importance_dict(self) -> dict[str, Any]:
        """The ``importance`` entry of ``results.json``."""
        out = self.overall.to_dict()
        for w in WEIGHTINGS:
            out.setdefault(f"ri_{w}", None)
        if self.per_output:
            out["per_output"] = {o: m.to_dict() for o, m in self.per_output.items()}
        if self.plain is not None:
            out["ri_plain"] = self.plain.to_dict()
        if self.not_available:
            out["not_available"] = dict(self.not_available)
        out["improper"] = list(self.assessment.elimination.removed)
        out["improper_unsure"] = list(self.assessment.unsure)
        out["missing_masks"] = list(self.missing)
        return out


def _measures(table: Any, output: str | None, complete: bool, weightings: tuple[str, ...]) -> Measures:
    if complete:
        ri = {w: rule_importance(table, w, output) for w in weightings}
        pairs = {w: interactions(table, w, output) for w in weightings} if table.n_rules >= 2 else {}
        return Measures(ri, full_importance(table, output), dependence_profile(table, output), pairs)
    estimate = sampled_estimates(table, output)[0]
    return Measures({estimate.weighting: estimate}, full_importance(table, output))


_SUMMARIES: weakref.WeakKeyDictionary[Any, dict[str, Summary]] = weakref.WeakKeyDictionary()
"""Each table's summaries by weighting: a table is immutable, so its summary is computed once."""


def summarize(table: Any, weighting: str | None = None) -> Summary:
    """The :class:`Summary` of ``table`` (a :class:`kvq.ValueTable` or result); the verdicts
    use RI with ``weighting`` (None: the table's own, uniform for a complete table).
    Computed once per table and weighting (kept while the table lives)."""
    weighting = weighting or own_weighting(table)
    known = _SUMMARIES.setdefault(table, {})
    if weighting not in known:
        known[weighting] = _summarize(table, weighting)
    return known[weighting]


def _summarize(table: Any, weighting: str) -> Summary:
    complete = getattr(table, "sampling", None) is None
    own = own_weighting(table)
    not_available: dict[str, str] = {}
    weightings: tuple[str, ...] = WEIGHTINGS
    if complete:
        plain = None
    else:
        weightings = (own,)
        why = f"needs every coalition; this table holds {len(table.masks)} of {2**table.n_rules} (sampled)"
        other = [w for w in WEIGHTINGS if w != own]
        not_available = {**{f"ri_{w}": why for w in other}, "dependence": why, "interactions": why}
        plain = sampled_estimates(table)[1]
    overall = _measures(table, None, complete, weightings)
    outputs = tuple(getattr(table, "output_names", ()) or ())
    per_output = {}
    if getattr(table, "errors_by_output", None) is not None and len(outputs) > 1:
        per_output = {o: _measures(table, o, complete, (own,)) for o in outputs}
    missing = tuple(sorted(set(overall.fi.missing) | set(overall.ri[own].missing)))
    return Summary(
        overall,
        per_output,
        weighting,
        plain,
        assess(table, weighting),
        trajectory(table, weighting),
        missing,
        not_available,
        dict(getattr(table, "robustness", None) or {}),
    )


def json_summary(summary: Summary) -> dict[str, Any]:
    """The summary's verdicts, importances and trajectory as ``results.json`` holds them."""
    return {
        "importance": summary.importance_dict(),
        **summary.assessment.to_dict(),
        "trajectory": json_ready(summary.trajectory),
    }
