"""The host side of a training run: the clock of compile and training seconds, and the loop that
runs a batch's compiled block check interval after check interval, stops it once every item is
frozen, and saves and resumes it through a checkpoint."""

from __future__ import annotations

import platform
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from kvq.core.devices import Placement
from kvq.core.train import ItemState, take
from kvq.engine.checkpoint import Checkpoint


@dataclass
class Clock:
    """Seconds spent compiling, pre-training and training, and subset-steps trained (accumulated)."""

    compile_s: float = 0.0
    pretrain_s: float = 0.0
    train_s: float = 0.0
    subset_steps: int = 0


def compile_timed(fn: Any, clock: Clock, *args: Any) -> Any:
    """``fn`` (a jitted function) compiled for ``args``; the time it took is added to ``clock``."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    clock.compile_s += time.perf_counter() - t0
    return compiled


PROGRAM_CACHE_SIZE = 48  # compiled executables kept per process (least recently used dropped)
_programs: OrderedDict[Any, Any] = OrderedDict()


def _shapes(args: tuple) -> tuple:
    """The argument structure, shapes, dtypes and placements: what an executable is compiled for."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((np.shape(a), str(getattr(a, "dtype", type(a))), getattr(a, "sharding", None)) for a in leaves)


def _trace_settings() -> Any:
    """The JAX settings a program is traced under (x64, matmul precision, dtype promotion, ...):
    what ``jax.jit``'s own cache keys on, so a scan under ``jax.default_matmul_precision("highest")``
    does not reuse a program traced without it."""
    try:
        from jax._src.config import trace_context
    except ImportError:  # pragma: no cover - a JAX without it: the public settings that change a trace
        return tuple(getattr(jax.config, k, None) for k in ("jax_enable_x64", "jax_default_matmul_precision"))
    return trace_context()


def compile_cached(key: Any, make: Callable[[], Any], clock: Clock, *args: Any) -> Any:
    """``make()`` (a jitted function) compiled for ``args``, reused from this process's cache
    when a program of the same ``key`` (a hashable value naming what it computes, e.g.
    :meth:`kvq.core.train.Programs.key` and the batch layout) was compiled for arguments of the
    same shapes: scans that repeat a program (a resumed run, a longer budget, the robustness
    check, a sweep or a notebook run twice) neither trace nor compile it again."""
    full = (key, _shapes(args), jax.default_backend(), _trace_settings())
    try:
        hash(full)
    except TypeError:  # a user's unhashable callable (a loss object holding arrays): compiled, not kept
        return compile_timed(make(), clock, *args)
    compiled = _programs.get(full)
    if compiled is None:
        compiled = _programs[full] = compile_timed(make(), clock, *args)
        if len(_programs) > PROGRAM_CACHE_SIZE:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(full)
    return compiled


ONE_PROCESS = Placement(None)  # one device of one process: arrays go in and come back as they are


def run_blocks(
    block,
    state: ItemState,
    args: tuple,
    n_blocks: int,
    n_real: int,
    check_every: int,
    on_block: Callable[[int, int], None],
    checkpoint: Checkpoint | None,
    key: str,
    history: np.ndarray | None = None,
    items: tuple[np.ndarray, np.ndarray] | None = None,
    placement: Placement = ONE_PROCESS,
    order: np.ndarray | None = None,
) -> tuple[ItemState, Any, int]:
    """Run up to ``n_blocks`` check intervals; stop early once every item is frozen.

    ``state`` (host arrays) holds the ``n_real`` items in its first rows, then padding.
    With ``history`` ([n_blocks, B, d_out], NaN-filled) ``block`` returns ``(state, errors
    [B, d_out])`` and row ``t`` receives the errors after check ``t``; rows after an early
    end (every item frozen) carry the last check's errors, which a frozen item keeps.
    Resumes from (and saves to) ``checkpoint[key]``, recording ``items`` (see
    :meth:`Checkpoint.save`); a state saved at a shorter cap whose items did not all stop
    continues to ``n_blocks``, one saved past ``n_blocks`` is not used.  ``placement`` puts the state on the devices that share the
    batch, in the device row order ``order`` (:meth:`~kvq.core.devices.Placement.layout`; None:
    as it is), and fetches what every process must see (errors, frozen flags, checkpoints).
    ``on_block(trained, dropped)`` after every check: the optimizer steps trained since the
    last call (summed over the items) and those the step cap would still have given the items
    that stopped (work that will not be done: progress takes it off its total).
    Returns the state (host arrays, host row order), the history, and the optimizer steps
    this call trained, summed over the items (a stopped item's are not counted: its check is
    skipped, see :func:`kvq.core.train.lockstep`).
    """
    rows = jax.tree.leaves(state)[0].shape[0]
    order = np.arange(rows) if order is None else order
    done, finished, trained = 0, False, 0
    carry = (state, history)
    saved = checkpoint.load(key, carry) if checkpoint is not None else None
    if saved is not None and saved.usable(n_blocks):
        (state, history), done = saved.tree, saved.blocks_done
        finished = saved.final(n_blocks)  # else: it stopped at a shorter cap, and continues
        history = None if history is None else fit_history(np.array(history), done, n_blocks)
    frozen = np.asarray(state.frozen, bool)  # host order; a stopped item's check is not run again
    if done:  # what the saved run trained is not this run's work, nor what its stopped items dropped
        ended = n_real if finished else int(np.sum(frozen[:n_real]))
        on_block(0, n_real * check_every * done + ended * check_every * (n_blocks - done))
    state = placement.put(take(state, order), split=True)
    stopped = False
    while not finished and done < n_blocks:
        running = ~frozen[:n_real]
        stepped = check_every * int(np.sum(running))
        trained += stepped
        if history is None:
            state = block(state, *args)
        else:
            state, errors = block(state, *args)
            errors = placement.to_host(errors, order)
            if done > 0:  # a stopped training keeps its weights, so its error is the last check's
                errors = np.where(frozen.reshape(-1, *(1,) * (errors.ndim - 1)), history[done - 1], errors)
            history[done] = errors
        done += 1
        frozen = placement.to_host(state.frozen, order)
        stopped = bool(np.all(frozen[:n_real]))
        finished = done == n_blocks or stopped
        if finished and history is not None:
            history[done:] = history[done - 1]
        # several processes: every one takes part in the gather, process 0 writes
        if checkpoint is not None and (placement.global_arrays or checkpoint.due(key, finished)):
            checkpoint.save(key, (placement.to_host(state, order), history), done, finished, items, stopped)
        # progress: the steps trained, and the cap's steps that the trainings stopping here drop
        on_block(stepped, check_every * (n_blocks - done) * int(np.sum(running & frozen[:n_real])))
    if history is not None and 0 < done < n_blocks:
        history[done:] = history[done - 1]
    return placement.to_host(state, order), history, trained


def fit_history(history: np.ndarray, done: int, n_blocks: int) -> np.ndarray:
    """A saved history [checks, B, d_out] of which ``done`` checks ran, laid out for a run of
    ``n_blocks`` checks: the checks run, then the last one repeated (what a stopped item keeps;
    a continued batch overwrites them)."""
    out = np.full((n_blocks, *history.shape[1:]), np.nan, history.dtype)
    out[:done] = history[:done]
    if 0 < done < n_blocks:
        out[done:] = history[done - 1]
    return out


def environment() -> dict[str, Any]:
    """Package versions and the device the scan ran on (JSON-ready)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("kvq", "jax", "jaxlib", "flax", "optax", "numpy", "chex"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    dev = jax.devices()[0]
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": dev.platform,
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "machine": platform.machine(),
    }
