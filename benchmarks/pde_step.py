"""Burgers PDE training-step variants on this machine (what the defaults are chosen from).

1. Derivative path for u, u_x, u_xx, u_t of the paper's 5x50 sin MLP at P points, one full
   training step (gradient of the PDE loss + update), ms per step:
     taylor  kvq.derivatives.partials: one forward Taylor pass through the MLP (default)
     jvp     nested jax.jvp per point (kvq's fast sin)
     jet     jax.experimental.jet + jvp per point (jnp.sin: jet cannot trace custom-JVP sin)
     grad    nested reverse mode per point, as the paper's PyTorch code differentiates
2. Batch layout of 8 PDE-on trainings in one program: all in lock-step (vmap) vs one after
   another (lax.map, vectorize=1), ms per subset-step.

  python benchmarks/pde_step.py [--points 1000 4000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
import kvq.nn as knn  # noqa: E402
from kvq.coalitions import all_masks  # noqa: E402
from kvq.derivatives import partials  # noqa: E402
from kvq.problems.burgers import NU  # noqa: E402
from kvq.scan import Engine  # noqa: E402
from results_md import machine, update_section, write_json  # noqa: E402

STEPS = 10


def _time(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def derivative_steps(method: str, points: int):
    """A compiled function running STEPS training steps of the Burgers PDE loss, and its params."""
    init, apply = knn.make_mlp(50, 5, 2, 1, "sin")
    if method == "jet":  # jet cannot trace kvq's custom-JVP sin: a jnp.sin network instead
        apply = knn.MLPApply(knn.MLP(width=50, depth=5, d_out=1, activation="jnp_sin"))
    params = init(jax.random.PRNGKey(0))
    pts = jax.random.uniform(jax.random.PRNGKey(1), (points, 2), minval=jnp.array([-1.0, 0.0]))

    def loss(prm):
        (v, ux, uxx), (_, ut) = partials(knn.PointModel(apply, prm), pts, (2, 1), method)
        return jnp.mean((ut + v * ux - NU * uxx) ** 2)

    def steps(prm):
        body = lambda i, q: jax.tree.map(lambda a, g: a - 1e-4 * g, q, jax.grad(loss)(q))  # noqa: E731
        return jax.lax.fori_loop(0, STEPS, body, prm)

    fn = jax.jit(steps)
    jax.block_until_ready(fn(params))
    return fn, params


def derivative_ms(points: int, rounds: int = 7) -> dict[str, float]:
    """Median ms per step of each derivative method, timed in alternating rounds."""
    methods = ("taylor", "jvp", "jet", "grad")
    compiled = {m: derivative_steps(m, points) for m in methods}
    samples: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            fn, params = compiled[m]
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params))
            samples[m].append(1e3 * (time.perf_counter() - t0) / STEPS)
    return {m: statistics.median(v) for m, v in samples.items()}


def layout_ms(points: int, vectorize: int) -> float:
    """Median ms per subset-step of the 8 PDE-on Burgers masks in one program."""
    problem = kvq.problems.get("burgers", n_data=100)
    config = kvq.ScanConfig.preset("paper", seeds=1, steps=STEPS, check_every=STEPS, warm_start=False,
                                   collocation=points, vectorize=vectorize)
    engine = Engine.prepare(problem, config)
    batch = next(b for b in engine.batches(all_masks(4)) if 0 in b.pattern)
    seconds = _time(lambda: batch.block(batch.state, *batch.args).params, repeats=3)
    return 1e3 * seconds / (STEPS * len(batch.mask_of))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 4000])
    args = ap.parse_args(argv)
    result = {"machine": machine(), "derivatives_ms_per_step": {}, "layout_ms_per_subset_step": {}}
    for p in args.points:
        result["derivatives_ms_per_step"][p] = derivative_ms(p)
        result["layout_ms_per_subset_step"][p] = {"vmap (8 in lock-step)": layout_ms(p, 8),
                                                  "lax.map (one at a time)": layout_ms(p, 1)}
        print(p, result["derivatives_ms_per_step"][p], result["layout_ms_per_subset_step"][p], flush=True)
    m = result["machine"]
    lines = [f"## Burgers PDE step variants — {m['accelerator']} ({m['cpu']}, {m['cores']} cores), {m['date']}", "",
             f"jax {m['jax']}; 5x50 sin MLP; medians of alternating rounds; `python benchmarks/pde_step.py`", "",
             "| points | taylor (default) | nested jvp | jet + jnp.sin | nested grad | 8 in lock-step (vmap) | one at a time (lax.map) |",
             "|---|---|---|---|---|---|---|"]
    for p in args.points:
        d, lay = result["derivatives_ms_per_step"][p], list(result["layout_ms_per_subset_step"][p].values())
        lines.append(f"| {p} | {d['taylor']:.2f} ms | {d['jvp']:.2f} ms | {d['jet']:.2f} ms | {d['grad']:.2f} ms | "
                     f"{lay[0]:.2f} ms | {lay[1]:.2f} ms |")
    lines += ["", "Derivative columns: one training step of the PDE loss alone; layout columns: one subset-step of "
              "the full objective (PDE + IC + BCs + data, Adam) for 8 PDE-on masks in one program."]
    name = f"pde_step-{m['platform']}"
    write_json(name, result)
    update_section(name, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
