"""Every built-in problem at the quick preset: exact-scan cost, and the reference solvers.

For each problem: wall time of ``kvq scan NAME --preset quick`` (run in its own process,
so its peak resident memory is measured alone), subset-steps per second, compile time;
and the reference solver's time on the problem's grid and its relative L2 error against
the paper's file where ``../shared/refdata`` (or ``KVQ_REFDATA``) has one.

  python benchmarks/problems.py                   # all problems
  python benchmarks/problems.py --only burgers    # some of them
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from kvq.problems import burgers, convection_diffusion, equations, kdv, klein_gordon  # noqa: E402
from results_md import machine, update_section, write_json  # noqa: E402

REFDATA = Path(os.environ.get("KVQ_REFDATA", Path(__file__).resolve().parents[2] / "shared" / "refdata"))


def _mat(name: str, *keys: str):
    from scipy.io import loadmat

    d = loadmat(REFDATA / name)
    return [np.asarray(d[k], np.float64) for k in keys]


def _rel(u: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(u - ref) / np.linalg.norm(ref))


def _file_errors() -> dict[str, tuple[str, float]]:
    """Relative L2 error of each reference solver against the paper's file (x-major grids)."""
    out: dict[str, tuple[str, float]] = {}
    if not REFDATA.exists():
        return out
    x, t, u = _mat("burgers_shock.mat", "x", "t", "usol")
    out["burgers"] = ("burgers_shock.mat", _rel(burgers.cole_hopf(x.reshape(-1, 1), t.reshape(1, -1)), u))
    x, t, u = _mat("CD.mat", "x", "t", "u")
    out["convection_diffusion"] = ("CD.mat", _rel(convection_diffusion.solution(x.reshape(1, -1), t.reshape(-1, 1)), u))
    x, t, u = _mat("KdV-PINN.mat", "x", "tt", "uu")
    out["kdv"] = ("KdV-PINN.mat", _rel(kdv.solution(x.reshape(-1, 1), t.reshape(1, -1)), u))
    x, t, u = _mat("KG.mat", "x", "t", "usol")
    out["klein_gordon"] = ("KG.mat", _rel(klein_gordon.solution(x.reshape(-1, 1), t.reshape(1, -1)), u))
    rows = np.concatenate([np.load(REFDATA / "dataset.npy"), np.load(REFDATA / "dataset_out.npy")])
    out["equations"] = ("dataset*.npy", _rel(equations.reference(rows[:, :2]), rows[:, 2:]))
    return out


def _solver_time(name: str) -> float:
    """Seconds to build the problem's reference values on its grid, from a cold cache."""
    kdv._solve.cache_clear()
    t0 = time.perf_counter()
    kvq.problems.get(name)
    return time.perf_counter() - t0


def _scan(name: str, extra: list[str]) -> dict:
    """Run ``kvq scan NAME --preset quick`` in a child process; wall time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kvq.cli", "scan", name, "--preset", "quick", "--out", tmp,
               "--overwrite", "--no-plot", *extra]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            raise RuntimeError(f"kvq scan {name} failed:\n{stdout}")
        res = json.loads((Path(tmp) / "results.json").read_text())
    timing = res["timing"]
    return {
        "wall_s": wall,
        "scan_s": timing["total_s"],
        "compile_s": timing["compile_s"],
        "subset_steps": timing["subset_steps"],
        "subset_steps_per_s": timing["subset_steps_per_s"],
        "peak_rss_mb": usage.ru_maxrss / 1024.0,  # Linux: kilobytes
        "masks": 2 ** len(res["rule_names"]),
        "seeds": len(res["seeds"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", default=[n for n in kvq.problems.names() if n != "kovasznay"],
                    choices=kvq.problems.names())  # kovasznay: 2 048 subsets, not a quick exact scan
    ap.add_argument("--scan-args", default="", help="extra arguments for every 'kvq scan' (e.g. '--max-batch 32')")
    args = ap.parse_args(argv)
    files = _file_errors()
    rows = {}
    for name in args.only:
        row = {"solver_s": _solver_time(name), **_scan(name, args.scan_args.split())}
        if name in files:
            row["reference_file"], row["reference_rel_l2"] = files[name]
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    m = machine()
    key = f"problems-{m['platform']}"
    previous = Path(__file__).resolve().parent / "results" / f"{key}.json"
    if set(args.only) != set(kvq.problems.names()) and previous.exists():  # a partial rerun: keep the others
        rows = {**json.loads(previous.read_text())["problems"], **rows}
        rows = {n: rows[n] for n in kvq.problems.names() if n in rows}
    write_json(key, {"machine": m, "scan_args": args.scan_args, "problems": rows})
    lines = [
        f"## Built-in problems at the quick preset ({m['cpu']}, {m['cores']} cores, {m['accelerator']}, {m['date']})",
        "",
        "`python benchmarks/problems.py`: each exact scan runs as `kvq scan NAME --preset quick` in its own process "
        "(wall time includes start-up and compilation; peak RSS of that process). Reference solver: time to "
        "compute the problem's grid of reference values from a cold cache; error: relative L2 against the paper's file.",
        "",
        "| problem | masks x seeds | scan wall (s) | compile (s) | subset-steps/s | peak RSS (MB) | solver (s) | vs paper's file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        err = f"{r['reference_rel_l2']:.1e} ({r['reference_file']})" if "reference_rel_l2" in r else "closed form"
        lines.append(f"| {name} | {r['masks']} x {r['seeds']} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
                     f"{r['subset_steps_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | {r['solver_s']:.2f} | {err} |")
    update_section(key, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
