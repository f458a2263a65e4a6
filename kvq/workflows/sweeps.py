"""Sweeps: rule importance across data volume, noise and in- vs out-of-distribution splits.

``sweep("burgers", data=[0, 10, 100], noise=[0, 25], split=["interpolation", "extrapolation"])``
trains the full rule-subset scan at every combination of the swept values.  Exact scans
batch across sweep points: every point that shares a validation set (one split) trains in
one engine, its observation sets (sizes, noise levels, seeds) stacked as seed columns and
padded to one size with 0/1 row weights, so a sweep compiles one set of programs per
split instead of one per point.  Estimators (``method="finetune"|"newton"``) run point by
point.

With ``out`` (a folder) the sweep is resumable: each group's training checkpoints, each
finished point is written as an ordinary scan folder under ``out/points/``, and running
the same sweep again skips finished points and ends with exactly the numbers an
uninterrupted run gives.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kvq import problems
from kvq.core.config import ScanConfig, config_identity
from kvq.core.text import function_name, rule_kinds
from kvq.engine.batched import Progress
from kvq.engine.checkpoint import Checkpoint
from kvq.engine.identity import digest
from kvq.errors import KvqError
from kvq.game.summary import summarize
from kvq.game.table import ScanResult, json_ready, provided
from kvq.game.trend import mann_kendall
from kvq.methods import METHODS, Exact, Outcome, Sampled, method_for
from kvq.problems.rules import Problem
from kvq.store.results import (
    FOLDER_MARKERS,
    check_output_dir,
    discard,
    folder_fingerprint,
    load_finished,
    load_result,
    read_meta,
    save_result,
    write_atomic,
    write_json,
)
from kvq.workflows import robustness as robust
from kvq.workflows.pipeline import fingerprint, make_result, prepare, run, tagged

SWEEP_JSON = FOLDER_MARKERS["sweep"]
SUMMARY_CSV = "summary.csv"
CHECKPOINTS = ".checkpoint"
NUMERIC_AXES = ("data", "noise")


@dataclass(frozen=True)
class SweepPoint:
    """One setting of a sweep: ``n_data`` observations, ``noise`` (% of the solution's std), ``split``."""

    n_data: int
    noise: float
    split: str

    @property
    def label(self) -> str:
        """Folder name of the point, e.g. ``d100-n25-extrapolation``."""
        return f"d{self.n_data}-n{self.noise:g}-{self.split}"

    def axis(self, name: str) -> Any:
        return {"data": self.n_data, "noise": self.noise, "split": self.split}[name]


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The value table of every sweep point, with the per-point importances and the trend tests.

    ``points[k]`` was scanned into ``results[k]``; ``summary``: one row per (point, rule)
    with RI (uniform and Shapley) and FI ± se, the improper flag and the all/no-rule MSE;
    ``trends``: a Mann-Kendall test per (rule, measure, numeric axis, split, value of the
    other numeric axis) of the per-seed importances along that axis.
    """

    problem: str
    axes: dict[str, list[Any]]
    points: tuple[SweepPoint, ...]
    results: tuple[ScanResult, ...]
    config: dict[str, Any]
    method: str = "exact"
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    problem_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    points_identity: str = ""  # a hash of every point's scan fingerprint (its problem's arrays included)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return self.results[0].rule_names

    def __repr__(self) -> str:  # short: the results hold every point's arrays
        axes = " x ".join(f"{k} {v}" for k, v in self.axes.items())
        rules = f", rules={list(self.rule_names)}" if self.results else ""
        return (
            f"SweepResult(problem={self.problem!r}, {len(self.points)} points = {axes}{rules}, "
            f"method={self.method!r}, {self.config.get('seeds', '?')} seeds)"
        )

    def __str__(self) -> str:
        return f"{self!r}\n\n{self.table('ri')}\n\n{self.table('fi')}"

    def table(self, measure: str = "ri") -> str:
        """The sweep as text: one row per point, ``measure`` (``"ri"`` or ``"fi"``) ± se per
        rule, then the trend tests (as ``kvq sweep`` prints it)."""
        return provided("sweep_text")(self.summary, self.trends, measure)

    def result(self, n_data: int | None = None, noise: float | None = None, split: str | None = None) -> ScanResult:
        """The scan of the one point matching the given values (omitted ones must be unambiguous)."""
        hits = [
            r
            for p, r in zip(self.points, self.results)
            if (n_data is None or p.n_data == n_data)
            and (noise is None or p.noise == noise)
            and (split is None or p.split == split)
        ]
        if len(hits) != 1:
            raise KvqError(
                f"{len(hits)} sweep points match data={n_data}, noise={noise}, split={split}; "
                f"the points are {[p.label for p in self.points]}"
            )
        return hits[0]

    @property
    def summary(self) -> list[dict[str, Any]]:
        return summary_rows(self.points, self.results)

    @property
    def trends(self) -> list[dict[str, Any]]:
        return trend_rows(self.points, self.results, self.axes)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the sweep (``sweep.json``, ``summary.csv`` and one scan folder per point)."""
        path = _sweep_dir(directory, self.fingerprint(), overwrite)
        for point, result in zip(self.points, self.results):
            save_result(result, path / "points" / point.label, overwrite=True)
        _write_index(path, self, self.results, done=set(self.points))
        return path

    def fingerprint(self) -> str:
        return digest(
            "sweep",
            self.problem,
            self.problem_options,
            self.seed,
            self.axes,
            config_identity(self.config),
            self.method,
            self.settings,
            self.points_identity,
        )

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        """Read a sweep folder (every point must be finished)."""
        path = Path(directory)
        meta = _read_index(path)
        points, results = [], []
        for entry in meta["points"]:
            if not entry.get("done"):
                raise KvqError(
                    f"sweep point {entry['dir']} in {str(path)!r} is not finished; run the sweep again to complete it"
                )
            points.append(SweepPoint(int(entry["n_data"]), float(entry["noise"]), str(entry["split"])))
            results.append(load_result(path / entry["dir"]))
        return cls(
            meta["problem"],
            meta["axes"],
            tuple(points),
            tuple(results),
            meta["config"],
            meta["method"],
            meta.get("settings", {}),
            meta.get("problem_options", {}),
            int(meta.get("seed", 0)),
            meta.get("points_identity", ""),
        )


def _seed_mean(errors: np.ndarray) -> float:
    """Mean of one mask's errors over the seeds that did not diverge (NaN where none)."""
    ok = np.isfinite(errors)
    return float(errors[ok].mean()) if ok.any() else float("nan")


def summary_rows(points: Sequence[SweepPoint], results: Sequence[ScanResult]) -> list[dict[str, Any]]:
    """One JSON-ready row per (point, rule): RI uniform/Shapley, FI (± se), improper flag (and
    whether kvq blames it unsurely, :func:`kvq.game.verdicts.unsure_blames`), settledness (None
    where unknown), share of capped trainings, MSEs."""
    rows = []
    for point, result in zip(points, results):
        summary = summarize(result)
        ri, ri_s, fi = summary.overall.ri["uniform"], summary.overall.ri["shapley"], summary.fi
        improper = set(summary.assessment.elimination.removed)
        settle = summary.assessment.settledness
        kinds = rule_kinds(result.problem)
        every, none = result.row_of([1] * result.n_rules), result.row_of([0] * result.n_rules)
        mse_all = _seed_mean(result.errors[every]) if every is not None else float("nan")
        mse_none = _seed_mean(result.errors[none]) if none is not None else float("nan")
        for i, name in enumerate(result.rule_names):
            rows.append(
                {
                    "n_data": point.n_data,
                    "noise": point.noise,
                    "split": point.split,
                    "rule": name,
                    "kind": kinds.get(name, ""),
                    "ri": ri.mean[i],
                    "ri_se": ri.se[i],
                    "ri_shapley": ri_s.mean[i],
                    "ri_shapley_se": ri_s.se[i],
                    "fi": fi.mean[i],
                    "fi_se": fi.se[i],
                    "improper": name in improper,
                    "improper_unsure": name in summary.assessment.unsure,
                    "settled": bool(settle.settled[i]) if settle.known else None,
                    "capped_share": settle.capped_share,
                    "mse_all": mse_all,
                    "mse_none": mse_none,
                }
            )
    return json_ready(rows)


def trend_rows(
    points: Sequence[SweepPoint], results: Sequence[ScanResult], axes: dict[str, list[Any]], alpha: float = 0.05
) -> list[dict[str, Any]]:
    """Mann-Kendall tests of RI (uniform) and FI along each numeric axis with >= 3 values.

    For each rule, split and value of the other numeric axis, the per-seed importances of
    the points along the axis are pooled (x = the axis value of each seed's point).
    """
    rows = []
    per_seed = {
        "ri": [summarize(r).overall.ri["uniform"].per_seed for r in results],  # [S, n] each
        "fi": [summarize(r).fi.per_seed for r in results],
    }
    for axis in NUMERIC_AXES:
        if len(axes.get(axis, [])) < 3:
            continue
        other = "noise" if axis == "data" else "data"
        for split, fixed in itertools.product(axes["split"], axes[other]):
            idx = [k for k, p in enumerate(points) if p.split == split and p.axis(other) == fixed]
            if len(idx) < 3:
                continue
            for m, tables in per_seed.items():
                for i, rule in enumerate(results[0].rule_names):
                    x = np.concatenate([np.full(tables[k].shape[0], float(points[k].axis(axis))) for k in idx])
                    y = np.concatenate([tables[k][:, i] for k in idx])
                    t = mann_kendall(x, y, alpha=alpha)
                    rows.append(
                        {
                            "rule": rule,
                            "measure": m,
                            "axis": axis,
                            "split": split,
                            "fixed": {other: fixed},
                            **t.to_dict(),
                        }
                    )
    return rows


def _axis_values(name: str, values: Any, default: list[Any]) -> list[Any]:
    if values is None:
        return default
    if isinstance(values, (str, int, float)):
        values = [values]
    values = list(values)
    if not values:
        raise KvqError(f"the {name} axis of a sweep needs at least one value")
    if len(set(values)) != len(values):
        raise KvqError(f"the {name} axis repeats a value: {values}")
    return values


ProblemFactory = Callable[..., Problem]
"""``make(n_data, noise, split, seed, **options) -> Problem``: a user's problem at one sweep
point (``n_data`` observations, ``noise`` in % of the solution's std, a split name, the first
seed)."""


def factory_name(make: Any) -> str:
    """``module:qualname`` of a problem factory (how sweeps and results name it)."""
    return function_name(make, sep=":")


def build_point(problem: str | ProblemFactory, point: SweepPoint, seed: int, options: dict[str, Any]) -> Problem:
    """The problem at ``point``: a built-in one by name, or what the factory returns."""
    if isinstance(problem, str):
        return problems.get(problem, n_data=point.n_data, noise=point.noise, split=point.split, seed=seed, **options)
    try:
        built = problem(n_data=point.n_data, noise=point.noise, split=point.split, seed=seed, **options)
    except TypeError as e:
        raise KvqError(
            f"problem factory {factory_name(problem)} failed at {point.label}: {e}; a factory is called "
            "as make(n_data=..., noise=..., split=..., seed=..., **problem_options)"
        ) from e
    if not isinstance(built, Problem):
        raise KvqError(
            f"problem factory {factory_name(problem)} returned {type(built).__name__} at {point.label}; "
            "it must return a kvq.Problem"
        )
    return built


def plan(
    problem: str | ProblemFactory, data: Any = None, noise: Any = None, split: Any = None
) -> tuple[dict[str, list[Any]], tuple[SweepPoint, ...]]:
    """The axes (defaults filled in: the problem's default data volume, no noise,
    interpolation) and the sweep points, in order (split, noise, data).  A problem factory
    has no default data volume: give ``data``."""
    if isinstance(problem, str):
        spec = problems.spec(problem)
        default_data, splits = [spec.n_data], list(spec.splits)
    elif callable(problem):
        if data is None:
            raise KvqError(
                f"a sweep of the problem factory {factory_name(problem)} needs data=[...] (the "
                "observation counts to sweep)"
            )
        default_data, splits = [], None
    else:
        raise KvqError(
            f"sweep needs a built-in problem name or a problem factory make(n_data, noise, split, seed); "
            f"got {type(problem).__name__}"
        )
    axes: dict[str, list[Any]] = {
        "data": [int(d) for d in _axis_values("data", data, default_data)],
        "noise": [float(x) for x in _axis_values("noise", noise, [0.0])],
        "split": [str(s) for s in _axis_values("split", split, ["interpolation"])],
    }
    for s in axes["split"]:
        if splits is not None and s not in splits:
            raise KvqError(f"unknown split {s!r} for problem {problem!r}; choose from {splits}")
    points = tuple(SweepPoint(d, x, s) for s in axes["split"] for x in axes["noise"] for d in axes["data"])
    return axes, points


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _groups(built: Sequence[Problem]) -> list[list[int]]:
    """Points that may train in one engine: the same validation set and rule points."""
    keys: dict[str, list[int]] = {}
    for k, p in enumerate(built):
        key = _digest(p.valid.x, p.valid.y, *(r.points for r in p.rules))
        keys.setdefault(key, []).append(k)
    return list(keys.values())


def _read_index(path: Path) -> dict[str, Any]:
    return read_meta(path / SWEEP_JSON, "kvq.SweepResult", "kvq sweep")


def _write_index(path: Path, sweep: SweepResult, results: Sequence[ScanResult | None], done: set[SweepPoint]) -> None:
    """``sweep.json`` (the plan, which points are done, summary and trends of those) and
    ``summary.csv``; ``results[k]`` is point ``k``'s result (None while unfinished)."""
    finished = [(p, r) for p, r in zip(sweep.points, results) if p in done and r is not None]
    pts, res = [p for p, _ in finished], [r for _, r in finished]
    rows = summary_rows(pts, res) if res else []
    kinds = rule_kinds(res[0].problem) if res else {}
    meta = {
        "format": 1,
        "kind": "kvq.SweepResult",
        "fingerprint": sweep.fingerprint(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "problem": sweep.problem,
        "problem_options": sweep.problem_options,
        "points_identity": sweep.points_identity,
        "seed": sweep.seed,
        "method": sweep.method,
        "settings": sweep.settings,
        "axes": sweep.axes,
        "config": sweep.config,
        "rule_names": list(res[0].rule_names) if res else [],
        "rule_kinds": kinds,
        "points": [
            {"n_data": p.n_data, "noise": p.noise, "split": p.split, "dir": f"points/{p.label}", "done": p in done}
            for p in sweep.points
        ],
        "summary": rows,
        "trends": trend_rows(pts, res, sweep.axes) if res else [],
        "environment": res[0].environment if res else {},
    }
    write_json(path / SWEEP_JSON, meta)
    if rows:
        write_atomic(path / SUMMARY_CSV, lambda p: _write_rows(p, rows))


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _sweep_dir(directory: str | Path, fp: str, overwrite: bool) -> Path:
    """Make ``directory`` ready for the sweep ``fp``: refuse (or with ``overwrite`` clear) a
    folder that holds a different sweep or a scan; keep the same sweep's finished points."""
    path = check_output_dir(directory, fp, overwrite, "sweep")  # refuses a scan's or a tuning's folder
    meta = path / SWEEP_JSON
    if meta.exists() and folder_fingerprint(path, "sweep") != fp:  # overwrite was given
        discard(path / "points", path / CHECKPOINTS, path / SUMMARY_CSV, meta)
    return path


def _finished(path: Path | None, point: SweepPoint, fp: str) -> ScanResult | None:
    """The saved result of ``point`` if its folder holds the scan ``fp``."""
    return None if path is None else load_finished(path / "points" / point.label, fp)


def _train_group(
    built: Sequence[Problem], config: ScanConfig, ckpt: Checkpoint | None, progress: Progress, model: Any = None
) -> list[ScanResult]:
    """Exact scans of points that share validation and rules, trained as one batch of seed columns."""
    t_start = time.perf_counter()
    columns = [(p.seed + k, p.observations(k)) for p in built for k in range(config.seeds)]
    engine = prepare(built[0], config, progress, ckpt, columns=columns, model=model)
    table = Exact().run(engine, progress).table
    out = []
    S = config.seeds
    for j, problem in enumerate(built):
        cols = slice(j * S, (j + 1) * S)
        out.append(
            make_result(
                engine,
                Outcome(table.columns(cols), {}, {"points_in_batch": len(built)}),
                t_start,
                problem=problem,
                seeds=engine.seeds[cols],
            )
        )
    return out


def sweep(
    problem: str | ProblemFactory,
    config: ScanConfig | None = None,
    *,
    data: Any = None,
    noise: Any = None,
    split: Any = None,
    method: str = "exact",
    seed: int = 0,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    checkpoint_every_s: float = 60.0,
    problem_options: dict[str, Any] | None = None,
    model: Any = None,
    robustness: str | None = "lbfgs",
    **settings: Any,
) -> SweepResult:
    """Scan ``problem`` at every combination of ``data`` (observation counts), ``noise`` (%
    of the solution's std) and ``split`` values.

    ``problem``: a built-in problem's name, or your own problem as a factory
    ``make(n_data, noise, split, seed, **problem_options) -> kvq.Problem`` (called with
    keywords at every point; give ``data``).  ``config`` defaults to the problem's quick
    preset (the generic quick preset for a factory).  ``method``/``settings`` as in
    :func:`kvq.estimate`.  ``problem_options`` go to :func:`kvq.problems.get` (or the
    factory) at every point (e.g. ``{"n_valid": 2000}``).  With ``out`` every finished point is written at
    once (``out/points/<label>/``, plus ``out/sweep.json`` and ``out/summary.csv``) and an
    interrupted sweep resumes where it stopped; a folder holding a different sweep is
    refused unless ``overwrite``.  ``progress(phase, done, total)`` gets phases prefixed
    with the group being trained (``"[1/2] train"``).  ``model``: the network, as in
    :func:`kvq.scan`.  ``robustness``: as in :func:`kvq.scan`, at every point of an exact
    sweep (a rule is called improper at a point only if its harm survives a stronger protocol
    there; the coalitions that decide it are trained again from the warm start).
    """
    axes, points = plan(problem, data, noise, split)
    if config is None:
        config = problems.config(problem) if isinstance(problem, str) else ScanConfig.preset("quick")
    if not isinstance(config, ScanConfig):
        raise KvqError(f"config must be a kvq.ScanConfig; got {type(config).__name__}")
    if method not in METHODS:
        raise KvqError(f"unknown method {method!r}; choose one of {METHODS}")
    chosen = method_for(method, **settings)
    if robustness is not None and method == "exact":
        robust.stronger(config, robustness)  # an unknown or impossible protocol: said before anything trains
    if isinstance(chosen, Sampled):
        raise KvqError(
            "a sweep trains exact scans or finetune/newton estimates; sample coalitions point by point with "
            "kvq.estimate(problem, config, coalitions=..., budget=...)"
        )
    options = dict(problem_options or {})
    clash = sorted(set(options) & {"n_data", "noise", "split", "seed"})
    if clash:
        raise KvqError(f"problem_options may not set {clash}: they are the sweep's axes and seed arguments")
    progress = progress or (lambda phase, done, total: None)
    built = [build_point(problem, p, seed, options) for p in points]
    for b in built:
        chosen.check(b, config)
    fps = [fingerprint(b, config, chosen, model) for b in built]
    name = problem if isinstance(problem, str) else factory_name(problem)
    shell = SweepResult(
        name,
        axes,
        points,
        (),
        config.to_dict(),
        method,
        {} if isinstance(chosen, Exact) else dataclasses.asdict(chosen),
        options,
        seed,
        points_identity=digest(*fps),
    )
    path = None if out is None else _sweep_dir(out, shell.fingerprint(), overwrite)
    results: list[ScanResult | None] = [_finished(path, p, fp) for p, fp in zip(points, fps)]
    done = {p for p, r in zip(points, results) if r is not None}
    if path is not None:
        _write_index(path, shell, results, done)

    groups = _groups(built) if method == "exact" else [[k] for k in range(len(points))]
    todo = [g for g in groups if any(results[k] is None for k in g)]  # a group reruns whole: the same batch
    for gi, group in enumerate(todo):
        tag = f"[{gi + 1}/{len(todo)}]"
        step = tagged(progress, tag)
        ckpt_dir = None if path is None else path / CHECKPOINTS / f"{points[group[0]].label}-{len(group)}"
        if method == "exact":
            ckpt = (
                None
                if ckpt_dir is None
                else Checkpoint(ckpt_dir, digest("sweep-group", [fps[k] for k in group]), checkpoint_every_s)
            )
            trained = _train_group([built[k] for k in group], config, ckpt, step, model)
            if robustness is not None:
                trained = [
                    robust.check(built[k], config, r, robustness, progress=step, model=model)
                    for k, r in zip(group, trained)
                ]
        else:
            trained = [run(built[group[0]], config, chosen, progress=step, checkpoint=ckpt_dir, model=model)]
        for k, result in zip(group, trained):
            results[k] = result
            done.add(points[k])
            if path is not None:
                save_result(result, path / "points" / points[k].label, overwrite=True)
        if path is not None:
            _write_index(path, shell, results, done)
            if ckpt_dir is not None:
                discard(ckpt_dir)
    if path is not None:
        discard(path / CHECKPOINTS)
    finished = tuple(r for r in results if r is not None)
    assert len(finished) == len(points)  # every group has trained
    return dataclasses.replace(shell, results=finished)
