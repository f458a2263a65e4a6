"""Built-in problems of the paper, looked up by name with :func:`get`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from kvq.errors import KvqError
from kvq.problems import burgers
from kvq.rules import Problem

_REGISTRY: dict[str, Callable[..., Problem]] = {
    "burgers": burgers.make,
}


def names() -> tuple[str, ...]:
    """Names of the built-in problems."""
    return tuple(sorted(_REGISTRY))


def get(name: str, **options: Any) -> Problem:
    """Build the built-in problem ``name`` (e.g. ``get("burgers", n_data=100, noise=10)``)."""
    if name not in _REGISTRY:
        raise KvqError(f"unknown problem {name!r}; known problems: {', '.join(names())}")
    factory = _REGISTRY[name]
    allowed = inspect.signature(factory).parameters
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise KvqError(f"problem {name!r} has no option(s) {bad}; its options are {sorted(allowed)}")
    return factory(**options)
