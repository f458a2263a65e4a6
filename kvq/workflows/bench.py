"""``kvq bench``: how fast kvq's engine trains rule subsets on this machine.

For one problem and network (default: Burgers with the paper's 5x50 ``sin`` MLP) every
rule subset trains a fixed number of steps, timed after compilation, the passes alternated
so that a drifting machine load hits each alike (median of ``repeats``):

- ``batched``: kvq's engine as a scan runs it (subsets grouped by their expensive rules,
  each group one ``vmap``-ped program, split between the devices);
- ``one at a time``: kvq's own loop of single-subset trainings, compiled per subset (the
  rules that are off are never built): what a script that trains the 2^n models one after
  another gets from the same code.

Also: the FLOPs XLA counts for one training step of each program (``cost_analysis``) and
the FLOP/s the batched pass achieves with them, against a measured float32 matmul peak;
subset-steps/s as the batch grows (``max_batch`` per device) and with the number of
devices; the peak memory (the device's allocator on accelerators, the process's resident
set on a CPU).  No training is checked for convergence here: these are speed figures.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kvq import problems
from kvq.core.coalitions import all_masks
from kvq.core.config import ScanConfig
from kvq.core.train import take
from kvq.engine.batched import Engine
from kvq.engine.runner import environment
from kvq.errors import KvqError
from kvq.problems.rules import Problem

Progress = Callable[[str], None]


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of an ``n`` x ``n`` matmul on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def step_flops(engine: Engine, pattern: tuple[int, ...] | None = None) -> float:
    """XLA-counted FLOPs of one training step (gradient and optimizer update) of one item of
    ``pattern``'s program (default: every expensive rule on); the cheap rules are all
    computed, as they are when items train in lock-step."""
    obj, opt = engine.programs.objective, engine.programs.optimizer
    params = jax.tree.map(lambda a: a[0], engine.params0)
    state = opt.init(params)
    mask = jnp.ones(len(engine.problem.rules), jnp.float32)
    pattern = tuple(engine.expensive) if pattern is None else pattern
    data = (engine.xs[0], engine.ys[0])

    def step(p, s):
        g = jax.grad(lambda q: obj(q, mask, data, engine.points, pattern))(p)
        return opt.update(g, s, p)

    analysis: Any = jax.jit(step).lower(params, state).cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float((analysis or {}).get("flops", float("nan")))


def peak_memory() -> int | None:
    """Peak bytes: the default device's allocator where it reports one, else the process's
    largest resident set (a CPU run shares the host's memory)."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(rss if platform.system() == "Darwin" else rss * 1024)


class Pass:
    """Every subset of ``problem`` (one seed) for ``config.steps`` steps, compiled; calling
    it times one pass after compilation (seconds, and seconds and FLOPs per program)."""

    def __init__(self, problem: Problem, config: ScanConfig) -> None:
        self.engine = Engine.prepare(problem, config)
        self.steps = config.steps
        self.batches = list(self.engine.batches(all_masks(len(problem.rules))))
        self.compile_s = self.engine.clock.compile_s
        self.items = sum(len(b.mask_of) for b in self.batches)
        flops = {p: step_flops(self.engine, p) for p in {b.pattern for b in self.batches}}
        self.flops = sum(flops[b.pattern] * len(b.mask_of) for b in self.batches) * self.steps
        self()  # the first call allocates and warms up

    def __call__(self) -> float:
        t0 = time.perf_counter()
        for b in self.batches:
            state = self.engine.placement.put(take(b.state, b.order), split=True)
            jax.block_until_ready(b.block(state, *b.args)[0].params)
        return time.perf_counter() - t0


def _config(problem: str | Problem, preset: str, collocation: int | None, steps: int, **extra: Any) -> ScanConfig:
    base: dict[str, Any] = {"seeds": 1, "steps": steps, "check_every": steps, "warm_start": False}
    base.update(pretrain_steps=0, collocation=collocation)
    if isinstance(problem, str):
        return problems.config(problem, preset, **base, **extra)
    return ScanConfig.preset(preset, **base, **extra)


def bench(
    problem: str | Problem = "burgers",
    preset: str = "paper",
    *,
    collocation: int | None = 1000,
    steps: int = 100,
    repeats: int = 3,
    batch_sizes: Sequence[int] = (1, 4, 16),
    devices: Sequence[int] | None = None,
    peak: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time kvq's engine on ``problem`` (a built-in name or a :class:`kvq.Problem`) with
    ``preset``'s network and optimizer, ``collocation`` points per rule (None: all) and
    ``steps`` steps per subset; see the module docstring.  ``devices``: the device counts
    to compare (default: 1 and every power of two up to this process's devices).  Returns
    a JSON-ready dict (:func:`bench_table` prints it)."""
    if steps < 1 or repeats < 1:
        raise KvqError(f"steps and repeats must be >= 1; got steps={steps}, repeats={repeats}")
    say = progress or (lambda text: None)
    built = problems.get(problem) if isinstance(problem, str) else problem
    names = tuple(built.rule_names)
    n_local = len(jax.local_devices())
    devices = list(devices) if devices is not None else [d for d in (1, 2, 4, 8, 16, 32) if d <= n_local]
    if any(d < 1 or d > n_local for d in devices):
        raise KvqError(f"device counts must be in 1..{n_local} (this process's devices); got {list(devices)}")
    modes = {
        "batched": _config(problem, preset, collocation, steps),  # every device, as a scan runs
        "one_at_a_time": _config(problem, preset, collocation, steps, grouping=names, max_batch=1, devices=1),
    }
    passes: dict[str, Pass] = {}
    for mode, config in modes.items():
        say(f"compiling {mode.replace('_', ' ')}")
        passes[mode] = Pass(built, config)
    seconds: dict[str, list[float]] = {m: [] for m in passes}
    for rep in range(repeats):
        for mode, run in passes.items():
            seconds[mode].append(run())
            say(f"repeat {rep + 1}/{repeats}: {mode.replace('_', ' ')} {seconds[mode][-1]:.2f} s")
    subsets = passes["batched"].items
    out: dict[str, Any] = {
        "problem": built.name,
        "rules": list(names),
        "preset": preset,
        "network": {k: getattr(modes["batched"], k) for k in ("width", "depth", "activation")},
        "collocation": collocation,
        "steps_per_subset": steps,
        "subsets": subsets,
        "repeats": repeats,
        "modes": {},
    }
    for mode, run in passes.items():
        med = statistics.median(seconds[mode])
        out["modes"][mode] = {
            "seconds_median": med,
            "seconds": seconds[mode],
            "subset_steps_per_s": subsets * steps / med,
            "compile_s": run.compile_s,
            "flops_per_s": run.flops / med,
            "devices": run.engine.n_devices,
        }
    batched = out["modes"]["batched"]
    out["speedup_batched_vs_one_at_a_time"] = (
        batched["subset_steps_per_s"] / out["modes"]["one_at_a_time"]["subset_steps_per_s"]
    )
    out["flops_per_step_all_rules"] = step_flops(passes["batched"].engine)
    if peak:
        say("measuring the float32 matmul peak")
        out["matmul_peak_flops_per_s"] = matmul_peak()
        out["batched_share_of_peak"] = batched["flops_per_s"] / out["matmul_peak_flops_per_s"]
    out["batch_scaling"] = []
    for size in batch_sizes:
        say(f"batch of {size} per device")
        run = Pass(built, _config(problem, preset, collocation, steps, max_batch=size, devices=1))
        t = statistics.median(run() for _ in range(repeats))
        out["batch_scaling"].append({"max_batch": size, "subset_steps_per_s": subsets * steps / t})
    out["device_scaling"] = []
    for d in devices:
        say(f"{d} device(s)")
        run = Pass(built, _config(problem, preset, collocation, steps, devices=d))
        t = statistics.median(run() for _ in range(repeats))
        out["device_scaling"].append({"devices": d, "subset_steps_per_s": subsets * steps / t})
    out["peak_memory_bytes"] = peak_memory()
    out["environment"] = environment()
    out["cpu_cores"] = _cores()
    return out


def _cores() -> int | None:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()


def bench_table(result: dict[str, Any]) -> str:
    """:func:`bench`'s result as text for the terminal."""
    env = result["environment"]
    net = result["network"]
    points = "all" if result["collocation"] is None else f"{result['collocation']:,}"
    head = (
        f"kvq bench: {result['problem']} ({len(result['rules'])} rules, {result['subsets']} subsets), "
        f"{result['preset']} network {net['depth']}x{net['width']} {net['activation']}, {points} collocation "
        f"points per rule, {result['steps_per_subset']} steps per subset, median of {result['repeats']}"
    )
    where = (
        f"machine: {env['device']} ({env['platform']}, {env['device_count']} device(s), "
        f"{result.get('cpu_cores') or '?'} CPU cores), jax {env['versions'].get('jax')}"
    )
    lines = [
        head,
        where,
        "",
        f"{'mode':<22} {'subset-steps/s':>15} {'vs batched':>11} {'GFLOP/s':>9} {'compile s':>10}",
    ]
    base = result["modes"]["batched"]["subset_steps_per_s"]
    for mode, m in result["modes"].items():
        lines.append(
            f"{mode.replace('_', ' '):<22} {m['subset_steps_per_s']:>15,.0f} {m['subset_steps_per_s'] / base:>10.2f}x "
            f"{m['flops_per_s'] / 1e9:>9.2f} {m['compile_s']:>10.1f}"
        )
    lines.append("")
    lines.append(f"batched vs one at a time: {result['speedup_batched_vs_one_at_a_time']:.2f}x")
    lines.append(f"XLA-counted FLOPs of one training step with every rule on: {result['flops_per_step_all_rules']:.3g}")
    if "matmul_peak_flops_per_s" in result:
        lines.append(
            f"batched: {result['modes']['batched']['flops_per_s'] / 1e9:.2f} GFLOP/s = "
            f"{100 * result['batched_share_of_peak']:.1f}% of the measured float32 matmul peak "
            f"({result['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s)"
        )
    if result["batch_scaling"]:
        lines.append(
            "batch size (per device): "
            + ", ".join(f"{r['max_batch']}: {r['subset_steps_per_s']:,.0f}/s" for r in result["batch_scaling"])
        )
    if result["device_scaling"]:
        lines.append(
            "devices: "
            + ", ".join(f"{r['devices']}: {r['subset_steps_per_s']:,.0f}/s" for r in result["device_scaling"])
        )
    if result.get("peak_memory_bytes"):
        lines.append(f"peak memory: {result['peak_memory_bytes'] / 2**20:,.0f} MiB")
    return "\n".join(lines)


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with numpy scalars made plain numbers (for ``json.dump``)."""
    return jax.tree.map(lambda v: v.item() if isinstance(v, np.generic) else v, result)
