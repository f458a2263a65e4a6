"""Self-contained reports of a results folder: tables and figures in one file.

:func:`write_report` reads a scan folder (``results.json``, from ``kvq scan``), a sweep folder
(``sweep.json``) or a tuning folder (``tune.json``) and writes ``report.html`` (the figures
embedded as data URIs, inline CSS: one file to mail or archive) or ``report.md`` (the figures
linked).  The PNGs are written to ``<folder>/report_files/``.  Nothing is retrained: every
number comes from the files in the folder.
"""

from __future__ import annotations

import base64
import functools
import html
import importlib.util
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kvq.core.text import num as _num
from kvq.core.text import pm as _pm
from kvq.core.text import recipe_line, rule_kinds, score_label
from kvq.core.text import seeds as _seeds
from kvq.core.text import split_label as _split
from kvq.errors import KvqError
from kvq.game.summary import Summary, summarize
from kvq.game.table import ScanResult
from kvq.present.report import (
    best_set_lines,
    caveats,
    elimination_lines,
    mse_summary,
    pair_lines,
    robustness_lines,
    rule_status,
    sampled_lines,
    settledness_lines,
    verdict_line,
)
from kvq.store.results import FOLDER_MARKERS, load_result, read_folder

FIGURES = "report_files"
RESULTS = FOLDER_MARKERS["scan"]
FORMATS = ("html", "md")
UNITS = (
    "Importances are in decades: log10(MSE without the rule / MSE with it), mean ± 1 standard error "
    "over seeds; > 0 means the rule helps (0.30: it halves the validation error)."
)

IMPROPER = (
    "improper: removed by backward elimination (RI below -0.05 decades with its 95% confidence interval over "
    "seeds below zero, and settled, in the game without the rules removed before it)"
)

# ----------------------------------------------------------------------------- formatting


def _sci(x: Any, se: Any = None) -> str:
    v = _num(x)
    if not math.isfinite(v):
        return "n/a"
    s = _num(se)
    return f"{v:.3e} ± {s:.1e}" if math.isfinite(s) else f"{v:.3e}"


def _g(x: Any, digits: int = 6) -> str:
    v = _num(x)
    return f"{v:.{digits}g}" if math.isfinite(v) else ("n/a" if x is None else str(x))


def _fixed(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return ""
    return ", ".join(f"{k} {_g(v)}" for k, v in d.items())


def _options(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "none"
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in d.items())


def _config_summary(cfg: Any) -> str:
    """One line: network, optimizer, budget, seeds, collocation (the ScanConfig fields)."""
    if not isinstance(cfg, dict) or not cfg:
        return "not recorded"
    bits = []
    if "width" in cfg and "depth" in cfg:
        bits.append(f"MLP {cfg['depth']} hidden layers × {cfg['width']} units, {cfg.get('activation', '?')}")
    if "optimizer" in cfg:
        bits.append(f"{cfg['optimizer']} lr {_g(cfg.get('learning_rate'))}")
    if "steps" in cfg:
        check = f" (checked every {cfg['check_every']})" if "check_every" in cfg else ""
        bits.append(f"{cfg['steps']} steps{check}")
    if cfg.get("warm_start") and cfg.get("pretrain_steps"):
        bits.append(f"warm start: {cfg['pretrain_steps']} data-only steps")
    if "seeds" in cfg:
        bits.append(_seeds(int(cfg["seeds"])))
    if "collocation" in cfg:
        col = cfg["collocation"]
        bits.append("all collocation points" if col is None else f"≤ {col} collocation points per rule")
    known = {
        "width",
        "depth",
        "activation",
        "optimizer",
        "learning_rate",
        "steps",
        "check_every",
        "warm_start",
        "pretrain_steps",
        "seeds",
        "collocation",
    }
    rest = {k: v for k, v in cfg.items() if k not in known}
    if rest:
        bits.append(_options(rest))
    return "; ".join(bits)


def _environment(env: Any) -> str | None:
    if not isinstance(env, dict) or not env:
        return None
    device = env.get("device") or "?"
    platform = env.get("platform")
    count = env.get("device_count")
    text = f"{device}" + (
        f" ({platform}" + (f", {count} device{'s' if count != 1 else ''}" if count else "") + ")" if platform else ""
    )
    versions = env.get("versions") or {}
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("kvq", "jax") and v)
    if shown:
        text += f"; {shown}"
    if env.get("python"):
        text += f", Python {env['python']}"
    return text


