"""Are kvq's default samplers as accurate as the best shapiq approximator at equal budgets?

Games with known exact values, no training:

- sums of unanimity games (``2n`` basis coalitions, each of a size drawn uniformly from
  1..n, weights N(0, 1); exact Shapley value ``sum c_T / |T|`` and Banzhaf value
  ``sum c_T / 2^(|T| - 1)`` over the basis coalitions holding the rule), a new game per draw;
- the trained tables of benchmarks/sampling.py (fourth_order_2d, 7 rules, and kovasznay, 11
  rules; exact scans with a small CPU network, seed-mean values), the same game every draw.

For each game and budget (a share of the 2^n coalitions; n = 30 at fixed budgets, since 2 % of
2^30 is 21 million evaluations), ``--repeats`` independent draws of every method; kvq's
samplers through :func:`kvq.estimate_game` (budget = distinct coalitions, FI's n + 1 included),
shapiq's approximators with the same budget (evaluations).  Scores: mean absolute error
against the exact value, Spearman rank correlation, and for kvq the coverage of ``± 2
se_sampling`` (share of rules and draws whose interval holds the exact value).

  OPENBLAS_NUM_THREADS=1 python benchmarks/sampling_accuracy.py   # everything
  python benchmarks/sampling_accuracy.py --games 10 --repeats 10  # one game (saved cells are kept)

Writes benchmarks/results/sampling-accuracy-{platform}.json and a RESULTS.md section.
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
from results_md import HERE, machine, update_section, write_json

import kvq
from kvq.game import regression
from kvq.game.importance import rank_correlation, values_importance

SHARES = (0.02, 0.1, 0.25)
FIXED = {30: (1_000, 10_000, 30_000)}
LARGE_N = 20
"""From this many rules the kvq samplers that are neither defaults nor cheap (kernel, kernel-banzhaf:
drawn one pair at a time) are left out, to keep the run within about 20 minutes of CPU."""
KVQ = {"shapley": ("regression", "permutation", "kernel"), "uniform": ("regression-banzhaf", "msr", "kernel-banzhaf")}
SLOW_S = 10.0
"""A shapiq approximator whose first draw in a cell takes longer than this is not run further there."""


def shapiq_makers(n: int, seed: int) -> dict[str, dict[str, object]]:
    import shapiq

    return {
        "shapley": {
            "KernelSHAP": lambda: shapiq.KernelSHAP(n, pairing_trick=True, random_state=seed),
            "UnbiasedKernelSHAP": lambda: shapiq.UnbiasedKernelSHAP(n, random_state=seed),
            "SVARM": lambda: shapiq.SVARM(n, random_state=seed),
            "PermutationSamplingSV": lambda: shapiq.PermutationSamplingSV(n, random_state=seed),
        },
        "uniform": {
            "RegressionFBII": lambda: shapiq.RegressionFBII(n, max_order=1, pairing_trick=True, random_state=seed),
            "SVARM (BV)": lambda: shapiq.SVARM(n, index="BV", random_state=seed),
        },
    }


def unanimity(n: int, rng: np.random.Generator):
    """A sum of ``2n`` unanimity games: value function (masks [k, n] -> [k]) and exact values."""
    sizes = rng.integers(1, n + 1, 2 * n)
    sets = np.zeros((2 * n, n), bool)
    for row, d in enumerate(sizes):
        sets[row, rng.choice(n, d, replace=False)] = True
    c = rng.normal(0, 1, 2 * n)

    def value(masks: np.ndarray) -> np.ndarray:
        m = np.atleast_2d(np.asarray(masks, bool))
        out = np.zeros(len(m))
        for lo in range(0, len(m), 8192):
            part = m[lo : lo + 8192]
            out[lo : lo + 8192] = ((part[:, None, :] | ~sets[None]).all(axis=2) * c).sum(axis=1)
        return out

    exact = {"shapley": (sets * (c / sizes)[:, None]).sum(0), "uniform": (sets * (c / 2.0 ** (sizes - 1))[:, None]).sum(0)}
    return value, exact


def table_game(name: str):
    """The seed-mean game of benchmarks/sampling.py's exact scan of ``name`` and its exact values."""
    import sampling as bench

    result = bench.exact_table(name, 600, 2)
    v = np.nanmean(-np.log10(result.errors), axis=1)  # [2^n]
    n = len(result.rule_names)
    bits = 1 << np.arange(n)

    def value(masks: np.ndarray) -> np.ndarray:
        return v[np.atleast_2d(np.asarray(masks, int)) @ bits]

    exact = {w: values_importance(v[:, None], w)[0] for w in ("uniform", "shapley")}
    return value, exact, n


