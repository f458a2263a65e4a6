"""Results on disk: ``results.json`` (metadata + every importance), ``table.npz`` and
``table.csv`` (the raw value table).  A results folder belongs to one scan: writing a
different scan into it is refused unless the caller asks to overwrite."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from kvq.core.coalitions import mask_index
from kvq.core.devices import is_writer
from kvq.engine.identity import result_fingerprint
from kvq.errors import KvqError
from kvq.game.summary import json_summary, summarize
from kvq.game.table import PROVIDED, SampledResult, Sampling, ScanResult, json_ready

FORMAT = 1
RESULTS = "results.json"
TABLE_NPZ = "table.npz"
TABLE_CSV = "table.csv"


FOLDER_MARKERS = {"scan": RESULTS, "sweep": "sweep.json", "tuning": "tune.json"}


def folder_fingerprint(directory: str | Path, kind: str = "scan") -> str | None:
    """The fingerprint of the ``kind`` of run (``FOLDER_MARKERS``) saved in ``directory``
    (None: none there, or its file is damaged)."""
    try:
        return json.loads((Path(directory) / FOLDER_MARKERS[kind]).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def stored_config(directory: str | Path) -> dict[str, Any]:
    """The config the scan saved in ``directory`` recorded (empty: none there, or damaged)."""
    try:
        config = json.loads((Path(directory) / RESULTS).read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


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
        stored = folder_fingerprint(path, kind)
        if not overwrite and stored is not None and stored != fp:  # unreadable: damaged, replaced
            raise KvqError(
                f"{str(path)!r} already holds a different {kind}; choose another output folder "
                "or pass --overwrite (overwrite=True) to replace it"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


FOLDER_KINDS = {"scan": "kvq.ScanResult", "sweep": "kvq.SweepResult", "tuning": "kvq.TuneResult"}
"""The ``kind`` each folder kind's index file records."""
EXPECTED = (
    f"a kvq results folder holds {RESULTS} (a scan or estimate: `kvq scan`, ScanResult.save), "
    f"{FOLDER_MARKERS['sweep']} (`kvq sweep`) or {FOLDER_MARKERS['tuning']} (`kvq tune`)"
)


def folder_kind(directory: str | Path) -> str | None:
    """The kind of kvq run saved in ``directory`` (a key of ``FOLDER_MARKERS``), or None."""
    path = Path(directory)
    return next((kind for kind, marker in FOLDER_MARKERS.items() if (path / marker).exists()), None)


def read_folder(directory: str | Path) -> tuple[str, dict[str, Any]]:
    """``(kind, index)`` of the kvq run saved in ``directory`` (its index file read and checked);
    a KvqError that says what a results folder holds when it is none, or a damaged one."""
    path = Path(directory)
    if not path.is_dir():
        raise KvqError(f"{str(path)!r} is not a folder; {EXPECTED}")
    kind = folder_kind(path)
    if kind is None:
        raise KvqError(f"{str(path)!r} holds no kvq results; {EXPECTED}")
    return kind, read_meta(path / FOLDER_MARKERS[kind], FOLDER_KINDS[kind], f"kvq {kind}")


def _unreadable(path: Path) -> None:
    warnings.warn(
        f"{path / RESULTS} is damaged (no readable fingerprint); the run is computed again",
        RuntimeWarning,
        stacklevel=4,
    )


def results_folder(directory: str | Path, fp: str, overwrite: bool, kind: str = "scan") -> Path:
    """``directory`` made ready to hold the ``kind`` of run ``fp`` (:func:`check_output_dir`);
    with ``overwrite``, a different run's result there is removed first."""
    path = check_output_dir(directory, fp, overwrite, kind)
    stored = folder_fingerprint(path, kind)
    if kind == "scan" and (path / RESULTS).exists() and stored != fp:
        if stored is None:
            _unreadable(path)
        discard(path / RESULTS, path / TABLE_NPZ, path / TABLE_CSV)
    return path


