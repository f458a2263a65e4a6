"""Plain-text summaries of a value table (what the CLI prints)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kvq import problems
from kvq.core.text import pm as _pm
from kvq.core.text import recipe_line, rule_kinds, score_label
from kvq.errors import KvqError
from kvq.game.importance import SampledImportance
from kvq.game.regression import FITTED_WEIGHTINGS, REGRESSION_WEIGHTING
from kvq.game.sampling import DRAWN, LABELS, few_draws
from kvq.game.summary import Summary, summarize
from kvq.game.table import PROVIDED, ScanResult, ValueTable
from kvq.game.verdicts import (
    ATOL,
    RTOL,
    SAMPLED_ELIMINATION,
    Assessment,
    Elimination,
    PairRelations,
    Settledness,
    best_lighter,
    budget_schedule,
)


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
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return [line(head), line(["-" * w for w in widths]), *map(line, rows)]


def importance_frame(table: ValueTable) -> Any:
    """One row per rule: kind, RI uniform and Shapley, FI (each with its se) and status, as a
    pandas DataFrame (pandas is optional: ``pip install pandas``)."""
    try:
        import pandas as pd
    except ImportError:
        raise KvqError("a DataFrame needs pandas: pip install pandas (or use result.table() for text)") from None
    summary = summarize(table)
    fi, verdicts = summary.fi, summary.assessment
    ri: dict[str, Any] = {}
    for weighting, est in summary.overall.ri.items():  # a sampled table: its sampler's weighting only
        key = "ri" if weighting == "uniform" else "ri_shapley"
        ri.update({key: est.mean, f"{key}_se": est.se})
        if isinstance(est, SampledImportance):  # with the two parts of its se
            ri.update({f"{key}_se_sampling": est.se_sampling, f"{key}_se_seeds": est.se_seeds})
    kinds = rule_kinds(table.problem) if isinstance(table, ScanResult) else {}
    return pd.DataFrame(
        {
            "kind": [kinds.get(n, "") for n in table.rule_names],
            **ri,
            "fi": fi.mean,
            "fi_se": fi.se,
            "status": [rule_status(verdicts, i, "settled", "unknown") for i in range(len(table.rule_names))],
        },
        index=pd.Index(table.rule_names, name="rule"),
    )


def importance_table(table: ValueTable, rerun: str | None = None, summary: Summary | None = None) -> str:
    """Rule, RI uniform ± se, RI Shapley ± se, FI ± se and each rule's status (UNSETTLED,
    IMPROPER); for several outputs also RI per output; then MSE with all rules vs none, the
    training caps and settledness, improper rules by backward elimination, conflicts and
    synergies between rules, and the best rule set.  ``rerun``: the command that re-runs
    the scan with a longer budget (shown when a rule is unsettled); ``summary``: the table's
    :func:`kvq.game.summary.summarize` (computed here when not given).

    A sampled table (docs/design.md §6) shows its sampler's RI ± se with the se's sampling and
    seed parts, and under the table what was trained and drawn and what the proxy did.

    Importances are in log10 units of validation MSE (0.30 = the rule halves the error).
    """
    sampling = table.sampling
    summary = summary or summarize(table)
    fi, verdicts = summary.fi, summary.assessment
    if sampling is None:
        ri_u, ri_s = summary.overall.ri["uniform"], summary.overall.ri["shapley"]
    else:
        ri, plain = summary.ri, summary.plain
    settle, elim = verdicts.settledness, verdicts.elimination
    kinds = rule_kinds(table.problem) if isinstance(table, ScanResult) else {}

    if sampling is None:
        head = ["rule", "kind", "RI uniform ± se", "RI Shapley ± se", "FI ± se", "status"]
        cells = [[_pm(ri_u.mean[i], ri_u.se[i]), _pm(ri_s.mean[i], ri_s.se[i])] for i in range(table.n_rules)]
    else:
        head = ["rule", "kind", f"{LABELS[sampling.sampler]} ± se", "se sampling", "se seeds", "FI ± se", "status"]
        assert isinstance(ri, SampledImportance)  # a sampled table's estimate
        cells = [
            [_pm(ri.mean[i], ri.se[i]), f"{ri.se_sampling[i]:.3f}", f"{ri.se_seeds[i]:.3f}"]
            for i in range(table.n_rules)
        ]
    rows = [
        [name, kinds.get(name, ""), *cells[i], _pm(fi.mean[i], fi.se[i]), rule_status(verdicts, i)]
        for i, name in enumerate(table.rule_names)
    ]
    if not any(r[-1] for r in rows):
        head, rows = head[:-1], [r[:-1] for r in rows]
    out = [*_columns(head, rows), ""]
    if sampling is not None:
        out += [*sampled_lines(table, ri, plain), ""]
    outputs = tuple(getattr(table, "output_names", ()) or ())
    if summary.per_output:
        per = [summary.per_output[o].ri[summary.weighting] for o in outputs]
        label = "RI uniform" if sampling is None else LABELS[sampling.sampler]
        rows = [[name, *(_pm(ri.mean[i], ri.se[i]) for ri in per)] for i, name in enumerate(table.rule_names)]
        out += [
            f"{label} ± se per output (importance for each output's own validation MSE):",
            *_columns(["rule", *outputs], rows),
            "",
        ]
    seeds = table.errors.shape[1]
    score = score_label(table)
    every, none = (table.row_of([on] * table.n_rules) for on in (1, 0))
    assert every is not None  # every table holds the all-rules coalition
    no_rules = "not trained" if none is None else mse_summary(table.errors[none])
    out.append(
        f"validation {score}, all rules: {mse_summary(table.errors[every])}   no rules: {no_rules}"
        f"   ({seeds} seed{'s' if seeds != 1 else ''}, mean ± se)"
    )
    out.append(f"importance = mean log10({score} without / {score} with the rule); > 0: the rule helps")
    recipe = recipe_line(table)
    if recipe:
        out.append(recipe)
    out += settledness_lines(settle, table, rerun)
    out += elimination_lines(elim)
    out += robustness_lines(table)
    if verdicts.pairs is not None:
        out += pair_lines(verdicts.pairs)
    elif "pair_relations" in verdicts.notes:
        out.append(f"pair relations: not available ({verdicts.notes['pair_relations']})")
    out += best_set_lines(verdicts.best, score)
    out += caveats(table)
    out.append(verdict_line(summary))
    return "\n".join(out)


def robustness_lines(table: ValueTable) -> list[str]:
    """Each harmful rule's knowledge-or-optimizer check: its decisive pairs' marginal
    contribution under this protocol and under the stronger one, and what that makes of it."""
    checks = getattr(table, "robustness", None) or {}
    out = []
    for rule, c in checks.items():
        pairs = "; ".join(
            f"{_pair_name(p)} {p['before']['mean']:+.2f} -> {p['after']['mean']:+.2f}" for p in c["pairs"]
        )
        lighter = c.get("lighter") or []
        if c["verdict"] == "weight":
            last = lighter[-1]
            gains = ", ".join(f"{_pair_name(p)} {p['after']['mean']:+.2f}" for p in last["pairs"])
            verdict = (
                f"the harm survived, but at {last['factor']:g} of its weight{_alongside(c)} it helps ({gains}): right "
                "knowledge weighted too heavily against the data, not improper; lower its weight (kvq tune)"
            )
        elif c["verdict"] == "survived" and lighter:
            best, leans = best_lighter(c)
            fi = best["pairs"][0]["after"]
            blame = (
                "kvq blames the knowledge, unsurely: the estimates lean the other way there; more seeds "
                "(--seeds) would narrow it"
                if leans
                else "the knowledge, not the optimizer or its weight"
            )
            verdict = (
                f"the harm survived, and at {lighter[0]['factor']:g} to {lighter[-1]['factor']:g} of its "
                f"weight{_alongside(c)} it does not reliably help either (its FI pair at best {fi['mean']:+.2f} "
                f"± {float('nan') if fi['se'] is None else fi['se']:.2f} at {best['factor']:g}): {blame}"
            )
        elif c["verdict"] == "survived":
            verdict = "the harm survived: the knowledge, not the optimizer"
        else:
            verdict = "the harm disappeared: it hurts under this training protocol, not improper"
        out.append(f"robustness of {rule} under {c['what']}: {pairs} decades; {verdict}")
    return out


def _alongside(check: dict[str, Any]) -> str:
    """How the other suspects stood in a rule's weight stage: lowered alike, or (results written
    before that) left out."""
    if check.get("lowered_with"):
        return f" ({', '.join(check['lowered_with'])}, also under suspicion, lowered alike)"
    if check.get("left_out"):
        return f" without {', '.join(check['left_out'])} (also under suspicion)"
    return ""


def _pair_name(pair: dict[str, Any]) -> str:
    return "FI pair" if pair["kind"] == "fi" else "worst context"


def verdict_line(summary: Summary) -> str:
    """The table's verdict in one plain line: withheld while a rule is unsettled; else the improper
    rules, or that no rule is, with the rules that help and hurt beyond the minimum effect (RI
    beyond ±ATOL decades and its 95 % interval over seeds on that side of zero), or that no rule
    matters here (every |RI| below ATOL)."""
    settle, elim, ri = summary.assessment.settledness, summary.assessment.elimination, summary.ri
    if settle.known and settle.unsettled:
        return (
            f"verdict: withheld, {len(settle.unsettled)} of {len(ri.names)} rule(s) not settled "
            f"({', '.join(settle.unsettled)}): a longer budget may change them (re-run as above)"
        )
    low, high = ri.ci95()
    mean = np.nan_to_num(ri.mean)
    helps = [n for n, m, lo in zip(ri.names, mean, low) if m > ATOL and lo > 0]
    hurts = [n for n, m, hi in zip(ri.names, mean, high) if m < -ATOL and hi < 0 and n not in elim.removed]
    unknown = "" if settle.known else " (settledness unknown: this table has no checks over the budget)"
    checks = summary.robustness
    survived = [r for r in elim.removed if (checks.get(r) or {}).get("verdict") == "survived"]
    if elim.removed:
        head = f"verdict: IMPROPER {', '.join(elim.removed)} (hurts beyond {ATOL} decades in every seed's interval"
        head += f"; survived {checks[survived[0]]['what']})" if survived else ")"
        if summary.assessment.unsure:
            head += (
                f"; unsure for {', '.join(summary.assessment.unsure)}: at a lower weight the estimates lean toward help, short of "
                "the interval (see its robustness line)"
            )
    elif np.all(np.abs(mean) < ATOL):
        return f"verdict: no rule matters here (every |RI| is below the minimum effect, {ATOL} decades){unknown}"
    else:
        head = "verdict: no rule is improper"
    parts = [head]
    weighted = [r for r in elim.protected if checks[r]["verdict"] == "weight"]
    spared = [r for r in elim.protected if r not in weighted]
    if spared:
        what = checks[spared[0]]["what"]
        parts.append(
            f"hurts under this training protocol, not improper: {', '.join(spared)} (the harm disappears with {what})"
        )
    if weighted:
        factors = ", ".join(f"{r} at {checks[r]['lighter'][-1]['factor']:g}{_alongside(checks[r])}" for r in weighted)
        parts.append(f"hurts at its weight, not improper: {', '.join(weighted)} (helps at a lower weight: {factors})")
    hurts = [h for h in hurts if h not in elim.protected]
    if helps:
        parts.append(f"helps: {', '.join(helps)}")
    if hurts:
        why = (
            "several candidates, and a sampled table cannot re-estimate the game without one"
            if elim.sampled_withheld
            else "it no longer hurts once the improper rules are removed"
            if elim.removed
            else "see the elimination above"
        )
        parts.append(f"hurts but not flagged ({why}): {', '.join(hurts)}")
    return "; ".join(parts) + unknown


def sampled_lines(table: ValueTable, ri: Any, plain: Any) -> list[str]:
    """What a sampled table rests on: the coalitions trained, the draws (and the kernel strata
    enumerated exactly), the proxy's correction, and a warning where the sampling se is rough."""
    sampling = table.sampling
    assert sampling is not None
    n, drawn = table.n_rules, DRAWN[sampling.sampler]
    exact = ""
    if sampling.enumerated:
        sizes = ", ".join(f"{k} and {n - k}" for k in sampling.enumerated)
        exact = f", every pair of sizes {sizes} among them, exactly"
    out = [
        (
            f"{len(table.masks)} of {2**n} coalitions trained ({ri.samples} {drawn}{exact}; FI from the "
            f"{n + 1} it needs); se = sqrt(se sampling² + se seeds²)"
        )
    ]
    if REGRESSION_WEIGHTING.get(str(sampling.sampler)) in FITTED_WEIGHTINGS and np.any(ri.se_sampling > 0):
        out.append(
            "RI from a least-squares fit to the trained values, each coalition weighted by what it stands for in the "
            "weighting: consistent, not unbiased; se sampling from a jackknife over the draws (at small budgets at "
            "least the unbiased estimate's)"
        )
    proxy = sampling.proxy
    if plain is not None:
        beta = proxy.get("beta") or [float("nan")]
        out.append(
            f"adjusted by a {proxy.get('method', '?')} proxy scored on {proxy.get('coalitions', '?')} coalitions "
            f"({'its RI exact' if proxy.get('exact') else 'its RI sampled'}; beta "
            f"{min(beta):.2f}..{max(beta):.2f}): largest se sampling "
            f"{np.nanmax(ri.se_sampling):.3f}, {np.nanmax(plain.se_sampling):.3f} without it"
        )
    elif proxy:
        out.append(
            f"a {proxy.get('method', '?')} proxy adjusted this estimate when it was made; this older file did not "
            "keep the proxy's RI, so the plain estimate of the same draws is shown"
        )
    if np.all(np.isnan(ri.se_sampling)):  # an outside approximator's estimate (kvq.game.table.GIVEN)
        out.append("estimated by a shapiq approximator: se is the spread over seeds; its sampling error is not known")
    elif not np.all(np.isfinite(ri.se_sampling)):
        out.append("se sampling inf: too few draws to measure the sampling error; give a larger budget")
    elif (floor := few_draws(str(sampling.sampler), ri.samples, n)) is not None:
        out.append(
            f"se sampling rests on only {ri.samples} {drawn} (fewer than {floor}): a rough error bar "
            f"(it can miss the exact value well over 5 % of the time); give a larger budget"
        )
    return out


