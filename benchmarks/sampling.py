"""How good are sampled importances?  kvq's samplers (and shapiq's) against the exact table.

For each problem one exact scan (a small network on a CPU; the paper's on an accelerator)
gives the value of every coalition.  A sampled estimate trains each coalition it draws
exactly as the scan does (same warm start, same seeds), so the samplers are run on the
scan's values: for budgets of a growing share of the 2^n coalitions, ``repeats`` independent
draws each, against the exact RI (seed mean):

- Spearman rank correlation, sign agreement (rules whose exact |RI| >= 0.01 decades), mean
  absolute error;
- coverage: how often the stated ``± 2 se_sampling`` interval holds the exact value;
- kvq's samplers: regression-banzhaf (the default), msr and kernel-banzhaf against the exact
  uniform RI, regression (the default), permutation and kernel (paired KernelSHAP, with the
  border pairs enumerated where the budget affords them, ``kvq.sampling.plan_draws``) against
  the exact Shapley RI;
- the same budgets for shapiq's approximators driven by the same values
  (``kvq.interop.shapiq_game``): KernelSHAP and permutation sampling for the Shapley RI,
  RegressionFBII for the uniform RI;
- each sampler a proxy can correct (``kvq.sampling.PROXY_SAMPLERS``) with the Newton proxy as a control variate
  (:func:`kvq.sampling.adjusted_importance`, what ``kvq.estimate(..., proxy="newton")``
  computes) at equal cost: the proxy's measured seconds, converted into coalition
  trainings at the scan's rate, are taken off its budget.

Target (issue): Spearman >= 0.9 and sign agreement >= 90 % from <= 25 % of the coalitions on
the many-rule problem.

  python benchmarks/sampling.py                                  # fourth_order_2d and kovasznay, tiny CPU network
  python benchmarks/sampling.py --problems kovasznay --repeats 20

Writes benchmarks/results/sampling-{platform}.json and a RESULTS.md section.
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
from kvq.core.coalitions import all_masks  # noqa: E402
from kvq.game.importance import rank_correlation  # noqa: E402
from kvq.present.interop import shapiq_game  # noqa: E402
from kvq.game.importance import values_importance  # noqa: E402
from kvq.game.sampling import (  # noqa: E402
    DEFAULT,
    GIVEN,
    PROXY_SAMPLERS,
    WEIGHTING,
    adjusted_importance,
    coalitions_of,
    estimate_importance,
    full_masks,
    plan_draws,
)
from results_md import HERE, machine, update_section, write_json  # noqa: E402

SHARES = (0.05, 0.1, 0.25, 0.5)
TINY = dict(width=16, depth=2, activation="tanh", learning_rate=3e-3, check_every=100, pretrain_steps=200,
            collocation=64)


def exact_table(name: str, steps: int, seeds: int) -> kvq.ScanResult:
    """The problem's exact scan at the small CPU network (kept under results/sampling/)."""
    folder = HERE / "results" / "sampling" / f"{name}-{steps}"
    config = kvq.ScanConfig.preset("quick", **TINY, steps=steps, seeds=seeds)
    problem = kvq.problems.get(name, n_valid=2000)
    return kvq.scan(problem, config, out=folder, overwrite=True)  # a finished scan is loaded, not retrained


def scores(estimate: np.ndarray, exact: np.ndarray, se: np.ndarray | None) -> dict[str, float]:
    big = np.abs(exact) >= 0.01
    out = {
        "spearman": rank_correlation(estimate, exact),
        "sign_agreement": float(np.mean(np.sign(estimate[big]) == np.sign(exact[big]))) if big.any() else float("nan"),
        "mae": float(np.mean(np.abs(estimate - exact))),
    }
    if se is not None:
        out["coverage_2se"] = float(np.mean(np.abs(estimate - exact) <= 2 * se))
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def newton_proxy(name: str, steps: int, seeds: int) -> tuple[np.ndarray, float]:
    """The Newton proxy's -log10 validation error of every coalition [2^n, S] (the same
    network, config and seeds as :func:`exact_table`), and its cost in seconds beyond the
    all-rules training a sampled estimate trains anyway (for FI): the solves and one
    validation pass per coalition, without compiling (as the scan's ``train_s``)."""
    config = kvq.ScanConfig.preset("quick", **TINY, steps=steps, seeds=seeds)
    problem = kvq.problems.get(name, n_valid=2000)
    newton = kvq.estimate(problem, config, "newton")
    t = newton.timing
    return -np.log10(newton.errors), t["solve_s"] + t["evaluate_s"] - t["compile_after_anchor_s"]