def load_finished(directory: str | Path, fp: str) -> ScanResult | None:
    """The finished run ``fp`` saved in ``directory``, or None where there is none (or another
    run).  A result whose files cannot be read is named in a warning and None is returned: the
    caller computes the run again."""
    path = Path(directory)
    if not (path / RESULTS).exists():
        return None
    stored = folder_fingerprint(path)
    if stored is None:
        _unreadable(path)
        return None
    if stored != fp:
        return None
    try:
        result = load_result(path)
    except (KvqError, KeyError) as e:  # a missing key: a results.json that is not what kvq wrote
        warnings.warn(
            f"the saved result in {path} is damaged ({str(e).splitlines()[0][:200]}); the run is computed again",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    if result_fingerprint(result) != fp:  # its files disagree with its index: damaged
        warnings.warn(
            f"the saved result in {path} does not match its own fingerprint; the run is computed again",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return result


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
    fp = result_fingerprint(result)
    path = check_output_dir(directory, fp, overwrite)
    n = result.n_rules
    every, none = result.row_of([1] * n), result.row_of([0] * n)
    diverged = [
        {
            "mask": mask_index(result.masks[k]),
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
        "robustness": result.robustness,
        "rule_names": list(result.rule_names),
        "output_names": list(result.output_names),
        "seeds": list(result.seeds),
        "problem": result.problem,
        "config": result.config,
        "environment": result.environment,
        "timing": result.timing,
        "value": "v(S) = -log10(validation MSE); RI uniform = Banzhaf (the paper's scripts), RI shapley = Shapley",
        "mse_all_rules": None if every is None else json_ready(result.errors[every]),
        "mse_no_rules": None if none is None else json_ready(result.errors[none]),
        "sampling": None if result.sampling is None else result.sampling.to_json(),
        "diverged": diverged,
        **json_summary(summarize(result)),
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
    if result.sampling is not None:
        arrays.update({f"sampling_{k}": v for k, v in result.sampling.arrays().items()})
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
                        mask_index(result.masks[k]),
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
        found = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise KvqError(f"{str(path)!r} is not a {what} (its kind is {found!r}, not {kind!r})")
    return meta


def load_result(directory: str | Path) -> ScanResult:
    """Read a folder written by :func:`save_result`; checks masks against rule names."""
    path = Path(directory)
    meta_path, npz_path = path / RESULTS, path / TABLE_NPZ
    if not meta_path.exists() or not npz_path.exists():
        raise KvqError(f"{str(path)!r} holds no kvq result ({RESULTS} and {TABLE_NPZ} are needed)")
    meta = read_meta(meta_path, "kvq.ScanResult", "kvq scan result")
    try:
        with open(npz_path, "rb") as fh, np.load(fh) as z:  # our handle: closed even when the file is damaged
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise KvqError(f"{str(npz_path)!r} cannot be read ({type(e).__name__}: {e}); the result is damaged") from None
    names = tuple(meta["rule_names"])
    if "rule_names" in arrays and tuple(str(s) for s in arrays["rule_names"]) != names:
        raise KvqError(f"{str(path)!r}: the rule names in {RESULTS} and {TABLE_NPZ} disagree; the result is damaged")
    fields: dict[str, Any] = {
        "rule_names": names,
        "errors": arrays["errors"],
        "errors_by_output": arrays.get("errors_by_output"),
        "output_names": tuple(meta.get("output_names", ())),
        "masks": arrays["masks"],
        "steps_run": arrays["steps_run"],
        "diverged": arrays["diverged"],
        "errors_by_check": arrays.get("errors_by_check"),
        "errors_by_check_by_output": arrays.get("errors_by_check_by_output"),
        "check_steps": arrays.get("check_steps"),
        "stopped": arrays.get("stopped"),
        "seeds": tuple(meta["seeds"]),
        "problem": meta["problem"],
        "config": meta["config"],
        "timing": meta.get("timing", {}),
        "environment": meta.get("environment", {}),
        "method": meta.get("method", "exact"),
        "estimator": meta.get("estimator", {}),
        "robustness": meta.get("robustness") or {},
    }
    if meta.get("sampling") is not None:
        saved = {k.removeprefix("sampling_"): v for k, v in arrays.items() if k.startswith("sampling_")}
        return SampledResult(sampling=Sampling.from_saved(meta["sampling"], saved), **fields)
    return ScanResult(**fields)


PROVIDED.update(save=save_result, load=load_result)
