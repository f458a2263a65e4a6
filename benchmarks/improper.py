"""Improper knowledge: is a wrong rule flagged (RI < 0 with its 95 % interval below zero)?

Quick preset, ``--seeds`` seeds, each problem scanned with the right rule and with it
replaced by a wrong one: ``equations`` with e = (1 - c^2)/2 for e = (1 + c^2)/2, and
``burgers`` with the initial condition u(x, 0) = cos(pi x / 2) for -sin(pi x).

  python benchmarks/improper.py

Writes benchmarks/results/improper-{platform}.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from results_md import machine, update_section, write_json  # noqa: E402

CASES = (("equations", "e_law"), ("burgers", "ic"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    env = machine()
    rows = []
    for name, rule in CASES:
        config = kvq.problems.config(name, "quick", seeds=args.seeds)
        for wrong in (None, rule):
            problem = kvq.problems.get(name, wrong=wrong)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = kvq.scan(problem, config)
            ri = kvq.rule_importance(result)
            low, high = ri.ci95()
            k = ri.names.index(rule)
            rows.append({"problem": name, "rule": rule, "version": "wrong" if wrong else "right",
                         "law": problem.describe().get("wrong", {}).get("law", "as in the paper"),
                         "ri": float(ri.mean[k]), "ri_se": float(ri.se[k]), "ci95": [float(low[k]), float(high[k])],
                         "flagged": list(kvq.improper_rules(result)), "wall_s": time.perf_counter() - t0})
            print(rows[-1], flush=True)
            write_json(f"improper-{env['platform']}", {"machine": env, "seeds": args.seeds, "rows": rows})
    md = [f"## Improper knowledge flagged ({env['platform']})", "",
          f"Quick preset, {args.seeds} seeds; RI uniform in decades, mean ± se and 95 % t-interval over seeds; a rule "
          "is flagged when the whole interval is below 0. "
          f"Machine: {env['cpu']} ({env['cores']} cores), {env['accelerator']}, jax {env['jax']}, {env['date']}.", "",
          "Command: `python benchmarks/improper.py " + " ".join(sys.argv[1:]) + "`", "",
          "| problem | rule | version | RI ± se | 95 % interval | flagged rules |", "|---|---|---|---:|---|---|"]
    for r in rows:
        md.append(f"| {r['problem']} | {r['rule']} | {r['version']}: {r['law']} | {r['ri']:+.3f} ± {r['ri_se']:.3f} | "
                  f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | {', '.join(r['flagged']) or 'none'} |")
    update_section(f"improper-{env['platform']}", "\n".join(md))


if __name__ == "__main__":
    main()
