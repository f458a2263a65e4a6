"""Planning a run before anything trains: the rules' points and what each costs, which rules are
expensive enough to get programs of their own (docs/design.md §5), the memory a batch may use,
and the checks that name a wrong input or a broken rule before any compile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kvq.core.config import ScanConfig
from kvq.core.nn import PointModel
from kvq.core.train import Objective
from kvq.errors import KvqError
from kvq.problems.rules import Problem

EXPENSIVE_SHARE = 0.25  # a rule costing at least this share of all rules' FLOPs is "expensive"
MAX_EXPENSIVE = 3  # at most 2^3 = 8 compiled programs per scan
COLLOCATION_SEED = 7
MEMORY_SHARE = 0.5  # an automatic max_batch plans for at most this share of the free memory
ALWAYS_FITS = 8  # a batch this small is never split (skips the memory estimate's compile)


def available_memory() -> int | None:
    """Free memory (bytes) of the default device: the accelerator's free memory, or on
    a CPU the host's available memory (Linux ``MemAvailable``, capped by a cgroup limit).
    ``None`` where it cannot be read."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return None
    free = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            free.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(min(free), 0) if free else None


def rule_points(problem: Problem, cap: int | None) -> tuple[jax.Array, ...]:
    """Each rule's points as float32, subsampled (fixed draw) to at most ``cap`` rows."""
    rng = np.random.default_rng(COLLOCATION_SEED)
    out = []
    for rule in problem.rules:
        pts = rule.points
        if cap is not None and len(pts) > cap:
            pts = pts[np.sort(rng.choice(len(pts), size=cap, replace=False))]
        out.append(jnp.asarray(pts, jnp.float32))
    return tuple(out)


def rule_costs(objective: Objective, params: Any, points: tuple[jax.Array, ...]) -> np.ndarray:
    """FLOPs of one gradient step of each rule's loss (XLA cost analysis), shape [n]."""
    costs = []
    for loss, pts in zip(objective.losses, points):
        f = jax.jit(jax.grad(lambda p, q, loss=loss: loss(lambda z: objective.apply(p, z), q)))
        analysis = f.lower(params, pts).cost_analysis()
        if isinstance(analysis, list):  # older jax returns one dict per computation
            analysis = analysis[0]
        costs.append(float((analysis or {}).get("flops", 0.0)))
    return np.asarray(costs)


def choose_expensive(
    problem: Problem, grouping: str | tuple[str, ...], costs: Callable[[], np.ndarray]
) -> tuple[int, ...]:
    """Indices of the rules whose on/off pattern splits the masks into programs."""
    names = problem.rule_names
    if grouping == "none":
        return ()
    if grouping != "auto":
        unknown = sorted(set(grouping) - set(names))
        if unknown:
            raise KvqError(f"grouping names unknown rule(s) {unknown}; the rules are {list(names)}")
        return tuple(i for i, n in enumerate(names) if n in grouping)
    c = costs()
    share = c / max(c.sum(), 1.0)
    order = [int(i) for i in np.argsort(-c) if share[i] >= EXPENSIVE_SHARE]
    return tuple(sorted(order[:MAX_EXPENSIVE]))


def check_rule_outputs(problem: Problem, apply: Callable, params: Any, points: tuple[jax.Array, ...]) -> None:
    """Every rule's loss must be a finite scalar at the initial weights ``params`` (one
    model): the shapes are checked first (nothing compiled), then every loss is evaluated
    once (one small compiled call), so a rule written wrongly fails here with its name
    instead of deep inside training."""
    for rule, pts in zip(problem.rules, points):
        try:
            out = jax.eval_shape(lambda p, q, loss=rule.loss: loss(PointModel(apply, p), q), params, pts)
        except Exception as e:
            raise KvqError(
                f"rule {rule.name!r} failed on its {pts.shape[0]} points: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:300]}"
            ) from e
        if getattr(out, "shape", None) != ():
            raise KvqError(
                f"rule {rule.name!r}: its loss must return a scalar, but returned shape "
                f"{getattr(out, 'shape', type(out).__name__)}; return a mean (e.g. jnp.mean(r ** 2)), or give "
                f"the per-point values as kvq.Rule({rule.name!r}, points=..., residual=f) and kvq takes their mean square"
            )
    losses = jax.jit(
        lambda p: jnp.stack(
            [
                r.loss(PointModel(apply, p), q)  # type: ignore[misc]
                for r, q in zip(problem.rules, points)
            ]
        )
    )
    values = np.asarray(losses(params))
    bad = [f"{r.name!r} ({v})" for r, v in zip(problem.rules, values) if not np.isfinite(v)]
    if bad:
        raise KvqError(
            f"rule loss(es) not finite at the initial weights: {', '.join(bad)}; a loss must be a finite "
            "number for any weights (look for a log or sqrt of a negative, a division by zero, or NaN "
            "in the rule's points or constants)"
        )


def check_inputs(problem: Any, config: Any) -> None:
    """A clear error unless ``problem`` is a :class:`Problem` and ``config`` a :class:`ScanConfig`."""
    if not isinstance(problem, Problem):
        raise KvqError(f"scan needs a kvq.Problem; got {type(problem).__name__}")
    if not isinstance(config, ScanConfig):
        raise KvqError(f"config must be a kvq.ScanConfig; got {type(config).__name__}")


def plan_rules(
    problem: Problem, config: ScanConfig, apply: Callable, params: Any, group: bool = True
) -> tuple[tuple[jax.Array, ...], tuple[int, ...]]:
    """Every rule's points (:func:`rule_points`), checked to give a finite scalar loss at the
    initial weights ``params`` of one model (:func:`check_rule_outputs`), and the expensive
    rules whose on/off pattern splits the masks into programs (:func:`choose_expensive`;
    none with ``group=False``, for runs that train one mask)."""
    points = rule_points(problem, config.collocation)
    check_rule_outputs(problem, apply, params, points)
    losses = tuple(r.loss for r in problem.rules if r.loss is not None)  # Rule sets every loss
    probe = Objective(apply, losses, tuple(r.weight for r in problem.rules), frozenset())  # the rules' costs only
    grouping = config.grouping if group else "none"
    return points, choose_expensive(problem, grouping, lambda: rule_costs(probe, params, points))
