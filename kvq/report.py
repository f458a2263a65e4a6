"""Plain-text summaries of a value table (what the CLI prints)."""

from __future__ import annotations

import warnings

import numpy as np

from kvq.importance import full_importance, rule_importance
from kvq.table import ScanResult, ValueTable


def _pm(mean: float, se: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    err = f"{se:.3f}" if np.isfinite(se) else "n/a"
    return f"{mean:+.3f} ± {err}"


def _mse(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
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
    kinds = {}
    if isinstance(table, ScanResult):
        kinds = {r["name"]: r.get("kind", "") for r in table.problem.get("rules", [])}
    head = ["rule", "kind", "RI uniform ± se", "RI Shapley ± se", "FI ± se"]
    rows = [
        [name, kinds.get(name, ""), _pm(ri_u.mean[i], ri_u.se[i]), _pm(ri_s.mean[i], ri_s.se[i]), _pm(fi.mean[i], fi.se[i])]
        for i, name in enumerate(table.rule_names)
    ]
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
    out.append(f"validation MSE, all rules: {_mse(table.errors[-1])}   no rules: {_mse(table.errors[0])}"
               f"   ({seeds} seed{'s' if seeds != 1 else ''}, mean ± se)")
    out.append("importance = mean log10(MSE without / MSE with the rule); > 0: the rule helps")
    if getattr(table, "method", "exact") != "exact":
        out.append(f"ESTIMATED by '{table.method}' (not every subset was trained): check it against an exact scan "
                   "before relying on small differences (README: 'Which method')")
    missing = np.argwhere(table.missing())
    if missing.size:
        labels = ", ".join(f"{table.subset_label(k)} seed#{s}" for k, s in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        out.append(f"WARNING: {len(missing)} training(s) diverged and were left out of the averages: {labels}{more}")
    return "\n".join(out)
