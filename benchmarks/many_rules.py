"""Twenty-one rules on a CPU: sampled RI of ``poisson_segments``, checked against 4x the budget.

    python benchmarks/many_rules.py [--budget 200] [--split extrapolation] [--preset quick]

Three estimates with kvq's default sampler for the uniform RI (``regression-banzhaf``), all
training into one checkpoint folder (a coalition trains the same whatever the budget, so a
later estimate trains only the coalitions the earlier ones did not):

1. ``--budget B`` coalitions, in a fresh process state (compiling included): the run a user
   makes, timed;
2. a ``target_se`` estimate (the target: 3/4 of run 1's largest sampling se, at most 4B
   coalitions): where it stopped, after how many coalitions, and its largest se;
3. the reference: 4B coalitions.

It reports each run's wall time and coalitions, whether the trainings settled (share capped),
and how run 1's RI agrees with the reference's: Spearman's rank correlation, the top-5 rules
of each, and the rules whose RI differs by more than 2 combined standard errors.  Writes
benchmarks/results/many_rules-{platform}-{preset}-b{budget}.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import HERE, machine, update_section, write_json  # noqa: E402

import kvq  # noqa: E402

SAMPLER = "regression-banzhaf"


def run(problem, config, budget, folder, target_se=None):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = kvq.estimate(problem, config, coalitions=SAMPLER, budget=budget, target_se=target_se,
                              checkpoint=folder, checkpoint_every_s=30)
    wall = time.perf_counter() - t0
    ri = kvq.rule_importance(result)
    capped = float(np.mean(~np.asarray(result.stopped))) if result.stopped is not None else float("nan")
    return result, {
        "budget": budget, "target_se": target_se, "wall_s": wall, "coalitions": len(result.masks),
        "compile_s": result.timing.get("compile_s"), "capped_share": capped,
        "ri": ri.mean.tolist(), "se": ri.se.tolist(), "se_sampling": np.asarray(ri.se_sampling).tolist(),
        "max_se_sampling": float(np.nanmax(ri.se_sampling)), "draws": int(ri.samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--split", default="extrapolation")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--data", type=int, default=30)
    ap.add_argument("--steps", type=int, default=None, help="override the preset's step cap (a quick check)")
    args = ap.parse_args()
    problem = kvq.problems.get("poisson_segments", n_data=args.data, split=args.split)
    config = kvq.problems.config("poisson_segments", args.preset, **({"steps": args.steps} if args.steps else {}))
    folder = HERE / "results" / "many_rules" / "checkpoint"
    shutil.rmtree(folder, ignore_errors=True)
    B = args.budget
    names = list(problem.rule_names)

    first, a = run(problem, config, B, folder)
    print(f"budget {B}: {a['wall_s']:.0f} s, {a['coalitions']} coalitions, max sampling se "
          f"{a['max_se_sampling']:.3f}, capped {a['capped_share']:.0%}", flush=True)
    target = round(0.75 * a["max_se_sampling"], 4)
    _, t = run(problem, config, 4 * B, folder, target_se=target)
    print(f"target_se {target}: {t['wall_s']:.0f} s more, stopped at {t['coalitions']} coalitions, max se "
          f"{t['max_se_sampling']:.3f}", flush=True)
    _, ref = run(problem, config, 4 * B, folder)
    print(f"reference (budget {4 * B}): {ref['wall_s']:.0f} s more, {ref['coalitions']} coalitions", flush=True)

    ra, rr = np.array(a["ri"]), np.array(ref["ri"])
    tol = 2 * np.hypot(np.array(a["se"]), np.array(ref["se"]))
    far = [n for n, d, s in zip(names, np.abs(ra - rr), tol) if d > s]
    top = lambda v: [names[i] for i in np.argsort(-v)[:5]]  # noqa: E731
    agreement = {"spearman": float(stats.spearmanr(ra, rr).statistic), "top5": top(ra), "top5_reference": top(rr),
                 "beyond_2se": far, "max_abs_diff": float(np.max(np.abs(ra - rr)))}
    m = machine()
    payload = {"machine": m, "problem": problem.describe(), "config": config.to_dict(), "sampler": SAMPLER,
               "rules": names, "first": a, "target": t, "reference": ref, "agreement": agreement}
    key = f"many_rules-{m['platform']}-{args.preset}-b{B}"
    write_json(key, payload)

    rows = "\n".join(f"| {n} | {x:+.3f} ± {sx:.3f} | {y:+.3f} ± {sy:.3f} |"
                     for n, x, sx, y, sy in zip(names, ra, a["se"], rr, ref["se"]))
    md = f"""## Twenty-one rules on a CPU: sampled RI of poisson_segments, preset {args.preset}, budget {B} ({m['platform']})

`poisson_segments` (the PDE and 20 boundary segments: 2^21 coalitions), {args.data} observations,
{args.split} split, preset `{args.preset}` ({config.width}x{config.depth} tanh, {config.steps} steps,
{config.seeds} seeds), kvq's default sampler for the uniform RI (`{SAMPLER}`). The three
estimates train into one checkpoint folder, so the second and third train only the coalitions
the earlier ones had not. Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}, jax {m['jax']},
{m['date']}. Command: `python benchmarks/many_rules.py --budget {B} --split {args.split} --preset {args.preset}`.

| estimate | coalitions | wall | largest sampling se | trainings at the step cap |
|---|---:|---:|---:|---:|
| budget {B} (fresh process, compiling included) | {a['coalitions']} | {a['wall_s']:.0f} s | {a['max_se_sampling']:.3f} | {a['capped_share']:.0%} |
| `target_se={target}` (3/4 of the above), at most {4 * B} | {t['coalitions']} | {t['wall_s']:.0f} s more | {t['max_se_sampling']:.3f} | {t['capped_share']:.0%} |
| reference: budget {4 * B} | {ref['coalitions']} | {ref['wall_s']:.0f} s more | {ref['max_se_sampling']:.3f} | {ref['capped_share']:.0%} |

Budget {B} against the reference: Spearman {agreement['spearman']:.2f}; top 5 {', '.join(agreement['top5'])}
(reference: {', '.join(agreement['top5_reference'])}); rules further apart than 2 combined se:
{', '.join(far) or 'none'} (largest difference {agreement['max_abs_diff']:.3f} decades).

| rule | RI, budget {B} | RI, budget {4 * B} |
|---|---|---|
{rows}
"""
    update_section(key, md)
    print(md)


if __name__ == "__main__":
    main()
