"""Do the paper's data-volume findings hold?  Measured, not assumed, at a budget that settles.

For each problem (default: Burgers) a sweep over data volumes, in-distribution
(interpolation) and out of distribution (extrapolation), with ``--seeds`` seeds:

1. In-distribution, does RI fall as data grows?  (Mann-Kendall trend of each rule's
   per-seed RI along the data axis.)
2. ... and faster for local rules (initial/boundary conditions) than for the PDE?
   (Drop RI(fewest) - RI(most observations) of each local rule vs the PDE's, ± se.)
3. Out of distribution, does the PDE's RI rise with data while the initial condition's falls?

  python benchmarks/paper_findings.py                      # Burgers, standard preset, data 0,10,100,1000, 3 seeds
  python benchmarks/paper_findings.py --problems burgers kdv --data 0,10,100,1000,10000
  python benchmarks/paper_findings.py --preset quick        # the short-budget picture, for comparison
  python benchmarks/paper_findings.py --problems --dependence fourth_order_2d   # only the 2-D dependence

``--dependence PROBLEM`` adds the paper's dependence finding for a problem with one global
rule (the PDE): its RI is negative (it hurts on average) while its FI is positive (it helps
once the other rules are there), and its marginal contribution by coalition size rises.

Every sweep point reports whether each rule's importance has settled (kvq.verdicts); a
claim whose points are not all settled is marked so rather than counted for or against.

The sweeps are resumable (folders under benchmarks/results/findings/, not committed).
Writes benchmarks/results/paper-findings-{platform}.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from kvq.game.importance import json_ready  # noqa: E402
from kvq.workflows.sweeps import sweep  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

ALPHA = 0.05


def _row(summary: list[dict], split: str, n_data: int, rule: str) -> dict:
    return next(r for r in summary if r["split"] == split and r["n_data"] == n_data and r["rule"] == rule)


def _trend(trends: list[dict], rule: str, split: str) -> dict:
    return next(t for t in trends if t["rule"] == rule and t["split"] == split and t["measure"] == "ri"
                and t["axis"] == "data")


def _fmt_trend(t: dict) -> str:
    return f"S {t['s']:+.0f}, tau {t['tau']:+.2f}, p {t['p']:.3f} ({t['trend']})"


def _verdict(t: dict, want: str) -> str:
    if t["trend"] == want:
        return "agrees"
    if t["trend"] == "no trend":
        return "not significant"
    return "opposite (significant)"


def _settled(summary: list[dict], rule: str, split: str) -> bool:
    """Whether ``rule``'s importance settled at every data volume of ``split``."""
    return all(r["settled"] for r in summary if r["rule"] == rule and r["split"] == split)


def _unless_unsettled(verdict: str, settled: bool) -> str:
    return verdict if settled else f"{verdict} (UNSETTLED points)"


def findings(problem: str, sw, axes_data: list[int]) -> list[dict]:
    """The paper's claims checked against one sweep: one dict per claim and rule."""
    spec = kvq.problems.spec(problem)
    kinds = dict(spec.rules)
    summary, trends = sw.summary, sw.trends
    lo, hi = min(axes_data), max(axes_data)
    out = []
    pde = next(n for n, k in spec.rules if k == "global")
    for rule in spec.rule_names:
        t = _trend(trends, rule, "interpolation")
        out.append({"claim": "in-distribution: RI falls as data grows", "rule": rule, "kind": kinds[rule],
                    "measured": _fmt_trend(t), "p": t["p"],
                    "verdict": _unless_unsettled(_verdict(t, "decreasing"), _settled(summary, rule, "interpolation"))})
    a, b = _row(summary, "interpolation", lo, pde), _row(summary, "interpolation", hi, pde)
    pde_drop = a["ri"] - b["ri"]
    pde_se = float(np.hypot(a["ri_se"] or 0, b["ri_se"] or 0))
    for rule in spec.rule_names:
        if kinds[rule] != "local":
            continue
        a, b = _row(summary, "interpolation", lo, rule), _row(summary, "interpolation", hi, rule)
        drop, se = a["ri"] - b["ri"], float(np.hypot(a["ri_se"] or 0, b["ri_se"] or 0))
        diff, diff_se = drop - pde_drop, float(np.hypot(se, pde_se))
        z = diff / diff_se if diff_se > 0 else np.nan
        verdict = "agrees" if z > 2 else "opposite (> 2 se)" if z < -2 else "not significant (< 2 se)"
        verdict = _unless_unsettled(verdict, _settled(summary, rule, "interpolation")
                                    and _settled(summary, pde, "interpolation"))
        out.append({"claim": f"in-distribution: RI of local rules falls faster than the PDE's ({lo} -> {hi} obs.)",
                    "rule": rule, "kind": "local",
                    "measured": f"drop {drop:+.3f} ± {se:.3f} vs {pde} {pde_drop:+.3f} ± {pde_se:.3f}",
                    "p": None, "verdict": verdict})
    if "extrapolation" in sw.axes["split"]:
        t = _trend(trends, pde, "extrapolation")
        out.append({"claim": "out of distribution: the PDE's RI rises with data", "rule": pde, "kind": "global",
                    "measured": _fmt_trend(t), "p": t["p"],
                    "verdict": _unless_unsettled(_verdict(t, "increasing"), _settled(summary, pde, "extrapolation"))})
        if "ic" in spec.rule_names:
            t = _trend(trends, "ic", "extrapolation")
            out.append({"claim": "out of distribution: the initial condition's RI falls with data", "rule": "ic",
                        "kind": "local", "measured": _fmt_trend(t), "p": t["p"],
                        "verdict": _unless_unsettled(_verdict(t, "decreasing"), _settled(summary, "ic", "extrapolation"))})
    return out


