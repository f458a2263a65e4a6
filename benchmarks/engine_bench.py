"""``kvq bench`` on this machine, recorded: the engine's throughput on Burgers with the paper's
network (batched vs one subset at a time, FLOP/s against a measured matmul peak, subset-steps/s
as the batch per device and the number of devices grow, peak memory), written to
``results/bench-{platform}.json`` and to RESULTS.md.

  python benchmarks/engine_bench.py                                   # kvq bench's defaults
  python benchmarks/engine_bench.py --collocation 4000 --steps 50     # a larger PDE set

Several devices: the scaling row compares 1, 2, 4, ... of this machine's devices (CPU devices
forced with XLA_FLAGS=--xla_force_host_platform_device_count=N share the same cores, so on a CPU
that row shows the cost of splitting a batch, not a speed-up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402

from kvq.workflows.bench import as_json, bench, bench_table  # noqa: E402
from results_md import machine, update_section, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collocation", type=int, default=1000, help="points per rule (default 1000, kvq bench's)")
    ap.add_argument("--steps", type=int, default=100, help="steps per subset (default 100)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes, median (default 3)")
    args = ap.parse_args(argv)
    result = bench("burgers", "paper", collocation=args.collocation, steps=args.steps, repeats=args.repeats,
                   progress=print)
    m = machine()
    doc = {"machine": m, "command": " ".join(["python benchmarks/engine_bench.py", *(argv or sys.argv[1:])]),
           "result": as_json(result)}
    write_json(f"bench-{m['platform']}", doc)
    table = bench_table(result)
    print(table)
    cores = f", {m['cores']} cores" if m["platform"] == "cpu" else ""
    update_section(
        f"bench-{m['platform']}",
        f"## `kvq bench` — {m['accelerator']} ({m['cpu']}{cores}), {m['date']}\n\n"
        f"jax {m['jax']}, {len(jax.devices())} device(s); `{doc['command']}` (the same as "
        f"`kvq bench --collocation {args.collocation} --steps {args.steps} --repeats {args.repeats}`)\n\n"
        f"```\n{table}\n```\n",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