ESTIMATES = {"regression": ("kvq regression (fit)", ("uniform", "shapley")),
             "regression-banzhaf": ("kvq regression-banzhaf (cross-fitted)", ())}
"""The other estimate of each regression sampler's draws (kvq.game.regression.FITTED_WEIGHTINGS): the
design-weighted fit for the Shapley sampler, the cross-fitted estimate for the uniform one."""


def run_cell(n: int, budget: int, games, repeats: int, only: set[str] | None = None) -> list[dict]:
    """Every method (or those named in ``only``: ``kvq regression``, ``shapiq KernelSHAP``, ...)
    on ``repeats`` draws (``games(r)`` -> value, exact) at ``budget``."""
    names = [f"r{i}" for i in range(n)]
    scores: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    skipped: set[str] = set()
    for r in range(repeats):
        value, exact = games(r)
        for weighting, samplers in KVQ.items():
            runs = [(s, f"kvq {s}", None) for s in samplers]
            runs += [(s, *ESTIMATES[s]) for s in samplers if s in ESTIMATES]
            for sampler, label, fitted in runs:
                if (n >= LARGE_N and sampler.startswith("kernel")) or (only and label not in only):
                    continue
                default = regression.FITTED_WEIGHTINGS
                regression.FITTED_WEIGHTINGS = default if fitted is None else fitted
                t0 = time.perf_counter()
                try:
                    ri = kvq.rule_importance(kvq.estimate_game(value, names, weighting, sampler, budget=budget, seed=r))
                except kvq.KvqError:
                    continue
                finally:
                    regression.FITTED_WEIGHTINGS = default
                err = np.abs(ri.mean - exact[weighting])
                cov = float(np.mean(err <= 2 * ri.se_sampling))
                rough = float(kvq.sampling.few_draws(sampler, ri.samples, n) is not None)  # the output says so
                scores.setdefault((weighting, label), []).append(
                    (float(err.mean()), rank_correlation(ri.mean, exact[weighting]), cov, time.perf_counter() - t0,
                     rough)
                )
            for label, make in shapiq_makers(n, r)[weighting].items():
                if label in skipped or (only and f"shapiq {label}" not in only):
                    continue
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    iv = make().approximate(budget, value)
                est = np.array([iv[(i,)] for i in range(n)])
                took = time.perf_counter() - t0
                scores.setdefault((weighting, f"shapiq {label}"), []).append(
                    (float(np.mean(np.abs(est - exact[weighting]))), rank_correlation(est, exact[weighting]), np.nan, took,
                     np.nan)
                )
                if r == 0 and took > SLOW_S:
                    skipped.add(label)
    rows = []
    for (weighting, method), s in scores.items():
        a = np.array(s)
        spread = (lambda x: float(np.nanstd(x, ddof=1) / np.sqrt(np.sum(np.isfinite(x))))) if len(a) > 1 else (
            lambda x: None)
        rows.append({"weighting": weighting, "method": method, "draws": len(a), "mae": float(a[:, 0].mean()),
                     "mae_se": spread(a[:, 0]), "spearman_se": spread(a[:, 1]),
                     "spearman": float(np.nanmean(a[:, 1])), "coverage_2se": None if np.isnan(a[:, 2]).all() else float(np.nanmean(a[:, 2])),
                     "seconds": float(a[:, 3].mean()),
                     "rough": None if np.isnan(a[:, 4]).all() else int(np.nansum(a[:, 4])),
                     "coverage_trusted": trusted(a[:, 2], a[:, 4])})
    return rows


def trusted(cover: np.ndarray, rough: np.ndarray) -> float | None:
    """The coverage over the draws whose output does not call the se rough (None: no such draw, or
    no error bar)."""
    keep = np.isfinite(cover) & (rough == 0)
    return float(cover[keep].mean()) if keep.any() else None


