"""Figures and the self-contained report, on synthetic value tables (no training)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import kvq  # noqa: E402
from kvq.core.coalitions import all_masks  # noqa: E402
from kvq.present.document import write_report  # noqa: E402
from kvq.errors import KvqError  # noqa: E402
from kvq.game.importance import full_importance, rule_importance  # noqa: E402
from kvq.present.plots import plot_dependence, plot_interactions, plot_sweep, plot_tuning  # noqa: E402
from kvq.present.report import importance_table  # noqa: E402
from kvq.game.table import ScanResult  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
RULES = ("pde", "ic", "bc")
KINDS = {"pde": "global", "ic": "local", "bc": "local"}
CONFIG = {"width": 8, "depth": 2, "activation": "tanh", "optimizer": "adam", "learning_rate": 0.01,
          "steps": 40, "check_every": 20, "warm_start": True, "pretrain_steps": 40, "seeds": 3,
          "collocation": 48}
ENV = {"versions": {"kvq": "0.1.0", "jax": "0.4.30"}, "python": "3.11.0", "platform": "cpu", "device": "cpu",
       "device_count": 1, "machine": "x86_64"}


def game(effects, seeds: int = 3, pair: float = 0.0, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """errors [2^n, seeds] of an additive game (values in decades) plus a synergy of rules 0 and 1."""
    masks = all_masks(len(effects)).astype(float)
    v = 1.0 + masks @ np.asarray(effects, float)
    if len(effects) > 1:
        v += pair * masks[:, 0] * masks[:, 1]
    rng = np.random.default_rng(seed)
    return 10.0 ** -(v[:, None] + noise * rng.standard_normal((len(v), seeds)))


def scan_result(effects=(0.5, 0.2, -0.1), n_data=16, split="interpolation", seed=0, outputs=0,
                history: bool = False) -> ScanResult:
    """A synthetic scan; with ``history`` also a table over the budget (checks at steps 20
    and 40: 97 % of the effects, then all of them, which counts as settled; every training
    stopped early)."""
    names = RULES[: len(effects)]
    by_output = None
    if outputs:
        by_output = np.stack([game(np.roll(effects, k), pair=0.1 * k, seed=seed + k) for k in range(outputs)], -1)
        errors = by_output.mean(-1)
    else:
        errors = game(effects, pair=0.15, seed=seed)
    trajectory = {}
    if history:
        earlier = game(0.97 * np.asarray(effects), pair=0.15, seed=seed)
        trajectory = {"errors_by_check": np.stack([earlier, errors]), "check_steps": np.array([20, 40]),
                      "stopped": np.ones(errors.shape, bool)}
    problem = {"name": "toy", "seed": 0, "rules": [{"name": n, "kind": KINDS[n]} for n in names],
               "equation": "u_t + u u_x = 0", "n_data": n_data, "noise_pct": 0.0, "split": split}
    return ScanResult(rule_names=names, errors=errors, errors_by_output=by_output,
                      output_names=tuple(f"u{k}" for k in range(outputs)), problem=problem, config=CONFIG,
                      environment=ENV, timing={"total_s": 1.5}, **trajectory)


def pngs_in_html(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def assert_self_contained(text: str) -> None:
    assert not re.findall(r'(?:src|href)\s*=\s*"(?!data:)', text), "the HTML refers to something outside itself"
    assert "<link" not in text and "<script" not in text and "@import" not in text


@pytest.fixture(scope="session")  # once per worker, however xdist orders the tests
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    scan = scan_result(effects=(0.5, 0.2, -0.3), history=True).save(root / "scan")
    clean = scan_result(effects=(0.5, 0.2, 0.1)).save(root / "clean")
    multi = scan_result(outputs=2).save(root / "multi")

    sweep = root / "sweep"
    points, summary = [], []
    for split in ("interpolation", "extrapolation"):
        for n_data in (0, 10, 100):
            rel = f"points/d{n_data}-n0-{split}"
            done = not (split == "extrapolation" and n_data == 100)
            points.append({"n_data": n_data, "noise": 0.0, "split": split, "dir": rel, "done": done})
            if not done:
                continue
            scale = 1.0 / (1 + n_data / 20)  # physics matters less with more data
            res = scan_result(effects=(0.6 * scale, 0.3 * scale, -0.05), n_data=n_data, split=split, seed=n_data)
            res.save(sweep / rel)
            ri, ris, fi = rule_importance(res), rule_importance(res, "shapley"), full_importance(res)
            for i, rule in enumerate(res.rule_names):
                summary.append({"n_data": n_data, "noise": 0.0, "split": split, "rule": rule, "kind": KINDS[rule],
                                "ri": ri.mean[i], "ri_se": ri.se[i], "ri_shapley": ris.mean[i],
                                "ri_shapley_se": ris.se[i], "fi": fi.mean[i], "fi_se": None if i == 2 else fi.se[i],
                                "improper": bool(ri.mean[i] < 0), "mse_all": float(res.errors[-1].mean()),
                                "mse_none": float(res.errors[0].mean())})
    trends = [{"rule": r, "measure": "ri", "axis": "data", "split": "interpolation", "fixed": {"noise": 0.0},
               "n": 3, "s": -3.0, "tau": -1.0, "z": -1.57, "p": 0.117,
               "trend": "decreasing" if r != "bc" else "no trend"} for r in RULES]
    sweep_meta = {"format": 1, "kind": "kvq.SweepResult", "fingerprint": "f" * 16, "created": "2026-01-02T03:04:05",
                  "problem": "toy", "problem_options": {"n_valid": 64}, "method": "exact", "settings": {},
                  "axes": {"data": [0, 10, 100], "noise": [0], "split": ["interpolation", "extrapolation"]},
                  "config": CONFIG, "rule_names": list(RULES), "rule_kinds": KINDS, "points": points,
                  "summary": [{k: float(v) if isinstance(v, np.floating) else v for k, v in r.items()}
                              for r in summary], "trends": trends}
    (sweep / "sweep.json").write_text(json.dumps(sweep_meta))

    tune = root / "tune"
    tune.mkdir()
    history = []
    for it, (w, acc, mse) in enumerate([((1, 1, 1), True, 2e-3), ((2, 1, 0.5), True, 1.2e-3),
                                        ((4, 1, 0.25), False, 1.6e-3), ((2, 1.5, 0.3), True, 9e-4)]):
        history.append({"iteration": it, "weights": list(w), "mu": 1.0 / (it + 1), "ri": [0.4, 0.2, -0.05],
                        "ri_se": [0.02, 0.03, None], "mse_all": mse, "mse_all_se": mse / 10, "accepted": acc})
    (tune / "tune.json").write_text(json.dumps({
        "format": 1, "kind": "kvq.TuneResult", "problem": {"name": "toy", "n_data": 16, "equation": "u_t = 0"},
        "rule_names": list(RULES), "method": "exact", "created": "2026-01-02T03:04:05",
        "config": CONFIG, "mu0": 1.0, "history": history,
        "best": {"iteration": 3, "weights": [2, 1.5, 0.3], "mse_all": 9e-4, "mse_all_se": 9e-5}}))
    return {"scan": scan, "clean": clean, "multi": multi, "sweep": sweep, "tune": tune, "root": root}


def test_scan_report_html(folders):
    path = write_report(folders["scan"])
    assert path == folders["scan"] / "report.html"
    text = path.read_text()
    assert_self_contained(text)
    for name in RULES:
        assert f"<td>{name}</td>" in text
    result = ScanResult.load(folders["scan"])
    ri = rule_importance(result)
    assert f"{ri.mean[0]:+.3f} ± {ri.se[0]:.3f}" in text  # the table holds the computed RI
    assert "IMPROPER knowledge (backward elimination, in order): bc (RI -0.3" in text
    assert "<td>IMPROPER</td>" in text and text.count("<td>settled</td>") == 2  # the status column
    assert "verdict: IMPROPER bc" in text  # the verdict line the printed table ends with
    assert "<th>device</th><td>cpu (cpu, 1 device); kvq 0.1.0, jax 0.4.30" in text  # provenance
    assert "MLP 2 hidden layers × 8 units, tanh" in text
    images = pngs_in_html(text)
    assert len(images) == 4  # importance bars, importance over the budget, dependence profiles, interactions
    assert all(img.startswith(PNG) and len(img) > 5000 for img in images)
    assert not (folders["scan"] / "report_files").exists()  # self-contained: nothing written beside it
    clean = write_report(folders["clean"], out=folders["root"] / "s.html").read_text()
    assert "No rule is flagged as improper" in clean and "IMPROPER" not in clean
    assert "settledness: unknown" in clean  # no table over the budget in this result
    assert "<td>{pde, ic, bc}</td>" in text and "stopped early" in text  # the table of every subset


def test_a_report_carries_the_robustness_check_and_the_verdict_line(tmp_path):
    import dataclasses

    result = scan_result(effects=(0.5, 0.2, -0.3), history=True)
    pair = {"kind": "fi", "before": {"mean": -1.0, "se": 0.05}, "after": {"mean": -0.9, "se": 0.05}}
    lean = {"kind": "fi", "before": {"mean": -1.0, "se": 0.05}, "after": {"mean": 0.4, "se": 0.2, "seeds": 6}}
    check = {"verdict": "survived", "what": "up to 1000 L-BFGS steps", "pairs": [pair],
             "lighter": [{"factor": 0.01, "pairs": [lean], "helps": False}]}
    checked = dataclasses.replace(result, robustness={"bc": check})
    assert kvq.improper_rules(checked) == ("bc",)
    checked.save(tmp_path / "scan")
    text = write_report(tmp_path / "scan", fmt="md").read_text()
    assert "robustness of bc under up to 1000 L-BFGS steps: FI pair -1.00 -> -0.90 decades" in text
    assert "verdict: IMPROPER bc" in text and "unsure for bc" in text


def test_multi_output_report_markdown(folders):
    out = folders["root"] / "elsewhere" / "multi.md"
    path = write_report(folders["multi"], fmt="md", out=out)
    assert path == out
    text = path.read_text()
    assert "RI uniform per output" in text and "| u0 | u1 |" in text
    flagged = kvq.improper_rules(ScanResult.load(folders["multi"]))  # the verdict is recomputed from the table
    assert ("IMPROPER knowledge (backward elimination" in text) == bool(flagged)
    assert ("No rule is flagged as improper" in text) == (not flagged)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5  # bars, dependence, interactions overall + one per output
    assert sum("interactions-output" in link for link in links) == 2
    for link in links:
        assert not link.startswith(("/", "http"))
        assert (path.parent / link).resolve().read_bytes().startswith(PNG)


def test_sweep_report(folders):
    text = write_report(folders["sweep"]).read_text()
    assert_self_contained(text)
    assert "5 of 6 done" in text
    assert text.count("<td>decreasing</td>") == 2 and "<td>no trend</td>" in text
    assert "interpolation (in-distribution)" in text and "extrapolation (out-of-distribution)" in text
    assert "d100-n0-extrapolation" not in text  # not done: no section
    assert len(pngs_in_html(text)) == 2 + 3 * 5  # the sweep's figures, then every finished point's own three
    # every point's subsets: 2^3 rows of validation errors, computed from its table
    assert text.count("Every rule subset at ") == 5
    point = ScanResult.load(folders["sweep"] / "points" / "d10-n0-interpolation")
    assert f"<td>{{pde, ic}}</td><td>{point.errors[3].mean():.3e} ± " in text
    md = write_report(folders["sweep"], fmt="md").read_text()
    assert "(report_files/sweep-data-ri.png)" in md and "| observations | noise [%] |" in md


def test_tune_report(folders):
    text = write_report(folders["tune"]).read_text()
    assert_self_contained(text)
    for name in RULES:
        assert f"λ {name}" in text
    assert text.count("<td>rejected</td>") == 1
    assert "Best: iteration 3" in text and "<h1>Rule-weight tuning: toy</h1>" in text
    assert "<td>toy, 16 observations</td>" in text and "2026-01-02T03:04:05" in text
    images = pngs_in_html(text)
    assert len(images) == 1 and images[0].startswith(PNG)


def test_plot_functions_and_bad_input(folders, tmp_path):
    one = ScanResult(rule_names=("pde",), errors=game((0.3,)))
    with pytest.raises(KvqError, match="at least 2 rules"):
        plot_interactions(one, tmp_path / "x.png")
    assert plot_dependence(one, tmp_path / "dep1.png").read_bytes().startswith(PNG)
    multi = ScanResult.load(folders["multi"])
    assert plot_interactions(multi, tmp_path / "i.png", "shapley", output="u1").read_bytes().startswith(PNG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a diverged training is drawn without warnings
        errors = game((0.5, 0.2, -0.1))
        errors[5, 1] = np.nan
        diverged = ScanResult(rule_names=RULES, errors=errors)
        assert plot_dependence(diverged, tmp_path / "dep.png").read_bytes().startswith(PNG)
    sweep = json.loads((folders["sweep"] / "sweep.json").read_text())
    # both numeric axes varied: one row of panels per noise level
    rows = sweep["summary"] + [{**r, "noise": 5.0, "ri": r["ri"] - 0.1} for r in sweep["summary"]]
    assert plot_sweep(rows, tmp_path / "noise.png", axis="noise", measure="ri_shapley").read_bytes().startswith(PNG)
    assert plot_sweep(rows, tmp_path / "data.png", axis="data").read_bytes().startswith(PNG)
    with pytest.raises(KvqError, match="at least 2"):
        plot_sweep(sweep["summary"], tmp_path / "y.png", axis="noise")
    with pytest.raises(KvqError, match="unknown sweep axis"):
        plot_sweep(sweep["summary"], tmp_path / "y.png", axis="width")
    with pytest.raises(KvqError, match="summary rows"):
        plot_sweep([], tmp_path / "y.png")
    with pytest.raises(KvqError, match="non-empty"):
        plot_tuning([], tmp_path / "t.png")
    tune = json.loads((folders["tune"] / "tune.json").read_text())
    with pytest.raises(KvqError, match="rule names"):
        plot_tuning(tune["history"], tmp_path / "t.png", rule_names=["a"])


def test_unknown_folder(tmp_path):
    with pytest.raises(KvqError, match="results.json"):
        write_report(tmp_path)
    with pytest.raises(KvqError, match="not a folder"):
        write_report(tmp_path / "absent")
    (tmp_path / "results.json").write_text(json.dumps({"kind": "something.else"}))
    with pytest.raises(KvqError, match="kvq.ScanResult"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(KvqError, match="not valid JSON"):
        write_report(tmp_path)
    with pytest.raises(KvqError, match="'html' or 'md'"):
        write_report(tmp_path, fmt="pdf")


def test_results_print_short_and_readable():
    from kvq.workflows.sweeps import SweepPoint, SweepResult
    from kvq.workflows.tune import TuneResult, TuneStep

    result = scan_result(history=True)
    assert repr(result) == "ScanResult(problem='toy', rules=['pde', 'ic', 'bc'], 8 masks x 3 seeds [0, 1, 2], " \
                           "method='exact', 40 steps)"
    printed = str(result)
    assert printed.startswith(repr(result)) and "RI uniform ± se" in printed and "best rule set" in printed
    assert repr(kvq.ValueTable(RULES[:2], np.ones((4, 2)))) == "ValueTable(rules=['pde', 'ic'], 4 masks x 2 seeds)"
    frame = result.table(as_frame=True)  # independently: the importance functions
    np.testing.assert_allclose(frame["ri"].to_numpy(), rule_importance(result).mean)
    np.testing.assert_allclose(frame["fi_se"].to_numpy(), full_importance(result).se)
    assert list(frame.index) == list(RULES) and list(frame["kind"]) == ["global", "local", "local"]
    points = (SweepPoint(0, 0.0, "interpolation"), SweepPoint(16, 0.0, "interpolation"))
    sweep = SweepResult("toy", {"data": [0, 16], "noise": [0.0], "split": ["interpolation"]}, points,
                        (scan_result(n_data=0), scan_result(n_data=16, seed=1)), CONFIG)
    assert repr(sweep).startswith("SweepResult(problem='toy', 2 points = data [0, 16] x noise [0.0]")
    assert "rules=['pde', 'ic', 'bc']" in repr(sweep) and len(repr(sweep)) < 300
    assert "RI uniform ± se per sweep point" in str(sweep) and sweep.table("fi") in str(sweep)
    assert "FI ± se per sweep point" in sweep.table("fi")
    step = TuneStep(0, (1.0, 2.0), 1.0, (0.1, 0.2), (0.01, 0.02), 1e-3, 1e-4, True)
    tuned = TuneResult({"name": "toy"}, ("pde", "ic"), (step,), CONFIG, "exact", 1.0)
    assert repr(tuned) == ("TuneResult(problem='toy', rules=['pde', 'ic'], 1 iterations, best: iteration 0, "
                           "weights [1.0, 2.0], all-rules MSE 1.000e-03)")
    assert str(tuned) == f"{tuned!r}\n\n{tuned.table()}" and "1.000e-03" in tuned.table()


def test_every_figure_keeps_its_text_inside_and_has_a_sane_size(folders, tmp_path, monkeypatch):
    """Each figure as the layout leaves it: no title, label, tick label or legend beyond the
    edges (where kvq would have to grow the image), and a size a page can show."""
    from kvq.present import plots
    from kvq.present.plots import plot_importance, plot_trajectory, text_outside

    outside, save = {}, plots._save

    def checked(plt, fig, path):
        outside[Path(path).name] = text_outside(fig)
        return save(plt, fig, path)

    monkeypatch.setattr(plots, "_save", checked)
    long_name = scan_result(effects=(0.5, 0.2, -0.3, 0.1, 0.05)[:3], history=True)
    long_name.problem.update(name="a_problem_with_a_rather_long_name_for_a_title", n_data=10_000, noise_pct=25.0,
                             split="extrapolation")
    multi = ScanResult.load(folders["multi"])
    sweep = json.loads((folders["sweep"] / "sweep.json").read_text())
    noisy = sweep["summary"] + [{**r, "noise": 25.0, "ri": r["ri"] - 0.1} for r in sweep["summary"]]
    tune = json.loads((folders["tune"] / "tune.json").read_text())
    paths = [
        plot_importance(long_name, tmp_path / "ri.png"),
        plot_trajectory(long_name, tmp_path / "ri-steps.png"),
        plot_dependence(long_name, tmp_path / "dependence.png"),
        plot_interactions(long_name, tmp_path / "interactions.png"),
        plot_interactions(multi, tmp_path / "interactions-u1.png", output="u1"),
        plot_sweep(sweep["summary"], tmp_path / "sweep-data.png", axis="data"),
        plot_sweep(noisy, tmp_path / "sweep-noise.png", axis="noise", measure="fi"),
        plot_tuning(tune["history"], tmp_path / "tuning.png", rule_names=list(RULES)),
    ]
    assert set(outside) == {p.name for p in paths}
    assert {name: texts for name, texts in outside.items() if texts} == {}
    from matplotlib.image import imread

    for p in paths:
        h, w = imread(p).shape[:2]
        assert 400 <= w <= 2000 and 300 <= h <= 2000, (p.name, w, h)


def test_a_title_beyond_the_edges_is_seen_and_the_saved_image_grows_to_hold_it(tmp_path):
    from matplotlib.image import imread

    from kvq.present.plots import DPI, _pyplot, _save, text_outside

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3), dpi=DPI)
    ax.plot([0, 1], [0, 1])
    fig.suptitle("a title far too long for a figure four inches wide, " * 3)
    assert text_outside(fig) != []
    h, w = imread(_save(plt, fig, tmp_path / "wide.png")).shape[:2]
    assert w > 4 * DPI  # nothing cut off: the image is wider than the figure


def _laid_out_width(page: Path) -> tuple[int, list[int]]:
    """(page width, widths of the tables that overflow their box) of ``page`` laid out by a
    headless Chromium at a 1 200 px window."""
    probe = ("<script>var o = [...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth + 1)"
             ".map(e => e.scrollWidth); document.title = 'W=' + document.documentElement.scrollWidth + ';' + o.join(',');"
             "</script></body>")
    page.write_text(page.read_text().replace("</body>", probe))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--window-size=1200,900", "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    width, over = dom.split("<title>W=")[1].split("<")[0].split(";")
    return int(width), [int(w) for w in over.split(",") if w]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a headless Chromium to lay the pages out")
def test_report_pages_fit_a_1200_pixel_window(folders, tmp_path):
    """Laid out by a real browser at 1 200 px: no page and no table is wider than the window,
    also a sweep table with many rules (each cell 'mean ± se (unsettled)')."""
    from kvq.present.document import _Doc

    for kind in ("scan", "sweep", "tune"):
        page = write_report(folders[kind], out=tmp_path / f"{kind}.html")
        assert _laid_out_width(page) == (1200, []), kind
    doc = _Doc(tmp_path, plotting=False)
    head = ["observations", "noise [%]", "split", *(f"rule_{i}" for i in range(8)), "MSE all rules", "MSE no rules"]
    doc.table(head, [["1000", "0", "extrapolation (out-of-distribution)", *["+0.123 ± 0.045 (unsettled)"] * 8,
                      "3.144e-01", "2.938e-01"]] * 3)
    wide = tmp_path / "wide.html"
    wide.write_text(doc.html())
    assert _laid_out_width(wide) == (1200, [])


def _additive(effects, seeds=4, noise=0.01, seed=0):
    """A value table whose rules add ``effects`` decades each, with a little seed noise."""
    rng = np.random.default_rng(seed)
    masks = all_masks(len(effects))
    v = masks @ np.asarray(effects, float)  # [2^n]
    errors = 0.1 * 10.0 ** -(v[:, None] + noise * rng.standard_normal((len(v), seeds)))
    return kvq.ValueTable(tuple(f"r{i}" for i in range(len(effects))), errors)


def test_the_verdict_line_says_what_helps_what_is_improper_and_when_nothing_matters():
    line = importance_table(_additive([0.5, 0.0])).splitlines()[-1]
    assert line.startswith("verdict: no rule is improper; helps: r0") and "settledness unknown" in line
    assert "r1" not in line
    line = importance_table(_additive([0.5, -0.5])).splitlines()[-1]
    assert line.startswith("verdict: IMPROPER r1") and "helps: r0" in line
    line = importance_table(_additive([0.01, -0.02])).splitlines()[-1]
    assert line.startswith("verdict: no rule matters here (every |RI| is below the minimum effect, 0.05 decades)")


def test_the_rerun_hint_names_the_command_of_every_built_in_problem(tiny_scan):
    import dataclasses

    from kvq.present.report import default_rerun

    steps = 2 * tiny_scan.config["steps"]
    for name in ("burgers", "tlc"):  # tlc: built from the user's measurements, a built-in all the same
        table = dataclasses.replace(tiny_scan, problem={**tiny_scan.problem, "name": name})
        assert default_rerun(table).startswith(f"kvq scan {name} --steps {steps} --out <its folder>")
    mine = dataclasses.replace(tiny_scan, problem={**tiny_scan.problem, "name": "my_problem"})
    assert default_rerun(mine).startswith(f"kvq.scan(problem, config.replace(steps={steps})")
