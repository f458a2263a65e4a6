"""What kvq's persistent compilation cache saves: the same scan run in two fresh processes that
share an empty cache folder (the first compiles and fills it, the second loads from it).

    python benchmarks/compile_cache.py [--problem burgers] [--preset quick]

Writes results/compile_cache-<platform>.json and its RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import machine, update_section, write_json  # noqa: E402

RUN = """
import json, time
t0 = time.perf_counter()
import kvq
result = kvq.scan(kvq.problems.get({problem!r}), kvq.problems.config({problem!r}, {preset!r}))
timing = {{k: result.timing[k] for k in ("compile_s", "pretrain_s", "train_s", "total_s")}}
print(json.dumps({{"wall_s": time.perf_counter() - t0, **timing}}))
"""


def run_once(code: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "KVQ_CACHE"))}
    env["KVQ_CACHE_DIR"] = str(cache)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="burgers")
    parser.add_argument("--preset", default="quick")
    args = parser.parse_args()
    code = RUN.format(problem=args.problem, preset=args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        cold = run_once(code, Path(tmp))
        warm = run_once(code, Path(tmp))
    where = machine()
    payload = {"machine": where, "problem": args.problem, "preset": args.preset, "cold": cold, "warm": warm}
    path = write_json(f"compile_cache-{where['platform']}", payload)
    rows = "\n".join(
        f"| {name} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | {r['train_s']:.1f} |"
        for name, r in (("first process (empty cache)", cold), ("second process (cache filled)", warm))
    )
    update_section(
        f"compile-cache-{where['platform']}",
        f"## Persistent compilation cache — {where['platform']} ({where['cpu']}, {where['cores']} cores), "
        f"{where['date']}\n\n"
        f"`python benchmarks/compile_cache.py`: `kvq.scan` of {args.problem} at the {args.preset} preset in two "
        "fresh processes sharing one empty cache folder (`KVQ_CACHE_DIR`). The compile time left in the second "
        "run is tracing and lowering, which JAX does not cache.\n\n"
        "| run | wall s (import included) | compile s | train s |\n|---|---|---|---|\n" + rows + "\n",
    )
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
