"""Levers for a fast settled Burgers verdict: learning rate, a schedule over the budget, and
L-BFGS after Adam, at the quick network (3x32 tanh, 500 points per rule, 2 seeds, checks
every 500 steps).

For a constant learning rate one long scan answers every shorter budget (``result.at_step``):
the first budget at which kvq calls every rule settled, its estimated wall time (fixed costs
plus the lock-step trainings up to that budget at the measured rate) and the RI there.  A
schedule over the budget and the L-BFGS phase are run as they are (their table at a shorter
budget is not a shorter run's).

  python benchmarks/levers.py [--cases adam-1e-3,adam-3e-3,adam-1e-2,exp-decay,lbfgs,width-16,...]

Writes benchmarks/results/levers-{platform}.json (no RESULTS.md section: the section quoting
it is written by hand, with what the numbers mean).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kvq  # noqa: E402
from results_md import HERE, machine, write_json  # noqa: E402

LONG = 8_000


def _decay(steps: int) -> optax.GradientTransformation:
    """Adam from 1e-2 down to 1e-4 over the budget."""
    return optax.adam(optax.exponential_decay(1e-2, steps, 1e-2))


CASES = {
    "adam-1e-3": dict(learning_rate=1e-3, steps=LONG, pretrain_steps=2_000),
    "adam-3e-3": dict(learning_rate=3e-3, steps=LONG, pretrain_steps=2_000),
    "adam-1e-2": dict(learning_rate=1e-2, steps=LONG, pretrain_steps=2_000),
    "exp-decay": dict(optimizer=_decay, steps=3_000, pretrain_steps=1_000),
    "lbfgs": dict(learning_rate=1e-3, steps=1_000, polish_steps=1_000, pretrain_steps=1_000),
    # the standard protocol (Adam 1e-3, checks every 1 000) on fewer points per rule: cheaper steps, same trajectory?
    "points-128": dict(learning_rate=1e-3, steps=16_000, check_every=1_000, collocation=128, pretrain_steps=2_000),
    "points-64": dict(learning_rate=1e-3, steps=16_000, check_every=1_000, collocation=64, pretrain_steps=2_000),
    "points-256": dict(learning_rate=1e-3, steps=16_000, check_every=1_000, collocation=256, pretrain_steps=2_000),
    # the standard protocol on a smaller network: cheaper steps, enough for the shock?
    "width-16": dict(learning_rate=1e-3, steps=16_000, check_every=1_000, width=16, pretrain_steps=2_000),
    "depth-2": dict(learning_rate=1e-3, steps=16_000, check_every=1_000, depth=2, pretrain_steps=2_000),
}


def numbers(table) -> dict:
    ri, fi = kvq.rule_importance(table), kvq.full_importance(table)
    e = np.log10(np.nanmean(table.errors, axis=-1))
    return {"ri": np.round(ri.mean, 3).tolist(), "ri_se": np.round(ri.se, 3).tolist(),
            "fi": np.round(fi.mean, 3).tolist(), "log10_mse_all": float(e[-1]), "log10_mse_none": float(e[0])}


def run(case: str) -> dict:
    config = kvq.problems.config("burgers", "quick", **{"check_every": 500, **CASES[case]})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = kvq.scan(kvq.problems.get("burgers"), config, out=HERE / "results" / "levers" / case, robustness=None)
    row = {"case": case, "wall_s": time.perf_counter() - t0, "compile_s": r.timing["compile_s"], "budgets": []}
    sweepable = config.polish_steps == 0 and not config.budget_schedule
    budgets = range(config.check_every, config.steps + 1, config.check_every) if sweepable else [config.steps]
    rate = r.timing["subset_steps"] / r.timing["train_s"]
    for b in budgets:
        t = r.at_step(b) if sweepable else r
        s = kvq.settledness(t)
        est = r.timing["compile_s"] + r.timing["pretrain_s"] + r.steps_run.size * min(b, int(r.steps_run.max())) / rate
        row["budgets"].append({"budget": b, "settled": not s.unsettled, "capped_share": s.capped_share,
                               "wall_s_estimate": est if sweepable else row["wall_s"], **numbers(t)})
    first = next((x for x in row["budgets"] if x["settled"]), None)
    row["first_settled"] = first
    print(case, "first settled:", None if first is None else (first["budget"], round(first["wall_s_estimate"])),
          "RI there:", None if first is None else first["ri"], flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    path = HERE / "results" / f"levers-{machine()['platform']}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []  # a partial run keeps the other cases
    for c in args.cases.split(","):
        row = run(c)
        rows = [r for r in rows if r["case"] != c] + [row]
        write_json(path.stem, {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
