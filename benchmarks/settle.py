"""Do the presets' verdicts settle?  Settledness, capped trainings and improper verdicts
of every built-in problem as a function of the training budget.

For each case, one exact scan with the quick preset's network (a ``-standard`` case: the
standard preset's) runs at a long budget
(``LONG``). Its value table over the budget (``errors_by_check``) *is* the table a scan with
any shorter budget ``B`` gives (same programs, same checks): ``result.at_step(B)``. The
trainings that stopped by step ``B`` are exactly those that stop early in that scan. So one
run answers, for every ``B``:
- the share of trainings that run into the cap;
- which rules have settled;
- what is flagged improper, and which flags are withheld as unsettled;
- the estimated wall time: fixed costs plus the subset-steps up to ``B`` at the run's
  measured rate.

The script reports the quick preset's budget and ``standard``'s budget, and the smallest
budget at which every rule has settled. The right/wrong pairs cover the planted wrong
rules: Burgers' initial condition and ``equations``' e law.

  python benchmarks/settle.py [--cases burgers,kdv]

Scans are saved under benchmarks/results/settle/ (not committed) and reused when the
same scan is already there. Writes benchmarks/results/settle-{platform}.json and a
RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

# case -> (problem, problem options, long budget in steps, seeds[, preset whose network it uses: quick])
LONG = {
    "burgers": ("burgers", {}, 24_000, 2),
    "convection_diffusion": ("convection_diffusion", {}, 24_000, 2),
    "kdv": ("kdv", {}, 24_000, 2),
    "klein_gordon": ("klein_gordon", {}, 16_000, 2),
    "klein_gordon-3seeds": ("klein_gordon", {}, 48_000, 3),
    "fourth_order_2d": ("fourth_order_2d", {}, 6_000, 2),
    "fourth_order_2d-standard": ("fourth_order_2d", {}, 12_000, 2, "standard"),  # its own network
    "klein_gordon-standard": ("klein_gordon", {}, 24_000, 3, "standard"),  # its larger step size
    "equations": ("equations", {}, 24_000, 2),
    "burgers-wrong-ic-3seeds": ("burgers", {"wrong": "ic"}, 16_000, 3),
    "equations-wrong-e_law-3seeds": ("equations", {"wrong": "e_law"}, 24_000, 3),
}


def long_scan(case: str) -> kvq.ScanResult:
    """The case's scan at its long budget (reused from disk when identical)."""
    name, options, steps, seeds, *preset = LONG[case]
    config = kvq.problems.config(name, preset[0] if preset else "quick", steps=steps, seeds=seeds)
    problem = kvq.problems.get(name, **options)
    folder = HERE / "results" / "settle" / case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return kvq.scan(problem, config, out=folder, overwrite=True)  # resumable; a finished scan is loaded


