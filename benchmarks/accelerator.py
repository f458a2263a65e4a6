"""The accelerator figures, as one prepared run for a lent GPU (or, with ``--tiny``, a CPU check).

Parts, in order, each written to ``OUT/accelerator-{platform}.json`` as soon as it ends (so a
run cut short still returns what it measured):

1. ``bench``: ``kvq bench`` on Burgers with the paper's network at the paper's 40 000
   collocation points: batched vs one subset at a time, FLOP/s against the matmul peak.
2. ``burgers-paper``: the paper-size Burgers scan end to end (16 subsets x 20 000 steps, all
   collocation points, the paper preset), 1 seed and then 8 seeds: wall time, compile time,
   subset-steps/s, and whether the numbers settled.
3. ``fourth-order-2d``: the 128-subset 2-D problem at the ``standard`` preset with 3 seeds
   (the dependence claim of the paper: the PDE's RI against its FI).

  python benchmarks/accelerator.py --out DIR                   # on the GPU (about 10 min; --parts to choose)
  python benchmarks/accelerator.py --tiny --out /tmp/acc       # the same code at a toy size, any machine

Record the results in RESULTS.md with ``python benchmarks/accelerator.py --record FILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402

import kvq  # noqa: E402
from kvq.workflows.bench import as_json, bench  # noqa: E402
from results_md import machine, update_section  # noqa: E402

PARTS = ("bench", "burgers-paper", "fourth-order-2d")


def _scan(name: str, preset: str, seeds: int, tiny: bool, **overrides) -> dict:
    config = kvq.problems.config(name, preset, seeds=seeds, **overrides)
    if tiny:
        config = config.replace(width=8, depth=2, steps=20, check_every=10, pretrain_steps=20, collocation=64)
    problem = kvq.problems.get(name, n_valid=256 if tiny else 10_000)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = kvq.scan(problem, config)
        verdicts = kvq.assess(result)
        ri, fi = kvq.rule_importance(result), kvq.full_importance(result)
    settle = verdicts.settledness
    return {
        "problem": name, "preset": preset, "seeds": seeds, "steps": config.steps,
        "collocation": config.collocation, "wall_s": time.perf_counter() - t0, "timing": result.timing,
        "capped_share": settle.capped_share, "unsettled": list(settle.unsettled),
        "ri": dict(zip(ri.names, map(float, ri.mean))), "fi": dict(zip(fi.names, map(float, fi.mean))),
    }


def run(parts: list[str], tiny: bool, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"accelerator-{jax.default_backend()}.json"
    doc: dict = {"machine": machine(), "tiny": tiny, "parts": {}}
    for part in parts:
        t0 = time.perf_counter()
        print(f"accelerator.py: {part} ...", flush=True)
        if part == "bench":
            doc["parts"][part] = as_json(bench("burgers", "paper", collocation=64 if tiny else 40_000,
                                               steps=4 if tiny else 200, repeats=1 if tiny else 3,
                                               batch_sizes=(1, 16), progress=print))
        elif part == "burgers-paper":
            doc["parts"][part] = [_scan("burgers", "paper", s, tiny, collocation=None) for s in (1, 8)]
        elif part == "fourth-order-2d":
            doc["parts"][part] = _scan("fourth_order_2d", "standard", 3, tiny)
        else:
            raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
        print(f"accelerator.py: {part} done in {time.perf_counter() - t0:.0f} s", flush=True)
        path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return doc


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [f"## Accelerator figures — {m.get('accelerator', '?')} ({m.get('platform', '?')}), {m.get('date', '?')}", "",
             "Command: `python benchmarks/accelerator.py` (one prepared run; see its docstring).", ""]
    parts = doc["parts"]
    if "bench" in parts:
        b = parts["bench"]
        lines += [f"- `kvq bench` (Burgers, 5x50 sin, {b['collocation']} points, {b['steps_per_subset']} steps): batched "
                  f"{b['modes']['batched']['subset_steps_per_s']:,.0f} subset-steps/s, "
                  f"{b['speedup_batched_vs_one_at_a_time']:.2f}x one at a time, "
                  f"{100 * b.get('batched_share_of_peak', float('nan')):.1f}% of the measured fp32 matmul peak"]
    for run_ in parts.get("burgers-paper", []):
        lines.append(f"- Burgers, paper preset, {run_['seeds']} seed(s), {run_['steps']} steps: {run_['wall_s']:.0f} s "
                     f"end to end ({run_['timing']['compile_s']:.0f} s compiling); capped {run_['capped_share']:.0%}, "
                     f"unsettled: {', '.join(run_['unsettled']) or 'none'}")
    if "fourth-order-2d" in parts:
        r = parts["fourth-order-2d"]
        lines.append(f"- fourth_order_2d, standard, 3 seeds: {r['wall_s']:.0f} s; PDE RI {r['ri']['pde']:+.2f}, "
                     f"FI {r['fi']['pde']:+.2f}; unsettled: {', '.join(r['unsettled']) or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {PARTS}")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: checks the script on any machine")
    ap.add_argument("--out", default="benchmarks/results", help="folder for accelerator-{platform}.json")
    ap.add_argument("--record", default=None, metavar="FILE", help="write FILE's figures into RESULTS.md and stop")
    args = ap.parse_args(argv)
    if args.record:
        doc = json.loads(Path(args.record).read_text())
        update_section(f"accelerator-{doc['machine'].get('platform', 'gpu')}", markdown(doc))
        return 0
    doc = run(args.parts.split(","), args.tiny, Path(args.out))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
