"""The batched engine: any list of rule masks x every seed, trained in compiled programs.

:class:`Engine` wires a problem and a config to :mod:`kvq.core.train`: the network, points and
observations of every seed, the data-only warm start, and :meth:`Engine.train`, which runs masks
as batches (resuming from a :class:`~kvq.engine.checkpoint.Checkpoint`).  Masks are grouped by
the on/off pattern of the *expensive* rules (docs/design.md §5) so an expensive rule is never
computed for a mask that excludes it; within a group all masks x seeds train as one vmapped
batch.  The methods (:mod:`kvq.methods`) decide which masks to train.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from kvq.core.coalitions import group_by_pattern
from kvq.core.config import ScanConfig
from kvq.core.devices import Placement, make_mesh, spread
from kvq.core.models import resolve as resolve_model
from kvq.core.train import LOOP_CHUNKS, ItemState, Objective, Programs, lockstep, start_state, take
from kvq.engine.checkpoint import Checkpoint, batch_key, item_keys
from kvq.engine.plan import ALWAYS_FITS, MEMORY_SHARE, available_memory, plan_rules
from kvq.engine.runner import Clock, compile_cached, compile_timed, fit_history, run_blocks
from kvq.errors import KvqError
from kvq.problems.rules import Dataset, Problem

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase ``"pretrain"`` (seed-steps) or ``"train"`` (subset-steps)
(estimators add ``"anchor"``, ``"solve"`` and ``"refine"``)."""
Starts = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
"""``starts(mask_of [B], seed_of [B]) -> (params [B], opt_state [B])``: where items begin training."""

LBFGS = optax.lbfgs()  # the polish phase's optimizer (pure: one object, so polishes share programs)
CPU_POINTS_PER_VECTOR = 4096  # see Engine.vectorize
CPU_CHEAP_WIDTH = 16
"""On a CPU, the lock-step width of a program without an expensive rule that trains at least four
times as many items (fewer train as one chunk).  All of them in one chunk would each run until the
slowest stops; in chunks the stopped ones are skipped (:func:`kvq.core.train.lockstep`).  Measured:
the ``equations`` standard scan (96 trainings) took 336 s instead of 638 s, its table the same bit
for bit (benchmarks/time_to_settled.py).  A different width can round differently, and in a trial
(not kept as a benchmark) Burgers' 24 PDE-off trainings in chunks of 16 did, for little gain, so
small programs stay whole (docs/design.md §5)."""
VALIDATION_CHUNK = 64  # models scored per compiled validation call


@dataclass(frozen=True, eq=False)
class Batch:
    """One compiled call's worth of trainings: ``block(state, *args) -> state`` runs one
    check interval for every item; ``mask_of``/``seed_of`` name the real (unpadded) items,
    the first rows of ``state``, which reaches the devices in the row order ``order``."""

    pattern: tuple[int, ...]
    block: Callable[..., ItemState]
    state: ItemState
    args: tuple
    mask_of: np.ndarray
    seed_of: np.ndarray
    order: np.ndarray  # the host row of every device row (kvq.core.devices.Placement.layout)


class Trained(NamedTuple):
    """What :meth:`Engine.train` returns for ``B`` items (mask ``masks[mask_of[b]]``, seed
    column ``seed_of[b]``): their final states (host numpy, leading axis ``B``) and
    ``history`` [checks, B, d_out], the validation MSE per output of each item's kept
    weights after every check (``check_steps`` [checks] optimizer steps; NaN once
    diverged; a stopped item carries its final errors)."""

    state: ItemState
    mask_of: np.ndarray
    seed_of: np.ndarray
    history: np.ndarray
    check_steps: np.ndarray


