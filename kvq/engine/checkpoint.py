"""Training checkpoints: an interrupted scan resumes where it stopped.

A checkpoint folder belongs to one scan (identified by its fingerprint).  The engine
saves each batch's state (every leaf of the pytree, as ``.npz``) at most every
``every_s`` seconds and when the batch finishes; a new run of the same scan loads them
and continues from the last saved check interval, so it ends with exactly the numbers an
uninterrupted run gives (training is deterministic given the state).

Saved work is keyed by what it *is*, not by its place in the run: a batch's file is
named by a hash of its items (each item's rule mask and seed column) and of its padded
size, and records those items.  A resumed run that cuts the work into other batches
(another ``max_batch``, or less free memory) takes every finished item from whichever
file holds it and retrains only the rest; an unfinished batch is continued only by a
batch of exactly the same items.

A checkpoint is kept after its run finished: a batch ended either because every item
stopped early (final for any budget) or because it reached the step cap.  A run of the same
scan with a longer budget continues each capped batch from its saved state and reuses every
stopped one (``blocks_done`` and ``stopped`` in each file say which), so it ends with the
numbers a fresh run at that budget gives and costs only the extra steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from kvq.errors import KvqError


def batch_key(tag: str, item_masks: np.ndarray, item_columns: np.ndarray, padded: int) -> str:
    """The file name (without ``.npz``) of a batch of items: ``tag`` and a hash of the
    items' 0/1 masks [B, n], their seed columns [B] and the padded batch size."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(item_masks, np.uint8).tobytes())
    h.update(np.ascontiguousarray(item_columns, np.int64).tobytes())
    h.update(f"{np.shape(item_masks)}/{padded}".encode())
    return f"{tag}-{h.hexdigest()[:16]}"


def item_keys(item_masks: np.ndarray, item_columns: np.ndarray) -> list[tuple[bytes, int]]:
    """Hashable ``(mask bytes, seed column)`` of each item."""
    rows = np.ascontiguousarray(item_masks, np.uint8)
    return [(rows[i].tobytes(), int(c)) for i, c in enumerate(np.asarray(item_columns))]