def rule_status(verdicts: Assessment, i: int, settled: str = "", unknown: str = "") -> str:
    """Rule ``i``'s status: ``"IMPROPER"`` (removed by elimination), ``"UNSETTLED"``, or
    ``settled`` / ``unknown`` (settledness not known) for the others."""
    settle = verdicts.settledness
    if settle.names[i] in verdicts.elimination.removed:
        return "IMPROPER"
    if not settle.known:
        return unknown
    return settled if settle.settled[i] else "UNSETTLED"


def _budget(table: ValueTable) -> int | None:
    steps = getattr(table, "check_steps", None)
    return None if steps is None else int(steps[-1])


def default_rerun(table: ValueTable) -> str:
    """A hint for re-running ``table``'s scan with twice the budget."""
    steps = _budget(table)
    if steps is None:
        return "a longer training budget (--steps)"
    name = getattr(table, "problem", {}).get("name") if isinstance(table, ScanResult) else None
    if budget_schedule(table):
        return (
            f"kvq.scan(problem, config.replace(steps={2 * steps}), out=<a new folder>) (the schedule is built "
            "for the new budget, so every training runs again)"
        )
    if name in problems.names(measured=True):
        return f"kvq scan {name} --steps {2 * steps} --out <its folder> (plus this scan's other options)"
    return f"kvq.scan(problem, config.replace(steps={2 * steps}), out=<its folder>)"


