"""The paper's chemistry application: what each piece of chemistry knowledge is worth to a network
predicting thin-layer chromatography Rf values from measurements.

Needs the TLC data set (an .xlsx of 4 944 Rf values; kvq does not ship it): give its path in
KVQ_TLC_DATA, or put it at ../shared/refdata/tlc/TLC_dataset.xlsx next to the repository.
Without it the script says so and exits. Four parts, each resumable (scans and the sweep are
saved under results/tlc-benchmark/ at the top of the repository, which git ignores):

- ``scan``: the four rules at the standard preset, 200 measurements, in distribution, with
  seeds: RI, FI, settledness, interactions, the best rule set, the verdict;
- ``wrong``: the same with the monotone trend reversed (Rf falls as the eluent gets more
  polar): it must be flagged improper and nothing else;
- ``sweep``: RI against the number of measurements in distribution (random measurements)
  and out of distribution (held-out compounds, held-out eluents), with Mann-Kendall trends.

  python benchmarks/tlc.py                        # every part
  python benchmarks/tlc.py --parts scan,wrong     # some (the others are kept from the JSON)
  python benchmarks/tlc.py --parts sweep --splits eluents

Writes benchmarks/results/tlc-{platform}.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

import kvq  # noqa: E402
from kvq.game.summary import summarize  # noqa: E402
from kvq.present.report import verdict_line  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

ROOT = HERE.parent
DATA = Path(os.environ.get("KVQ_TLC_DATA", ROOT.parent / "shared" / "refdata" / "tlc" / "TLC_dataset.xlsx"))
FOLDER = ROOT / "results" / "tlc-benchmark"
PARTS = ("scan", "wrong", "sweep")
N_DATA = 200
SWEEP_DATA = [50, 100, 200, 400]
SWEEP_SPLITS = ["interpolation", "compounds", "eluents"]


def pm(mean: float, se: float) -> str:
    return f"{mean:+.3f} ± {se:.3f}"


def paired_gain(errors: np.ndarray, best: int, other: int) -> dict:
    """Decades the mask ``best`` gains over mask ``other``, per seed: mean, se."""
    d = np.log10(errors[other]) - np.log10(errors[best])
    return {"gain": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else None}


def scan_part(config: kvq.ScanConfig, wrong: str | None) -> dict:
    """One scan at N_DATA measurements (in distribution): every number the paper reports on it."""
    problem = kvq.problems.get("tlc", data_file=DATA, n_data=N_DATA, wrong=wrong)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = kvq.scan(problem, config, out=FOLDER / ("wrong-monotone" if wrong else "scan"), overwrite=True)
    wall = time.perf_counter() - t0
    summary = summarize(result)
    verdicts = summary.assessment
    ri, ri_s, fi = kvq.rule_importance(result), kvq.rule_importance(result, "shapley"), kvq.full_importance(result)
    low, high = ri.ci95()
    pairs = verdicts.pairs
    settle, elim = verdicts.settledness, verdicts.elimination
    return {
        "n_data": N_DATA,
        "split": "interpolation",
        "wrong": None if wrong is None else problem.info["wrong"],
        "seeds": config.seeds,
        "wall_s": round(wall, 1),
        "timing": {k: v for k, v in result.timing.items() if isinstance(v, (int, float))},
        "rules": {
            name: {
                "ri": float(ri.mean[i]),
                "ri_se": float(ri.se[i]),
                "ri_ci95": [float(low[i]), float(high[i])],
                "ri_shapley": float(ri_s.mean[i]),
                "ri_shapley_se": float(ri_s.se[i]),
                "fi": float(fi.mean[i]),
                "fi_se": float(fi.se[i]),
                "settled": bool(settle.settled[i]),
            }
            for i, name in enumerate(ri.names)
        },
        "capped_share": float(settle.capped_share),
        "unsettled": list(settle.unsettled),
        "improper": list(elim.removed),
        "withheld": list(elim.withheld),
        "pairs": [
            {"pair": n, "interaction": float(x), "se": float(s), "relation": rel}
            for n, x, s, rel in zip(pairs.names, pairs.interaction, pairs.interaction_se, pairs.relation)
        ],
        "best_rule_set": verdicts.best,
        "best_vs_none": paired_gain(result.errors, verdicts.best["best"]["mask"], 0),
        "mse_all_rules": float(result.errors[-1].mean()),
        "mse_no_rules": float(result.errors[0].mean()),
        "verdict": verdict_line(summary),
    }


def sweep_part(config: kvq.ScanConfig, split: str) -> dict:
    """RI against the number of measurements in one split, with trend tests (one sweep per split,
    so that each finished split is kept)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = kvq.sweep(
            "tlc", config, data=SWEEP_DATA, split=[split], out=FOLDER / f"sweep-{split}", overwrite=True,
            problem_options={"data_file": str(DATA)},
        )
    keep = ("n_data", "split", "rule", "ri", "ri_se", "fi", "fi_se", "improper", "settled", "capped_share",
            "mse_all", "mse_none")
    return {
        "data": SWEEP_DATA,
        "seeds": config.seeds,
        "steps": config.steps,
        "wall_s": round(time.perf_counter() - t0, 1),
        "summary": [{k: r[k] for k in keep} for r in result.summary],
        "trends": [
            {k: t[k] for k in ("rule", "measure", "split", "n", "tau", "z", "p", "trend")}
            for t in result.trends
            if t["axis"] == "data"
        ],
    }


