"""Figures (needs the ``plot`` extra: matplotlib).

Every function writes one PNG and returns its path.  Importances are in decades:
log10(MSE without / MSE with the rule); > 0 means the rule helps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kvq.core.devices import is_writer
from kvq.core.text import num as _num
from kvq.core.text import score_label
from kvq.core.text import seeds as _seeds
from kvq.core.text import split_label as _split
from kvq.errors import KvqError
from kvq.game.importance import dependence_profile, interactions
from kvq.game.sampling import LABELS
from kvq.game.summary import summarize
from kvq.game.table import ScanResult, ValueTable
from kvq.game.verdicts import pair_relations

DPI = 120
DECADES = "[decades]"
MEASURES = {"ri": "RI uniform (Banzhaf)", "ri_shapley": "RI Shapley", "fi": "FI (all other rules on)"}
YLABEL = {"ri": "RI (Banzhaf)", "ri_shapley": "RI (Shapley)", "fi": "FI"}
AXES = {"data": ("n_data", "observations"), "noise": ("noise", "noise [% of the solution's std]")}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvqError("plotting needs matplotlib: pip install 'kvq[plot]'") from None
    return plt


def text_outside(fig: Any) -> list[str]:
    """What of ``fig`` is drawn beyond its edges and would be cut off in the saved image: the
    axes (with their titles, labels and drawn tick labels), the figure's own texts
    (suptitle) and legends, each named by its text."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height

    def outside(box: Any) -> bool:
        return box is not None and (box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1)

    out = []
    for ax in fig.axes:
        if outside(ax.get_tightbbox(renderer)):
            out.append(f"axes {ax.get_title() or ax.get_ylabel() or ax.get_label()!r}")
    texts = [t for t in (*fig.texts, getattr(fig, "_suptitle", None)) if t is not None and t.get_text().strip()]
    for artist in (*texts, *fig.legends):
        if artist.get_visible() and outside(artist.get_window_extent(renderer)):
            out.append(artist.get_text() if hasattr(artist, "get_text") else "legend")
    return out


