"""Built-in problems of the paper, looked up by name with :func:`get`."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from kvq.core.config import ScanConfig
from kvq.errors import KvqError
from kvq.problems import (
    burgers,
    convection_diffusion,
    equations,
    fourth_order_2d,
    kdv,
    klein_gordon,
    kovasznay,
    poisson_segments,
    tlc,
)
from kvq.problems.rules import Problem
from kvq.problems.spec import Spec

_MODULES: dict[str, ModuleType] = {
    m.SPEC.name: m
    for m in (burgers, convection_diffusion, kdv, klein_gordon, fourth_order_2d, equations, kovasznay, poisson_segments)
}
_MEASURED: dict[str, ModuleType] = {tlc.SPEC.name: tlc}  # built from a data file the user gives


def names(measured: bool = False) -> tuple[str, ...]:
    """Names of the built-in problems: the paper's, in its order, then ``kovasznay`` (11 rules) and
    ``poisson_segments`` (21 rules: too many to enumerate, for the sampled estimators);
    ``measured=True`` adds those built from measurements you give (``tlc``: ``data_file=PATH``)."""
    return tuple(_MODULES) + (tuple(_MEASURED) if measured else ())


def _module(name: str) -> ModuleType:
    if not isinstance(name, str):
        hint = "; a kvq.Problem goes to kvq.scan / kvq.estimate directly" if isinstance(name, Problem) else ""
        raise KvqError(
            f"expected the name of a built-in problem ({', '.join(names())}); got a {type(name).__name__}{hint}"
        )
    known = {**_MODULES, **_MEASURED}
    if name not in known:
        raise KvqError(f"unknown problem {name!r}; known problems: {', '.join(names(measured=True))}")
    return known[name]


def spec(name: str) -> Spec:
    """The fixed description of built-in problem ``name`` (rules, splits, presets)."""
    return _module(name).SPEC


def get(name: str, **options: Any) -> Problem:
    """Build the built-in problem ``name`` (e.g. ``get("burgers", n_data=100, noise=10)``).

    Options: ``n_data`` (observations, 0 to 10 000), ``noise`` (% of the target's std),
    ``split`` (see ``spec(name).splits``), ``seed``, ``n_valid``, ``noisy_validation``;
    ``tlc`` also needs ``data_file`` (its measurements, e.g. ``get("tlc", data_file="TLC.xlsx")``).
    """
    factory = _module(name).make
    allowed = inspect.signature(factory).parameters
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise KvqError(f"problem {name!r} has no option(s) {bad}; its options are {sorted(allowed)}")
    return factory(**options)


def config(name: str, preset: str = "quick", **overrides: Any) -> ScanConfig:
    """The scan settings of ``preset`` for built-in problem ``name``: the generic preset
    with the problem's own network and budget (``spec(name).presets``), then ``overrides``."""
    own = spec(name).presets.get(preset, {})
    return ScanConfig.preset(preset, **{**own, **overrides})  # an unknown preset raises there