def stored_fingerprint(directory: str | Path) -> str | None:
    """The fingerprint of the scan a checkpoint folder belongs to (None: no usable folder)."""
    try:
        return json.loads((Path(directory) / "checkpoint.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


class Saved(NamedTuple):
    """A batch's saved state: the pytree, the check intervals it ran, whether its run ended
    (every item stopped, or the budget it ran under was reached) and whether every item stopped
    early (then the batch is final for any budget of at least ``blocks_done`` intervals)."""

    tree: Any
    blocks_done: int
    finished: bool
    stopped: bool

    def usable(self, n_blocks: int) -> bool:
        """Whether a run of ``n_blocks`` check intervals can start from (or take) this state:
        not past that budget, unless every item stopped before it."""
        return self.blocks_done <= n_blocks

    def final(self, n_blocks: int) -> bool:
        """Whether this state is the end of a run of ``n_blocks`` check intervals."""
        return self.finished and (self.stopped or self.blocks_done == n_blocks)


DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
"""What reading a truncated or garbled ``.npz`` file raises."""


class Checkpoint:
    """Saved training states of one scan in ``directory``.  A file that cannot be read (a
    kill or a full disk in the middle of writing, damage on disk) is named in a warning and
    its trainings run again; nothing else is lost."""

    def __init__(
        self, directory: str | Path, scan_fingerprint: str, every_s: float = 60.0, replace: bool = False
    ) -> None:
        self.path = Path(directory)
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._named: set[Path] = set()  # damaged files already named in a warning
        # several processes (kvq.core.devices) read the same folder; only process 0 writes or removes
        self.writer = jax.process_index() == 0
        meta = self.path / "checkpoint.json"
        stored = stored_fingerprint(self.path)
        self._fresh = False  # True: what the folder holds is another run's, never read
        if stored is not None and stored != scan_fingerprint and replace:
            if self.writer:
                shutil.rmtree(self.path, ignore_errors=True)  # a different run's state, replaced as asked
            self._fresh = True  # the other processes ignore it, whether or not it is gone yet
            stored = None
        if stored is not None and stored != scan_fingerprint:
            raise KvqError(
                f"checkpoint folder {str(self.path)!r} belongs to a different scan; "
                "remove it or choose another output folder"
            )
        if not self.writer:
            return
        if meta.exists() and stored is None:  # unreadable (written by an older kvq that was killed mid-write)
            shutil.rmtree(self.path, ignore_errors=True)
        if not meta.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_name(meta.name + ".tmp")
            tmp.write_text(json.dumps({"fingerprint": scan_fingerprint}) + "\n")
            os.replace(tmp, meta)  # atomic: a kill leaves no half-written file

    def load(self, key: str, like: Any) -> Saved | None:
        """The state saved under ``key`` (structured like ``like``), or None."""
        file = self.path / f"{key}.npz"
        if self._fresh or not file.exists():
            return None
        try:
            with open(file, "rb") as fh, np.load(fh) as z:  # our handle: closed even when the file is damaged
                leaves = [z[f"leaf_{i}"] for i in range(int(z["n_leaves"]))]
                done, finished = int(z["blocks_done"]), bool(z["finished"])
                stopped = bool(z["stopped"]) if "stopped" in z.files else False
        except DAMAGED as e:
            self._damaged(file, e)
            return None
        treedef = jax.tree.structure(like)
        if len(jax.tree.leaves(like)) != len(leaves):
            raise KvqError(f"checkpoint {str(file)!r} does not match this scan's state; remove the folder")
        return Saved(jax.tree.unflatten(treedef, leaves), done, finished, stopped)

    def _damaged(self, file: Path, error: BaseException) -> None:
        """Name a damaged file once (its trainings run again)."""
        if file in self._named:
            return
        self._named.add(file)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}" if str(error) else type(error).__name__
        warnings.warn(
            f"checkpoint file {file} is damaged ({reason}); the trainings it held are trained again",
            RuntimeWarning,
            stacklevel=3,
        )

    def due(self, key: str, finished: bool = False) -> bool:
        """Whether :meth:`save` would write ``key`` now."""
        return self.writer and (finished or time.monotonic() - self._last.get(key, -np.inf) >= self.every_s)

    def save(
        self,
        key: str,
        state: Any,
        blocks_done: int,
        finished: bool = False,
        items: tuple[np.ndarray, np.ndarray] | None = None,
        stopped: bool = False,
    ) -> None:
        """Save ``state`` under ``key`` if ``every_s`` passed since the last save (always when
        finished).  ``items`` = (masks [R, n], seed columns [R]) of the batch's first R
        (real, unpadded) rows, for :meth:`finished_items`; ``stopped``: every item stopped early."""
        if not self.due(key, finished):
            return
        self._last[key] = time.monotonic()
        leaves = jax.device_get(jax.tree.leaves(state))
        arrays = {f"leaf_{i}": np.asarray(a) for i, a in enumerate(leaves)}
        if items is not None:
            arrays["item_masks"] = np.asarray(items[0], np.uint8)
            arrays["item_columns"] = np.asarray(items[1], np.int64)
        tmp = self.path / f"{key}.npz.tmp"
        with open(tmp, "wb") as f:
            arrays.update(
                n_leaves=np.asarray(len(leaves)),
                blocks_done=np.asarray(blocks_done),
                finished=np.asarray(finished),
                stopped=np.asarray(stopped),
            )
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as its allow_pickle
        os.replace(tmp, self.path / f"{key}.npz")

    def finished_items(self, tag: str, n_blocks: int) -> dict[tuple[bytes, int], tuple[str, int]]:
        """Every item that a batch saved under ``tag`` holds at the end of a run of ``n_blocks``
        check intervals (:meth:`Saved.final`): ``{(mask bytes, seed column): (key, row)}`` (see
        :func:`item_keys`).  A batch saved at a shorter cap is not among them: the batch of the
        same items continues it (:func:`kvq.engine.runner.run_blocks`)."""
        found: dict[tuple[bytes, int], tuple[str, int]] = {}
        if self._fresh:
            return found
        for file in sorted(self.path.glob(f"{tag}-*.npz")):
            try:
                with open(file, "rb") as fh, np.load(fh) as z:
                    if "item_masks" not in z.files:
                        continue
                    stopped = bool(z["stopped"]) if "stopped" in z.files else False
                    saved = Saved(None, int(z["blocks_done"]), bool(z["finished"]), stopped)
                    if not (saved.usable(n_blocks) and saved.final(n_blocks)):
                        continue
                    keys = item_keys(z["item_masks"], z["item_columns"])
            except DAMAGED as e:  # its items are trained again
                self._damaged(file, e)
                continue
            for row, k in enumerate(keys):
                found.setdefault(k, (file.stem, row))
        return found