def dependence(problem: str, preset: str, seeds: int, steps: int | None) -> tuple[dict, list[str]]:
    """The global rule's RI vs FI and its dependence profile by coalition size, from one scan."""
    overrides = {"seeds": seeds} if steps is None else {"seeds": seeds, "steps": steps,
                                                          "check_every": min(steps, kvq.problems.config(problem, preset).check_every)}
    config = kvq.problems.config(problem, preset, **overrides)
    spec = kvq.problems.spec(problem)
    pde = next(n for n, k in spec.rules if k == "global")
    folder = HERE / "results" / "findings" / preset / (f"{problem}-dependence" + ("" if steps is None else f"-{steps}"))
    built = kvq.problems.get(problem)
    t0 = time.perf_counter()
    result = kvq.scan(built, config, out=folder, overwrite=True)  # resumable: a finished scan is loaded
    wall = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ri, fi, prof = kvq.rule_importance(result), kvq.full_importance(result), kvq.dependence_profile(result)
        verdicts = kvq.assess(result)
    i = result.rule_names.index(pde)
    settle = verdicts.settledness
    settled = bool(settle.settled[i]) if settle.known else False
    z_ri, z_fi = ri.mean[i] / ri.se[i], fi.mean[i] / fi.se[i]
    holds = z_ri < -2 and z_fi > 2
    verdict = ("agrees" if holds else "does not hold (> 2 se)" if (z_ri > 2 or z_fi < -2) else "not significant")
    if not settled:
        verdict += " (UNSETTLED)"
    by_size = [(k, prof.mean[i, k], prof.se[i, k]) for k in prof.sizes]
    row = {"problem": problem, "rule": pde, "steps": int(config.steps), "seeds": seeds, "wall_s": wall,
           "ri": ri.mean[i], "ri_se": ri.se[i], "fi": fi.mean[i], "fi_se": fi.se[i],
           "by_size": [{"size": k, "mean": m, "se": s} for k, m, s in by_size], "settled": settled,
           "capped_share": settle.capped_share, "unsettled": list(settle.unsettled), "verdict": verdict,
           "improper": list(verdicts.elimination.removed)}
    md = [f"**{problem}: dependence of `{pde}`** ({preset} preset, {config.steps} steps, {seeds} seeds, "
          f"scan wall time {wall:.0f} s; {settle.capped_share:.0%} of the trainings capped; "
          f"unsettled: {', '.join(settle.unsettled) or 'none'})", "",
          "| claim | measured | verdict |", "|---|---|---|",
          f"| {pde} hurts on average (RI < 0) but helps with all other rules present (FI > 0) | "
          f"RI {ri.mean[i]:+.2f} ± {ri.se[i]:.2f}, FI {fi.mean[i]:+.2f} ± {fi.se[i]:.2f} | {verdict} |", "",
          "| coalition size | " + " | ".join(str(k) for k, _, _ in by_size) + " |",
          "|---|" + "---:|" * len(by_size),
          f"| {pde}: mean marginal contribution | " + " | ".join(f"{m:+.2f} ± {s:.2f}" for _, m, s in by_size) + " |",
          ""]
    return json_ready(row), md