def _held(sampler: str, n: int, draws: np.ndarray) -> np.ndarray:
    """The rows of the exact table [2^n] (binary order) that a sampled estimate with ``draws`` trains:
    FI's coalitions, the empty one (the regression samplers) and the coalitions the draws need."""
    need = np.concatenate([full_masks(n), np.zeros((1, n), np.int8), coalitions_of(sampler, draws)])
    return np.unique(np.asarray(need, np.int64) @ (1 << np.arange(n)))


def evaluate(result: kvq.ScanResult, repeats: int, proxy: np.ndarray | None = None,
             proxy_coalitions: float = 0.0) -> list[dict]:
    """Scores per budget and sampler; with ``proxy`` [2^n, S] (a cheap estimate of every
    coalition's value), also each sampler adjusted by it at equal cost: ``proxy_coalitions``
    (the proxy's cost in coalition trainings) fewer coalitions trained."""
    names, n = result.rule_names, len(result.rule_names)
    v = -np.log10(result.errors)
    masks = all_masks(n)
    exact = {"uniform": kvq.rule_importance(result).mean, "shapley": kvq.rule_importance(result, "shapley").mean}
    extra = int(np.ceil(proxy_coalitions))
    rows = []
    try:
        import shapiq
    except ImportError:  # pragma: no cover - shapiq is a test dependency
        shapiq = None
    for share in SHARES:
        budget = max(n + 3, int(round(share * 2**n)))
        for sampler, weighting in WEIGHTING.items():
            if sampler in GIVEN:  # shapiq's own rows below
                continue
            runs = []
            for r in range(repeats):
                d, en = plan_draws(sampler, n, budget, {m.tobytes() for m in full_masks(n)}, np.random.default_rng(r))
                if len(d) < 2:
                    continue
                held = _held(sampler, n, d)  # only what the draws trained: the regression fit uses every row held
                est = estimate_importance(sampler, names, masks[held], v[held], d, en)
                runs.append(scores(est.mean, exact[weighting], est.se_sampling))
            if runs:
                rows.append({"share": share, "budget": budget, "method": f"kvq {sampler}", "weighting": weighting,
                             **_mean(runs)})
            if proxy is None or sampler not in PROXY_SAMPLERS or budget - extra < n + 3:
                continue
            phi_f = values_importance(proxy, weighting)
            runs = []
            for r in range(repeats):
                d, en = plan_draws(sampler, n, budget - extra, {m.tobytes() for m in full_masks(n)},
                                   np.random.default_rng(r))
                if len(d) < 4:
                    continue
                est, _ = adjusted_importance(sampler, names, masks, v, proxy, d, phi_f, np.zeros(n), en)
                runs.append(scores(est.mean, exact[weighting], est.se_sampling))
            if runs:
                rows.append({"share": share, "budget": budget, "method": f"kvq {sampler} + newton proxy",
                             "weighting": weighting, "trained": budget - extra, **_mean(runs)})
        if shapiq is not None:
            game = shapiq_game(result)
            for label, weighting, make in (
                ("shapiq KernelSHAP", "shapley", lambda r: shapiq.KernelSHAP(n, pairing_trick=True, random_state=r)),
                ("shapiq permutation", "shapley", lambda r: shapiq.PermutationSamplingSV(n, random_state=r)),
                ("shapiq RegressionFBII", "uniform",
                 lambda r: shapiq.RegressionFBII(n, max_order=1, pairing_trick=True, random_state=r)),
            ):
                runs = []
                for r in range(repeats):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        iv = make(r).approximate(budget, game)
                    runs.append(scores(np.array([iv[(i,)] for i in range(n)]), exact[weighting], None))
                rows.append({"share": share, "budget": budget, "method": label, "weighting": weighting, **_mean(runs)})
    return rows


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [f"## Sampled coalitions against the exact table ({m['platform']})", "",
             f"Exact scans with a small network ({payload['network']}), {payload['seeds']} seeds; every sampler "
             f"runs on the scan's values (a sampled estimate trains each drawn coalition exactly as the scan "
             f"does), {payload['repeats']} independent draws per budget, mean of the scores. Budget = distinct "
             "coalitions, FI's n + 1 included (kvq) or evaluations (shapiq). Sign agreement over rules with "
             "exact |RI| >= 0.01; coverage = share of rules whose ± 2 se_sampling interval holds the exact value; "
             "RI: the weighting estimated (uniform: Banzhaf, against the exact uniform RI; shapley: against the "
             "exact Shapley RI); rows by MAE within a budget and weighting; **bold**: kvq's default sampler. "
             f"Machine: {m['cpu']}, {m['platform']}, jax {m['jax']}, {m['date']}.", "",
             "Command: `python benchmarks/sampling.py`", ""]
    for name, block in payload["problems"].items():
        lines += [f"**{name}** ({block['rules']} rules, {2 ** block['rules']} coalitions; exact scan "
                  f"{block['scan_s']:.0f} s). Newton proxy (control variate): {block['proxy_s']:.1f} s for its "
                  f"solves and a validation pass per coalition (compiling aside, as for the scan), the cost of {block['proxy_coalitions']:.1f} "
                  f"coalition trainings, so the adjusted rows train that many fewer coalitions (equal cost); "
                  f"correlation of proxy and trained values {block['proxy_correlation']:.2f}.", "",
                  "| share | budget | RI | method | Spearman | sign agreement | MAE | coverage ±2 se |",
                  "|---:|---:|---|---|---:|---:|---:|---:|"]
        defaults = {f"kvq {s}" for s in DEFAULT.values()}
        for r in sorted(block["rows"], key=lambda r: (r["share"], r.get("weighting", ""), r["mae"])):
            cov = f"{r['coverage_2se']:.0%}" if "coverage_2se" in r else "—"
            name = f"**{r['method']}**" if r["method"] in defaults else r["method"]
            lines.append(f"| {r['share']:.0%} | {r['budget']} | {r.get('weighting', '')} | {name} | "
                         f"{r['spearman']:.2f} | {r['sign_agreement']:.0%} | {r['mae']:.3f} | {cov} |")
        lines += ["", *verdicts(block["rows"]), ""]
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Which methods meet the issue's target at <= 25 % of the coalitions, and what the Newton
    proxy did to each sampler's mean absolute error at equal cost."""
    by = {(r["share"], r["method"]): r for r in rows}
    small = [r for r in rows if r["share"] <= 0.25]
    met = sorted({r["method"] for r in small if r["spearman"] >= 0.9 and r["sign_agreement"] >= 0.9})
    best = {}
    for r in small:
        if r["method"] not in met:
            best[r["method"]] = max(best.get(r["method"], (0.0, 0.0)), (r["spearman"], r["sign_agreement"]))
    missed = ", ".join(f"{m} (best {sp:.2f} / {sg:.0%})" for m, (sp, sg) in sorted(best.items()))
    out = [f"Target (Spearman >= 0.9 and sign agreement >= 90 % from <= 25 % of the coalitions): met by "
           f"{', '.join(met) or 'none'}; missed by {missed or 'none'}."]
    ratios = []
    for share in sorted({r["share"] for r in rows}):
        for sampler in WEIGHTING:
            plain, proxied = by.get((share, f"kvq {sampler}")), by.get((share, f"kvq {sampler} + newton proxy"))
            if plain and proxied:
                ratios.append(f"{sampler} {proxied['mae'] / plain['mae']:.2f} at {share:.0%}")
    if ratios:
        out.append("Newton proxy at equal cost, MAE adjusted / plain (< 1: the proxy helped): " + "; ".join(ratios) + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", default=["fourth_order_2d", "kovasznay"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite the RESULTS.md section from the saved JSON, without running anything")
    args = ap.parse_args(argv)
    m = machine()
    if args.markdown_only:
        import json

        payload = json.loads((HERE / "results" / f"sampling-{m['platform']}.json").read_text())
        update_section(f"sampling-{m['platform']}", markdown(payload))
        return 0
    payload = {"machine": m, "network": "2x16 tanh, lr 3e-3, " + f"{args.steps} steps, 64 points per rule",
               "seeds": args.seeds, "repeats": args.repeats, "problems": {}}
    for name in args.problems:
        t0 = time.perf_counter()
        result = exact_table(name, args.steps, args.seeds)
        scan_s = result.timing["total_s"]  # when it was trained (reused scans load in no time)
        proxy, proxy_s = newton_proxy(name, args.steps, args.seeds)
        per_coalition = result.timing["train_s"] / 2 ** len(result.rule_names)
        payload["problems"][name] = {"rules": len(result.rule_names), "scan_s": scan_s,
                                     "train_s": result.timing["train_s"], "proxy_s": proxy_s,
                                     "proxy_coalitions": proxy_s / per_coalition,
                                     "proxy_correlation": float(np.corrcoef(proxy.ravel(), (-np.log10(result.errors)).ravel())[0, 1]),
                                     "rows": evaluate(result, args.repeats, proxy, proxy_s / per_coalition)}
        print(f"{name}: done ({scan_s:.0f} s scan, {time.perf_counter() - t0:.0f} s here)", flush=True)
    write_json(f"sampling-{m['platform']}", payload)
    update_section(f"sampling-{m['platform']}", markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
