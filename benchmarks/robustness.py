"""Knowledge or optimizer: the robustness check on exact and on planted wrong rules.

    python benchmarks/robustness.py                      # every case (about 15 minutes on 2 cores)
    python benchmarks/robustness.py --cases burgers-exact,burgers-wrong
    python benchmarks/robustness.py --render             # RESULTS.md again from the JSON

Each case is one exact scan (3 seeds) whose harmful rules kvq's default check
(``--robustness lbfgs``: each decisive pair continued with up to 1 000 L-BFGS steps) tests again.
The JSON keeps every tested pair's marginal contribution before and after; the table shows the
share of the harm the stronger protocol left and the verdict :func:`kvq.workflows.robustness.judge`
gives, so a change of that rule re-renders without training. Cases:

- ``poisson``: tests/test_custom_problem.py's Poisson problem with a planted wrong slope u'(0) = -pi;
- ``burgers-exact`` / ``burgers-wrong``: Burgers with 1 000 observations (in distribution), the
  quick network at Adam 1e-2, checks every 500 steps, 4 000 steps; the paper's rules, or the initial
  condition replaced by a wrong one;
- ``tlc-wrong``: the measured TLC data (``KVQ_TLC_DATA``; skipped without it), 200 measurements, the
  monotone trend reversed, the ``standard`` preset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import kvq  # noqa: E402
from results_md import HERE, machine, update_section, write_json  # noqa: E402

from kvq.workflows.robustness import judge  # noqa: E402

KEY = "robustness"
CASES = {
    "poisson": "Poisson u'' = -pi^2 sin(pi x), 16 observations; planted: wrong_slope u'(0) = -pi (truth +pi)",
    "burgers-exact": "Burgers, 1 000 observations, interpolation; every rule exact",
    "burgers-wrong": "Burgers, 1 000 observations, interpolation; planted: ic u(x, 0) = cos(pi x / 2)",
    "tlc-wrong": "TLC, 200 measured Rf values, in distribution; planted: the monotone trend reversed",
}
PLANTED = {"poisson": "wrong_slope", "burgers-wrong": "ic", "tlc-wrong": "monotone"}


def build(case: str) -> tuple[kvq.Problem, kvq.ScanConfig] | None:
    if case == "poisson":
        from test_custom_problem import poisson_problem

        config = kvq.ScanConfig(width=16, depth=2, activation="tanh", learning_rate=1e-2, steps=2000,
                                check_every=200, pretrain_steps=400, seeds=3, max_batch=64)
        return poisson_problem(), config
    if case.startswith("burgers"):
        problem = kvq.problems.get("burgers", n_data=1000, wrong="ic" if case == "burgers-wrong" else None)
        return problem, kvq.problems.config("burgers", "quick", learning_rate=1e-2, check_every=500, steps=4000, seeds=3)
    data = os.environ.get("KVQ_TLC_DATA", "")
    if not Path(data).is_file():
        return None
    problem = kvq.problems.get("tlc", data_file=data, n_data=200, wrong="monotone")
    return problem, kvq.problems.config("tlc", "standard", seeds=3)


def run_case(case: str) -> dict | None:
    built = build(case)
    if built is None:
        print(f"{case}: skipped (set KVQ_TLC_DATA to the .xlsx of measurements)")
        return None
    problem, config = built
    t0 = time.perf_counter()
    result = kvq.scan(problem, config, progress=False)
    wall = time.perf_counter() - t0
    print(result.table())
    return {"case": case, "wall_s": wall, "improper": list(kvq.improper_rules(result)),
            "ri": dict(zip(result.rule_names, map(float, kvq.rule_importance(result).mean))),
            "robustness": result.robustness}


def markdown(payload: dict) -> str:
    env = payload["machine"]
    lines = [
        f"## Knowledge or optimizer: the robustness check on exact and planted wrong rules ({env['platform']})",
        "",
        "Each case: one exact scan (3 seeds); every rule kvq would call improper or clearly harmful is "
        "tested again with its decisive pairs (FI pair, worst context) continued with up to 1 000 L-BFGS "
        "steps. *kept*: the share of the pair's harm left after them. The harm survives when a pair "
        "that was harmful is still below -0.05 decades (`kvq.workflows.robustness.judge`, docs/design.md "
        "§3); *improper*: what the scan flagged. Machine: "
        f"{env['cpu']} ({env['cores']} cores), {env['platform']}, jax {env['jax']}, {env['date']}.",
        "",
        "Command: `python benchmarks/robustness.py` (`--render` re-judges the saved pairs).",
        "",
        "| case | rule | planted wrong? | pair | before | after | kept | verdict | improper | wall |",
        "|---|---|---|---|---:|---:|---:|---|---|---:|",
    ]
    for row in payload["rows"]:
        improper = ", ".join(row["improper"]) or "none"
        wall = f"{row['wall_s']:.0f} s"
        for rule, check in row["robustness"].items():
            verdict = judge(check["pairs"])
            for k, p in enumerate(check["pairs"]):
                b, a = p["before"]["mean"], p["after"]["mean"]
                kept = f"{a / b:.0%}" if b < 0 else "-"
                first = k == 0
                lines.append(
                    f"| {row['case'] if first else ''} | {rule if first else ''} | "
                    f"{('yes' if PLANTED.get(row['case']) == rule else 'no (exact)') if first else ''} | "
                    f"{'FI pair' if p['kind'] == 'fi' else 'worst context'} | {b:+.2f} ± {p['before']['se']:.2f} | "
                    f"{a:+.2f} ± {p['after']['se']:.2f} | {kept} | {verdict if first else ''} | "
                    f"{improper if first else ''} | {wall if first else ''} |"
                )
    lines += ["", "Cases: " + "; ".join(f"`{c}`: {d}" for c, d in CASES.items()) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from the saved JSON")
    args = ap.parse_args()
    path = HERE / "results" / f"{KEY}-cpu.json"
    if args.render:
        payload = json.loads(path.read_text())
    else:
        old = {r["case"]: r for r in json.loads(path.read_text())["rows"]} if path.exists() else {}
        for case in args.cases.split(","):
            if case not in CASES:
                raise SystemExit(f"unknown case {case!r}; choose from {list(CASES)}")
            row = run_case(case)
            if row is not None:
                old[case] = row
        payload = {"machine": machine(), "rows": [old[c] for c in CASES if c in old]}
        write_json(f"{KEY}-{payload['machine']['platform']}", payload)
    update_section(f"{KEY}-{payload['machine']['platform']}", markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