def settledness_lines(settle: Settledness, table: ValueTable, rerun: str | None = None) -> list[str]:
    """Training caps and which rules' numbers have not settled, with the command to do better."""
    out = []
    stopped = getattr(table, "stopped", None)
    if stopped is not None and np.isfinite(settle.capped_share):
        ok = ~table.missing()
        capped = int((~stopped & ok).sum())
        out.append(
            f"trainings: {capped} of {int(ok.sum())} ({settle.capped_share:.0%}) ran into the "
            f"{_budget(table)}-step cap, {int(ok.sum()) - capped} stopped by the early-stopping check"
            + (
                " (a schedule over the budget: its trainings are meant to run to the cap, so settledness "
                "is judged by the drift alone)"
                if budget_schedule(table)
                else ""
            )
        )
    if not settle.known:
        if getattr(table, "method", "exact") == "exact":
            out.append(f"settledness: unknown ({settle.reasons[0]})")
        return out
    if not settle.unsettled:
        out.append(
            f"settled: every rule's RI and FI moved less than max({ATOL:g}, {RTOL:g}·|value|) decades "
            f"from step {settle.from_step} to {settle.to_step}"
        )
        return out
    why = []
    if settle.too_capped:
        why.append(f"more than {settle.max_capped:.0%} of the trainings ran into the step cap")
    moved = "; ".join(f"{n} {r}" for n, r in zip(settle.names, settle.reasons) if r)
    if moved:
        why.append(f"moved from step {settle.from_step} to {settle.to_step}: {moved}")
    out.append(
        f"UNSETTLED: {', '.join(settle.unsettled)} ({'; '.join(why)}). A longer budget may still change "
        "these numbers; an unsettled rule is never flagged improper."
    )
    out.append(f"re-run with a longer budget: {rerun or default_rerun(table)}")
    optimizer = (getattr(table, "config", None) or {}).get("optimizer")
    if isinstance(optimizer, dict) and optimizer.get("kind") == "optax":
        out.append(
            "  your optimizer is a fixed optax transformation: if its schedule spans the budget, a longer one does "
            "not stretch it; pass ScanConfig(optimizer=lambda steps: ...) to build it for the budget"
        )
    return out