def budgets(n: int) -> list[tuple[str, int]]:
    if n in FIXED:
        return [(f"{b / 2**n:.4%}", b) for b in FIXED[n]]
    return [(f"{s:.0%}", max(n + 3, int(round(s * 2**n)))) for s in SHARES]


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"## Sampled importance against shapiq's approximators ({m['platform']})",
        "",
        f"Games with known exact values, no training: sums of `2n` unanimity games (a new game per draw) and "
        f"the seed-mean games of the exact scans above (fourth_order_2d, kovasznay). Independent draws per "
        "cell as each game says, mean of the scores; budget = distinct coalitions evaluated (kvq: FI's n + 1 included; shapiq: "
        "its budget). MAE against the exact value; Spearman rank correlation; coverage = share of rules and draws "
        "whose ± 2 se_sampling interval holds the exact value (kvq only: shapiq gives no error bar); *where not rough*: "
        "the same over the draws whose output does not call the se rough (`kvq.sampling.few_draws`; their count in "
        "brackets). **bold**: "
        "kvq's default for the weighting (`kvq.sampling.DEFAULT`). "
        f"Machine: {m['cpu']}, {m['platform']}, {m['date']}; wall time {payload['wall_s'] / 60:.1f} min, "
        "nice'd on a shared 2-core machine.",
        "",
        "Command: `python benchmarks/sampling_accuracy.py`",
        "",
    ]
    for game, block in payload["games"].items():
        draws = sorted({c.get("repeats", payload["repeats"]) for c in block["cells"]})
        lines += [f"**{game}** (n = {block['n']}; {' / '.join(map(str, draws))} draws per cell)", "",
                  "| weighting | budget | method | MAE | Spearman | coverage ±2 se | where not rough | s/draw |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        for cell in sorted(block["cells"], key=lambda c: c["budget"]):
            if cell.get("only"):
                lines.append(f"| | {cell['budget']} ({cell['share']}) | only {', '.join(cell['only'])} ran here "
                             "(the others cost too long on the shared machine) | | | | | |")
            for r in sorted(cell["rows"], key=lambda r: (r["weighting"], r["mae"])):
                default = r["method"] in ("kvq regression", "kvq regression-banzhaf")
                name = f"**{r['method']}**" if default else r["method"]
                repeats = cell.get("repeats", payload["repeats"])
                if r["draws"] < repeats:  # the budget left too few draws in the others (kvq refuses)
                    name += f" ({r['draws']} of {repeats} draws ran)"
                cov = "—" if r["coverage_2se"] is None else f"{r['coverage_2se']:.0%}"
                calm = r.get("coverage_trusted")
                calm = ("—" if r["coverage_2se"] is None else "no such draw" if r.get("rough") == r["draws"]
                        else cov if r.get("rough") == 0 else "not measured" if calm is None
                        else f"{calm:.0%} ({r['draws'] - r['rough']})")
                lines.append(f"| {r['weighting']} | {cell['budget']} ({cell['share']}) | {name} | {r['mae']:.4f} | "
                             f"{r['spearman']:.3f} | {cov} | {calm} | {r['seconds']:.2f} |")
        lines.append("")
    lines += verdicts(payload)
    return "\n".join(lines)


def verdicts(payload: dict) -> list[str]:
    """Per cell and weighting: does kvq's default match the best shapiq approximator?"""
    out = ["Default against the best shapiq approximator (MAE and Spearman, each at least as good; where not, "
           "whether both gaps are within two standard errors of the difference of the means over draws):", ""]
    tally: dict[str, list[int]] = {}
    for game, block in payload["games"].items():
        for cell in sorted(block["cells"], key=lambda c: c["budget"]):
            for weighting, default in (("uniform", "kvq regression-banzhaf"), ("shapley", "kvq regression")):
                rows = [r for r in cell["rows"] if r["weighting"] == weighting]
                ours = next((r for r in rows if r["method"] == default), None)
                theirs = [r for r in rows if r["method"].startswith("shapiq")]
                if ours is None or not theirs:
                    continue
                best_mae = min(theirs, key=lambda r: r["mae"])
                best_sp = max(theirs, key=lambda r: r["spearman"])
                ok = ours["mae"] <= best_mae["mae"] and ours["spearman"] >= best_sp["spearman"]
                noise = ""
                if not ok and all(r.get("mae_se") is not None for r in (ours, best_mae, best_sp)):
                    # the gaps against two se of the difference of two independent means over draws
                    gaps = [(best_mae["mae"] - ours["mae"], ours["mae_se"], best_mae["mae_se"]),
                            (ours["spearman"] - best_sp["spearman"], ours["spearman_se"], best_sp["spearman_se"])]
                    within = all(g >= -2 * np.hypot(a, b) for g, a, b in gaps)
                    noise = ", within 2 se of the difference" if within else ", beyond 2 se"
                elif not ok:
                    short = {id(r): r for r in (ours, best_mae, best_sp) if r.get("mae_se") is None}.values()
                    noise = "".join(f", {r['method']} from {r['draws']} draw{'s' * (r['draws'] > 1)}, no se"
                                    for r in short)
                tally.setdefault(weighting, [0, 0, 0])
                tally[weighting][0] += int(ok)
                tally[weighting][1] += int(ours["mae"] <= best_mae["mae"])
                tally[weighting][2] += 1
                out.append(f"- {game}, {weighting}, {cell['budget']} ({cell['share']}): {'met' if ok else 'NOT met' + noise} "
                           f"(MAE {ours['mae']:.4f} vs {best_mae['mae']:.4f} {best_mae['method']}; Spearman "
                           f"{ours['spearman']:.3f} vs {best_sp['spearman']:.3f} {best_sp['method']})")
    out += ["", "In all: " + "; ".join(f"{w}: met in {a} of {c} cells (MAE alone at least as good in {b})"
                                       for w, (a, b, c) in sorted(tally.items())) + "."]
    out += ["", "Coverage of ± 2 se_sampling outside 90-98 % (kvq samplers):", ""]
    for game, block in payload["games"].items():
        for cell in sorted(block["cells"], key=lambda c: c["budget"]):
            bad = [f"{r['method']} {r['coverage_2se']:.0%}" + (
                       f" (the output calls its se rough in {r['rough']} of {r['draws']} draws"
                       + (f"; {r['coverage_trusted']:.0%} over the others" if r.get("coverage_trusted") is not None
                          and r["rough"] < r["draws"] else "") + ")" if r.get("rough") else "")
                   for r in cell["rows"]
                   if r["coverage_2se"] is not None and not 0.9 <= r["coverage_2se"] <= 0.98]
            if bad:
                out.append(f"- {game}, {cell['budget']} ({cell['share']}): {', '.join(bad)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", nargs="+", default=["10", "20", "30", "fourth_order_2d", "kovasznay"],
                    help="unanimity games of n rules (a number) or a trained table's problem name")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--markdown-only", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="measure again the cells a saved run holds")
    ap.add_argument("--part", default="", help="write results/sampling-accuracy-{platform}-PART.json instead "
                    "(a run in parallel); --merge folds the parts into the main file")
    ap.add_argument("--merge", nargs="*", default=None, metavar="PART")
    ap.add_argument("--only", nargs="+", default=None, metavar="METHOD",
                    help="run only these methods ('kvq regression', 'shapiq KernelSHAP', ...)")
    ap.add_argument("--budgets", nargs="+", type=int, default=None, help="only these budgets of the games' list")
    args = ap.parse_args(argv)
    m = machine()
    key = f"sampling-accuracy-{m['platform']}"
    if args.merge is not None:  # fold parallel parts into the main file, then rewrite the section
        main_file = HERE / "results" / f"{key}.json"
        payload = json.loads(main_file.read_text())
        for part in args.merge:
            payload["games"].update(json.loads((HERE / "results" / f"{key}-{part}.json").read_text())["games"])
        payload["wall_s"] = sum(b["wall_s"] for b in payload["games"].values())
        write_json(key, payload)
        update_section(key, markdown(payload))
        return 0
    section = key
    if args.part:
        key = f"{key}-{args.part}"
    if args.markdown_only:
        update_section(key, markdown(json.loads((HERE / "results" / f"{key}.json").read_text())))
        return 0
    saved = HERE / "results" / f"{key}.json"
    payload = {"machine": m, "repeats": args.repeats, "games": {}}
    if saved.exists():  # games run before (another invocation) are kept; those run now replace theirs
        payload["games"] = json.loads(saved.read_text())["games"]
    for game in args.games:
        if game.isdigit():
            n = int(game)
            label = f"unanimity n={n}"

            def games(r: int, n: int = n):
                return unanimity(n, np.random.default_rng([n, r]))
        else:
            value, exact, n = table_game(game)
            label = f"{game} (trained table)"

            def games(r: int, value=value, exact=exact):
                return value, exact
        block = payload["games"].setdefault(label, {"n": n, "cells": [], "wall_s": 0.0})
        for share, budget in budgets(n):
            if args.budgets and budget not in args.budgets:
                continue
            if any(c["budget"] == budget for c in block["cells"]) and not args.fresh:
                continue  # measured by an earlier, interrupted invocation
            before = [c for c in block["cells"] if c["budget"] == budget]
            block["cells"] = [c for c in block["cells"] if c["budget"] != budget]  # --fresh: replaced
            t1 = time.perf_counter()
            rows = run_cell(n, budget, games, args.repeats, set(args.only) if args.only else None)
            only = args.only
            if args.only and before:  # --only: the other methods' rows of the saved cell are kept
                kept = [r for r in before[0]["rows"] if r["method"] not in args.only]
                rows = kept + rows
                only = None if before[0].get("only") is None else sorted({r["method"] for r in rows})
            block["cells"].append({"share": share, "budget": budget, "rows": rows, "only": only,
                                   "repeats": args.repeats})
            block["wall_s"] += time.perf_counter() - t1
            payload["wall_s"] = sum(b["wall_s"] for b in payload["games"].values())
            write_json(key, payload)  # after every cell: an interrupted run keeps what it measured
            print(f"{label} budget {budget}: {time.perf_counter() - t1:.0f} s", flush=True)
    payload["wall_s"] = sum(b["wall_s"] for b in payload["games"].values())
    write_json(key, payload)
    if not args.part:
        update_section(section, markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
