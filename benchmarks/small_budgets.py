"""The regression samplers at budgets too small for their cross-fitted model: the fitted model as
the estimate (kvq.game.regression.SMALL_BUDGET = "fitted") against no model (the unbiased
stratified Horvitz-Thompson estimate), for both weightings.

    python benchmarks/small_budgets.py      # about 2 minutes on 2 cores

20 sums of unanimity games with 8 rules (known exact values, no training), budgets of 14, 20 and
27 coalitions (the plain model needs 27 after a fold's own coalitions are left out), 100 draws
per game.  For each sampler and estimate: the mean absolute error (mean over games), in how many
games the fitted estimate errs less, the share of rules whose mean error is beyond 2.5 of its
standard errors (a centred estimator: about 1 %), and the coverage of ± 2 se_sampling.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import machine, update_section, write_json  # noqa: E402
from sampling_accuracy import unanimity  # noqa: E402

import kvq  # noqa: E402
from kvq.game import regression  # noqa: E402

N, DRAWS, BUDGETS, GAMES = 8, 100, (14, 20, 27), tuple(range(10, 30))
SAMPLERS = {"regression": "shapley", "regression-banzhaf": "uniform"}


def cell(game: int, budget: int, sampler: str) -> dict:
    value, exact = unanimity(N, np.random.default_rng([N, game]))
    weighting = SAMPLERS[sampler]
    names = [f"r{i}" for i in range(N)]
    errors, hits = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the few-draws note of every estimate
        for seed in range(DRAWS):
            ri = kvq.rule_importance(kvq.estimate_game(value, names, weighting, sampler, budget=budget, seed=seed))
            errors.append(ri.mean - exact[weighting])
            hits += int(np.sum(np.abs(ri.mean - exact[weighting]) <= 2 * ri.se_sampling))
    e = np.array(errors)
    z = np.abs(e.mean(0)) / (e.std(0, ddof=1) / np.sqrt(len(e)))
    return {"mae": float(np.abs(e).mean()), "bias_z": z.tolist(), "coverage": hits / e.size}


def main() -> None:
    t0 = time.perf_counter()
    rows = []
    default = regression.SMALL_BUDGET
    for model in ("fitted", "unbiased"):
        regression.SMALL_BUDGET = model
        for budget in BUDGETS:
            for sampler in SAMPLERS:
                for game in GAMES:
                    rows.append({"model": model, "game": game, "budget": budget, "sampler": sampler,
                                 **cell(game, budget, sampler)})
                print(model, budget, sampler, flush=True)
    regression.SMALL_BUDGET = default
    payload = {"machine": machine(), "draws": DRAWS, "default": default, "rows": rows,
               "wall_s": time.perf_counter() - t0}
    write_json(f"small-budgets-{payload['machine']['platform']}", payload)
    update_section(f"small-budgets-{payload['machine']['platform']}", markdown(payload))
    print(markdown(payload))


def markdown(payload: dict) -> str:
    env = payload["machine"]
    lines = [
        f"## Regression samplers below their model's threshold: the fitted model as the estimate ({env['platform']})",
        "",
        f"{len(GAMES)} sums of unanimity games with {N} rules, {payload['draws']} draws per game, budgets below 3 "
        "coalitions per weight of the cross-fitted model; *unbiased*: no model, the stratified Horvitz-Thompson "
        "estimate; *fitted*: the intercept-and-rules model fitted to every coalition held (each weighted by what "
        "it stands for in the weighting, `design_weights`; ridge penalty), its importance the estimate, a grouped jackknife its se. "
        "MAE: mean over the games; *fitted better*: games where the fitted estimate errs less; *beyond 2.5 se*: "
        "share of (game, rule) mean errors further than 2.5 standard errors from 0 (centred: about 1 %); coverage "
        f"of ± 2 se_sampling. kvq's choice (`SMALL_BUDGET`): {payload['default']}. "
        f"Machine: {env['cpu']} ({env['cores']} cores), "
        f"{env['platform']}, jax {env['jax']}, {env['date']}; {payload['wall_s']:.0f} s.",
        "",
        "Command: `python benchmarks/small_budgets.py`",
        "",
        "| budget | sampler | MAE unbiased | MAE fitted | fitted better | beyond 2.5 se unbiased / fitted | "
        "coverage unbiased / fitted |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for budget in BUDGETS:
        for sampler in SAMPLERS:
            got = {m: [r for r in payload["rows"] if (r["model"], r["budget"], r["sampler"]) == (m, budget, sampler)]
                   for m in ("unbiased", "fitted")}
            mae = {m: np.array([r["mae"] for r in got[m]]) for m in got}
            far = {m: np.mean([z > 2.5 for r in got[m] for z in r["bias_z"]]) for m in got}
            cov = {m: np.mean([r["coverage"] for r in got[m]]) for m in got}
            lines.append(
                f"| {budget} | {sampler} | {mae['unbiased'].mean():.3f} | {mae['fitted'].mean():.3f} | "
                f"{int((mae['fitted'] < mae['unbiased']).sum())} of {len(GAMES)} | "
                f"{far['unbiased']:.0%} / {far['fitted']:.0%} | {cov['unbiased']:.0%} / {cov['fitted']:.0%} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
