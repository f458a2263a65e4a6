"""Throughput of the batched exact scan on Burgers (subset-steps per second).

Compares, in one process and timed alternately (compile time reported apart):
  batched  kvq's engine: all 16 masks in programs grouped by the PDE bit, vmapped;
  (a)      a loop of single-mask jitted trainings that compute every rule, masked by its bit;
  (b)      a loop of single-mask trainings compiled per mask (rules off never built);
  (c)      the paper's way: eager PyTorch, nested autograd.grad, masks one after another.
Same network (the paper's 5x50 sin MLP), loss, optimizer and point counts.  Also reports
the XLA-counted FLOPs of one PDE-on training step, the achieved FLOP/s of the batched PDE
group and the machine's measured float32 matmul peak.

  python benchmarks/throughput.py                       # CPU: 1k and 4k collocation points
  python benchmarks/throughput.py --collocation 40000 --steps 200 --no-torch   # a GPU
  python benchmarks/throughput.py --demo                # also time `kvq scan burgers --preset quick`
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from kvq.workflows.bench import matmul_peak, step_flops  # noqa: E402  (kvq bench measures these too)
from kvq.core.coalitions import all_masks  # noqa: E402
from kvq.engine.batched import Engine  # noqa: E402
from kvq.core.train import take  # noqa: E402
from results_md import machine, update_section, write_json  # noqa: E402

RULES = ("pde", "ic", "bc_left", "bc_right")
MODES = {
    "batched": dict(grouping="auto", max_batch=None),
    "a_mask_multiply_loop": dict(grouping="none", max_batch=1),
    "b_compiled_per_mask_loop": dict(grouping=RULES, max_batch=1),
}


def prepare(problem: kvq.Problem, collocation: int, steps: int, mode: str):
    """Compile a mode's programs; return (callable timing one pass over all masks, compile s, engine)."""
    config = kvq.ScanConfig.preset("paper", seeds=1, steps=steps, check_every=steps, warm_start=False,
                                   collocation=collocation, **MODES[mode])
    engine = Engine.prepare(problem, config)
    batches = list(engine.batches(all_masks(len(RULES))))

    def run() -> dict[str, float]:
        times = {"pde_on": 0.0, "pde_off": 0.0}
        for b in batches:
            t0 = time.perf_counter()
            state = take(b.state, b.order)  # the device row order (one device: as it is)
            jax.block_until_ready(b.block(state, *b.args)[0].params)  # (state, validation errors)
            dt = time.perf_counter() - t0
            # in modes (a)/(b) a batch is one mask; 'pde_on' collects those training the PDE
            pde_on = 0 in b.pattern if engine.expensive else bool(np.asarray(b.args[0])[0, 0])
            times["pde_on" if pde_on else "pde_off"] += dt
        times["total"] = times["pde_on"] + times["pde_off"]
        return times

    run()  # first call: allocation and warm-up
    return run, engine.clock.compile_s, engine


def torch_runner(collocation: int, steps: int):
    try:
        import paper_torch
    except ImportError:
        return None, None
    pts = paper_torch.burgers_points(collocation, n_boundary=200, n_data=100)
    masks = [tuple(int(b) for b in m) for m in all_masks(len(RULES))]

    def run() -> dict[str, float]:
        times = {"pde_on": 0.0, "pde_off": 0.0}
        for m in masks:
            per_step = paper_torch.time_torch_subset_steps(m, pts, steps, warmup=2)
            times["pde_on" if m[0] else "pde_off"] += per_step * steps
        times["total"] = times["pde_on"] + times["pde_off"]
        return times

    return run, paper_torch.torch_version()


