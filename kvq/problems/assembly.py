"""The one ``make`` of every built-in problem, built from what its module declares.

A problem module states its :class:`~kvq.problems.spec.Spec`, its rules, its reference
solution, the points observations and validation points come from and its splits;
:func:`builtin` turns those into ``make(n_data, noise, split, seed, n_valid,
noisy_validation[, wrong]) -> Problem``: option checks, the wrong-rule option, the data
and the :class:`~kvq.problems.rules.Problem` are written here once.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kvq.errors import KvqError
from kvq.problems.rules import Problem, Rule
from kvq.problems.sampling import Pools, assemble, check_options
from kvq.problems.spec import Spec

# (name, default, annotation) of every built-in make's options, in order; ``n_data`` and
# ``n_valid`` take their defaults from the problem
_OPTIONS = (("noise", 0.0, "float"), ("split", "interpolation", "str"), ("seed", 0, "int"))


def check_wrong(spec: Spec, wrong: str | None, options: Mapping[str, Any]) -> None:
    """Validate a problem's ``wrong`` option (a rule that may be replaced by wrong knowledge)."""
    if wrong is not None and wrong not in options:
        raise KvqError(f"problem {spec.name!r} can make these rules wrong: {sorted(options)}; got wrong={wrong!r}")


def mark_wrong(problem: Problem, wrong: str | None, options: Mapping[str, Any]) -> Problem:
    """``problem`` with ``info["wrong"]`` naming the replaced rule and what it now says."""
    if wrong is None:
        return problem
    return dataclasses.replace(problem, info={**problem.info, "wrong": {"rule": wrong, "law": options[wrong][1]}})


def _signature(n_data: int, n_valid: int, wrong: bool) -> inspect.Signature:
    """``make``'s parameters (annotations as strings, as the modules' own defs would show them)."""
    options = [
        ("n_data", n_data, "int"),
        *_OPTIONS,
        ("n_valid", n_valid, "int"),
        ("noisy_validation", False, "bool"),
        *([("wrong", None, "str | None")] if wrong else []),
    ]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, kind, default=d, annotation=a) for name, d, a in options]
    return inspect.Signature(params, return_annotation="Problem")


def builtin(
    spec: Spec,
    *,
    rules: Callable[..., tuple[Rule, ...]],
    reference: Callable[[np.ndarray], np.ndarray],
    points: Callable[[int], np.ndarray],
    splits: Callable[[np.ndarray], Pools],
    doc: str,
    n_valid: int = 10_000,
    wrong: Mapping[str, tuple[Any, str]] | None = None,
) -> Callable[..., Problem]:
    """The problem factory ``make`` of a built-in problem, from its declarations.

    - ``rules()``: the problem's rules in ``spec`` order (``rules(wrong=name)`` with one of
      them replaced by the wrong law ``wrong[name] = (law, description)``);
    - ``reference(points [G, d_in]) -> [G, d_out]``: the exact (or reference) solution;
    - ``points(n_valid) -> [G, d_in]``: where observations and validation points come from
      (most problems: a fixed grid, whatever ``n_valid``);
    - ``splits(points) -> {split: (train_pool, valid_pool)}`` (boolean [G] each);
    - ``doc``: ``make``'s docstring; ``n_valid``: its default validation size.

    ``make`` has a real signature (``n_data`` defaults to ``spec.n_data``; ``wrong`` only
    when ``wrong`` names rules) and is reported as the ``make`` of ``rules``'s module.
    """
    laws: Mapping[str, tuple[Any, str]] = wrong or {}
    signature = _signature(spec.n_data, n_valid, bool(laws))

    def make(*args: Any, **kwargs: Any) -> Problem:
        options = signature.bind(*args, **kwargs)
        options.apply_defaults()
        o = options.arguments
        replaced = o.get("wrong")
        check_wrong(spec, replaced, laws)
        n_data, noise, seed, valid = check_options(spec, o["n_data"], o["noise"], o["split"], o["seed"], o["n_valid"])
        grid = points(valid)
        problem = assemble(
            spec,
            rules() if replaced is None else rules(wrong=replaced),
            grid,
            reference(grid),
            splits(grid),
            reference=reference,
            n_data=n_data,
            noise=noise,
            split=o["split"],
            seed=seed,
            n_valid=valid,
            noisy_validation=o["noisy_validation"],
        )
        return mark_wrong(problem, replaced, laws)

    make.__signature__ = signature  # type: ignore[attr-defined]
    make.__doc__ = doc
    make.__qualname__ = "make"
    make.__module__ = rules.__module__
    return make