def at_budget(result: kvq.ScanResult, budget: int) -> dict:
    """Verdicts of the scan with ``budget`` steps, read off the long scan."""
    table = result.at_step(budget)
    settle = kvq.settledness(table)
    elim = kvq.eliminate(table)
    ri = kvq.rule_importance(table)
    t = result.timing
    fixed = t["compile_s"] + t["pretrain_s"]
    wall = None
    if t["train_s"] > 0:  # 0: the saved scan was resumed from a finished checkpoint; no rate measured
        rate = t["subset_steps"] / t["train_s"]  # lock-step: a batch runs until its last item stops
        longest = int(np.max(result.steps_run))
        wall = fixed + result.steps_run.size * min(budget, longest) / rate  # as if one batch: an upper bound
    return {"budget": budget, "capped_share": settle.capped_share, "unsettled": list(settle.unsettled),
            "settled": [n for n in settle.names if n not in settle.unsettled], "improper": list(elim.removed),
            "withheld": list(elim.withheld), "ri": dict(zip(ri.names, np.round(ri.mean, 3).tolist())),
            "ri_se": dict(zip(ri.names, np.round(ri.se, 3).tolist())), "wall_s_estimate": None if wall is None else float(wall),
            "mse_all": float(np.nanmean(table.errors[-1]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(LONG), help="comma-separated cases (default: all)")
    args = ap.parse_args()
    env = machine()
    previous = HERE / "results" / f"settle-{env['platform']}.json"
    kept = json.loads(previous.read_text())["rows"] if previous.exists() else []
    rows = [r for r in kept if r["case"] not in args.cases.split(",")]  # a partial rerun keeps the other cases
    for case in args.cases.split(","):
        t0 = time.perf_counter()
        result = long_scan(case)
        name = LONG[case][0]
        quick = kvq.problems.config(name, "quick").steps
        standard = kvq.problems.config(name, "standard").steps
        budgets = [int(b) for b in result.check_steps]
        per_budget = [at_budget(result, b) for b in budgets]
        first_settled = next((r["budget"] for r in per_budget if not r["unsettled"]), None)
        rows.append({"case": case, "problem": name, "options": LONG[case][1], "seeds": LONG[case][3],
                     "long_budget": LONG[case][2], "long_wall_s": result.timing["total_s"],
                     "quick_budget": quick, "standard_budget": standard, "first_settled_budget": first_settled,
                     "per_budget": per_budget, "elapsed_s": time.perf_counter() - t0, "date": env["date"],
                     "time_estimate": "lock-step"})
        print(case, "quick", quick, "standard", standard, "all settled from", first_settled, flush=True)
        order = list(LONG)
        rows.sort(key=lambda r: order.index(r["case"]) if r["case"] in order else len(order))
        write_json(f"settle-{env['platform']}", {"machine": env, "rows": rows})

    md = [f"## Settledness over the training budget ({env['platform']})", "",
          "One exact scan per case with the quick preset's network (the standard preset's for a `-standard` case) at "
          "a long budget (2 seeds, or 3 where the case says so). The "
          "columns read the verdicts a scan with that budget gives off its table over the budget (`result.at_step`). "
          "*capped* is the share of trainings still running at the cap; *unsettled* lists the rules whose RI or "
          "FI the still-running trainings moved by more than max(0.05, 0.25·|value|) decades (plus 2 se) over the "
          "last half of the budget, or all rules when more than half of the trainings are capped. *time* is an "
          "estimate from the long run (fixed costs plus every training run in lock step up to the budget, or to the "
          "last training's stop, at the run's measured rate: an upper bound) for "
          "the seeds of the case; the standard preset's 3 seeds take about 1.5 times the 2-seed figure. The long "
          "runs shared the machine with other jobs, so the times are on the high side; a case measured on another "
          "day than the header's names its date. "
          f"Machine: {env['cpu']} ({env['cores']} cores), {env['accelerator']}, jax {env['jax']}, {env['date']}.", "",
          "Command: `python benchmarks/settle.py " + " ".join(sys.argv[1:]) + "`", "",
          "| case | budget | capped | unsettled | improper (withheld: unsettled) | RI per rule | time (est.) |",
          "|---|---:|---:|---|---|---|---:|"]
    for row in rows:
        label = row["case"] if row.get("date", "2026-12-02") == env["date"] else f"{row['case']} ({row.get('date', '2026-12-02')})"
        wanted = {row["quick_budget"]: "quick", row["standard_budget"]: "standard"}
        if row["first_settled_budget"] is not None:
            wanted.setdefault(row["first_settled_budget"], "first settled")
        wanted.setdefault(row["long_budget"], "long")
        for r in row["per_budget"]:
            if r["budget"] not in wanted:
                continue
            withheld = f" ({', '.join(r['withheld'])})" if r["withheld"] else ""
            ri = ", ".join(f"{k} {v:+.2f}" for k, v in r["ri"].items())
            md.append(f"| {label} | {r['budget']} ({wanted[r['budget']]}) | {r['capped_share']:.0%} | "
                      f"{', '.join(r['unsettled']) or '—'} | {', '.join(r['improper']) or 'none'}{withheld} | {ri} | "
                      + ("— |" if r["wall_s_estimate"] is None else
                         f"{r['wall_s_estimate']:.0f} s{'' if row.get('time_estimate') == 'lock-step' else ' †'} |"))
    if any(row.get("time_estimate") != "lock-step" for row in rows):
        md += ["", "† estimated by an earlier version of this script, which added up each training's own steps; "
               "that undercounts, since the trainings of one compiled program run in lock step until the last of "
               "them stops (Klein–Gordon, 3 seeds: 576 s estimated at 24 000 steps, 698 s measured)."]
    update_section(f"settle-{env['platform']}", "\n".join(md))


if __name__ == "__main__":
    main()