@dataclass(frozen=True, eq=False)
class Engine:
    """A problem and a config made ready to train: network, points, data, programs.

    Immutable: ``params0``/``opt0`` [S, ...] are each seed's starting weights and optimizer
    state; :meth:`pretrain` and :meth:`with_starts` return a new engine with other ones.
    ``train`` runs any list of masks.  ``clock`` only accumulates timings.
    """

    problem: Problem
    config: ScanConfig
    programs: Programs
    points: tuple[jax.Array, ...]
    xs: np.ndarray  # [S, N, d_in] float32
    ys: np.ndarray  # [S, N, d_out]
    params0: Any  # host numpy leaves [S, ...]
    opt0: Any
    expensive: tuple[int, ...]
    seeds: tuple[int, ...]
    clock: Clock
    checkpoint: Checkpoint | None = None
    ws: np.ndarray | None = None  # [S, N] 0/1 real rows where the observation sets were padded
    valid: tuple[jax.Array, ...] = ()  # (vx [V, d_in], vy [V, d_out]) float32: the validation set
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # what network trains (kvq.core.models)
    mesh: Mesh | None = None  # the devices that share every batch (None: one device)

    @classmethod
    def prepare(
        cls,
        problem: Problem,
        config: ScanConfig,
        checkpoint: Checkpoint | None = None,
        group: bool = True,
        columns: Sequence[tuple[int, Dataset]] | None = None,
        model: Any = None,
    ) -> Engine:
        """Build the network, points, observations (per seed) and programs.  ``group=False``
        skips choosing expensive rules (one program; for runs that train one mask).

        ``columns``: the seed columns as ``(seed number, observations)`` pairs (default:
        ``config.seeds`` seeds of ``problem``, seed ``problem.seed + k`` observing
        ``problem.observations(k)``).  A sweep passes several observation sets (sizes,
        noise levels) here so they train in one batch; sets of different sizes are padded
        to the largest with 0/1 row weights, which leave every loss unchanged.
        ``model``: the network (:mod:`kvq.core.models`; default kvq's MLP from the config).
        """
        network = resolve_model(model, config, problem.d_in, problem.d_out)
        apply = network.apply
        if columns is None:
            columns = [(problem.seed + k, problem.observations(k)) for k in range(config.seeds)]
        seeds = tuple(int(s) for s, _ in columns)
        data = [d for _, d in columns]
        if len({(d.d_in, d.d_out) for d in data}) > 1 or data[0].d_in != problem.d_in:
            raise KvqError(
                f"problem {problem.name!r}: the observation sets have different input/output sizes "
                f"({[(d.d_in, d.d_out) for d in data]}); every seed needs {problem.d_in} inputs and {problem.d_out} outputs"
            )
        # one compiled call (not op by op); kept on the host, so taking rows costs no compile
        params0 = jax.device_get(network.init_seeds(np.asarray(seeds)))
        rows = [len(d) for d in data]
        N = max(rows)
        pad = lambda a: np.concatenate([a, np.zeros((N - len(a), a.shape[1]), a.dtype)])
        xs = np.stack([pad(d.x) for d in data]).astype(np.float32)
        ys = np.stack([pad(d.y) for d in data]).astype(np.float32)
        ws = None if len(set(rows)) == 1 else (np.arange(N)[None, :] < np.asarray(rows)[:, None]).astype(np.float32)
        chex.assert_shape(xs, (len(seeds), N, problem.d_in))
        chex.assert_shape(ys, (len(seeds), N, problem.d_out))
        losses = tuple(r.loss for r in problem.rules if r.loss is not None)  # Rule sets every loss
        weights = tuple(r.weight for r in problem.rules)
        points, expensive = plan_rules(problem, config, apply, take(params0, 0), group)
        if config.output_weights is not None and len(config.output_weights) != problem.d_out:
            raise KvqError(
                f"output_weights has {len(config.output_weights)} value(s); problem {problem.name!r} has "
                f"{problem.d_out} output(s) {list(problem.outputs)}"
            )
        optimizer = config.make_optimizer()
        objective = Objective(apply, losses, weights, frozenset(expensive), config.data_loss, config.output_weights)
        programs = Programs(objective, optimizer, config.check_every, config.score)
        opt0 = jax.device_get(jax.jit(jax.vmap(optimizer.init))(params0))
        valid = (jnp.asarray(problem.valid.x, jnp.float32), jnp.asarray(problem.valid.y, jnp.float32))
        return cls(
            problem,
            config,
            programs,
            points,
            xs,
            ys,
            params0,
            opt0,
            expensive,
            seeds,
            Clock(),
            checkpoint,
            ws,
            valid,
            dict(network.description),  # a copy: the model object is shared between scans
            make_mesh(config.devices),
        )

    @property
    def data(self) -> tuple[np.ndarray, ...]:
        """The observations of every seed column: ``(xs, ys)`` or, when padded, ``(xs, ys, ws)``."""
        return (self.xs, self.ys) if self.ws is None else (self.xs, self.ys, self.ws)

    @property
    def n_devices(self) -> int:
        """How many devices share every batch."""
        return self.placement.size

    @property
    def placement(self) -> Placement:
        """How a batch's host arrays reach the devices and come back (:mod:`kvq.core.devices`)."""
        return Placement(self.mesh)

    def rows(self) -> np.ndarray:
        """Observations (real rows) of each seed column, [S]."""
        if self.ws is None:
            return np.full(len(self.seeds), self.xs.shape[1])
        return self.ws.sum(axis=1).astype(int)

    def with_starts(self, params0: Any, opt0: Any) -> Engine:
        """This engine with the starting weights and optimizer states [S, ...] of every seed
        replaced (shares everything else)."""
        return dataclasses.replace(self, params0=params0, opt0=opt0)

    def pretrain(self, progress: Progress) -> Engine:
        """This engine after the data-only warm start of every seed (one batch): its
        starting weights are the warm-start ones.  The same engine without observations (a
        seed column without observations keeps its initial weights and optimizer state)."""
        cfg = self.config
        has_data = self.rows() > 0
        if not (cfg.warm_start and has_data.any() and cfg.pretrain_steps > 0):
            return self
        S = len(self.seeds)
        total, done = S * cfg.pretrain_steps, 0

        def on_block(k: int, dropped: int = 0) -> None:
            nonlocal done, total
            done, total = done + k, total - dropped
            progress("pretrain", done, total)

        place = self.placement
        rows, order, counts = self.seed_rows()  # every device warms its seeds one after another
        state = start_state(take(self.params0, rows), take(self.opt0, rows))  # _run_blocks places it
        data, counts = place.put(take(self.data, rows[order]), True), place.put(counts, True)
        first = place.put(take(state, order), True)
        block = compile_cached(
            (self.programs.key(), "pretrain", self.mesh),
            lambda: self.programs.pretrain_block(self.mesh),
            self.clock,
            first,
            data,
            counts,
        )
        progress("pretrain", 0, total)
        t0 = time.perf_counter()
        state, _, _ = run_blocks(
            block,
            state,
            (data, counts),
            cfg.pretrain_steps // cfg.check_every,
            S,
            cfg.check_every,
            on_block,
            self.checkpoint,
            "pretrain" if len(rows) == S else f"pretrain-{len(rows)}",
            placement=place,
            order=order,
        )
        state = take(state, np.arange(S))
        diverged = np.asarray(state.diverged) & has_data
        if diverged.any():
            warnings.warn(
                f"the data-only warm start of seed(s) {[self.seeds[s] for s in np.flatnonzero(diverged)]} diverged "
                "(NaN/inf loss); those seeds start from their initial weights instead (a lower learning rate "
                "or --pretrain-steps 0 avoids this)",
                RuntimeWarning,
                stacklevel=2,
            )
        keep = has_data & ~diverged
        warm = jax.tree.map(
            lambda new, old: np.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            (state.best_params, state.best_opt_state),
            (self.params0, self.opt0),
        )
        self.clock.pretrain_s += time.perf_counter() - t0
        progress("pretrain", total, total)
        return self.with_starts(*warm)

    def vectorize(self, pattern: tuple[int, ...], batch: int) -> int:
        """How many of ``batch`` items one program trains in lock-step (``vmap``).

        ``config.vectorize`` if set; on accelerators all of them; on a CPU, where no expensive
        rule is on, all of them or ``CPU_CHEAP_WIDTH`` for large batches, else about
        ``CPU_POINTS_PER_VECTOR`` expensive-rule points' worth, which measured fastest
        (4 000-point Burgers: 14.6 ms per PDE subset-step one at a time vs 17.1 ms for 8
        in lock-step).
        """
        if self.config.vectorize is not None:
            return min(self.config.vectorize, batch)
        if jax.default_backend() != "cpu":
            return batch
        heavy = sum(int(self.points[i].shape[0]) for i in pattern)
        if heavy == 0:
            return CPU_CHEAP_WIDTH if batch >= 4 * CPU_CHEAP_WIDTH else batch
        return max(1, min(batch, CPU_POINTS_PER_VECTOR // heavy))

    def item_bytes(self, pattern: tuple[int, ...]) -> int:
        """Estimated device memory (bytes) one training of ``pattern``'s program needs: its
        state (weights, optimizer state and their best copies, counted three times for
        inputs, outputs and updates) plus the temporaries of one gradient step of the
        objective with every rule on (XLA's memory analysis; once per pattern and programs)."""
        known = self.programs.compiled.get(("item_bytes", pattern))
        if known is not None:
            return known
        one = start_state(take(self.params0, 0), take(self.opt0, 0))
        state = sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(one))
        all_on = jnp.ones(len(self.points), jnp.float32)
        first = tuple(a[0] for a in self.data)
        grad = jax.jit(jax.grad(lambda p: self.programs.objective(p, all_on, first, self.points, pattern)))
        try:
            temp = compile_timed(grad, self.clock, take(self.params0, 0)).memory_analysis().temp_size_in_bytes
        except Exception:  # noqa: BLE001 - no analysis on this backend: count activations instead
            per_point = self.config.width * self.config.depth * 4 * 10  # float32 activations, ~10 copies
            temp = per_point * (self.xs.shape[1] + sum(int(p.shape[0]) for p in self.points))
        need = self.programs.compiled[("item_bytes", pattern)] = int(
            3 * state + temp + self.xs[0].nbytes + self.ys[0].nbytes
        )
        return need

    def max_batch(self, pattern: tuple[int, ...], total: int) -> int:
        """Trainings per compiled call and device: ``config.max_batch``, or where it is ``None``
        as many as fit in ``MEMORY_SHARE`` of the device's free memory (all ``total`` if that
        is unknown; CPU devices share the host's memory)."""
        if self.config.max_batch is not None:
            return min(total, self.config.max_batch)
        free = available_memory()
        if free is None or total <= ALWAYS_FITS:
            return total
        if jax.default_backend() == "cpu":
            free //= self.n_devices
        return max(1, min(total, int(MEMORY_SHARE * free) // self.item_bytes(pattern)))

    def seed_starts(self, mask_of: np.ndarray, seed_of: np.ndarray) -> tuple[Any, Any]:
        """Default starting weights and optimizer state of items (``mask_of``, ``seed_of``):
        their seed's ``params0``/``opt0`` (batched over the items)."""
        return take(self.params0, seed_of), take(self.opt0, seed_of)

    def with_budget(self, steps: int) -> Engine:
        """This engine with a training budget of ``steps`` per item (checked every
        ``config.check_every`` steps when that divides ``steps``, else once at the end);
        it shares the clock, points, data and starting weights."""
        check = self.config.check_every if steps % self.config.check_every == 0 else steps
        config = self.config.replace(steps=steps, check_every=check, pretrain_steps=0)  # pre-training is done
        programs = Programs(self.programs.objective, self.programs.optimizer, check, self.programs.score)
        return dataclasses.replace(self, config=config, programs=programs)

    def polisher(self) -> Engine:
        """This engine for the polish phase: ``config.polish_steps`` steps of ``optax.lbfgs``
        (checked every ``config.polish_every``, stopped once the loss no longer falls, the
        best weights kept), starting from weights that the caller gives."""
        cfg = self.config
        lbfgs = LBFGS
        programs = Programs(
            self.programs.objective, lbfgs, cfg.polish_every, self.programs.score, keep="best", linesearch=True
        )
        config = cfg.replace(steps=cfg.polish_steps, check_every=cfg.polish_every, pretrain_steps=0, polish_steps=0)
        return dataclasses.replace(self, config=config, programs=programs, opt0=_lbfgs_init(lbfgs, self.params0))

    def polish(self, masks: np.ndarray, first: Trained, progress: Progress, phase: str, tag: str) -> Trained:
        """``first`` (the items of ``masks`` after the first optimizer) polished by
        :meth:`polisher`, each from the weights it kept: the final state is the polish's,
        ``steps_run`` counts both phases, the history and ``check_steps`` continue with the
        polish checks, and an item that diverged in the first phase stays diverged."""
        polisher = self.polisher()
        lbfgs = polisher.programs.optimizer
        row = {(int(m), int(s)): k for k, (m, s) in enumerate(zip(first.mask_of, first.seed_of))}

        def starts(mask_of: np.ndarray, seed_of: np.ndarray) -> tuple[Any, Any]:
            params = take(first.state.best_params, np.array([row[(int(m), int(s))] for m, s in zip(mask_of, seed_of)]))
            return params, _lbfgs_init(lbfgs, params)

        # the polish starts where the first phase ended, which depends on its cap: that is in the tag
        second = polisher.train(
            masks, progress, phase=f"{phase} polish", tag=f"{tag}-polish{self.config.steps}", starts=starts
        )
        if not (np.array_equal(second.mask_of, first.mask_of) and np.array_equal(second.seed_of, first.seed_of)):
            raise AssertionError("the polish phase trained its items in another order")  # pragma: no cover
        bad = np.asarray(first.state.diverged)
        history = second.history.copy()
        history[:, bad] = np.nan
        state = second.state._replace(
            diverged=np.asarray(second.state.diverged) | bad,
            frozen=np.asarray(second.state.frozen) | bad,
            steps_run=np.asarray(first.state.steps_run) + np.asarray(second.state.steps_run),
        )
        return Trained(
            state,
            first.mask_of,
            first.seed_of,
            np.concatenate([first.history, history]),
            np.concatenate([first.check_steps, self.config.steps + second.check_steps]),
        )

    def items(self, masks: np.ndarray) -> Iterator[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
        """``(pattern, mask_of, seed_of)`` per on/off pattern of the expensive rules: the
        trainings of ``masks`` [M, n] for every seed column, in training order."""
        S = len(self.seeds)
        for pattern, idx in group_by_pattern(np.asarray(masks), self.expensive):
            yield pattern, np.repeat(idx, S), np.tile(np.arange(S), len(idx))

    def batches(
        self, masks: np.ndarray, starts: Starts | None = None, skip: Container[tuple[bytes, int]] = ()
    ) -> Iterator[Batch]:
        """The compiled batches that train ``masks`` [M, n] (0/1) for every seed.

        One program per on/off pattern of the expensive rules (compiled when its first
        batch is reached); a group larger than ``max_batch`` is cut into chunks padded
        to one shape so they share the program (:meth:`max_batch`).  ``starts``
        (default :meth:`seed_starts`) gives each item's starting weights and optimizer
        state.  Items whose :func:`~kvq.engine.checkpoint.item_keys` are in ``skip`` are left out.
        """
        starts = starts or self.seed_starts
        masks = np.asarray(masks)
        put = self.placement.put
        shared = (put(self.points, False), put(self.valid, False))  # every device's copy, made once
        for pattern, mask_of, seed_of in self.items(masks):
            if skip:
                keep = np.array([k not in skip for k in item_keys(masks[mask_of], seed_of)], bool)
                mask_of, seed_of = mask_of[keep], seed_of[keep]
            B = len(mask_of)
            if B == 0:
                continue
            # a set lock-step width: every device holds at least that many rows (padding), as
            # one device would, so that it runs one device's program and computes its numbers
            least = min(self.config.vectorize or 1, B)
            per_device = self.max_batch(pattern, max(-(-B // self.n_devices), least))
            vectorize = self.vectorize(pattern, per_device)
            # every device holds whole chunks, at least LOOP_CHUNKS of them, and a power of two of
            # them: the padding chunks are skipped, and batches of other sizes (the rounds of a
            # sampled estimate, another call) share the compiled program
            rows = vectorize * max(1 << (-(-per_device // vectorize) - 1).bit_length(), LOOP_CHUNKS)
            chunk = per_device * self.n_devices  # every device trains per_device items of every chunk
            block = None
            for lo in range(0, B, chunk):
                real = np.arange(lo, min(lo + chunk, B))
                items = np.concatenate([real, np.full(rows * self.n_devices - len(real), real[-1])])  # one shape
                order, counts = self.placement.layout(len(real), per_device, rows, vectorize)
                on_device = items[order]
                m = masks[mask_of[on_device]].astype(np.float32)
                data = tuple(a[seed_of[on_device]] for a in self.data)
                state = start_state(*starts(mask_of[items], seed_of[items]))
                args = (put(m, True), put(data, True), *shared, put(counts, True))
                key = (self.programs.key(), "subset", pattern, vectorize, self.mesh)
                block = block or compile_cached(
                    key,
                    functools.partial(self.programs.subset_block, pattern, vectorize, self.mesh),
                    self.clock,
                    put(take(state, order), True),
                    *args,
                )
                yield Batch(pattern, block, state, args, mask_of[real], seed_of[real], order)

    def train(
        self,
        masks: np.ndarray,
        progress: Progress,
        *,
        phase: str = "train",
        tag: str = "batch",
        starts: Starts | None = None,
    ) -> Trained:
        """Train ``masks`` [M, n] (0/1) for every seed (progress reported as ``phase``,
        checkpoints saved under ``tag``; ``starts`` as in :meth:`batches`), then polish
        them when ``config.polish_steps`` is set (:meth:`polisher`).

        Returns the final states of the M x S items (host numpy leaves, item ``b`` is mask
        ``mask_of[b]``, seed column ``seed_of[b]``: an index into ``masks``) and the
        validation errors of every item at every check (:class:`Trained`).
        """
        cfg = self.config
        total, done = len(masks) * len(self.seeds) * cfg.steps, 0
        n_blocks = cfg.steps // cfg.check_every
        d_out = int(self.valid[1].shape[1])

        def on_block(k: int, dropped: int = 0) -> None:  # dropped: steps no training will run
            nonlocal done, total
            done, total = done + k, total - dropped
            progress(phase, min(done, total), total)

        masks = np.asarray(masks)
        saved = self.checkpoint.finished_items(tag, n_blocks) if self.checkpoint is not None else {}
        finals: list[Any] = []
        masks_done: list[np.ndarray] = []
        seeds_done: list[np.ndarray] = []
        history: list[np.ndarray] = []
        if saved:  # items a finished batch of an earlier run holds, however it was batched
            for state, hist, m, s in self._saved_items(masks, tag, saved, n_blocks):
                finals.append(state)
                history.append(hist)
                masks_done.append(m)
                seeds_done.append(s)
                on_block(0, len(m) * cfg.steps)  # not this run's work: off the total
            loaded = {k for m, s in zip(masks_done, seeds_done) for k in item_keys(masks[m], s)}
            saved = {k: v for k, v in saved.items() if k in loaded}  # a damaged file's items train again
        for batch in self.batches(masks, starts, skip=saved):
            real = len(batch.mask_of)
            progress(phase, done, total)
            t0 = time.perf_counter()
            padded = jax.tree.leaves(batch.state)[0].shape[0]
            items = (masks[batch.mask_of], batch.seed_of)
            state, hist, stepped = run_blocks(
                batch.block,
                batch.state,
                batch.args,
                n_blocks,
                real,
                cfg.check_every,
                on_block,
                self.checkpoint,
                batch_key(tag, *items, padded),
                np.full((n_blocks, padded, d_out), np.nan, np.float32),
                items,
                self.placement,
                batch.order,
            )
            self.clock.train_s += time.perf_counter() - t0
            self.clock.subset_steps += stepped
            finals.append(take(state, np.arange(real)))
            history.append(hist[:, :real])
            masks_done.append(batch.mask_of)
            seeds_done.append(batch.seed_of)
        mask_of, seed_of = np.concatenate(masks_done), np.concatenate(seeds_done)
        every = [(m, s) for _, ms, ss in self.items(masks) for m, s in zip(ms, ss)]  # training order
        position = {(int(m), int(s)): k for k, (m, s) in enumerate(every)}
        order = np.argsort([position[(int(m), int(s))] for m, s in zip(mask_of, seed_of)], kind="stable")
        state = jax.tree.map(lambda *a: np.concatenate(a)[order], *finals)
        steps = cfg.check_every * np.arange(1, n_blocks + 1)
        trained = Trained(
            state, mask_of[order], seed_of[order], np.concatenate(history, axis=1)[:, order].astype(np.float64), steps
        )
        return self.polish(masks, trained, progress, phase, tag) if cfg.polish_steps else trained

    def _saved_items(
        self, masks: np.ndarray, tag: str, saved: dict[tuple[bytes, int], tuple[str, int]], n_blocks: int
    ) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]:
        """``(state, history [n_blocks, ...], mask_of, seed_of)`` per checkpoint file, of the
        items of ``masks`` that batches saved under ``tag`` hold finished for a run of
        ``n_blocks`` check intervals (host numpy leaves)."""
        rows: dict[str, list[tuple[int, int, int]]] = {}
        for _, m_of, s_of in self.items(masks):
            for key, m, s in zip(item_keys(masks[m_of], s_of), m_of, s_of):
                if key in saved:
                    file, row = saved[key]
                    rows.setdefault(file, []).append((row, int(m), int(s)))
        one = np.zeros(1, int)
        like = (start_state(*self.seed_starts(one, one)), np.zeros(0))
        for file, found in rows.items():
            loaded = None if self.checkpoint is None else self.checkpoint.load(file, like)
            if loaded is None:  # damaged (named in a warning) or gone: its items train again
                continue
            state, hist = loaded.tree
            r, m, s = (np.array(c) for c in zip(*found))
            yield take(state, r), fit_history(np.asarray(hist), loaded.blocks_done, n_blocks)[:, r], m, s

    def validation_errors(self, params: Any) -> np.ndarray:
        """Per-output validation score [B, d_out] (float64) of batched ``params``, evaluated
        ``min(B, VALIDATION_CHUNK)`` models per device at a time (in lock-step: the same width
        for any number of devices, so the same numbers), split between the devices."""
        B = jax.tree.leaves(params)[0].shape[0]
        place = self.placement
        chunk = min(B, VALIDATION_CHUNK) * place.size
        valid = place.put(self.valid, False)
        fn, out = None, []
        for lo in range(0, B, chunk):
            part = place.put(take(params, np.minimum(np.arange(lo, lo + chunk), B - 1)), True)  # pad: one shape
            fn = fn or compile_cached(
                (self.programs.key(), "validation", self.mesh),
                lambda: self.programs.validation(self.mesh),
                self.clock,
                part,
                *valid,
            )
            out.append(np.asarray(place.fetch(fn(part, *valid)), np.float64)[: B - lo])
        return np.concatenate(out)

    def per_seed(self, fn: Callable[..., Any], seeded: tuple[Any, ...], shared: tuple[Any, ...] = ()) -> Any:
        """``fn(*seeded_s, *shared)`` for every seed column ``s`` (``seeded``: arrays with a
        leading [S] axis), the seeds split between the devices, each device's one after
        another (:func:`~kvq.core.train.lockstep`); host numpy outputs, leading [S] axis.
        For one-shot programs of a seed (weight balancing, Newton solves); the program's
        compile time is added to the clock."""
        place = self.placement
        rows, order, counts = self.seed_rows()
        args = (*place.put(take(jax.device_get(seeded), rows[order]), True), *place.put(shared, False))
        args = (*args, place.put(counts, True))
        batched = lockstep(fn, 1, len(seeded), len(shared))
        program = spread(batched, self.mesh, (True,) * len(seeded) + (False,) * len(shared) + (True,))
        compiled = compile_timed(program, self.clock, *args)
        return take(place.to_host(compiled(*args), order), np.arange(len(self.seeds)))

    def seed_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For programs that run each device's seeds one after another: the seed column of
        every host row (the seeds, then copies of the last as padding), the device row
        order and each device's loop trips (:meth:`~kvq.core.devices.Placement.layout`)."""
        S, place = len(self.seeds), self.placement
        per = -(-S // place.size)
        rows = max(per, LOOP_CHUNKS)
        order, counts = place.layout(S, per, rows)
        return np.minimum(np.arange(rows * place.size), S - 1), order, counts


def _lbfgs_init(lbfgs: Any, params: Any) -> Any:
    """The L-BFGS state [B] of batched host ``params`` (one compiled call, host numpy)."""
    return jax.device_get(jax.jit(jax.vmap(lbfgs.init))(params))