def _problem_name(problem: Any) -> str:
    """The problem's name, from a name or a ``Problem.describe()`` dict."""
    if isinstance(problem, dict):
        return str(problem.get("name") or "?")
    return str(problem) if problem else "?"


def _problem_summary(problem: Any) -> str:
    """Name, data volume, noise, split and validation size of a problem (a name or a description dict)."""
    if isinstance(problem, str) and problem:
        return problem
    if not isinstance(problem, dict) or not problem:
        return "not recorded"
    bits = [str(problem.get("name", "?"))]
    if "n_data" in problem:
        bits.append(f"{problem['n_data']} observations")
    if "noise_pct" in problem:
        bits.append(f"noise {_g(problem['noise_pct'])}% of the solution's std")
    if "split" in problem:
        bits.append(f"split {_split(problem['split'])}")
    if "n_valid" in problem:
        bits.append(f"{problem['n_valid']} validation points")
    return ", ".join(bits)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# ----------------------------------------------------------------------------- document model


class _Doc:
    """A list of blocks rendered to HTML or Markdown; figures are written as they are added."""

    def __init__(self, figdir: Path, plotting: bool) -> None:
        self.blocks: list[tuple] = []
        self.figdir = figdir
        self.plotting = plotting
        self.title = "kvq report"

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def note(self, text: str) -> None:
        self.blocks.append(("note", text))

    def facts(self, pairs: list[tuple[str, str | None]]) -> None:
        self.blocks.append(("facts", [(k, v) for k, v in pairs if v not in (None, "")]))

    def table(self, head: list[str], rows: list[list[str]], caption: str | None = None) -> None:
        self.blocks.append(("table", head, rows, caption))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def figure(self, name: str, draw: Callable[[Path], Any], caption: str) -> None:
        """Draw a figure into ``figdir/name`` (a KvqError becomes a note instead)."""
        if not self.plotting:
            return
        path = self.figdir / name
        try:
            draw(path)
        except KvqError as e:
            self.note(f"figure {name} omitted: {e}")
            return
        self.blocks.append(("figure", path, caption, Path(name).stem.replace("-", " ")))

    # -- rendering

    def html(self) -> str:
        esc = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{esc(self.title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
        ]
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
            elif kind == "p":
                out.append(f"<p>{esc(block[1])}</p>")
            elif kind == "note":
                out.append(f'<p class="note">{esc(block[1])}</p>')
            elif kind == "facts":
                rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in block[1])
                out.append(f'<table class="facts">{rows}</table>')
            elif kind == "table":
                _, head, rows, caption = block
                cap = f"<caption>{esc(caption)}</caption>" if caption else ""
                th = "".join(f"<th>{esc(h)}</th>" for h in head)
                body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
                wide = " wide" if len(head) > WIDE_COLUMNS else ""
                out.append(
                    f'<div class="scroll"><table class="data{wide}">{cap}<thead><tr>{th}</tr></thead>'
                    f"<tbody>{body}</tbody></table></div>"
                )
            elif kind == "pre":
                out.append(f"<pre>{esc(block[1])}</pre>")
            elif kind == "figure":
                data = base64.b64encode(block[1].read_bytes()).decode("ascii")
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block[3], quote=True)}">'
                    f"<figcaption>{esc(block[2])}</figcaption></figure>"
                )
        out += ["</body>", "</html>", ""]
        return "\n".join(out)

    def markdown(self, base: Path) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        out: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"{'#' * block[1]} {block[2]}")
            elif kind == "p":
                out.append(block[1])
            elif kind == "note":
                out.append(f"> **Note:** {block[1]}")
            elif kind == "facts":
                out.append("\n".join(f"- **{k}:** {v}" for k, v in block[1]))
            elif kind == "table":
                _, head, rows, caption = block
                lines = [f"*{caption}*", ""] if caption else []
                lines += ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
                lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "pre":
                out.append(f"```\n{block[1]}\n```")
            elif kind == "figure":
                rel = Path(os.path.relpath(Path(block[1]).resolve(), base)).as_posix()
                out.append(f"![{cell(block[3])}]({rel})\n\n*{block[2]}*")
        return "\n\n".join(out) + "\n"


