"""Perturbation estimators against the exact scan, on every built-in problem.

For each problem and split (interpolation = in-distribution, extrapolation =
out-of-distribution), at the quick preset with ``--seeds`` seeds: the exact scan, then
each estimator setting below through ``kvq.estimate``.  For each one vs the exact
table: Spearman rank correlation of RI (uniform) and of FI, sign agreement (all rules,
and the rules whose exact value is >= 2 se from 0), mean absolute error, and the
wall-time ratio exact / method (each measured end to end, compile included).

  python benchmarks/estimators.py                          # everything (about an hour on 2 cores)
  python benchmarks/estimators.py --only kdv --splits interpolation

Writes benchmarks/results/estimators-{platform}.json (merged across --only runs, saved
after every problem), a plot of accuracy against speed-up, and a RESULTS.md section.
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
import jax  # noqa: E402

import kvq  # noqa: E402
from kvq.game.importance import agreement  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

TARGET = {"spearman": 0.9, "sign": 0.9, "speedup": 10.0}


def settings(config: kvq.ScanConfig) -> list[tuple[str, str, dict]]:
    """(label, method, settings) of every estimator run; K scales with the preset's budget."""
    k10, k3 = max(1, config.steps // 10), max(1, config.steps // 3)
    return [
        (f"finetune K={k10}", "finetune", {"steps": k10}),
        (f"finetune K={k3}", "finetune", {"steps": k3}),
        (f"finetune K={k10} all-anchor", "finetune", {"steps": k10, "anchor": "all"}),
        ("newton d=1e-2", "newton", {"damping": 1e-2}),
        ("newton d=1e-3", "newton", {"damping": 1e-3}),
        ("newton d=1e-4", "newton", {"damping": 1e-4, "cg_iterations": 200}),
        (f"newton d=1e-4 +K={k10}", "newton", {"damping": 1e-4, "cg_iterations": 200, "refine_steps": k10}),
    ]


def run_case(name: str, split: str, seeds: int) -> dict:
    problem = kvq.problems.get(name, split=split)
    config = kvq.problems.config(name, "quick", seeds=seeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exact = kvq.scan(problem, config)
        rows = []
        for label, method, kw in settings(config):
            jax.clear_caches()
            r = kvq.estimate(problem, config, method, **kw)
            diag = r.estimator.get("diagnostics", {})
            rows.append({
                "label": label, "method": method, "settings": r.estimator["settings"],
                "wall_s": r.timing["total_s"], "speedup": exact.timing["total_s"] / r.timing["total_s"],
                **agreement(r, exact),
                "ri": kvq.rule_importance(r).mean.tolist(), "fi": kvq.full_importance(r).mean.tolist(),
                "cg_relative_residual_max": diag.get("cg_relative_residual_max"),
                "diverged": int(r.diverged.sum()),
            })
            print(f"  {name:>22} {split:>13} {label:>26}: RI rho {rows[-1]['ri_spearman']:+.2f} "
                  f"sign {rows[-1]['ri_sign']:.2f} mae {rows[-1]['ri_mae']:.3f}  x{rows[-1]['speedup']:.1f}",
                  flush=True)
    ri, fi = kvq.rule_importance(exact), kvq.full_importance(exact)
    return {
        "problem": name, "split": split, "seeds": seeds, "rules": list(exact.rule_names),
        "exact": {"wall_s": exact.timing["total_s"], "ri": ri.mean.tolist(), "ri_se": ri.se.tolist(),
                  "fi": fi.mean.tolist(), "fi_se": fi.se.tolist()},
        "methods": rows,
    }


def meets(row: dict) -> bool:
    return (row["ri_spearman"] >= TARGET["spearman"] and row["ri_sign"] >= TARGET["sign"]
            and row["speedup"] >= TARGET["speedup"])


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None or not np.isfinite(x) else format(x, fmt)


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"## estimators ({m['platform']}: {m['cpu'] if m['platform'] == 'cpu' else m['accelerator']}, "
        f"{m['cores']} cores, jax {m['jax']}, {m['date']})",
        "",
        f"`python benchmarks/estimators.py`: quick preset, {payload['seeds']} seeds; each estimator against the exact "
        "scan of the same problem and split. ρ = Spearman rank correlation of the seed-mean RI (uniform) / FI; "
        "sign = share of rules whose RI has the exact sign (decisive: only rules whose exact RI is ≥ 2 se from 0); "
        "MAE in decades; speed-up = exact wall time / method wall time (each end to end, compile included). "
        f"✔ = RI ρ ≥ {TARGET['spearman']}, sign ≥ {TARGET['sign']:.0%} and speed-up ≥ {TARGET['speedup']:g}×.",
        "",
        "| problem | split | exact (s) | method | RI ρ | FI ρ | RI sign | sign (decisive) | RI MAE | FI MAE | speed-up | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in payload["cases"]:
        for i, r in enumerate(case["methods"]):
            head = (case["problem"], case["split"], f"{case['exact']['wall_s']:.0f}") if i == 0 else ("", "", "")
            dec = f"{_f(r['ri_sign_decisive'], '.0%')} of {r['ri_decisive']}"
            lines.append(f"| {' | '.join(head)} | {r['label']} | {_f(r['ri_spearman'], '+.2f')} | "
                         f"{_f(r['fi_spearman'], '+.2f')} | {r['ri_sign']:.0%} | {dec} | {r['ri_mae']:.3f} | "
                         f"{r['fi_mae']:.3f} | {r['speedup']:.1f}× | {'✔' if meets(r) else ''} |")
    lines += ["", "Best setting per case (highest RI ρ, then sign, then speed-up):", ""]
    for case in payload["cases"]:
        best = max(case["methods"], key=lambda r: (np.nan_to_num(r["ri_spearman"], nan=-2), r["ri_sign"], r["speedup"]))
        lines.append(f"- {case['problem']} / {case['split']}: {best['label']} (RI ρ {_f(best['ri_spearman'], '+.2f')}, "
                     f"sign {best['ri_sign']:.0%}, {best['speedup']:.1f}×){' ✔' if meets(best) else ''}")
    lines += ["", f"![accuracy vs cost](results/estimators-{m['platform']}.png)"]
    return "\n".join(lines)


def plot(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    families = {"finetune": "tab:blue", "newton": "tab:red"}
    markers = dict(zip(sorted({c["problem"] for c in payload["cases"]}), "osD^vP*X"))
    for ax, key, title in ((axes[0], "ri_spearman", "RI rank correlation (Spearman ρ)"),
                           (axes[1], "ri_sign", "RI sign agreement")):
        for case in payload["cases"]:
            for r in case["methods"]:
                filled = case["split"] == "interpolation"
                ax.scatter(r["speedup"], np.nan_to_num(r[key], nan=0.0), s=36, marker=markers[case["problem"]],
                           facecolors=families[r["method"]] if filled else "none",
                           edgecolors=families[r["method"]], alpha=0.8)
        target = TARGET["spearman"] if key == "ri_spearman" else TARGET["sign"]
        ax.axhline(target, color="gray", ls="--", lw=1)
        ax.axvline(TARGET["speedup"], color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("speed-up over the exact scan (wall time ratio, log scale)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("agreement with the exact scan")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ls="", label=f) for f, c in families.items()]
    handles += [Line2D([], [], color="k", marker=mk, ls="", mfc="none", label=p) for p, mk in markers.items()]
    handles += [Line2D([], [], color="k", marker="o", ls="", label="filled: in-distribution"),
                Line2D([], [], color="k", marker="o", ls="", mfc="none", label="open: out-of-distribution")]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle("Estimators vs the exact scan: accuracy against cost (K and damping varied), quick preset")
    fig.tight_layout(rect=(0, 0, 0.84, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated problems (default: all)")
    ap.add_argument("--splits", default="interpolation,extrapolation")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tables-only", metavar="PLATFORM", default=None,
                    help="rewrite the plot and RESULTS.md section from results/estimators-PLATFORM.json, run nothing")
    args = ap.parse_args()
    if args.tables_only:
        payload = json.loads((HERE / "results" / f"estimators-{args.tables_only}.json").read_text())
        plot(payload, HERE / "results" / f"estimators-{args.tables_only}.png")
        update_section(f"estimators-{args.tables_only}", markdown(payload))
        return
    names = args.only.split(",") if args.only else [n for n in kvq.problems.names() if n != "kovasznay"]
    platform = jax.default_backend()
    json_path = HERE / "results" / f"estimators-{platform}.json"
    payload = json.loads(json_path.read_text()) if json_path.exists() else {"cases": []}
    payload.update({"machine": machine(), "seeds": args.seeds, "target": TARGET})
    order = {(p, s): i for i, (p, s) in enumerate((p, s) for p in kvq.problems.names()
                                                    for s in ("interpolation", "extrapolation"))}
    for name in names:
        for split in args.splits.split(","):
            t0 = time.perf_counter()
            case = run_case(name, split, args.seeds)
            print(f"{name} / {split}: {time.perf_counter() - t0:.0f} s", flush=True)
            payload["cases"] = [c for c in payload["cases"] if (c["problem"], c["split"]) != (name, split)] + [case]
            payload["cases"].sort(key=lambda c: order.get((c["problem"], c["split"]), 99))
            write_json(f"estimators-{platform}", payload)
            plot(payload, HERE / "results" / f"estimators-{platform}.png")
            update_section(f"estimators-{platform}", markdown(payload))


if __name__ == "__main__":
    main()
