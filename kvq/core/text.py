"""How kvq writes numbers and labels in its text, reports and figures (one definition each)."""

from __future__ import annotations

import math
from typing import Any

SPLIT_MEANING = {"interpolation": "in-distribution", "extrapolation": "out-of-distribution"}


def num(x: Any) -> float:
    """``x`` as a float; NaN for None or anything that is not a number."""
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def pm(mean: Any, se: Any, digits: int = 3) -> str:
    """``"+0.123 ± 0.045"``; ``"+0.123 ± n/a"`` without a finite se (one seed); ``"n/a"``
    without a finite mean."""
    m, s = num(mean), num(se)
    if not math.isfinite(m):
        return "n/a"
    return f"{m:+.{digits}f} ± {s:.{digits}f}" if math.isfinite(s) else f"{m:+.{digits}f} ± n/a"


def seeds(n: int) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} seed{'s' if n != 1 else ''}"


def split_label(split: Any) -> str:
    """``"extrapolation (out-of-distribution)"`` for the built-in splits, else the name."""
    meaning = SPLIT_MEANING.get(str(split))
    return f"{split} ({meaning})" if meaning else str(split)


def rule_kinds(problem: Any) -> dict[str, str]:
    """``{rule name: "global" | "local" | ""}`` from a problem description (``results.json``'s
    ``problem``, :meth:`kvq.Problem.describe`)."""
    rules = problem.get("rules", []) if isinstance(problem, dict) else []
    return {r["name"]: r.get("kind", "") for r in rules if isinstance(r, dict) and "name" in r}


SCORE_LABELS = {"mse": "MSE", "relative_l2": "relative L2 error", "max_error": "max error"}


def score_label(table: Any) -> str:
    """How the trainings of ``table`` were scored (``config["score"]`` of a result; MSE by default)."""
    config = getattr(table, "config", None)
    name = config.get("score", "mse") if isinstance(config, dict) else "mse"
    return SCORE_LABELS.get(name, str(name))


def recipe_line(table: Any) -> str | None:
    """The training recipe where it is not the paper's (a data loss other than the MSE,
    weighted outputs, an L-BFGS polish); None for the paper's."""
    config = getattr(table, "config", None)
    if not isinstance(config, dict):
        return None
    parts = []
    loss = config.get("data_loss", "mse")
    if loss != "mse":
        parts.append(f"data loss {loss['name'] if isinstance(loss, dict) else loss}")
    if config.get("output_weights"):
        parts.append(f"output weights {config['output_weights']}")
    if config.get("polish_steps"):
        first = config.get("optimizer", "adam")
        first = "an optax optimizer" if isinstance(first, dict) else first
        steps = config.get("steps")
        parts.append(
            f"{first}{'' if steps is None else f' for up to {steps} steps'}, then up to "
            f"{config['polish_steps']} L-BFGS polish steps"
        )
    return "trained with " + ", ".join(parts) if parts else None


def function_name(fn: Any, sep: str = ".", missing_module: str = "?") -> str:
    """``module{sep}qualname`` of a function (of the wrapped one for a ``functools.partial``):
    how results and fingerprints name user code."""
    fn = getattr(fn, "func", fn)
    module = getattr(fn, "__module__", None) or missing_module
    return f"{module}{sep}{getattr(fn, '__qualname__', type(fn).__name__)}"
