"""Rule weights: equal vs RI-guided (the paper's update) vs gradient-norm balancing.

For each problem and split (interpolation = in-distribution, extrapolation = out of
distribution), at the quick preset:

- ``equal``: every weight 1;
- ``ri-tuned``: ``kvq.tune_weights`` (``--iterations`` updates, each a full exact scan
  with ``--tune-seeds`` seeds; the roll-back decisions use the validation set);
- ``grad-norm``: ``kvq.tune.balance_weights`` (Wang, Teng & Perdikaris 2021; alpha 0.1,
  update every 100 steps; the weights adapt during the one training).

Every scheme's final model is trained on *fresh* seeds (problem seed 100: other
initialisations and observation draws than the tuning saw) with all rules on, and scored
by its validation MSE (mean ± se over ``--seeds`` seeds).  Cost = wall time (the tuning
scans included) and trainings run.

  python benchmarks/tune_weights.py                       # burgers + equations, both splits
  python benchmarks/tune_weights.py --problems burgers --splits interpolation

Writes benchmarks/results/tune-weights-{platform}.json and a RESULTS.md section.
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
from kvq.store.results import load_result  # noqa: E402
from kvq.workflows.tune import balance_weights, evaluate_weights, tune_weights  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

EVAL_SEED = 100


def _mse(errors: np.ndarray) -> dict:
    e = np.asarray(errors, float)
    e = e[np.isfinite(e)]
    return {"mean": float(e.mean()), "se": float(e.std(ddof=1) / np.sqrt(e.size)) if e.size > 1 else None,
            "per_seed": e.tolist()}


def run_case(problem_name: str, split: str, args) -> dict:
    config = kvq.problems.config(problem_name, "quick", seeds=args.seeds)
    tune_config = config.replace(seeds=args.tune_seeds)
    tuning_problem = kvq.problems.get(problem_name, split=split)
    fresh = kvq.problems.get(problem_name, split=split, seed=EVAL_SEED)
    n = len(fresh.rules)
    rows = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t0 = time.perf_counter()
        equal = evaluate_weights(fresh, config, np.ones(n))
        rows["equal"] = {"weights": [1.0] * n, "mse": _mse(equal), "cost_s": time.perf_counter() - t0,
                         "trainings": config.seeds}
        folder = HERE / "results" / "tuning" / f"{problem_name}-{split}"
        tuned = tune_weights(tuning_problem, tune_config, iterations=args.iterations, out=folder)
        # the tuning scans' own run time (also right when they were loaded from an earlier run)
        tune_s = sum(load_result(folder / f"iter-{k}").timing["total_s"] for k in range(args.iterations + 1))
        t1 = time.perf_counter()
        final = evaluate_weights(fresh, config, tuned.weights)
        rows["ri-tuned"] = {"weights": list(tuned.weights), "mse": _mse(final),
                            "cost_s": tune_s + time.perf_counter() - t1,
                            "trainings": (args.iterations + 1) * 2**n * args.tune_seeds + config.seeds,
                            "history": tuned.to_dict()["history"]}
        balanced = balance_weights(fresh, config)
        rows["grad-norm"] = {"weights": balanced.weights.mean(axis=0).tolist(), "mse": _mse(balanced.errors),
                             "cost_s": balanced.seconds, "trainings": config.seeds}
    return {"problem": problem_name, "split": split, "rules": list(fresh.rule_names), "schemes": rows}


def markdown(cases: list[dict], args, env: dict) -> str:
    lines = [
        "## Rule weights: equal vs RI-guided vs gradient-norm balancing "
        f"({env['platform']})", "",
        f"Quick preset; final models trained with all rules on *fresh* seeds ({args.seeds}; problem seed "
        f"{EVAL_SEED}) and scored on the split's validation set (MSE mean ± se). RI-guided: {args.iterations} "
        f"updates from weights 1, mu 1, each an exact scan with {args.tune_seeds} seeds (tuning seeds 0..); "
        "gradient-norm balancing: alpha 0.1, every 100 steps, no early stopping, a rule with a vanishing gradient "
        "(a satisfied penalty) keeps its weight. Cost: wall time on this "
        "machine including compilation (and, for RI-guided, every tuning scan), and trainings run. "
        f"Machine: {env['cpu']} ({env['cores']} cores), {env['accelerator']}, jax {env['jax']}, {env['date']}.",
        "", "Command: `python benchmarks/tune_weights.py " + " ".join(sys.argv[1:]) + "`", "",
        "| problem | split | scheme | validation MSE | vs equal | weights | cost [s] | trainings |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for case in cases:
        base = case["schemes"]["equal"]["mse"]["mean"]
        for name, row in case["schemes"].items():
            m = row["mse"]
            se = "" if m["se"] is None else f" ± {m['se']:.1e}"
            weights = ", ".join(f"{r} {w:.3g}" for r, w in zip(case["rules"], row["weights"]))
            lines.append(f"| {case['problem']} | {case['split']} | {name} | {m['mean']:.3e}{se} | "
                         f"{m['mean'] / base:.2f}x | {weights} | {row['cost_s']:.0f} | {row['trainings']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", default=["burgers", "equations"])
    ap.add_argument("--splits", nargs="+", default=["interpolation", "extrapolation"])
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3, help="fresh seeds of the final comparison")
    ap.add_argument("--tune-seeds", type=int, default=2, help="seeds of each tuning scan")
    args = ap.parse_args()
    env = machine()
    cases = []
    for problem in args.problems:
        for split in args.splits:
            cases.append(run_case(problem, split, args))
            write_json(f"tune-weights-{env['platform']}", {"machine": env, "args": vars(args), "cases": cases})
            print(markdown(cases[-1:], args, env).split("\n")[-3:], flush=True)
    update_section(f"tune-weights-{env['platform']}", markdown(cases, args, env))


if __name__ == "__main__":
    main()