def elimination_lines(elim: Elimination) -> list[str]:
    """Improper rules found by backward elimination, and the others' RI without them."""
    out = []
    if elim.removed:
        parts = []
        for k, r in enumerate(r for r in elim.rounds if r["removed"]):
            i = r["rules"].index(r["removed"])
            when = "" if k == 0 else f" without {', '.join(elim.removed[:k])}"
            parts.append(f"{r['removed']} (RI {_pm(r['ri'][i], r['se'][i])}{when})")
        flagged = ", ".join(parts)
        out.append(
            f"IMPROPER knowledge (backward elimination, in order): {flagged}. Each made the model "
            f"reliably worse (RI < -{elim.min_effect:g} with its 95% CI over seeds below zero, settled): "
            "check it, or drop it."
        )
        if elim.final is not None:
            out.append(
                "  RI of the other rules once the improper ones are removed: "
                + ", ".join(f"{n} {_pm(m, s)}" for n, m, s in zip(elim.final.names, elim.final.mean, elim.final.se))
            )
    if elim.sampled and elim.removed:
        out.append(f"  ({SAMPLED_ELIMINATION}: whether the others stay as they are without it is not known)")
    if elim.withheld:
        out.append(f"not flagged: {', '.join(elim.withheld)} hurt(s) reliably at this budget but has not settled")
    if elim.sampled_withheld:
        out.append(
            f"withheld: {', '.join(elim.sampled_withheld)} each hurt reliably, but {SAMPLED_ELIMINATION}, so which "
            "of them stay harmful once another is dropped is not known: run an exact scan of these rules"
        )
    return out


