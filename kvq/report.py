"""Plain-text summaries of a value table (what the CLI prints)."""

from __future__ import annotations

import warnings

import numpy as np

from kvq.importance import full_importance, improper_rules, rule_importance
from kvq.table import ScanResult, ValueTable


def _pm(mean: float, se: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    err = f"{se:.3f}" if np.isfinite(se) else "n/a"
    return f"{mean:+.3f} ± {err}"


def mse_summary(values: np.ndarray) -> str:
    """Validation MSEs over seeds as ``mean ± se`` (diverged NaNs left out)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a (all diverged)"
    if v.size == 1:
        return f"{v[0]:.3e}"
    return f"{v.mean():.3e} ± {v.std(ddof=1) / np.sqrt(v.size):.1e}"


def _columns(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(head), line(["-" * w for w in widths]), *map(line, rows)]


def importance_table(table: ValueTable) -> str:
    """Rule, RI uniform ± se, RI Shapley ± se, FI ± se; for several outputs also RI per
    output; then MSE with all rules vs none.

    Importances are in log10 units of validation MSE (0.30 = the rule halves the error).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ri_u = rule_importance(table, "uniform")
        ri_s = rule_importance(table, "shapley")
        fi = full_importance(table)
        improper = improper_rules(table)
    kinds = {}
    if isinstance(table, ScanResult):
        kinds = {r["name"]: r.get("kind", "") for r in table.problem.get("rules", [])}
    head = ["rule", "kind", "RI uniform ± se", "RI Shapley ± se", "FI ± se"]
    rows = [
        [name, kinds.get(name, ""), _pm(ri_u.mean[i], ri_u.se[i]), _pm(ri_s.mean[i], ri_s.se[i]), _pm(fi.mean[i], fi.se[i]),
         "IMPROPER" if name in improper else ""]
        for i, name in enumerate(table.rule_names)
    ]
    if improper:
        head = [*head, "flag"]
    else:
        rows = [r[:-1] for r in rows]
    out = [*_columns(head, rows), ""]
    outputs = tuple(getattr(table, "output_names", ()) or ())
    if getattr(table, "errors_by_output", None) is not None and len(outputs) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per = [rule_importance(table, "uniform", output=o) for o in outputs]
        rows = [[name, *(_pm(ri.mean[i], ri.se[i]) for ri in per)] for i, name in enumerate(table.rule_names)]
        out += ["RI uniform ± se per output (importance for each output's own validation MSE):",
                *_columns(["rule", *outputs], rows), ""]
    seeds = table.errors.shape[1]
    out.append(f"validation MSE, all rules: {mse_summary(table.errors[-1])}   no rules: {mse_summary(table.errors[0])}"
               f"   ({seeds} seed{'s' if seeds != 1 else ''}, mean ± se)")
    out.append("importance = mean log10(MSE without / MSE with the rule); > 0: the rule helps")
    if improper:
        out.append(f"IMPROPER knowledge: {', '.join(improper)}: RI < 0 with its 95% confidence interval over seeds "
                   "below zero (the rule reliably makes the model worse; check it, or drop it)")
    out += caveats(table)
    return "\n".join(out)


def caveats(table: ValueTable) -> list[str]:
    """What a reader must know before trusting the numbers: an estimated table, diverged trainings."""
    out = []
    if getattr(table, "method", "exact") != "exact":
        out.append(f"ESTIMATED by '{table.method}' (not every subset was trained): check it against an exact scan "
                   "before relying on small differences (README: 'Which method')")
    missing = np.argwhere(table.missing())
    if missing.size:
        labels = ", ".join(f"{table.subset_label(k)} seed#{s}" for k, s in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        out.append(f"WARNING: {len(missing)} training(s) diverged and were left out of the averages: {labels}{more}")
    return out


def sweep_table(summary: list[dict], trends: list[dict], measure: str = "ri") -> str:
    """Sweep summary as text: one row per point (split, noise, data), one column per rule
    with ``measure`` (``"ri"`` or ``"fi"``) ± se, then the Mann-Kendall trend tests."""
    rules = list(dict.fromkeys(r["rule"] for r in summary))
    points = list(dict.fromkeys((r["split"], r["noise"], r["n_data"]) for r in summary))
    cell = {(r["split"], r["noise"], r["n_data"], r["rule"]): r for r in summary}
    rows = []
    for split, noise, n_data in points:
        row = [split, f"{noise:g}", str(n_data)]
        for rule in rules:
            r = cell.get((split, noise, n_data, rule))
            mean, se = (np.nan, np.nan) if r is None else (r[measure], r[f"{measure}_se"])
            text = _pm(np.nan if mean is None else mean, np.nan if se is None else se)
            row.append(text + (" !" if r is not None and r.get("improper") and measure == "ri" else ""))
        rows.append(row)
    label = {"ri": "RI uniform", "fi": "FI"}[measure]
    out = [f"{label} ± se per sweep point (decades; '!' = improper: RI < 0 with its 95% CI below zero):",
           *_columns(["split", "noise %", "data", *rules], rows)]
    shown = [t for t in trends if t["measure"] == measure]
    if shown:
        out += ["", f"Mann-Kendall trend of {label} along each swept axis (seeds pooled; p < 0.05 = trend):"]
        trows = [[t["rule"], t["axis"], t["split"], ", ".join(f"{k} {v:g}" for k, v in t["fixed"].items()),
                  str(t["n"]), "n/a" if t["s"] is None else f"{t['s']:+.0f}",
                  "n/a" if t["tau"] is None else f"{t['tau']:+.2f}", "n/a" if t["p"] is None else f"{t['p']:.3f}",
                  t["trend"]] for t in shown]
        out += _columns(["rule", "axis", "split", "at", "n", "S", "tau", "p", "trend"], trows)
    return "\n".join(out)


def tuning_table(tune: dict) -> str:
    """A weight-tuning trajectory (``tune.json``) as text: weights, RI and validation MSE per iteration."""
    names = tune["rule_names"]
    rows = []
    for s in tune["history"]:
        mse = f"{s['mse_all']:.3e}" + ("" if s.get("mse_all_se") is None else f" ± {s['mse_all_se']:.1e}")
        rows.append([str(s["iteration"]), f"{s['mu']:g}", *(f"{w:.3g}" for w in s["weights"]),
                     *("n/a" if r is None else f"{r:+.3f}" for r in s["ri"]), mse,
                     "kept" if s["accepted"] else "rolled back"])
    head = ["iter", "mu", *(f"w {n}" for n in names), *(f"RI {n}" for n in names), "MSE all rules", "step"]
    best = tune["best"]
    return "\n".join([*_columns(head, rows), "",
                      f"best: iteration {best['iteration']}, weights "
                      + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, best["weights"]))
                      + f", validation MSE {best['mse_all']:.3e} (all rules on, mean over seeds)"])
