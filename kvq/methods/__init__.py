"""The ways kvq fills a value table, each one object with one interface (docs/design.md §6).

- :class:`Exact`: every subset of the rules trained for every seed (the paper's protocol).
- :class:`Finetune`: one anchor per seed, then ``K`` short trainings per mask from it.
- :class:`Newton`: an all-rules anchor, then one Newton step per mask (no training per mask).
- :class:`Sampled`: only sampled coalitions trained, the importances estimated from them.

A method states what identifies its result (:meth:`record`) and its trainings
(:meth:`training`), checks that it applies (:meth:`check`) and, given a prepared engine
(:class:`kvq.engine.Engine`, warm start done), returns an :class:`Outcome`: the trained
table and what the result records about it.  :mod:`kvq.workflows.pipeline` does everything around
that, once for every method.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kvq.core.newton import curvature_matvec, newton_directions, newton_steps, rule_gradients, shift_coefficients
from kvq.errors import KvqError
from kvq.methods.anchored import ANCHORS, CURVATURES, SOLVES, Finetune, Newton, default_finetune_steps
from kvq.methods.base import EXACT_RULES, Outcome, Tabulated, tabulate, tabulate_params, too_many_rules
from kvq.methods.exact import Exact
from kvq.methods.sampled import PROXIES, PROXY_CHUNK, PROXY_EXACT_RULES, Sampled

METHODS = ("exact", "finetune", "newton")
"""The methods :func:`method_for` builds by name (sampled coalitions are chosen with ``coalitions=``)."""
SETTINGS: dict[str, type] = {"finetune": Finetune, "newton": Newton}

Method = Exact | Finetune | Newton | Sampled


def method_for(
    method: str = "exact",
    *,
    coalitions: str | None = None,
    budget: int | None = None,
    target_se: float | None = None,
    sample_seed: int = 0,
    proxy: str | None = None,
    proxy_budget: int | None = None,
    **settings: Any,
) -> Method:
    """The method object that :func:`kvq.estimate`'s arguments name, validated."""
    if coalitions is not None:
        if method != "exact" or settings:
            raise KvqError(
                f"sampled coalitions are trained from the warm start (method 'exact'); got method {method!r}"
                + (f" with settings {sorted(settings)}" if settings else "")
            )
        if budget is None:
            raise KvqError("coalitions= needs budget=B: at most B distinct coalitions are trained")
        return Sampled(coalitions, budget, target_se, sample_seed, proxy, proxy_budget)
    if proxy is not None:
        raise KvqError("proxy= corrects sampled coalitions: give coalitions= and budget= too")
    if method not in METHODS:
        raise KvqError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "exact":
        if settings:
            raise KvqError(f"method 'exact' takes no estimator settings; got {sorted(settings)}")
        return Exact()
    cls = SETTINGS[method]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise KvqError(f"method {method!r} has no setting(s) {unknown}; its settings are {known}")
    return cls(**settings)


def settings_for(method: str, **settings: Any) -> Finetune | Newton | None:
    """The validated settings object of ``method`` (``None`` for ``"exact"``)."""
    chosen = method_for(method, **settings)
    return None if isinstance(chosen, Exact) else chosen  # type: ignore[return-value]


__all__ = [
    "ANCHORS",
    "CURVATURES",
    "EXACT_RULES",
    "METHODS",
    "PROXIES",
    "PROXY_CHUNK",
    "PROXY_EXACT_RULES",
    "SOLVES",
    "Exact",
    "Finetune",
    "Method",
    "Newton",
    "Outcome",
    "Sampled",
    "Tabulated",
    "curvature_matvec",
    "default_finetune_steps",
    "method_for",
    "newton_directions",
    "newton_steps",
    "rule_gradients",
    "settings_for",
    "shift_coefficients",
    "tabulate",
    "tabulate_params",
    "too_many_rules",
]