def bench_size(collocation: int, steps: int, torch_steps: int, repeats: int, with_torch: bool) -> dict:
    problem = kvq.problems.get("burgers", n_data=100)
    runners, compile_s, flops = {}, {}, None
    for mode in MODES:
        run, c, engine = prepare(problem, collocation, steps, mode)
        runners[mode], compile_s[mode] = run, c
        if mode == "batched":
            flops = step_flops(engine)
    torch_version = None
    if with_torch:
        run, torch_version = torch_runner(collocation, torch_steps)
        if run is not None:
            runners["c_paper_eager_torch"] = run
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in runners}
    for rep in range(repeats):  # alternate the modes so drifting machine load hits all alike
        for mode, run in runners.items():
            samples[mode].append(run())
            print(f"  {collocation} pts rep {rep}: {mode:26s} {samples[mode][-1]['total']:.2f} s", flush=True)
    out = {"collocation": collocation, "steps_per_mask": steps, "torch_steps_per_mask": torch_steps,
           "compile_s": compile_s, "torch": torch_version, "modes": {}}
    for mode, s in samples.items():
        n_steps = torch_steps if mode.startswith("c_") else steps
        med = {k: statistics.median(x[k] for x in s) for k in ("total", "pde_on", "pde_off")}
        out["modes"][mode] = {
            "seconds_median": med,
            "subset_steps_per_s": 16 * n_steps / med["total"],
            "ms_per_pde_on_subset_step": 1e3 * med["pde_on"] / (8 * n_steps),
            "samples_total_s": [x["total"] for x in s],
        }
    batched = out["modes"]["batched"]["subset_steps_per_s"]
    out["speedup_batched_vs"] = {m: batched / v["subset_steps_per_s"] for m, v in out["modes"].items() if m != "batched"}
    pde_s = out["modes"]["batched"]["seconds_median"]["pde_on"]
    out["flops_per_pde_step"] = flops
    out["batched_pde_flops_per_s"] = flops * 8 * steps / pde_s
    return out


def time_demo() -> dict:
    """Wall time of the README's demo command (the quick preset), compilation included."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "kvq.cli", "scan", "burgers", "--preset", "quick",
                               "--out", tmp + "/demo"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"demo failed:\n{proc.stderr}")
    return {"wall_s": wall, "stdout": proc.stdout}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"## Throughput, Burgers exact scan — {m['accelerator']} ({m['cpu']}, {m['cores']} cores), {m['date']}",
        "",
        f"jax {m['jax']}, torch {result['sizes'][0].get('torch') or 'not installed'}; paper network (5x50 sin MLP, Adam), "
        "16 masks x 1 seed, IC/BC 200 points each, 100 observations; median of "
        f"{result['repeats']} alternating repeats; `python benchmarks/throughput.py {' '.join(result['argv'])}`".rstrip(),
        "",
        "| collocation | mode | subset-steps/s | ms per PDE-on subset-step | batched speed-up | compile s |",
        "|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        for mode, v in size["modes"].items():
            speed = "1.00" if mode == "batched" else f"{size['speedup_batched_vs'][mode]:.2f}x"
            comp = f"{size['compile_s'][mode]:.1f}" if mode in size["compile_s"] else "-"
            lines.append(f"| {size['collocation']} | {mode} | {v['subset_steps_per_s']:.1f} | "
                         f"{v['ms_per_pde_on_subset_step']:.2f} | {speed} | {comp} |")
    lines.append("")
    peak = result["matmul_peak_flops_per_s"]
    for size in result["sizes"]:
        achieved = size["batched_pde_flops_per_s"]
        lines.append(f"- {size['collocation']} points: one PDE-on training step = {size['flops_per_pde_step'] / 1e6:.1f} "
                     f"MFLOP (XLA count); batched PDE group achieves {achieved / 1e9:.1f} GFLOP/s = "
                     f"{100 * achieved / peak:.1f} % of the measured float32 matmul peak ({peak / 1e9:.1f} GFLOP/s).")
    if "demo" in result:
        lines.append(f"- `kvq scan burgers --preset quick` (the `make demo` scan, 16 masks x 2 seeds): "
                     f"{result['demo']['wall_s']:.1f} s wall, compilation included.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collocation", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--steps", type=int, default=50, help="timed JAX steps per mask per repeat")
    ap.add_argument("--torch-steps", type=int, default=20, help="timed PyTorch steps per mask per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--demo", action="store_true", help="also time the quick-preset CLI scan")
    ap.add_argument("--name", default=None, help="JSON/RESULTS.md key (default: throughput-<platform>)")
    args = ap.parse_args(argv)
    result = {"machine": machine(), "repeats": args.repeats, "argv": sys.argv[1:] if argv is None else argv,
              "matmul_peak_flops_per_s": matmul_peak(), "sizes": []}
    print(f"matmul peak: {result['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
    for p in args.collocation:
        result["sizes"].append(bench_size(p, args.steps, args.torch_steps, args.repeats, not args.no_torch))
    if args.demo:
        result["demo"] = time_demo()
    name = args.name or f"throughput-{result['machine']['platform']}"
    path = write_json(name, result)
    md = markdown(result)
    update_section(name, md)
    print(md)
    print(f"\nwrote {path} and benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
