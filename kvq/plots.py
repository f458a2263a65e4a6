"""Figures (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from kvq.errors import KvqError
from kvq.importance import full_importance, rule_importance
from kvq.table import ScanResult, ValueTable


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvqError("plotting needs matplotlib: pip install 'kvq[plot]'") from None
    return plt


def plot_importance(table: ValueTable, path: str | Path) -> Path:
    """Bar chart of RI (uniform and Shapley) and FI per rule with ± 1 se error bars -> PNG."""
    plt = _pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        series = [
            ("RI uniform (Banzhaf)", rule_importance(table, "uniform")),
            ("RI Shapley", rule_importance(table, "shapley")),
            ("FI (all other rules on)", full_importance(table)),
        ]
    names = table.rule_names
    xs = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 4.0), dpi=120)
    for j, (label, imp) in enumerate(series):
        se = np.nan_to_num(imp.se, nan=0.0)
        ax.bar(xs + (j - (len(series) - 1) / 2) * width, imp.mean, width, yerr=se, capsize=3, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(xs, names)
    ax.set_xlabel("rule")
    ax.set_ylabel("importance  [log10(MSE without / MSE with)]")
    title = "rule importance"
    if isinstance(table, ScanResult) and table.problem:
        p = table.problem
        bits = [str(p.get("name", ""))]
        for key, fmt in (("n_data", "{} obs."), ("noise_pct", "noise {:g}%"), ("split", "{}")):
            if key in p:
                bits.append(fmt.format(p[key]))
        bits.append(f"{table.n_seeds} seed{'s' if table.n_seeds != 1 else ''}, ± 1 se")
        title = ", ".join(bits)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
