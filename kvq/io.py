"""Results on disk: ``results.json`` (metadata + every importance), ``table.npz`` and
``table.csv`` (the raw value table).  A results folder belongs to one scan: writing a
different scan into it is refused unless the caller asks to overwrite."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from kvq.checkpoint import fingerprint
from kvq.config import config_identity
from kvq.devices import is_writer
from kvq.errors import KvqError
from kvq.importance import (
    dependence_profile,
    full_importance,
    interactions,
    json_ready,
    rule_importance,
    trajectory,
)
from kvq.table import ScanResult
from kvq.verdicts import assess

FORMAT = 1
RESULTS = "results.json"
TABLE_NPZ = "table.npz"
TABLE_CSV = "table.csv"


def result_fingerprint(result: ScanResult) -> str:
    """The fingerprint of the scan that produced ``result`` (see :func:`kvq.engine.scan_fingerprint`)."""
    method = result.estimator.get("settings", result.method) if result.estimator else result.method
    return fingerprint(result.problem, config_identity(result.config), list(result.rule_names), method)


FOLDER_MARKERS = {"scan": RESULTS, "sweep": "sweep.json", "tuning": "tune.json"}


def folder_fingerprint(directory: str | Path, kind: str = "scan") -> str | None:
    """The fingerprint of the ``kind`` of run (``FOLDER_MARKERS``) saved in ``directory``
    (None: none there, or its file is damaged)."""
    try:
        return json.loads((Path(directory) / FOLDER_MARKERS[kind]).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def check_output_dir(directory: str | Path, fp: str, overwrite: bool, kind: str = "scan") -> Path:
    """Make sure ``directory`` may receive the ``kind`` of run (scan, sweep or tuning)
    identified by ``fp``; create it if needed.

    Raises a KvqError when it holds another kind of run (even with ``overwrite``: kvq
    never replaces one kind by another) or a different run of this kind and
    ``overwrite`` is False.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise KvqError(f"output path {str(path)!r} exists and is not a folder; choose another --out")
    for other, marker in FOLDER_MARKERS.items():
        if not (path / marker).exists():
            continue
        if other != kind:
            raise KvqError(
                f"{str(path)!r} holds a kvq {other} ({marker}), not a {kind}; choose another output "
                f"folder (kvq does not replace a {other} with a {kind}, even with --overwrite)"
            )
        if not overwrite and folder_fingerprint(path, kind) != fp:
            raise KvqError(
                f"{str(path)!r} already holds a different {kind}; choose another output folder "
                "or pass --overwrite (overwrite=True) to replace it"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def summary(result: ScanResult) -> dict[str, Any]:
    """Every importance of the table (both weightings), JSON-ready."""
    out: dict[str, Any] = {
        "ri_uniform": rule_importance(result, "uniform").to_dict(),
        "ri_shapley": rule_importance(result, "shapley").to_dict(),
        "fi": full_importance(result).to_dict(),
        "dependence": dependence_profile(result).to_dict(),
    }
    if result.n_rules >= 2:
        out["interactions_uniform"] = interactions(result, "uniform").to_dict()
        out["interactions_shapley"] = interactions(result, "shapley").to_dict()
    outputs = result.output_names if result.errors_by_output is not None else ()
    if len(outputs) > 1:
        out["per_output"] = {
            o: {
                "ri_uniform": rule_importance(result, "uniform", o).to_dict(),
                "fi": full_importance(result, o).to_dict(),
                "dependence": dependence_profile(result, o).to_dict(),
                **(
                    {"interactions_uniform": interactions(result, "uniform", o).to_dict()}
                    if result.n_rules >= 2
                    else {}
                ),
            }
            for o in outputs
        }
    return out


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` a temporary file next to ``path``, then move it into place (a reader
    never sees a half-written file, and an interruption leaves the old one)."""
    if not is_writer():  # several processes hold the same results; process 0 writes them
        return
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def discard(*paths: Path) -> None:
    """Remove these files or folders where they exist (process 0 alone, like every write)."""
    if not is_writer():
        return
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_json(path: Path, meta: dict[str, Any]) -> None:
    """Write ``meta`` (JSON-ready, no NaN) to ``path`` atomically."""
    write_atomic(path, lambda p: p.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n"))


def save_result(result: ScanResult, directory: str | Path, overwrite: bool = False) -> Path:
    """Write the result into ``directory`` (created if needed); return the folder."""
    import warnings

    fp = result_fingerprint(result)
    path = check_output_dir(directory, fp, overwrite)
    n = result.n_rules
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # diverged runs are listed below instead
        importance = summary(result)
        verdicts = assess(result).to_dict()
        importance["improper"] = verdicts["improper"]
    diverged = [
        {
            "mask": int(k),
            "rules_on": [result.rule_names[j] for j in range(n) if result.masks[k, j]],
            "seed": int(result.seeds[s]),
        }
        for k, s in zip(*np.nonzero(result.diverged))
    ]
    meta = {
        "format": FORMAT,
        "kind": "kvq.ScanResult",
        "fingerprint": fp,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "method": result.method,
        "estimator": result.estimator,
        "rule_names": list(result.rule_names),
        "output_names": list(result.output_names),
        "seeds": list(result.seeds),
        "problem": result.problem,
        "config": result.config,
        "environment": result.environment,
        "timing": result.timing,
        "value": "v(S) = -log10(validation MSE); RI uniform = Banzhaf (the paper's scripts), RI shapley = Shapley",
        "mse_all_rules": json_ready(result.errors[-1]),
        "mse_no_rules": json_ready(result.errors[0]),
        "diverged": diverged,
        "importance": importance,
        **verdicts,
        "trajectory": json_ready(trajectory(result)),
    }
    arrays = {
        "masks": result.masks,
        "errors": result.errors,
        "steps_run": result.steps_run,
        "diverged": result.diverged,
        "seeds": np.asarray(result.seeds),
        "rule_names": np.asarray(result.rule_names),
    }
    if result.errors_by_output is not None:
        arrays["errors_by_output"] = result.errors_by_output
        arrays["output_names"] = np.asarray(result.output_names)
    for name in ("errors_by_check", "errors_by_check_by_output", "check_steps", "stopped"):
        if getattr(result, name) is not None:
            arrays[name] = getattr(result, name)
    write_atomic(path / TABLE_NPZ, lambda p: _write_npz(p, arrays))
    write_atomic(path / TABLE_CSV, lambda p: _write_csv(result, p))
    write_json(path / RESULTS, meta)
    return path


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _write_csv(result: ScanResult, path: Path) -> None:
    by_output = result.errors_by_output
    outs = list(result.output_names) if by_output is not None else []
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "mask",
                *result.rule_names,
                "seed",
                "mse",
                *[f"mse_{o}" for o in outs],
                "steps_run",
                "diverged",
                "stopped_early",
            ]
        )
        for k in range(result.errors.shape[0]):
            for s, seed in enumerate(result.seeds):
                per_out = [repr(float(e)) for e in by_output[k, s]] if by_output is not None else []
                w.writerow(
                    [
                        k,
                        *map(int, result.masks[k]),
                        seed,
                        repr(float(result.errors[k, s])),
                        *per_out,
                        int(result.steps_run[k, s]),
                        int(result.diverged[k, s]),
                        "" if result.stopped is None else int(result.stopped[k, s]),
                    ]
                )


def read_meta(path: Path, kind: str, what: str) -> dict[str, Any]:
    """The JSON index ``path`` of a results folder, checked to be of ``kind`` (``what``
    names it in errors, e.g. "kvq sweep")."""
    if not path.exists():
        raise KvqError(f"{str(path.parent)!r} holds no {what} ({path.name} is missing)")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise KvqError(f"{str(path)!r} is not valid JSON ({e}); the {what} is damaged") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        raise KvqError(f"{str(path)!r} is not a {what}")
    return meta


def load_if_same(directory: str | Path, fp: str) -> ScanResult | None:
    """The result saved in ``directory`` if it is the scan ``fp`` (None: absent, damaged or different)."""
    try:
        result = load_result(directory)
    except KvqError:
        return None
    return result if result_fingerprint(result) == fp else None


def load_result(directory: str | Path) -> ScanResult:
    """Read a folder written by :func:`save_result`; checks masks against rule names."""
    path = Path(directory)
    meta_path, npz_path = path / RESULTS, path / TABLE_NPZ
    if not meta_path.exists() or not npz_path.exists():
        raise KvqError(f"{str(path)!r} holds no kvq result ({RESULTS} and {TABLE_NPZ} are needed)")
    meta = read_meta(meta_path, "kvq.ScanResult", "kvq scan result")
    with np.load(npz_path) as z:
        arrays = {k: z[k] for k in z.files}
    names = tuple(meta["rule_names"])
    if "rule_names" in arrays and tuple(str(s) for s in arrays["rule_names"]) != names:
        raise KvqError(f"{str(path)!r}: the rule names in {RESULTS} and {TABLE_NPZ} disagree; the result is damaged")
    return ScanResult(
        rule_names=names,
        errors=arrays["errors"],
        errors_by_output=arrays.get("errors_by_output"),
        output_names=tuple(meta.get("output_names", ())),
        masks=arrays["masks"],
        steps_run=arrays["steps_run"],
        diverged=arrays["diverged"],
        errors_by_check=arrays.get("errors_by_check"),
        errors_by_check_by_output=arrays.get("errors_by_check_by_output"),
        check_steps=arrays.get("check_steps"),
        stopped=arrays.get("stopped"),
        seeds=tuple(meta["seeds"]),
        problem=meta["problem"],
        config=meta["config"],
        timing=meta.get("timing", {}),
        environment=meta.get("environment", {}),
        method=meta.get("method", "exact"),
        estimator=meta.get("estimator", {}),
    )
