"""Where a scan runs: the devices that share every batch, across one or several processes.

One process: the first ``devices`` of its local devices (all by default) form a one-axis mesh
``"items"``; host arrays go in as they are and come back with ``jax.device_get``.

Several processes (``jax.distributed``; :func:`start_processes`): every process runs the same
program on the same host data (a scan is deterministic, so each process builds identical
batches) and the mesh spans the chosen local devices of every process.  A batch's arrays are
made global arrays of which each process holds its own devices' rows
(``jax.make_array_from_callback``), every process trains its share, and the results are
gathered back to every process (``multihost_utils.process_allgather``) so that each can
decide the same things (early stopping, what to train next).  Only process 0 writes files
(:func:`is_writer`).  docs/design.md §5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kvq.errors import KvqError

AXIS = "items"


def start_processes(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-process run (``jax.distributed.initialize``): explicitly with all three
    of ``coordinator`` (``HOST:PORT`` of process 0), ``num_processes`` and ``process_id``,
    or with none of them to let JAX detect the cluster (Slurm, Open MPI, TPU pods).  CPU
    processes exchange results through gloo.  Call it before anything else uses jax."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise KvqError(
            "give all of --coordinator HOST:PORT, --num-processes N and --process-id I, "
            "or none of them to let JAX detect the cluster (Slurm, Open MPI, TPU pods)"
        )
    if num_processes is not None and not (isinstance(num_processes, int) and num_processes >= 1):
        raise KvqError(f"num_processes must be a whole number >= 1; got {num_processes!r}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise KvqError(f"process_id must be in 0..{num_processes - 1}; got {process_id!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes; GPUs and TPUs have their own
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def is_writer() -> bool:
    """Whether this process writes results and checkpoints (process 0; the only one alone)."""
    return jax.process_index() == 0


def make_mesh(devices: int | None) -> Mesh | None:
    """A one-axis mesh of the first ``devices`` local devices of every process (all when
    None); None for a single device in a single process."""
    local = jax.local_devices()
    n = len(local) if devices is None else devices
    if n > len(local):
        raise KvqError(
            f"devices={n}, but this process has {len(local)} {local[0].platform} device(s); "
            f"use --devices {len(local)} or fewer"
        )
    if jax.process_count() == 1:
        return None if n == 1 else Mesh(np.array(local[:n]), (AXIS,))
    by_process: dict[int, list[Any]] = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    chosen = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:n]]
    return Mesh(np.array(chosen), (AXIS,))


def spread(batched: Callable[..., Any], mesh: Mesh | None, split: Sequence[bool]) -> Callable[..., Any]:
    """``jax.jit(batched)`` where ``batched`` maps a batch of items (the leading axis of every
    argument marked in ``split``; the others are shared) to per-item outputs.  With a mesh,
    every device runs ``batched`` on its share of the items (the leading axes a multiple of
    the mesh's size) and a copy of the shared arguments, and the outputs are joined along
    their leading axis (``jax.shard_map``; nothing is communicated)."""
    if mesh is None:
        return jax.jit(batched)
    items, shared = PartitionSpec(mesh.axis_names[0]), PartitionSpec()
    specs = tuple(items if s else shared for s in split)
    return jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=items, check_vma=False))


def layout(devices: int, n: int, per: int, rows: int, chunk: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """How a batch reaches ``devices`` devices: host rows ``0..n-1`` are its items, the rest
    padding; each device holds ``rows`` rows, at most ``per`` of them items (in order), then
    padding.  Returns the host row of every device row [devices * rows] and how many chunks
    of ``chunk`` rows hold items on each device [devices] int32 (the loop trips of
    :func:`kvq.core.train.lockstep`, which skips the padding chunks after them)."""
    if not (0 < n <= devices * per and per <= rows):
        raise ValueError(f"{n} items do not fit {devices} devices x {per} items (of {rows} rows)")
    pads = iter(range(n, devices * rows))
    order, counts = [], []
    for k in range(devices):
        mine = list(range(k * per, min((k + 1) * per, n)))
        order += mine + [next(pads) for _ in range(rows - len(mine))]
        counts.append(-(-len(mine) // chunk))
    return np.asarray(order), np.asarray(counts, np.int32)


@dataclass(frozen=True)
class Placement:
    """How host arrays reach the mesh and come back (see the module docstring)."""

    mesh: Mesh | None

    @property
    def size(self) -> int:
        """How many devices share every batch."""
        return 1 if self.mesh is None else int(self.mesh.size)

    @property
    def global_arrays(self) -> bool:
        """The mesh spans processes: arrays must be global ``jax.Array`` s."""
        return self.mesh is not None and jax.process_count() > 1

    def layout(self, n: int, per: int, rows: int, chunk: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """:func:`layout` on this placement's devices."""
        return layout(self.size, n, per, rows, chunk)

    def to_host(self, tree: Any, order: np.ndarray) -> Any:
        """``tree`` (device rows laid out by ``order``, :meth:`layout`) as host numpy arrays,
        whole in every process, in host row order."""
        back = np.argsort(order)
        return jax.tree.map(lambda a: np.asarray(a)[back], self.fetch(tree))

    def put(self, tree: Any, split: bool) -> Any:
        """``tree``'s host arrays on the mesh: split along their first axis (``split``) or
        copied to every device.  Unchanged where one process holds every device."""
        if self.mesh is None or not self.global_arrays:
            return tree
        spec = PartitionSpec(AXIS) if split else PartitionSpec()
        sharding = NamedSharding(self.mesh, spec)

        def one(a: Any) -> jax.Array:
            a = np.asarray(a)
            return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

        return jax.tree.map(one, tree)

    def fetch(self, tree: Any) -> Any:
        """``tree`` as host numpy arrays, whole, in every process."""
        if not self.global_arrays:
            return jax.device_get(tree)
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