WIDE_COLUMNS = 8  # more columns than this: smaller type, and cells may wrap, so the table fits the page

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; line-height: 1.45;
       max-width: 1150px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .6em 0 1em 0; font-size: .9em; }
table.data th, table.data td { border: 1px solid #ccc; padding: .25em .6em; text-align: right;
       font-variant-numeric: tabular-nums; white-space: nowrap; }
table.data th { background: #f0f2f5; white-space: normal; min-width: 4.5em; }  /* headers wrap: tables fit */
table.data td:first-child, table.data th:first-child { text-align: left; }
table.data.wide { font-size: .78em; width: 100%; }
table.data.wide td { white-space: normal; padding: .2em .35em; }
table.data.wide th { min-width: 0; padding: .2em .35em; }
table.data tbody tr:nth-child(even) { background: #fafafa; }
table.facts th { text-align: left; padding: .15em 1em .15em 0; vertical-align: top; color: #555; font-weight: 600; }
table.facts td { padding: .15em 0; }
caption { text-align: left; font-style: italic; padding-bottom: .3em; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
figure { margin: 1em 0 1.6em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { font-size: .88em; color: #555; margin-top: .3em; }
p.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: .4em .8em; }
"""


# ----------------------------------------------------------------------------- folders


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise KvqError(f"{str(path)!r} is not valid JSON ({e}); the results folder is damaged") from None
    except OSError as e:
        raise KvqError(f"cannot read {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise KvqError(f"{str(path)!r} does not hold a JSON object; the results folder is damaged")
    return data


RI_HEADS = {"uniform": "RI uniform (Banzhaf)", "shapley": "RI Shapley"}


def _importance_rows(result: ScanResult, summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The importance table's head and rows: every RI the table gives, FI and each rule's status."""
    ri = summary.overall.ri
    kinds = rule_kinds(result.problem)
    head = ["rule", "kind", *(RI_HEADS[w] + ("" if result.complete else ", sampled") for w in ri), "FI", "status"]
    rows = [
        [
            name,
            kinds.get(name, ""),
            *(_pm(imp.mean[i], imp.se[i]) for imp in ri.values()),
            _pm(summary.fi.mean[i], summary.fi.se[i]),
            rule_status(summary.assessment, i, "settled", "n/a"),
        ]
        for i, name in enumerate(result.rule_names)
    ]
    return head, rows


def _mse(result: ScanResult, on: int) -> str:
    row = result.row_of([on] * result.n_rules)
    return "not trained" if row is None else mse_summary(result.errors[row])


def _scan_notes(doc: _Doc, result: ScanResult, summary: Summary) -> None:
    verdicts = summary.assessment
    doc.para(
        f"Validation {score_label(result)} with all rules: {_mse(result, 1)}; "
        f"with no rules: {_mse(result, 0)} ({_seeds(result.n_seeds)}, mean ± se)."
    )
    if result.sampling is not None:
        for line in sampled_lines(result, summary.ri, summary.plain):
            doc.para(line)
    recipe = recipe_line(result)
    if recipe:
        doc.para(recipe[0].upper() + recipe[1:] + ".")
    settle, elim = verdicts.settledness, verdicts.elimination
    for line in settledness_lines(settle, result):
        (doc.note if line.startswith(("UNSETTLED", "re-run")) else doc.para)(line)
    for line in elimination_lines(elim):
        doc.note(line)
    for line in robustness_lines(result):
        doc.note(line)
    if not elim.removed:
        doc.para(f"No rule is flagged as improper ({IMPROPER}).")
    for line in [] if verdicts.pairs is None else pair_lines(verdicts.pairs):
        (doc.note if line.startswith("conflict") else doc.para)(line)
    if verdicts.pairs is None and "pair_relations" in verdicts.notes:
        doc.para(f"Pair relations: not available ({verdicts.notes['pair_relations']}).")
    doc.para(" ".join(best_set_lines(verdicts.best, score_label(result))))
    for line in caveats(result):
        doc.note(line)
    doc.para(verdict_line(summary))


def _scan_provenance(result: ScanResult, meta: dict[str, Any]) -> list[tuple[str, str | None]]:
    p = result.problem
    kinds = rule_kinds(result.problem)
    rules = ", ".join(f"{n} ({kinds[n]})" if kinds.get(n) else n for n in result.rule_names)
    method = result.method
    if result.estimator and isinstance(result.estimator, dict) and result.estimator.get("settings"):
        method += f" ({_options(result.estimator['settings'])})"
    timing = result.timing.get("total_s") if isinstance(result.timing, dict) else None
    return [
        ("problem", _problem_summary(p)),
        ("equation", str(p["equation"]) if p.get("equation") else None),
        ("rules", rules),
        ("outputs", ", ".join(result.output_names) if result.output_names else None),
        ("method", method),
        ("config", _config_summary(result.config)),
        ("seeds", ", ".join(map(str, result.seeds))),
        ("device", _environment(result.environment)),
        ("run time", f"{_num(timing):.1f} s" if math.isfinite(_num(timing)) else None),
        ("created", meta.get("created")),
        ("fingerprint", meta.get("fingerprint")),
    ]


MAX_SUBSET_ROWS = 32  # larger value tables are left to table.csv


def _subset_table(doc: _Doc, result: ScanResult, where: str = "") -> None:
    """The validation error of every rule subset (mean ± se over seeds, steps, stopped share)."""
    k = result.errors.shape[0]
    if k > MAX_SUBSET_ROWS:
        doc.para(f"The {k} subsets' validation errors{where} are in table.csv (one row per subset and seed).")
        return
    score = score_label(result)
    errors = np.asarray(result.errors, float)
    rows = []
    for m in range(k):
        ok = np.isfinite(errors[m])
        mean = errors[m][ok].mean() if ok.any() else float("nan")
        se = errors[m][ok].std(ddof=1) / np.sqrt(ok.sum()) if ok.sum() > 1 else None
        stopped = "n/a" if result.stopped is None else f"{np.mean(result.stopped[m]):.0%}"
        steps = "n/a" if result.steps_run is None else _g(float(np.mean(result.steps_run[m])))
        rows.append(
            [result.subset_label(m), _sci(mean, se), steps, stopped, str(int((~ok).sum())) if (~ok).any() else ""]
        )
    doc.table(
        ["rules on", f"validation {score}", "mean steps", "stopped early", "diverged"],
        rows,
        caption=f"Every rule subset{where}: validation {score} (mean ± se over seeds), the steps its "
        "trainings ran and the share stopped by the early-stopping check (the rest hit the cap).",
    )


def _scan(doc: _Doc, directory: Path, meta: dict[str, Any]) -> None:
    from kvq.present.plots import plot_dependence, plot_importance, plot_interactions, plot_trajectory

    result = load_result(directory)
    name = result.problem.get("name") or "value table"
    doc.title = f"kvq scan report: {name}"
    doc.heading(1, f"Rule importance: {name}")
    doc.facts(_scan_provenance(result, meta))
    doc.heading(2, "Importance")
    doc.para(UNITS)
    summary = summarize(result)
    doc.table(*_importance_rows(result, summary))
    _scan_notes(doc, result, summary)
    if summary.per_output:
        per = [m.ri[summary.weighting] for m in summary.per_output.values()]
        rows = [[n, *(_pm(ri.mean[i], ri.se[i]) for ri in per)] for i, n in enumerate(result.rule_names)]
        doc.table(
            ["rule", *summary.per_output],
            rows,
            caption=f"{RI_HEADS[summary.weighting].split(' (')[0]} per output: importance for each output's own "
            "validation MSE",
        )
    doc.heading(2, "Figures")
    doc.figure(
        "importance.png",
        lambda p: plot_importance(result, p),
        "RI (Banzhaf and Shapley weighting) and FI per rule, ± 1 se over seeds."
        if result.complete
        else "RI estimated from the sampled coalitions (± 1 se: sampling and seeds) and FI per rule.",
    )
    if result.check_steps is not None:
        doc.figure(
            "importance-steps.png",
            lambda p: plot_trajectory(result, p),
            "RI and FI against training steps (the value table as it stood at each early-stopping check), "
            "± 1 se over seeds; the shaded half of the budget is where settledness is judged.",
        )
    if not result.complete:
        doc.para(f"Dependence profiles and pair interactions: not available ({summary.not_available['dependence']}).")
        doc.heading(2, "Every trained coalition")
        _subset_table(doc, result)
        return
    doc.figure(
        "dependence.png",
        lambda p: plot_dependence(result, p),
        "Dependence profiles: each rule's marginal contribution Δ_i(S) grouped by how many other rules "
        "are on. Falling boxes: the other rules make it redundant; rising boxes: it needs them.",
    )
    if result.n_rules >= 2:
        doc.figure(
            "interactions.png",
            lambda p: plot_interactions(result, p),
            "Pairwise interactions (Banzhaf): > 0 (blue) synergy, < 0 (red) substitution (one stands in for "
            "the other) or CONFLICT (together worse than either alone); mean ± 1 se.",
        )
        for k, out in enumerate(summary.per_output):
            doc.figure(
                f"interactions-output{k}-{_slug(out)}.png",
                functools.partial(plot_interactions, result, output=out),
                f"Pairwise interactions (Banzhaf) for output {out}'s validation MSE.",
            )
    doc.heading(2, "Every subset")
    _subset_table(doc, result)


def _pivot(summary: list[dict[str, Any]], measure: str) -> tuple[list[str], list[list[str]]]:
    """One row per sweep point, one column per rule (``measure`` ± se), then the point's MSEs."""
    rules = list(dict.fromkeys(str(r.get("rule")) for r in summary))
    points: dict[tuple, dict[str, dict[str, Any]]] = {}
    for entry in summary:
        points.setdefault((entry.get("n_data"), entry.get("noise"), entry.get("split")), {})[str(entry.get("rule"))] = (
            entry
        )
    rows = []
    for (n_data, noise, split), cells in points.items():
        row = [_g(n_data), _g(noise), _split(split)]
        for rule in rules:
            r = cells.get(rule)
            text = "" if r is None else _pm(r.get(measure), r.get(f"{measure}_se"))
            row.append(
                text
                + (
                    ""
                    if r is None
                    else " (improper)"
                    if measure == "ri" and r.get("improper")
                    else " (unsettled)"
                    if r.get("settled") is False
                    else ""
                )
            )
        first = next(iter(cells.values()))
        rows.append([*row, _sci(first.get("mse_all")), _sci(first.get("mse_none"))])
    return ["observations", "noise [%]", "split", *rules, "MSE all rules", "MSE no rules"], rows


def _sweep(doc: _Doc, directory: Path, meta: dict[str, Any]) -> None:
    from kvq.present.plots import plot_dependence, plot_importance, plot_interactions, plot_sweep

    summary = [r for r in meta.get("summary") or [] if isinstance(r, dict)]
    points = [p for p in meta.get("points") or [] if isinstance(p, dict)]
    done = [p for p in points if p.get("done")]
    axes = meta.get("axes") or {}
    kinds = meta.get("rule_kinds") or {}
    names = meta.get("rule_names") or list(dict.fromkeys(r.get("rule") for r in summary))
    env = _environment(meta.get("environment"))
    for p in [] if env else done:  # the sweep file has no environment: take the first point's
        path = directory / str(p.get("dir", "")) / RESULTS
        if p.get("dir") and path.exists():
            try:
                env = _environment(_read_json(path).get("environment"))
                break
            except KvqError:
                continue
    problem, described = _problem_name(meta.get("problem")), _problem_summary(meta.get("problem"))
    doc.title = f"kvq sweep report: {problem}"
    doc.heading(1, f"Sweep: {problem}")
    doc.facts(
        [
            ("problem", described),
            ("problem options", _options(meta.get("problem_options"))),
            ("rules", ", ".join(f"{n} ({kinds[n]})" if kinds.get(n) else str(n) for n in names)),
            (
                "method",
                str(meta.get("method", "exact")) + (f" ({_options(meta['settings'])})" if meta.get("settings") else ""),
            ),
            (
                "axes",
                "; ".join(
                    f"{k}: {', '.join(_g(v) for v in vals)}" for k, vals in axes.items() if isinstance(vals, list)
                ),
            ),
            ("config", _config_summary(meta.get("config"))),
            ("points", f"{len(done)} of {len(points)} done"),
            ("device", env),
            ("created", meta.get("created")),
            ("fingerprint", meta.get("fingerprint")),
        ]
    )
    doc.heading(2, "Summary")
    doc.para(UNITS + " Observations: number of data points; noise: % of the solution's standard deviation.")
    if not summary:
        doc.note("The sweep has no finished points yet: nothing to summarise.")
    for measure, label in (("ri", "RI uniform (Banzhaf)"), ("fi", "FI")):
        if summary:
            head, rows = _pivot(summary, measure)
            flag = (
                (
                    "; (improper): removed by backward elimination; (unsettled): still moving at the end of the "
                    "budget, or most trainings ran into the step cap"
                )
                if measure == "ri"
                else "; (unsettled): still moving at the end of the budget, or most trainings ran into the step cap"
            )
            doc.table(head, rows, caption=f"{label} ± se per sweep point and rule{flag}")
    trends = [t for t in meta.get("trends") or [] if isinstance(t, dict)]
    if trends:
        doc.heading(2, "Trend tests")
        doc.para(
            "Mann-Kendall test for a monotone trend of each rule's per-seed importance along one axis, "
            "the other axes fixed (S statistic, Kendall's τ, normal approximation z, two-sided p)."
        )
        doc.table(
            ["rule", "measure", "axis", "split", "fixed", "n", "S", "τ", "z", "p", "trend"],
            [
                [
                    str(t.get("rule", "")),
                    str(t.get("measure", "")).upper(),
                    str(t.get("axis", "")),
                    _split(t.get("split", "")),
                    _fixed(t.get("fixed")),
                    _g(t.get("n")),
                    _g(t.get("s")),
                    f"{_num(t.get('tau')):+.2f}",
                    f"{_num(t.get('z')):+.2f}",
                    f"{_num(t.get('p')):.3f}",
                    str(t.get("trend", "")),
                ]
                for t in trends
            ],
        )
    plotted = False
    for axis, key in (("data", "n_data"), ("noise", "noise")):
        values = {_num(r.get(key)) for r in summary}
        if len(axes.get(axis) or []) < 2 or len(values) < 2:
            continue
        if not plotted:
            doc.heading(2, "Importance along the swept axes")
            plotted = True
        what = "data volume" if axis == "data" else "noise"
        for measure, label in (("ri", "RI uniform (Banzhaf)"), ("fi", "FI")):
            doc.figure(
                f"sweep-{axis}-{measure}.png",
                functools.partial(
                    plot_sweep, summary, axis=axis, measure=measure, title=f"{problem}: {label} against {what}"
                ),
                f"{label} of each rule against {what}, one panel per split; band: ± 1 se over seeds.",
            )
    if done:
        doc.heading(2, "Sweep points")
    for p in done:
        label = f"{_g(p.get('n_data'))} observations, noise {_g(p.get('noise'))}%, {_split(p.get('split', ''))}"
        doc.heading(3, label)
        rel = str(p.get("dir", ""))
        folder = directory / rel
        if not rel or not (folder / RESULTS).exists():
            doc.note(f"the point's folder {rel!r} holds no {RESULTS}")
            continue
        try:
            result = load_result(folder)
        except KvqError as e:
            doc.note(f"the point's folder {rel!r} could not be read: {e}")
            continue
        doc.para(
            f"Folder: {rel} (a scan folder: `kvq report {rel}` writes its full report). "
            f"Validation MSE with all rules: {_mse(result, 1)}; with no rules: {_mse(result, 0)}."
        )
        doc.figure(
            f"point-{_slug(rel)}-importance.png",
            functools.partial(plot_importance, result),
            f"RI and FI per rule at {label}, ± 1 se.",
        )
        doc.figure(
            f"point-{_slug(rel)}-dependence.png",
            functools.partial(plot_dependence, result),
            f"Dependence profiles at {label}: each rule's marginal contribution by how many other rules are on.",
        )
        if result.n_rules >= 2:
            doc.figure(
                f"point-{_slug(rel)}-interactions.png",
                functools.partial(plot_interactions, result),
                f"Pairwise interactions (Banzhaf) at {label}: > 0 synergy, < 0 substitution or conflict.",
            )
        _subset_table(doc, result, f" at {label}")
    if summary:
        doc.heading(2, "All summary rows")
        doc.table(
            [
                "observations",
                "noise [%]",
                "split",
                "rule",
                "kind",
                "RI uniform",
                "RI Shapley",
                "FI",
                "improper",
                "settled",
                "capped",
                "MSE all rules",
                "MSE no rules",
            ],
            [
                [
                    _g(r.get("n_data")),
                    _g(r.get("noise")),
                    _split(r.get("split", "")),
                    str(r.get("rule", "")),
                    str(r.get("kind", kinds.get(r.get("rule"), ""))),
                    _pm(r.get("ri"), r.get("ri_se")),
                    _pm(r.get("ri_shapley"), r.get("ri_shapley_se")),
                    _pm(r.get("fi"), r.get("fi_se")),
                    "yes" if r.get("improper") else "no",
                    "n/a" if r.get("settled") is None else "yes" if r.get("settled") else "no",
                    "n/a" if r.get("capped_share") is None else f"{_num(r.get('capped_share')):.0%}",
                    _sci(r.get("mse_all")),
                    _sci(r.get("mse_none")),
                ]
                for r in summary
            ],
        )


def _tune(doc: _Doc, directory: Path, meta: dict[str, Any]) -> None:
    from kvq.present.plots import plot_tuning

    names = [str(n) for n in meta.get("rule_names") or []]
    history = [h for h in meta.get("history") or [] if isinstance(h, dict)]
    problem = _problem_name(meta.get("problem"))
    doc.title = f"kvq tuning report: {problem}"
    doc.heading(1, f"Rule-weight tuning: {problem}")
    best = meta.get("best") if isinstance(meta.get("best"), dict) else None
    doc.facts(
        [
            ("problem", _problem_summary(meta.get("problem"))),
            (
                "equation",
                str(meta["problem"].get("equation"))
                if isinstance(meta.get("problem"), dict) and meta["problem"].get("equation")
                else None,
            ),
            ("rules", ", ".join(names)),
            ("method", str(meta.get("method", "exact"))),
            ("config", _config_summary(meta.get("config"))),
            ("μ₀", _g(meta.get("mu0")) if "mu0" in meta else None),
            ("iterations", str(len(history))),
            ("created", meta.get("created")),
            ("fingerprint", meta.get("fingerprint")),
        ]
    )
    if best:
        weights = best.get("weights") or []
        shown = ", ".join(f"{n} {_g(w, 4)}" for n, w in zip(names, weights)) or "?"
        doc.para(
            f"Best: iteration {best.get('iteration')}, weights λ: {shown}; validation MSE with all rules "
            f"{_sci(best.get('mse_all'), best.get('mse_all_se'))}."
        )
    doc.heading(2, "History")
    doc.para(
        "λ: rule weights; RI: rule importance at those weights (decades, mean ± 1 se); MSE: validation "
        "MSE with all rules on (mean ± se over seeds). Rejected proposals were rolled back."
    )
    if not history:
        doc.note("The tuning history is empty.")
    else:
        n = max(len(names), max(len(h.get("weights") or []) for h in history))
        labels = names + [f"rule {i}" for i in range(len(names), n)]
        rows = []
        for h in history:
            w = list(h.get("weights") or [])
            ri, se = list(h.get("ri") or []), list(h.get("ri_se") or [])
            rows.append(
                [
                    _g(h.get("iteration")),
                    "accepted" if h.get("accepted", True) else "rejected",
                    _g(h.get("mu"), 4),
                    *(_g(w[i], 4) if i < len(w) else "" for i in range(n)),
                    *(_pm(ri[i], se[i] if i < len(se) else None) if i < len(ri) else "" for i in range(n)),
                    _sci(h.get("mse_all"), h.get("mse_all_se")),
                ]
            )
        doc.table(
            ["iteration", "step", "μ", *(f"λ {x}" for x in labels), *(f"RI {x}" for x in labels), "MSE all rules"], rows
        )
        doc.heading(2, "Figure")
        doc.figure(
            "tuning.png",
            lambda p: plot_tuning(meta, p, rule_names=labels),
            "Left: rule weights per iteration (filled: accepted, hollow: rejected proposals). "
            "Right: validation MSE with all rules on, ± 1 se over seeds.",
        )


def write_report(directory: str | Path, fmt: str = "html", out: str | Path | None = None) -> Path:
    """Write a report of the results folder ``directory`` and return its path.

    The folder is a scan (``results.json``), a sweep (``sweep.json``) or a weight tuning
    (``tune.json``).  ``fmt="html"``: one self-contained file (figures embedded, no external
    links; nothing is written beside it); ``fmt="md"``: Markdown linking the figures by relative
    path, which go to ``directory/report_files/``; the report to ``out`` (default ``directory/report.html`` or
    ``report.md``).  Without matplotlib the report has the tables only.
    """
    if fmt not in FORMATS:
        raise KvqError(f"unknown report format {fmt!r}; choose 'html' or 'md'")
    directory = Path(directory)
    kind, meta = read_folder(directory)
    target = Path(out) if out is not None else directory / f"report.{fmt}"
    plotting = importlib.util.find_spec("matplotlib") is not None
    with tempfile.TemporaryDirectory() as scratch:  # an HTML report embeds its figures: no folder beside it
        figdir = directory / FIGURES if fmt == "md" else Path(scratch)
        if plotting:
            figdir.mkdir(parents=True, exist_ok=True)
        doc = _Doc(figdir, plotting)
        {"scan": _scan, "sweep": _sweep, "tuning": _tune}[kind](doc, directory, meta)
        if not plotting:
            doc.note("Figures omitted: plotting needs matplotlib (pip install 'kvq[plot]').")
        doc.para("Written by `kvq report` from the files in this folder (nothing was retrained).")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = doc.html() if fmt == "html" else doc.markdown(target.parent.resolve())
    target.write_text(text, encoding="utf-8")
    return target