def _save(plt, fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG; a text that the layout left beyond the edges grows the image
    to include it (``bbox_inches="tight"``) instead of being cut off."""
    path = Path(path)
    if is_writer():  # several processes draw the same figure; process 0 writes it
        fig.savefig(path, dpi=DPI, **({"bbox_inches": "tight"} if text_outside(fig) else {}))
    plt.close(fig)
    return path


def _wrap(title: str, fig: Any, fontsize: float = 10.0) -> str:
    """``title`` broken into lines that fit the width of ``fig`` (about 0.55 em per character)."""
    import textwrap

    chars = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def _describe(table: Any) -> str:
    """``"burgers, 16 obs., noise 0%, interpolation, 3 seeds"`` (what the table was measured on)."""
    bits = []
    if isinstance(table, ScanResult) and table.problem:
        p = table.problem
        if p.get("name"):
            bits.append(str(p["name"]))
        for key, fmt in (("n_data", "{} obs."), ("noise_pct", "noise {:g}%"), ("split", "{}")):
            if key in p:
                bits.append(fmt.format(p[key]))
        if table.sampling is not None:
            bits.append(f"sampled ({table.sampling.sampler}, {len(table.masks)} of {2**table.n_rules} coalitions)")
        elif getattr(table, "method", "exact") != "exact":
            bits.append(f"estimated ({table.method})")
    bits.append(_seeds(np.asarray(table.errors).shape[1]))
    return ", ".join(bits)


def plot_importance(table: ValueTable, path: str | Path) -> Path:
    """Bar chart of RI (uniform and Shapley; a sampled table: its sampler's estimate, whose se
    includes the sampling error) and FI per rule with ± 1 se error bars -> PNG."""
    plt = _pyplot()
    summary = summarize(table)
    sampling = getattr(table, "sampling", None)
    if sampling is None:
        series = [
            ("RI uniform (Banzhaf)", summary.overall.ri["uniform"]),
            ("RI Shapley", summary.overall.ri["shapley"]),
        ]
    else:
        series = [(f"{LABELS[sampling.sampler]}, sampled", summary.ri)]
    series.append(("FI (all other rules on)", summary.fi))
    names = table.rule_names
    xs = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 4.0), dpi=DPI)
    for j, (label, imp) in enumerate(series):
        se = np.nan_to_num(imp.se, nan=0.0)
        ax.bar(xs + (j - (len(series) - 1) / 2) * width, imp.mean, width, yerr=se, capsize=3, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(xs, names)
    ax.set_xlabel("rule")
    score = score_label(table)
    ax.set_ylabel(f"importance  [log10({score} without / {score} with)]")
    title = "rule importance"
    if isinstance(table, ScanResult) and table.problem:
        title = f"{_describe(table)}, ± 1 se"
    ax.set_title(_wrap(title, fig), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, path)


STYLES = ("o-", "s--", "^-.", "D:", "v-", "P--", "X-.", "*:")  # marker and dash per line, besides colour


def plot_trajectory(table: ValueTable, path: str | Path, weighting: str | None = None) -> Path:
    """RI (``weighting``; None: the table's own, uniform unless sampled) and FI against training steps, one line per rule with a ± 1 se band
    (the value table as it stood after each early-stopping check) -> PNG.  The shaded
    region is the last half of the budget over which settledness is judged; unsettled
    rules are marked in the legend."""
    summary = summarize(table, weighting)
    traj = summary.trajectory
    if traj is None:
        raise KvqError("this table holds no errors over the training budget (an estimate or an older result)")
    plt = _pyplot()
    weighting = traj["weighting"]
    settle = summary.assessment.settledness
    steps = traj["steps"]
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.2), dpi=DPI, sharex=True)
    for ax, key, label in (
        (axes[0], "ri", YLABEL["ri" if weighting == "uniform" else "ri_shapley"]),
        (axes[1], "fi", YLABEL["fi"]),
    ):
        for i, name in enumerate(traj["names"]):
            mean, se = traj[key][:, i], np.nan_to_num(traj[f"{key}_se"][:, i], nan=0.0)
            tag = "" if not settle.known or settle.settled[i] else " (unsettled)"
            color = f"C{i % 10}"
            ax.plot(steps, mean, STYLES[i % len(STYLES)], color=color, markersize=4, linewidth=1.4, label=name + tag)
            ax.fill_between(steps, mean - se, mean + se, color=color, alpha=0.15, linewidth=0)
        if settle.from_step is not None:
            ax.axvspan(settle.from_step, steps[-1], color="0.5", alpha=0.08, linewidth=0)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("training steps per subset")
        ax.set_ylabel(f"{label} {DECADES}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    shaded = "" if settle.from_step is None else "; shaded: the half of the budget settledness is judged on"
    fig.suptitle(
        _wrap(f"importance over the training budget, mean ± 1 se{shaded}\n{_describe(table)}", fig), fontsize=10
    )
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_dependence(table: ValueTable, path: str | Path, output: int | str | None = None) -> Path:
    """Dependence profiles -> PNG: one panel per rule, box plots of its marginal
    contributions Δ_i(S) = v(S ∪ {i}) - v(S) (every coalition S without i, every seed)
    grouped by the number of other rules on, |S| = 0..n-1, with the individual values as
    dots and their mean ± 1 se.  A rule whose boxes drift down as |S| grows is made
    redundant by the others; one whose boxes rise needs the others.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    prof = dependence_profile(table, output)
    n = len(prof.names)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, sharey=True, squeeze=False, dpi=DPI, figsize=(max(5.0, 3.0 * ncols + 0.8), 3.0 * nrows + 1.3)
    )
    rng = np.random.default_rng(0)
    for i, name in enumerate(prof.names):
        ax = axes[i // ncols, i % ncols]
        groups = prof.samples[name]
        pos = [k for k in prof.sizes if groups[k].size]
        if pos:
            ax.boxplot(
                [groups[k] for k in pos],
                positions=pos,
                widths=0.55,
                showfliers=False,
                patch_artist=True,
                boxprops={"facecolor": "#cfe0f3", "edgecolor": "#33557a"},
                medianprops={"color": "#33557a", "linewidth": 1.5},
                whiskerprops={"color": "#33557a"},
                capprops={"color": "#33557a"},
            )
        for k in pos:
            x = groups[k]
            jitter = rng.uniform(-0.18, 0.18, x.size)
            ax.plot(k + jitter, x, "o", color="0.35", markersize=2.5, alpha=0.5, zorder=3)
        ok = np.isfinite(prof.mean[i])
        ax.errorbar(
            np.asarray(prof.sizes)[ok],
            prof.mean[i][ok],
            yerr=np.nan_to_num(prof.se[i][ok], nan=0.0),
            fmt="D",
            color="#c0392b",
            markersize=5,
            capsize=3,
            zorder=4,
        )
        ax.axhline(0.0, color="black", linewidth=0.8, zorder=1)
        ax.set_xticks(prof.sizes, [str(k) for k in prof.sizes])
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel("marginal contribution Δ [decades]")
        if i // ncols == nrows - 1 or i + ncols >= n:
            ax.set_xlabel("other rules on, |S|")
            ax.tick_params(labelbottom=True)
    for j in range(n, nrows * ncols):
        axes[j // ncols, j % ncols].set_visible(False)
    handles = [
        Patch(facecolor="#cfe0f3", edgecolor="#33557a", label="median and quartiles (whiskers: 1.5 IQR)"),
        Line2D(
            [], [], marker="o", linestyle="", color="0.35", alpha=0.6, markersize=4, label="one coalition S and seed"
        ),
        Line2D([], [], marker="D", linestyle="", color="#c0392b", markersize=5, label="mean ± 1 se"),
    ]
    out = f", output {prof.output}" if prof.output is not None else ""
    fig.suptitle(
        _wrap(f"dependence profiles: $\\Delta_i(S)$ = log10(MSE of S / MSE of S + i)\n{_describe(table)}{out}", fig),
        fontsize=10,
    )
    wide = fig.get_figwidth() >= 6.5  # the three legend entries side by side, else stacked
    fig.legend(handles=handles, loc="lower center", ncol=3 if wide else 1, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.4 if wide else 0.75) / fig.get_figheight(), 1, 1))  # room for the legend
    return _save(plt, fig, path)


def plot_interactions(
    table: ValueTable, path: str | Path, weighting: str = "uniform", output: int | str | None = None
) -> Path:
    """Heat map of the pairwise interaction index of every pair of rules -> PNG.

    Cell (i, j) = the mean over coalitions S without i, j of v(S+i+j) - v(S+i) - v(S+j) + v(S)
    (Banzhaf weights, or Shapley interaction weights with ``weighting="shapley"``), mean ± 1 se
    over seeds; blue (> 0): synergy, the pair is worth more together; red (< 0): substitution
    (one stands in for the other) or conflict (together worse than either alone); each cell
    names the relation :func:`kvq.game.verdicts.pair_relations` gives it.
    """
    n = len(getattr(table, "rule_names", ()) or ())
    if n < 2:
        raise KvqError(f"an interaction heat map needs at least 2 rules; the table has {n}")
    plt = _pyplot()
    imp = interactions(table, weighting, output)
    pairs = pair_relations(table, weighting, output)
    assert pairs is not None  # interactions() refused a sampled table above
    relation = dict(zip(imp.names, pairs.relation))
    names = tuple(table.rule_names)
    mean = np.full((n, n), np.nan)
    se = np.full((n, n), np.nan)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            mean[i, j] = mean[j, i] = imp.mean[k]
            se[i, j] = se[j, i] = imp.se[k]
            k += 1
    finite = np.abs(mean[np.isfinite(mean)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    import matplotlib

    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.88")
    side = max(4.2, 0.95 * n + 2.2)
    fig, ax = plt.subplots(figsize=(side + 1.3, side), dpi=DPI)
    im = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=-lim, vmax=lim)
    room = n <= 6
    size = 9 if n <= 4 else 8 if n <= 6 else 7
    for i in range(n):
        for j in range(n):
            if i == j:
                ax.text(j, i, "—", ha="center", va="center", color="0.4", fontsize=size)
                continue
            m = mean[i, j]
            if not np.isfinite(m):
                ax.text(j, i, "n/a", ha="center", va="center", color="0.3", fontsize=size)
                continue
            text = f"{m:+.3f}"
            if room and np.isfinite(se[i, j]):
                text += f"\n± {se[i, j]:.3f}"
            rel = relation.get(f"{names[min(i, j)]} & {names[max(i, j)]}", "independent")
            if rel != "independent":
                text += "\n" + (rel.upper() if rel == "conflict" else rel)
            color = "white" if abs(m) > 0.6 * lim else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=size)
    ax.set_xticks(
        range(n),
        names,
        rotation=30 if max(map(len, names)) > 5 else 0,
        ha="right" if max(map(len, names)) > 5 else "center",
    )
    ax.set_yticks(range(n), names)
    ax.set_xlabel("rule")
    ax.set_ylabel("rule")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("interaction [decades]: > 0 synergy, < 0 substitution or conflict", fontsize=9)
    label = "Banzhaf" if weighting == "uniform" else "Shapley"
    out = f", output {imp.output}" if imp.output is not None else ""
    ax.set_title(_wrap(f"pairwise interactions ({label}), mean ± 1 se\n{_describe(table)}{out}", fig), fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, path)


def _fmt_value(axis: str, value: float) -> str:
    return f"{value:g} observations" if axis == "data" else f"noise {value:g}%"


def plot_sweep(
    summary_rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    axis: str = "data",
    measure: str = "ri",
    title: str | None = None,
) -> Path:
    """RI (or FI) of each rule against one swept axis -> PNG.

    ``summary_rows``: the ``summary`` of a ``sweep.json`` (one dict per (point, rule) with
    ``n_data``, ``noise``, ``split``, ``rule`` and ``{measure}``/``{measure}_se``).  ``axis``:
    ``"data"`` (number of observations, symlog x axis) or ``"noise"`` (percent of the
    solution's std); ``measure``: ``"ri"``, ``"ri_shapley"`` or ``"fi"``.  One line per rule
    with a ±1 se band, one column of panels per split; when the other axis has several values
    too, one row of panels per value.
    """
    if axis not in AXES:
        raise KvqError(f"unknown sweep axis {axis!r}; choose 'data' or 'noise'")
    if measure not in MEASURES:
        raise KvqError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    key, xlabel = AXES[axis]
    other = "noise" if axis == "data" else "data"
    okey = AXES[other][0]
    rows = [r for r in summary_rows if r.get("rule") is not None]
    if not rows:
        raise KvqError("plot_sweep needs summary rows (the 'summary' list of a sweep.json); got none")
    missing = [f for f in (key, okey, "rule", measure) if f not in rows[0]]
    if missing:
        raise KvqError(f"sweep summary rows lack the fields {missing}; expected the 'summary' of a sweep.json")
    xs_all = sorted({_num(r[key]) for r in rows})
    if len(xs_all) < 2:
        raise KvqError(f"the sweep has a single {axis} value ({xs_all[0]:g}); a {axis} plot needs at least 2")
    plt = _pyplot()
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    splits = list(dict.fromkeys(str(r.get("split", "")) for r in rows))
    others = sorted({_num(r[okey]) for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    nrows, ncols = len(others), len(splits)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        sharey=True,
        sharex=True,
        squeeze=False,
        dpi=DPI,
        figsize=(max(5.0, 4.4 * ncols + 0.6), 3.2 * nrows + 1.4),
    )
    for a, ov in enumerate(others):
        for b, split in enumerate(splits):
            ax = axes[a, b]
            drawn = False
            for c, rule in enumerate(rules):
                pts = sorted(
                    (_num(r[key]), _num(r[measure]), _num(r.get(f"{measure}_se")))
                    for r in rows
                    if r["rule"] == rule and str(r.get("split", "")) == split and _num(r[okey]) == ov
                )
                if not pts:
                    continue
                drawn = True
                x, y, e = (np.array(v) for v in zip(*pts))
                color = colors[c % len(colors)]
                ax.plot(
                    x,
                    y,
                    STYLES[c % len(STYLES)],
                    color=color,
                    markersize=4,
                    linewidth=1.5,
                    clip_on=False,
                    label=rule if a == b == 0 else None,
                )
                band = np.isfinite(e)
                if band.any():
                    ax.fill_between(
                        x,
                        np.where(band, y - e, np.nan),
                        np.where(band, y + e, np.nan),
                        color=color,
                        alpha=0.15,
                        linewidth=0,
                    )
            if not drawn:
                ax.text(
                    0.5,
                    0.5,
                    "no finished points",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                    fontsize=9,
                )
            ax.axhline(0.0, color="black", linewidth=0.8)
            if axis == "data":
                ax.set_xscale("symlog", linthresh=10)
            ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
            ax.set_xlim(xs_all[0], xs_all[-1])  # no empty decade before the first point (markers drawn unclipped)
            ax.grid(alpha=0.3)
            panel = _split(split)
            if nrows > 1:
                panel += f", {_fmt_value(other, ov)}"
            ax.set_title(panel, fontsize=10)
            if b == 0:
                ax.set_ylabel(f"{YLABEL[measure]} [decades]")
            if a == nrows - 1:
                ax.set_xlabel(xlabel)
    head = title or f"{MEASURES[measure]} against {'data volume' if axis == 'data' else 'noise'}"
    fixed = f", {_fmt_value(other, others[0])}" if nrows == 1 else ""
    fig.suptitle(_wrap(f"{head}{fixed}; mean ± 1 se (band) over seeds; > 0: the rule helps", fig), fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(len(rules), 6),
        fontsize=8,
        frameon=False,
        title="rule",
        title_fontsize=8,
    )
    legend_in = 0.3 + 0.2 * math.ceil(len(rules) / 6)  # inches below the panels for the legend
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return _save(plt, fig, path)


def plot_tuning(
    history: Sequence[Mapping[str, Any]] | Mapping[str, Any], path: str | Path, rule_names: Iterable[str] | None = None
) -> Path:
    """Rule-weight tuning -> PNG: left, each rule's weight λ_i (log axis) per iteration;
    right, the validation MSE with all rules on (mean ± 1 se over seeds, log axis).

    ``history``: the ``history`` list of a ``tune.json`` (or the whole dict, whose
    ``rule_names`` and ``best`` are then used).  Accepted steps: filled markers on a line;
    rejected (rolled-back) proposals: hollow markers.
    """
    best = None
    entries: list[Mapping[str, Any]]
    if isinstance(history, Mapping):
        rule_names = rule_names or history.get("rule_names")
        best = history.get("best")
        entries = list(history.get("history", []))
    else:
        entries = list(history)
    if not entries:
        raise KvqError("plot_tuning needs a non-empty tuning history (the 'history' list of a tune.json)")
    try:
        it = np.array([_num(h["iteration"]) for h in entries])
        weights = np.array([[_num(w) for w in h["weights"]] for h in entries], dtype=float)
        mse = np.array([_num(h.get("mse_all")) for h in entries])
    except (KeyError, TypeError, ValueError) as e:
        raise KvqError(
            f"a tuning history entry lacks a field or is malformed ({e!r}); expected the 'history' list of a tune.json"
        ) from None
    mse_se = np.array([_num(h.get("mse_all_se")) for h in entries])
    accepted = np.array([bool(h.get("accepted", True)) for h in entries])
    n = weights.shape[1]
    names = list(rule_names) if rule_names is not None else [f"rule {i}" for i in range(n)]
    if len(names) != n:
        raise KvqError(f"{len(names)} rule names for {n} weights per history entry")
    plt = _pyplot()
    from matplotlib.lines import Line2D

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.8), dpi=DPI)
    for i, name in enumerate(names):
        color = colors[i % len(colors)]
        left.plot(it[accepted], weights[accepted, i], "o-", color=color, markersize=5, label=name)
        if (~accepted).any():
            left.plot(
                it[~accepted],
                weights[~accepted, i],
                "o",
                color=color,
                markersize=6,
                markerfacecolor="none",
                markeredgewidth=1.3,
            )
    finite = np.isfinite(weights)
    positive = weights[finite & (np.asarray(weights) > 0)]
    log_weights = bool(positive.size and (np.asarray(weights[finite]) > 0).all())
    if log_weights:
        left.set_yscale("log")
    elif positive.size:
        left.set_yscale("symlog", linthresh=float(positive.min()))
    left.set_xlabel("iteration")
    left.set_ylabel("rule weight λ  (log scale)")
    left.set_title("rule weights", fontsize=10)
    left.grid(alpha=0.3, which="both")
    handles, _ = left.get_legend_handles_labels()
    handles += [
        Line2D([], [], marker="o", linestyle="-", color="0.3", label="accepted step"),
        Line2D([], [], marker="o", linestyle="", color="0.3", markerfacecolor="none", label="rejected proposal"),
    ]

    err = np.nan_to_num(mse_se, nan=0.0)
    for mask, face, label in ((accepted, "C0", "accepted step"), (~accepted, "none", "rejected proposal")):
        if mask.any():
            right.errorbar(
                it[mask],
                mse[mask],
                yerr=err[mask],
                fmt="o",
                color="C0",
                markerfacecolor=face,
                markersize=6,
                capsize=3,
                label=label,
            )
    right.plot(it[accepted], mse[accepted], "-", color="C0", linewidth=1, alpha=0.7)
    if best and best.get("iteration") is not None:
        b = _num(best.get("mse_all"))
        if np.isfinite(b):
            right.plot(
                [_num(best["iteration"])],
                [b],
                "*",
                color="#e67e22",
                markersize=14,
                zorder=5,
                label=f"best (iteration {best['iteration']})",
            )
    log_mse = bool(np.isfinite(mse).any() and (mse[np.isfinite(mse)] > 0).all())
    if log_mse:
        right.set_yscale("log")
    right.set_xlabel("iteration")
    right.set_ylabel("validation MSE, all rules on  (log scale)")
    right.set_title("validation error (mean ± 1 se over seeds)", fontsize=10)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    def compact(v: float, _: Any = None) -> str:  # 0.25, 1.5, 20, 1e-5: never "2.5×10^-1"
        text = f"{v:.6g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text

    def readable_log_ticks(ax: Any) -> None:
        """Labelled ticks at round numbers on a log y axis, however narrow its range."""
        lo, hi = ax.get_ylim()  # autoscaled to the data (with margins)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            return
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if hi / lo >= 1000:  # three decades or more: powers of ten, unlabelled minor ticks between
            ax.yaxis.set_major_locator(LogLocator(base=10))
            return
        if hi / lo < 3:  # under half a decade: evenly spaced round numbers (0.14, 0.16, ...)
            ticks = [
                float(v) for v in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= v <= hi
            ]
        else:  # the sparsest of 1-2-5, 1-1.5-2-3-5-7 and finer mantissas x 10^k giving >= 4 ticks
            powers = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
            for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)):
                ticks = sorted(
                    v for v in (float(f"{m * 10.0**k:.6g}") for k in powers for m in mantissas) if lo <= v <= hi
                )
                if len(ticks) >= 4:
                    break
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())  # grid lines only at the labelled ticks

    if log_weights:
        readable_log_ticks(left)
    if log_mse:
        readable_log_ticks(right)
    iterations = np.unique(it[np.isfinite(it)])
    for ax in (left, right):
        if iterations.size == 1:  # a single iteration: room around it
            ax.set_xlim(iterations[0] - 0.5, iterations[0] + 0.5)
        # a tick at every iteration (never 0.015 or -0.045), or whole numbers for long runs
        ax.xaxis.set_major_locator(
            FixedLocator(iterations.tolist()) if iterations.size <= 12 else MaxNLocator(integer=True)
        )
    ncol = min(len(handles), 7)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.15 + 0.22 * math.ceil(len(handles) / ncol)) / fig.get_figheight(), 1, 1))
    return _save(plt, fig, path)