def pair_lines(pairs: PairRelations) -> list[str]:
    """The pairs that are not independent: conflicts first, then substitutions and synergies."""
    meaning = {
        "conflict": "together worse than either alone",
        "substitution": "one can stand in for the other",
        "synergy": "together worth more than apart",
    }
    out = []
    for kind in ("conflict", "substitution", "synergy"):
        hits = [f"{n} ({pairs.interaction[k]:+.2f})" for k, n in enumerate(pairs.names) if pairs.relation[k] == kind]
        if hits:
            out.append(f"{kind} ({meaning[kind]}; pair interaction in decades): {', '.join(hits)}")
    return out


def best_set_lines(best: dict, score: str = "MSE") -> list[str]:
    """The best rule set and its paired gain over seeds against all rules and the kept rules."""
    b = best["best"]
    among = "" if best.get("trained") is None else f", the best of the {best['trained']} trained coalitions"
    out = [
        (
            f"best rule set: {{{', '.join(b['rules'])}}} (validation {score} {b['mse_mean']:.3e}, chosen on the "
            f"validation set: optimistic{among})"
        )
    ]
    for key, label in (("all_rules", "all rules"), ("kept_by_elimination", "the rules elimination keeps")):
        c = best.get(key)
        if c is None or c["mask"] == b["mask"] or c["gain"] is None:
            continue
        if key == "kept_by_elimination" and c["mask"] == best["all_rules"]["mask"]:
            continue
        ci = "" if c["ci95"] is None or c["ci95"][0] is None else f", 95% CI [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
        se = "" if c["se"] is None else f" ± {c['se']:.3f}"
        out.append(f"  vs {label}: {c['gain']:+.3f}{se} decades{ci} over {c['seeds']} seed(s)")
    return out