def gain(g: dict) -> str:
    """A paired gain as text (the best set against itself has none)."""
    return "0 (it is that set)" if g.get("gain") in (None, 0.0) else pm(g["gain"], g["se"] or float("nan"))


def markdown(payload: dict) -> str:
    env, cfg = payload["machine"], payload["config"]
    md = [
        f"## TLC: the worth of chemistry knowledge on measured Rf values ({env['platform']})",
        "",
        f"`python benchmarks/tlc.py` on {env['cpu']} ({env['cores']} cores, shared with other work), "
        f"jax {env['jax']}, {payload['date']}. The data set of 4 944 measured Rf values of 387 compounds under "
        "17 eluents (not shipped; the script skips without it). Model: "
        f"{cfg['depth']}x{cfg['width']} {cfg['activation']} MLP on 5 standardized RDKit descriptors + 5 eluent "
        f"fractions, Adam {cfg['learning_rate']:g}, up to {cfg['steps']} steps checked every {cfg['check_every']}, "
        f"{cfg['collocation']} points per rule (the `tlc` standard preset). Rules: `bounds` 0 ≤ Rf ≤ 1; `monotone` "
        "Rf does not fall as the polar fraction of the binary eluent grows; `ordering` hexane → DCM → EA (a "
        "stronger eluent) does not lower Rf; `snyder` ln((1 − Rf)/Rf) linear in ln(polar fraction). RI, FI in "
        "decades of validation MSE, mean ± se over seeds.",
        "",
    ]
    for part, title in (("scan", "Every rule"), ("wrong", "The monotone trend reversed (planted wrong rule)")):
        r = payload.get(part)
        if not r:
            continue
        md += [
            f"### {title}: {r['n_data']} measurements, in distribution, {r['seeds']} seeds, wall {r['wall_s']:.0f} s",
            "",
            "| rule | RI uniform | RI Shapley | FI | settled |",
            "|---|---:|---:|---:|---|",
        ]
        for name, x in r["rules"].items():
            md.append(
                f"| {name} | {pm(x['ri'], x['ri_se'])} | {pm(x['ri_shapley'], x['ri_shapley_se'])} | "
                f"{pm(x['fi'], x['fi_se'])} | {'yes' if x['settled'] else 'no'} |"
            )
        best = r["best_rule_set"]
        rel = [f"{p['pair']} {p['interaction']:+.3f} ± {p['se']:.3f} ({p['relation']})" for p in r["pairs"]]
        md += [
            "",
            f"Validation MSE with all rules {r['mse_all_rules']:.4f}, with none {r['mse_no_rules']:.4f}; "
            f"{r['capped_share']:.0%} of the trainings ran into the step cap. Improper: "
            f"{', '.join(r['improper']) or 'none'}; withheld: {', '.join(r['withheld']) or 'none'}.",
            f"Best rule set {{{', '.join(best['best']['rules'])}}} (MSE {best['best']['mse_mean']:.4f}): against all "
            f"rules {gain(best['all_rules'])}, against none {gain(r['best_vs_none'])} decades "
            "(chosen on the validation set it is scored on: optimistic).",
            f"Interactions: {'; '.join(rel)}.",
            f"`{r['verdict']}`",
            "",
        ]
    sweeps = payload.get("sweep") or {}
    if sweeps:
        splits = [x for x in SWEEP_SPLITS if x in sweeps]
        seeds = sorted({sweeps[x]["seeds"] for x in splits})
        steps = sorted({sweeps[x].get("steps", cfg["steps"]) for x in splits})
        wall = sum(sweeps[x]["wall_s"] for x in splits)
        md += [
            f"### RI against the number of measurements ({'/'.join(map(str, seeds))} seeds per point, "
            f"up to {'/'.join(map(str, steps))} steps, wall {wall:.0f} s)",
            "",
            "In distribution (`interpolation`: random measurements) and out of distribution (`compounds`: 20 % of "
            "the compounds never observed; `eluents`: the most polar eluent of each series never observed). "
            "RI uniform, mean ± se; `?` = not settled at that point. Trend: Mann-Kendall over the per-seed RI.",
            "",
        ]
        rules = list(dict.fromkeys(r["rule"] for x in splits for r in sweeps[x]["summary"]))
        md += ["| split | step cap | measurements | " + " | ".join(rules) + " | MSE all / none |",
               "|---|---:|---:|" + "---:|" * len(rules) + "---|"]
        for split in splits:
            for n in sweeps[split]["data"]:
                rows = {r["rule"]: r for r in sweeps[split]["summary"] if r["n_data"] == n}
                cells = [pm(rows[k]["ri"], rows[k]["ri_se"]) + ("" if rows[k]["settled"] else " ?") for k in rules]
                first = rows[rules[0]]
                cap = sweeps[split].get("steps", cfg["steps"])
                md.append(f"| {split} | {cap} | {n} | " + " | ".join(cells) + f" | {first['mse_all']:.4f} / "
                          f"{first['mse_none']:.4f} |")
        if min(steps) < cfg["steps"]:
            md += ["", f"Splits with a cap below the preset's {cfg['steps']} steps ran with `--sweep-steps` (the 2-core "
                   "machine was shared): their numbers are not settled (`?`) and read as trends only; `python "
                   "benchmarks/tlc.py --parts sweep --splits SPLIT` runs a split at the preset's budget."]
        md += ["", "| trend of RI with measurements | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
        for split in splits:
            t = {x["rule"]: x for x in sweeps[split]["trends"] if x["measure"] == "ri"}
            md.append(f"| {split} | " + " | ".join(
                f"{t[k]['trend']} (τ {t[k]['tau']:+.2f}, p {t[k]['p']:.3f})" if k in t else "—" for k in rules) + " |")
    walls = {p: payload[p]["wall_s"] for p in ("scan", "wrong") if p in payload}
    walls.update({f"sweep {x}": payload["sweep"][x]["wall_s"] for x in SWEEP_SPLITS if x in sweeps})
    md += ["", f"Wall time: {sum(walls.values()):.0f} s in all ("
           + ", ".join(f"{p} {w:.0f} s" for p, w in walls.items()) + "), under `nice` on the shared machine."]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {list(PARTS)}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--splits", default=",".join(SWEEP_SPLITS), help="the sweep's splits (one sweep each)")
    ap.add_argument("--sweep-steps", type=int, default=None, help="the sweep's step cap (default: the preset's)")
    ap.add_argument("--render", action="store_true", help="only re-write the RESULTS.md section from the JSON")
    args = ap.parse_args()
    if not DATA.is_file():
        print(f"tlc benchmark skipped: no data set at {DATA} (set KVQ_TLC_DATA to the .xlsx)")
        return
    env = machine()
    key = f"tlc-{env['platform']}"
    path = HERE / "results" / f"{key}.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    config = kvq.problems.config("tlc", "standard", seeds=args.seeds)
    if args.render:
        update_section(key, markdown(payload))
        return
    t0 = time.perf_counter()
    for part in args.parts.split(","):
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r}; choose from {list(PARTS)}")
        if part != "sweep":
            payload[part] = scan_part(config, "monotone" if part == "wrong" else None)
            print(json.dumps({part: {k: v for k, v in payload[part].items() if k in ("wall_s", "verdict", "improper")}}),
                  flush=True)
            save(payload, key, env, config, t0)
            continue
        for split in args.splits.split(","):
            cap = config if args.sweep_steps is None else config.replace(steps=args.sweep_steps)
            payload.setdefault("sweep", {})[split] = sweep_part(cap, split)
            print(json.dumps({"sweep": split, "wall_s": payload["sweep"][split]["wall_s"]}), flush=True)
            save(payload, key, env, config, t0)


def save(payload: dict, key: str, env: dict, config: kvq.ScanConfig, t0: float) -> None:
    """Write the JSON and the RESULTS.md section with every part finished so far."""
    table = kvq.problems.tlc.read_table(DATA)
    payload.update(machine=env, date=env["date"], config=config.to_dict(), last_call_wall_s=time.perf_counter() - t0,
                   data={"file": table.source, "sha256": table.digest, "rows": len(table)})
    ordered = {k: payload[k] for k in ("machine", "date", "data", "config", *PARTS, "last_call_wall_s") if k in payload}
    payload.clear()
    payload.update(ordered)
    write_json(key, payload)
    update_section(key, markdown(payload))


if __name__ == "__main__":
    main()
