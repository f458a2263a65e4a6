"""Training checkpoints: an interrupted scan resumes where it stopped.

A checkpoint folder belongs to one scan (identified by its fingerprint).  The engine
saves each batch's state (every leaf of the pytree, as ``.npz``) at most every
``every_s`` seconds and when the batch finishes; a new run of the same scan loads them
and continues from the last saved check interval, so it ends with exactly the numbers an
uninterrupted run gives (training is deterministic given the state).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from kvq.errors import KvqError


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able ``parts`` (what a scan computes, not when or where)."""
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stored_fingerprint(directory: str | Path) -> str | None:
    """The fingerprint of the scan a checkpoint folder belongs to (None: no usable folder)."""
    try:
        return json.loads((Path(directory) / "checkpoint.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


class Checkpoint:
    """Saved training states of one scan in ``directory``."""

    def __init__(self, directory: str | Path, scan_fingerprint: str, every_s: float = 60.0) -> None:
        self.path = Path(directory)
        self.every_s = every_s
        self._last: dict[str, float] = {}
        meta = self.path / "checkpoint.json"
        stored = stored_fingerprint(self.path)
        if meta.exists() and stored is None:  # unreadable (written by an older kvq that was killed mid-write)
            shutil.rmtree(self.path, ignore_errors=True)
        elif meta.exists() and stored != scan_fingerprint:
            raise KvqError(
                f"checkpoint folder {str(self.path)!r} belongs to a different scan; "
                "remove it or choose another output folder"
            )
        if not meta.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_name(meta.name + ".tmp")
            tmp.write_text(json.dumps({"fingerprint": scan_fingerprint}) + "\n")
            os.replace(tmp, meta)  # atomic: a kill leaves no half-written file

    def load(self, key: str, like: Any) -> tuple[Any, int, bool] | None:
        """``(state, blocks_done, finished)`` saved under ``key`` (structured like ``like``), or None."""
        file = self.path / f"{key}.npz"
        if not file.exists():
            return None
        with np.load(file) as z:
            leaves = [z[f"leaf_{i}"] for i in range(int(z["n_leaves"]))]
            done, finished = int(z["blocks_done"]), bool(z["finished"])
        treedef = jax.tree.structure(like)
        if treedef.num_leaves != len(leaves):
            raise KvqError(f"checkpoint {str(file)!r} does not match this scan's state; remove the folder")
        return jax.tree.unflatten(treedef, leaves), done, finished

    def save(self, key: str, state: Any, blocks_done: int, finished: bool = False) -> None:
        """Save ``state`` under ``key`` if ``every_s`` passed since the last save (always when finished)."""
        now = time.monotonic()
        if not finished and now - self._last.get(key, -np.inf) < self.every_s:
            return
        self._last[key] = now
        leaves = jax.device_get(jax.tree.leaves(state))
        arrays = {f"leaf_{i}": np.asarray(a) for i, a in enumerate(leaves)}
        tmp = self.path / f"{key}.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, n_leaves=len(leaves), blocks_done=blocks_done, finished=finished, **arrays)
        os.replace(tmp, self.path / f"{key}.npz")

    def remove(self) -> None:
        """Delete the checkpoint folder (after the results are safely written)."""
        shutil.rmtree(self.path, ignore_errors=True)