def caveats(table: ValueTable) -> list[str]:
    """What a reader must know before trusting the numbers: an estimated table, diverged trainings."""
    out = []
    if getattr(table, "method", "exact") != "exact" and getattr(table, "sampling", None) is None:
        out.append(
            f"ESTIMATED by '{getattr(table, 'method', '?')}' (not every subset was trained): check it against "
            "an exact scan "
            "before relying on small differences (README: 'Which method')"
        )
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
            row.append(
                text
                + (
                    ""
                    if r is None
                    else " !"
                    if r.get("improper") and measure == "ri"
                    else " ?"
                    if r.get("settled") is False
                    else ""
                )
            )
        rows.append(row)
    label = {"ri": "RI uniform", "fi": "FI"}[measure]
    out = [
        (
            f"{label} ± se per sweep point (decades; '!' = improper (backward elimination); '?' = unsettled: "
            "a longer budget may change it):"
        ),
        *_columns(["split", "noise %", "data", *rules], rows),
    ]
    shown = [t for t in trends if t["measure"] == measure]
    if shown:
        out += ["", f"Mann-Kendall trend of {label} along each swept axis (seeds pooled; p < 0.05 = trend):"]
        trows = [
            [
                t["rule"],
                t["axis"],
                t["split"],
                ", ".join(f"{k} {v:g}" for k, v in t["fixed"].items()),
                str(t["n"]),
                "n/a" if t["s"] is None else f"{t['s']:+.0f}",
                "n/a" if t["tau"] is None else f"{t['tau']:+.2f}",
                "n/a" if t["p"] is None else f"{t['p']:.3f}",
                t["trend"],
            ]
            for t in shown
        ]
        out += _columns(["rule", "axis", "split", "at", "n", "S", "tau", "p", "trend"], trows)
    return "\n".join(out)


def tuning_table(tune: dict) -> str:
    """A weight-tuning trajectory (``tune.json``) as text: weights, RI and validation MSE per iteration."""
    names = tune["rule_names"]
    rows = []
    for s in tune["history"]:
        mse = f"{s['mse_all']:.3e}" + ("" if s.get("mse_all_se") is None else f" ± {s['mse_all_se']:.1e}")
        rows.append(
            [
                str(s["iteration"]),
                f"{s['mu']:g}",
                *(f"{w:.3g}" for w in s["weights"]),
                *("n/a" if r is None else f"{r:+.3f}" for r in s["ri"]),
                mse,
                "kept" if s["accepted"] else "rolled back",
            ]
        )
    head = ["iter", "mu", *(f"w {n}" for n in names), *(f"RI {n}" for n in names), "MSE all rules", "step"]
    best = tune["best"]
    return "\n".join(
        [
            *_columns(head, rows),
            "",
            f"best: iteration {best['iteration']}, weights "
            + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, best["weights"]))
            + f", validation MSE {best['mse_all']:.3e} (all rules on, mean over seeds)",
        ]
    )


PROVIDED.update(text=importance_table, frame=importance_frame, sweep_text=sweep_table, tuning_text=tuning_table)
