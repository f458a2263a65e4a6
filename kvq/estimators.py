"""Old import path of the estimators, kept for a release: the methods live in
:mod:`kvq.methods`, the Newton solves in :mod:`kvq.newton`, and :func:`estimate` in
:mod:`kvq.pipeline` (``kvq.estimate``)."""

from __future__ import annotations

from kvq.methods import (
    METHODS,
    PROXIES,
    PROXY_EXACT_RULES,
    Finetune,
    Newton,
    default_finetune_steps,
    settings_for,
)
from kvq.newton import curvature_matvec, newton_directions, newton_steps, rule_gradients, shift_coefficients
from kvq.pipeline import estimate

__all__ = [
    "METHODS",
    "PROXIES",
    "PROXY_EXACT_RULES",
    "Finetune",
    "Newton",
    "curvature_matvec",
    "default_finetune_steps",
    "estimate",
    "newton_directions",
    "newton_steps",
    "rule_gradients",
    "settings_for",
    "shift_coefficients",
]
