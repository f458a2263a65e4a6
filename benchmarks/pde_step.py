"""Burgers PDE training-step variants on this machine (what the defaults are chosen from).

1. Derivative path for u, u_x, u_xx, u_t of the paper's 5x50 sin MLP at P points, one full
   training step (gradient of the PDE loss + update), ms per step:
     taylor  kvq.derivatives.partials: one forward Taylor pass through the MLP (default)
     jvp     nested jax.jvp per point (kvq's fast sin)
     jet     jax.experimental.jet + jvp per point (jnp.sin: jet cannot trace custom-JVP sin)
     grad    nested reverse mode per point, as the paper's PyTorch code differentiates
2. Batch layout of 8 PDE-on trainings in one program: all in lock-step (vmap) vs one after
   another (lax.map, vectorize=1), ms per subset-step.
3. (``--orders``) The same derivative paths for every built-in PDE's own residual and paper
   network: u_xxx (KdV), u_tt and u_xx (Klein-Gordon), u_xx and u_yyyy (2-D fourth order).

  python benchmarks/pde_step.py [--points 1000 4000]
  python benchmarks/pde_step.py --orders [--points 1000]
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
from kvq.core.coalitions import all_masks  # noqa: E402
from kvq.core.derivatives import partials  # noqa: E402
from kvq.problems import burgers, fourth_order_2d, kdv, klein_gordon  # noqa: E402
from kvq.problems.burgers import NU  # noqa: E402
from kvq.engine.batched import Engine  # noqa: E402
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
    return _alternating_ms({m: derivative_steps(m, points) for m in methods}, rounds)


def _alternating_ms(compiled: dict, rounds: int) -> dict[str, float]:
    """Median ms per step of each compiled ``(fn, params)`` (STEPS steps a call), timed in
    alternating rounds so machine noise hits every variant alike."""
    samples: dict[str, list[float]] = {m: [] for m in compiled}
    for _ in range(rounds):
        for m, (fn, params) in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params))
            samples[m].append(1e3 * (time.perf_counter() - t0) / STEPS)
    return {m: statistics.median(v) for m, v in samples.items()}


class _Via:
    """A point function whose whole-batch derivatives come from ``partials(..., method)``:
    routes a problem's own residual (which asks for the default path) through ``method``."""

    has_taylor = True

    def __init__(self, model: knn.PointModel, method: str) -> None:
        self.model, self.method = model, method

    def __call__(self, p):
        return self.model(p)

    def taylor(self, points, orders):
        return partials(self.model, points, orders, self.method)


ORDER_CASES = {  # residual, its derivatives, the paper's network (depth, width, activation)
    "kdv (u_xxx, u_t)": (kdv, 5, 50, "sin"),
    "klein_gordon (u_xx, u_tt)": (klein_gordon, 5, 50, "sin"),
    "fourth_order_2d (u_xx, u_yyyy)": (fourth_order_2d, 4, 32, "tanh"),
    "burgers (u_xx, u_t)": (burgers, 5, 50, "sin"),
}


def orders_ms(points: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median ms per training step of each problem's PDE loss under each derivative path."""
    methods = ("taylor", "jvp", "jet", "grad")
    out = {}
    for case, (module, depth, width, act) in ORDER_CASES.items():
        pts = jnp.asarray(module.make_rules(64, 8)[0].points[:points], jnp.float32)
        pts = jnp.tile(pts, (-(-points // len(pts)), 1))[:points]
        compiled = {}
        for m in methods:
            a = "jnp_sin" if (m == "jet" and act == "sin") else act  # jet cannot trace custom-JVP sin
            init, apply = knn.make_mlp(width, depth, 2, 1, a)
            params = init(jax.random.PRNGKey(0))
            loss = lambda prm, m=m, apply=apply: module.pde_loss(_Via(knn.PointModel(apply, prm), m), pts)  # noqa: E731
            body = lambda i, q, loss=loss: jax.tree.map(lambda a, g: a - 1e-6 * g, q, jax.grad(loss)(q))  # noqa: E731
            fn = jax.jit(lambda prm, body=body: jax.lax.fori_loop(0, STEPS, body, prm))
            jax.block_until_ready(fn(params))
            compiled[m] = (fn, params)
        out[case] = _alternating_ms(compiled, rounds)
        print(points, case, out[case], flush=True)
    return out


def _orders_main(points: list[int]) -> int:
    m = machine()
    result = {"machine": m, "ms_per_step": {p: orders_ms(p) for p in points}}
    lines = [f"## Derivative paths for every PDE residual — {m['accelerator']} ({m['cpu']}, {m['cores']} cores), {m['date']}",
             "", f"jax {m['jax']}; each problem's paper network; one training step of the PDE loss alone, ms (median "
             "of alternating rounds); `python benchmarks/pde_step.py --orders`", "",
             "| points | residual | taylor (default) | nested jvp | jet | nested grad |", "|---|---|---|---|---|---|"]
    for p, cases in result["ms_per_step"].items():
        for case, d in cases.items():
            best = min(d, key=d.get)
            cells = [f"**{d[k]:.2f}**" if k == best else f"{d[k]:.2f}" for k in ("taylor", "jvp", "jet", "grad")]
            lines.append(f"| {p} | {case} | " + " | ".join(cells) + " |")
    lines += ["", "jet runs the `sin` networks with `jnp.sin` (it cannot trace kvq's custom-JVP `fast_sin`); bold: fastest."]
    name = f"pde_orders-{m['platform']}"
    write_json(name, result)
    update_section(name, "\n".join(lines))
    print("\n".join(lines))
    return 0


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
    ap.add_argument("--points", type=int, nargs="+", default=None)
    ap.add_argument("--orders", action="store_true", help="time every PDE residual's derivative paths instead")
    args = ap.parse_args(argv)
    if args.orders:
        return _orders_main(args.points or [1000])
    args.points = args.points or [1000, 4000]
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
