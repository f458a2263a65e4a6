"""Improper knowledge: does kvq flag the planted wrong rule, and only it, at a budget that settles?

Each case scans a built-in problem with the right rule or with it replaced by a wrong one
(``equations``: e = (1 - c^2)/2 for e = (1 + c^2)/2; ``burgers``: u(x, 0) = cos(pi x / 2)
for -sin(pi x)) and records kvq's verdicts: the rules backward elimination removes
(improper), those withheld because their numbers had not settled, the share of capped
trainings and the unsettled rules.

  python benchmarks/improper.py                                   # standard preset, every case
  python benchmarks/improper.py --cases burgers-wrong --preset standard

Cases run in one call replace their rows; the rows of other cases are kept from the last
JSON, so the cases can run in separate calls (each row says when and where it ran). Scans
are saved under benchmarks/results/improper/ (not committed) and reused when identical.
Writes benchmarks/results/improper-{preset}-{platform}.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

CASES = {
    "equations-right": ("equations", "e_law", None),
    "equations-wrong": ("equations", "e_law", "e_law"),
    "burgers-right": ("burgers", "ic", None),
    "burgers-wrong": ("burgers", "ic", "ic"),
}


def run_case(case: str, preset: str, seeds: int, env: dict, steps: int | None = None) -> dict:
    name, rule, wrong = CASES[case]
    config = kvq.problems.config(name, preset, seeds=seeds, **({} if steps is None else {"steps": steps}))
    problem = kvq.problems.get(name, wrong=wrong)
    folder = HERE / "results" / "improper" / (preset if steps is None else f"{preset}-{steps}") / case
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = kvq.scan(problem, config, out=folder, overwrite=True)  # a finished scan is loaded
        verdicts = kvq.assess(result)
        ri = kvq.rule_importance(result)
    low, high = ri.ci95()
    k = ri.names.index(rule)
    elim, settle = verdicts.elimination, verdicts.settledness
    return {"case": case, "problem": name, "rule": rule, "version": "wrong" if wrong else "right",
            "law": problem.describe().get("wrong", {}).get("law", "as in the paper"),
            "ri": float(ri.mean[k]), "ri_se": float(ri.se[k]), "ci95": [float(low[k]), float(high[k])],
            "improper": list(elim.removed), "withheld": list(elim.withheld), "unsettled": list(settle.unsettled),
            "capped_share": float(settle.capped_share), "steps": config.steps, "seeds": seeds,
            "final_game": None if elim.final is None else dict(zip(elim.final.names, [round(float(m), 3)
                                                                                      for m in elim.final.mean])),
            "wall_s": time.perf_counter() - t0, "date": env["date"], "machine": f"{env['cpu']} ({env['cores']} cores)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    ap.add_argument("--preset", default="standard", choices=["quick", "standard", "paper"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="the preset with this training budget instead of its own")
    ap.add_argument("--note", default="", help="a remark stored with the rows of this call (e.g. what else ran)")
    args = ap.parse_args()
    env = machine()
    budget = "" if args.steps is None else f"-{args.steps}steps"
    key = f"improper-{args.preset}{budget}-{env['platform']}"
    path = HERE / "results" / f"{key}.json"
    rows = {r["case"]: r for r in json.loads(path.read_text())["rows"]} if path.exists() else {}
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; choose from {list(CASES)}")
        rows[case] = {**run_case(case, args.preset, args.seeds, env, args.steps), "note": args.note}
        print(rows[case], flush=True)
        write_json(key, {"preset": args.preset, "rows": [rows[c] for c in CASES if c in rows]})
    at = "" if args.steps is None else f", {args.steps} steps"
    md = [f"## Improper knowledge at the {args.preset} preset{at} ({env['platform']})", "",
          f"`{args.preset}` preset{at}, {args.seeds} seeds per scan. Improper = removed by backward elimination (RI below "
          "-0.05 decades with its 95 % t-interval over seeds below 0, and settled, in the game without the rules "
          "removed before it); withheld = met that bound but had not settled. RI uniform in decades, mean ± se. "
          "Each row says when and on what it ran; `python benchmarks/improper.py --cases CASE` re-runs one case.", "",
          "| case | planted rule | RI ± se [95 % interval] | capped | unsettled | improper | withheld | "
          "RI in the final game | wall | ran |",
          "|---|---|---:|---:|---|---|---|---|---:|---|"]
    for case in CASES:
        if case not in rows:
            continue
        r = rows[case]
        final = ", ".join(f"{n} {v:+.2f}" for n, v in (r["final_game"] or {}).items()) or "—"
        md.append(f"| {case} | {r['rule']}: {r['law']} | {r['ri']:+.2f} ± {r['ri_se']:.2f} "
                  f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | {r['capped_share']:.0%} | "
                  f"{', '.join(r['unsettled']) or 'none'} | {', '.join(r['improper']) or 'none'} | "
                  f"{', '.join(r['withheld']) or 'none'} | {final} | {r['wall_s']:.0f} s | {r['date']}, {r['machine']}"
                  + (f"; {r['note']}" if r.get("note") else "") + " |")
    update_section(key, "\n".join(md))


if __name__ == "__main__":
    main()