def ri_table(problem: str, summary: list[dict]) -> list[str]:
    rules = list(dict.fromkeys(r["rule"] for r in summary))
    lines = [f"| {problem}: split | obs. | " + " | ".join(f"RI {r}" for r in rules) + " | capped | unsettled |",
             "|---|---:|" + "---:|" * len(rules) + "---:|---|"]
    points = list(dict.fromkeys((r["split"], r["n_data"]) for r in summary))
    for split, n in points:
        rows = [_row(summary, split, n, rule) for rule in rules]
        cells = [f"{r['ri']:+.3f} ± {r['ri_se']:.3f}" for r in rows]
        unsettled = ", ".join(r["rule"] for r in rows if r["settled"] is False) or "none"
        lines.append(f"| {split} | {n} | " + " | ".join(cells) + f" | {rows[0]['capped_share']:.0%} | {unsettled} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", default=["burgers"])
    ap.add_argument("--data", default="0,10,100,1000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="standard", choices=["quick", "standard", "paper"])
    ap.add_argument("--dependence", nargs="*", default=[], metavar="PROBLEM",
                    help="problems whose global rule's RI vs FI and dependence profile to measure")
    ap.add_argument("--dependence-steps", type=int, default=None,
                    help="override the preset's step budget of the dependence scans")
    args = ap.parse_args()
    data = [int(d) for d in args.data.split(",")]
    env = machine()
    payload = {"machine": env, "preset": args.preset, "data": data, "seeds": args.seeds, "problems": {}}
    md = [f"`{args.preset}` preset, {args.seeds} seeds, data volumes {data}; in-distribution = interpolation split, "
          "out of distribution = extrapolation split. RI = uniform (Banzhaf) in decades, mean ± se over seeds; "
          f"trends: Mann-Kendall on the per-seed RI along the data axis (seeds pooled), significant at p < {ALPHA}; "
          "a verdict marked UNSETTLED rests on a point whose importance had not settled (kvq.verdicts). "
          f"Machine: {env['cpu']} ({env['cores']} cores), {env['accelerator']}, jax {env['jax']}, {env['date']}.",
          "", "Command: `python benchmarks/paper_findings.py " + " ".join(sys.argv[1:]) + "`", ""]
    for problem in args.problems:
        config = kvq.problems.config(problem, args.preset, seeds=args.seeds)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sw = sweep(problem, config, data=data, split=["interpolation", "extrapolation"],
                       out=HERE / "results" / "findings" / args.preset / problem,
                       progress=lambda phase, done, total: None)
        wall = time.perf_counter() - t0
        claims = findings(problem, sw, data)
        payload["problems"][problem] = {"summary": sw.summary, "trends": sw.trends, "claims": claims,
                                        "wall_s": wall}
        write_json(f"paper-findings{'' if args.preset == 'quick' else '-' + args.preset}-{env['platform']}", payload)
        start = len(md)
        md += [f"**{problem}** (sweep wall time {wall:.0f} s, resumed runs count only the rest)", "",
               "| claim | rule | measured | verdict |", "|---|---|---|---|"]
        md += [f"| {c['claim']} | {c['rule']} ({c['kind']}) | {c['measured']} | {c['verdict']} |" for c in claims]
        md += [""] + ri_table(problem, sw.summary) + [""]
        print("\n".join(md[start:]), flush=True)
    tag = "" if args.preset == "quick" else f"-{args.preset}"
    if args.problems:
        update_section(f"paper-findings{tag}-{env['platform']}", f"## Paper findings at the {args.preset} preset "
                       f"({env['platform']})\n\n" + "\n".join(md))
    if not args.dependence:
        return
    # the dependence scans have a file and a section of their own, so they run apart from the sweeps
    dep = {"machine": env, "preset": args.preset, "seeds": args.seeds, "dependence": {}}
    intro = (f"`{args.preset}` preset, {args.seeds} seeds, one exact scan per problem with its default data. RI = "
             "uniform (Banzhaf), FI = with every other rule on, in decades, mean ± se over seeds; the claim agrees "
             "when RI < 0 and FI > 0 each by more than 2 se; the profile is the global rule's mean marginal "
             "contribution by how many other rules are on. "
             f"Machine: {env['cpu']} ({env['cores']} cores), {env['accelerator']}, jax {env['jax']}, {env['date']}.")
    lines = [intro, "", "Command: `python benchmarks/paper_findings.py " + " ".join(sys.argv[1:]) + "`", ""]
    for problem in args.dependence:
        row, found = dependence(problem, args.preset, args.seeds, args.dependence_steps)
        dep["dependence"][problem] = row
        write_json(f"paper-dependence{tag}-{env['platform']}", dep)
        lines += found
        print("\n".join(found), flush=True)
    update_section(f"paper-dependence{tag}-{env['platform']}",
                   f"## The global rule's dependence at the {args.preset} preset ({env['platform']})\n\n"
                   + "\n".join(lines))

if __name__ == "__main__":
    main()
