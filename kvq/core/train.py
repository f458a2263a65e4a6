"""Batched training of many (rule mask, seed) pairs in one jit-compiled program.

Everything here is a pure function over pytrees; the only Python loop is the one over
check intervals (one compiled call runs ``check_every`` optimizer steps for a whole batch
and then applies the paper's early-stopping check as a per-item *frozen* flag).

Shapes: a batch has ``B`` items; item ``b`` trains mask ``masks[b]`` [n] on the
observations ``data[b]`` = ``(x [N, d_in], y [N, d_out])``, or ``(x, y, w [N])`` where the
sets were padded to one size (``w`` marks the real rows).  Rule collocation points are
shared by every item (never copied per item).  Nothing in this module knows about
rule importance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from kvq.core.devices import spread
from kvq.core.nn import OptState, Params, PointModel

Apply = Callable[[Params, jax.Array], jax.Array]


def data_mse(apply: Apply, params: Params, x: jax.Array, y: jax.Array, w: jax.Array | None = None) -> jax.Array:
    """Mean squared error of ``apply(params, x [N, d_in])`` against ``y`` [N, d_out]
    (0 when N = 0).  ``w`` [N] (0/1) marks the real rows of a padded set: the mean is over
    those alone (0 when there are none), so padding never changes the loss."""
    if x.shape[0] == 0:
        return jnp.zeros((), jnp.float32)
    if w is None:
        return jnp.mean((apply(params, x) - y) ** 2)
    per_row = jnp.sum((apply(params, x) - y) ** 2, axis=-1)
    return jnp.sum(w * per_row) / (jnp.maximum(jnp.sum(w), 1.0) * y.shape[-1])


DataLossFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""A custom data loss ``loss(pred [N, d_out], y [N, d_out], w [N]) -> scalar``; ``w`` is 0/1
and marks the real rows (all ones unless observation sets of different sizes were padded
to one shape, as in a sweep): a loss must give padded rows no weight."""

HUBER_DELTA = 1.0
"""Where the Huber data loss turns from quadratic to linear, in units of the targets."""


def _rows(w: jax.Array) -> jax.Array:
    return jnp.maximum(jnp.sum(w), 1.0)


def _mse_per_output(pred: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(w[:, None] * (pred - y) ** 2, axis=0) / _rows(w)


def _relative_l2_per_output(pred: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    err = jnp.sum(w[:, None] * (pred - y) ** 2, axis=0)
    ref = jnp.sum(w[:, None] * y**2, axis=0)
    return jnp.sqrt(err / jnp.maximum(ref, 1e-30) + 1e-30)


def _huber_per_output(pred: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(w[:, None] * optax.huber_loss(pred, y, delta=HUBER_DELTA), axis=0) / _rows(w)


DATA_LOSSES: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "mse": _mse_per_output,
    "relative_l2": _relative_l2_per_output,
    "huber": _huber_per_output,
}
"""The built-in data losses, per output [d_out] from predictions, targets [N, d_out] and row
weights [N]: mean squared error (the paper's), relative L2 error ``||pred - y|| / ||y||``,
and the Huber loss (quadratic within ``HUBER_DELTA`` of the target, linear beyond).  The
data loss is their mean over outputs, weighted by ``output_weights`` where given."""


@dataclass(frozen=True, eq=False)
class Objective:
    """The masked objective ``J_m = L_data + sum_i m_i w_i L_i`` of one problem: the one
    definition that training, the estimators and weight balancing use.

    ``losses[i](u, points[i]) -> scalar`` with ``u`` the model as a function of one point.
    ``data``: the data loss, a name of :data:`DATA_LOSSES` or a :data:`DataLossFn`;
    ``output_weights`` [d_out] weight the outputs of a built-in one (None: equal).
    Training calls the objective with a ``pattern`` (per compiled program): the expensive
    rules that are ON; expensive rules outside the pattern are not computed at all; the
    other rules are switched by their mask bit (``lax.cond``).  :meth:`dense` computes
    every term and multiplies it by its mask bit (the mask may be traced, e.g. for
    curvature products); :meth:`terms` returns the unweighted terms.
    """

    apply: Apply
    losses: tuple[Callable[..., jax.Array], ...]
    weights: tuple[float, ...]
    expensive: frozenset[int]
    data: str | DataLossFn = "mse"
    output_weights: tuple[float, ...] | None = None

    def key(self) -> tuple:
        """What the objective computes, as a hashable value: its functions (by identity, kept
        alive by the key) and its constants.  Equal keys trace to the same program."""
        return (self.apply, self.losses, self.weights, self.expensive, self.data, self.output_weights)

    @property
    def plain_mse(self) -> bool:
        """The data loss is the unweighted mean squared error."""
        return self.data == "mse" and self.output_weights is None

    def data_loss(self, params: Params, data: tuple[jax.Array, ...]) -> jax.Array:
        """The data loss on the observations ``data`` = ``(x, y[, w])`` (0 when there are none)."""
        if self.plain_mse:
            return data_mse(self.apply, params, *data)
        x, y = data[0], data[1]
        if x.shape[0] == 0:
            return jnp.zeros((), jnp.float32)
        w = data[2] if len(data) > 2 else jnp.ones(x.shape[0], jnp.float32)
        pred = self.apply(params, x)
        if callable(self.data):
            return self.data(pred, y, w)
        per_output = DATA_LOSSES[self.data](pred, y, w)
        if self.output_weights is None:
            return jnp.mean(per_output)
        return jnp.mean(jnp.asarray(self.output_weights, per_output.dtype) * per_output)

    def data_residual(self, params: Params, data: tuple[jax.Array, ...]) -> jax.Array | None:
        """``r`` [N d_out] with ``sum(r ** 2)`` = the data loss when that is a (weighted) mean
        square (its Gauss-Newton form); None for any other data loss."""
        if self.data != "mse":
            return None
        x, y = data[0], data[1]
        w = data[2] if len(data) > 2 else jnp.ones(x.shape[0], jnp.float32)
        ow = jnp.ones(y.shape[-1]) if self.output_weights is None else jnp.asarray(self.output_weights, jnp.float32)
        scale = jnp.sqrt(w[:, None] * ow[None, :] / (_rows(w) * y.shape[-1]))
        return ((self.apply(params, x) - y) * scale).ravel()

    def terms(self, params: Params, data: tuple[jax.Array, ...], points: tuple[jax.Array, ...]) -> jax.Array:
        """[1 + n]: the data loss, then every rule's unweighted loss (all computed)."""
        u = PointModel(self.apply, params)
        return jnp.stack([self.data_loss(params, data), *(loss(u, pts) for loss, pts in zip(self.losses, points))])

    def weighted(
        self, params: Params, weights: jax.Array, data: tuple[jax.Array, ...], points: tuple[jax.Array, ...]
    ) -> jax.Array:
        """``L_data + sum_i weights_i L_i`` with every term computed; ``weights`` [n] may be
        traced (weight balancing passes its own, :meth:`dense` mask times rule weights)."""
        t = self.terms(params, data, points)
        return t[0] + jnp.sum(jnp.asarray(weights, t.dtype) * t[1:])

    def dense(
        self, params: Params, mask: jax.Array, data: tuple[jax.Array, ...], points: tuple[jax.Array, ...]
    ) -> jax.Array:
        """``J_mask(params)`` with every term computed; ``mask`` [n] may be traced."""
        return self.weighted(
            params, jnp.asarray(mask, jnp.float32) * jnp.asarray(self.weights, jnp.float32), data, points
        )

    def residual(
        self,
        params: Params,
        mask: jax.Array,
        data: tuple[jax.Array, ...],
        points: tuple[jax.Array, ...],
        residuals: Sequence[Callable[..., jax.Array] | None],
    ) -> jax.Array:
        """``r`` with ``sum(r ** 2)`` = the part of ``J_mask`` that is a sum of mean squares:
        the data loss where :meth:`data_residual` exists, and every rule ``i`` with a residual
        function ``residuals[i](u, points[i]) -> [P]`` (its loss = mean of its square), scaled
        by ``sqrt(mask_i w_i / P)``.  The Gauss-Newton curvature is built from it."""
        u = PointModel(self.apply, params)
        own = self.data_residual(params, data) if data[0].shape[0] > 0 else None
        parts = [] if own is None else [own]
        for i, res in enumerate(residuals):
            if res is not None:
                r = res(u, points[i])
                parts.append((r * jnp.sqrt(mask[i] * self.weights[i] / r.shape[0])).ravel())
        return jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.float32)

    def __call__(self, params, mask, data, points, pattern: tuple[int, ...]) -> jax.Array:
        """``J_mask(params)`` for one item; ``mask`` [n] is 0/1, ``data`` = ``(x, y[, w])``."""
        u = PointModel(self.apply, params)  # the model at one point
        total = self.data_loss(params, data)
        for i, (loss, pts) in enumerate(zip(self.losses, points)):
            if i in self.expensive:
                if i in pattern:
                    total = total + self.weights[i] * loss(u, pts)
                continue
            # a cheap rule: skipped at run time where the mask is a scalar (one item at a
            # time), selected where items run in lock-step under vmap
            term = jax.lax.cond(
                mask[i] > 0, lambda u=u, loss=loss, pts=pts: loss(u, pts), lambda: jnp.zeros((), jnp.float32)
            )
            total = total + self.weights[i] * term
        return total


class ItemState(NamedTuple):
    """Training state of one (mask, seed) item (batched: a leading [B] axis; host numpy
    arrays before the first compiled call, device arrays after)."""

    params: Params
    opt_state: OptState
    best_params: Params  # weights at the last check that improved the loss
    best_opt_state: OptState
    last_loss: jax.Array | np.ndarray  # loss at the last improving check (NaN: not yet measured)
    frozen: jax.Array | np.ndarray  # bool: stopped by early stopping (or diverged)
    diverged: jax.Array | np.ndarray  # bool: the loss became NaN/inf
    steps_run: jax.Array | np.ndarray  # int32: optimizer steps taken before stopping


def start_state(params: Params, opt_state: OptState) -> ItemState:
    """State at the start of a training run from batched ``params`` and ``opt_state``.

    The loss at the start is measured by the first block (``last_loss`` is NaN until then).
    """
    b = jax.tree.leaves(params)[0].shape[0]
    return ItemState(
        params,
        opt_state,
        params,
        opt_state,
        np.full((b,), np.nan, np.float32),
        np.zeros((b,), bool),
        np.zeros((b,), bool),
        np.zeros((b,), np.int32),
    )


def _select(cond: ArrayLike, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: jnp.where(cond, u, v), a, b)


def make_block(
    loss_fn: Callable[[Params], jax.Array],
    optimizer: optax.GradientTransformation,
    check_every: int,
    keep: str,
    linesearch: bool = False,
) -> Callable[[ItemState], ItemState]:
    """One check interval for one item: ``check_every`` optimizer steps, then the check.

    ``keep="last"`` (subset training): stop as soon as the loss rose since the last check
    and keep the weights of that check.  ``keep="best"`` (data-only pre-training): stop
    when the loss did not improve on the best so far, keep the best.  Both rules freeze
    the item; a frozen item's result no longer changes.  A NaN/inf loss freezes the item
    and marks it diverged.  ``linesearch``: the optimizer's update needs the loss (value,
    gradient and the loss function itself: ``optax.lbfgs`` and its line search).
    """
    value_and_grad = optax.value_and_grad_from_state(loss_fn)

    def step(carry, _):
        params, opt_state = carry
        if linesearch:
            value, grads = value_and_grad(params, state=opt_state)
            updates, opt_state = optimizer.update(grads, opt_state, params, value=value, grad=grads, value_fn=loss_fn)
        else:
            grads = jax.grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def block(s: ItemState) -> ItemState:
        # the loss at the start of the run is the first check's reference (one extra
        # forward pass per block, <0.1 % of its cost, instead of another program)
        s = s._replace(last_loss=jnp.where(jnp.isnan(s.last_loss), loss_fn(s.params), s.last_loss))
        (params, opt_state), _ = jax.lax.scan(step, (s.params, s.opt_state), None, length=check_every)
        loss = loss_fn(params)
        bad = ~jnp.isfinite(loss)
        worse = loss > s.last_loss if keep == "last" else loss >= s.last_loss
        stop = ~s.frozen & (bad | worse)
        improve = ~s.frozen & ~stop
        return ItemState(
            params=_select(s.frozen, s.params, params),
            opt_state=_select(s.frozen, s.opt_state, opt_state),
            best_params=_select(improve, params, s.best_params),
            best_opt_state=_select(improve, opt_state, s.best_opt_state),
            last_loss=jnp.where(improve, loss, s.last_loss),
            frozen=s.frozen | stop,
            diverged=s.diverged | (~s.frozen & bad),
            steps_run=jnp.where(s.frozen, s.steps_run, s.steps_run + check_every),
        )

    return block


def _mse(pred: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((pred - y) ** 2, axis=0)


def _relative_l2(pred: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum((pred - y) ** 2, axis=0) / jnp.sum(y**2, axis=0))


def _max_error(pred: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(pred - y), axis=0)


SCORES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": _mse,
    "relative_l2": _relative_l2,
    "max_error": _max_error,
}
"""Validation scores, per output [d_out] from predictions and targets [V, d_out]: mean squared
error (the paper's), relative L2 error ``||pred - y|| / ||y||``, maximum absolute error."""


LOOP_CHUNKS = 2
"""The fewest chunks of items a device holds (padding if need be): XLA compiles a loop of one
trip over a one-chunk array into other code, which changes float32 rounding; the padding
chunks are skipped (:func:`lockstep`'s ``counts``) and cost nothing."""


def lockstep(
    one: Callable[..., Any], vectorize: int, items: int, shared: int, live: Callable[[Any], jax.Array] | None = None
) -> Callable[..., Any]:
    """``one`` over a batch: ``(*args, counts) -> outputs [B, ...]``, where the first
    ``items`` of ``args`` carry a leading [B] axis (a multiple of ``vectorize``) and the next
    ``shared`` are the same for every item.  The items run in chunks of ``vectorize`` in
    lock-step (``vmap``; 1: one plain call per item, so a cheap rule that is off is skipped),
    one chunk after another in a loop of ``counts[0]`` trips (``counts`` [1] int32).  The
    trip count is an argument, so the loop stays a loop and its body one program however
    many items a device holds: every device count computes the same numbers.  Chunks from
    ``counts[0]`` on are padding, skipped, with zero outputs.

    ``live`` (the first argument [B] -> bool [B]): the rows that still need ``one``.  The
    chunks then gather the live rows of the first ``counts[0]`` chunks (in row order), fill
    the last chunk's spare places with other rows, and the loop ends there: a row that is not
    live (a training that stopped) costs nothing unless it fills a place.  ``one`` must
    return its first argument's structure first and leave a row that is not live as it is
    there (a stopped training does); a row left out keeps its first argument and gets zero
    other outputs.  An item's numbers do not depend on the rows it shares a chunk with
    (the Burgers ``standard`` scan of benchmarks/time_to_settled.py gave the same table bit
    for bit in 248 s instead of 380 s).
    """
    w = vectorize
    run = jax.jit(one if w == 1 else jax.vmap(one, in_axes=(0,) * items + (None,) * shared))

    def chunk(tree: Any, i: jax.Array) -> Any:
        if w == 1:
            return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), tree)
        return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * w, w), tree)

    def batched(*args: Any) -> Any:
        each, rest, counts = args[:items], args[items:-1], args[-1]
        size = jax.tree.leaves(each)[0].shape[0]
        shapes = jax.eval_shape(lambda *c: run(*c, *rest), *chunk(each, jnp.zeros((), jnp.int32)))
        per_item = (lambda a: a.shape) if w == 1 else (lambda a: a.shape[1:])  # a chunk's output: [w, ...]
        out = jax.tree.map(lambda a: jnp.zeros((size, *per_item(a)), a.dtype), shapes)
        if live is None:
            rows, trips = None, counts[0]
        else:  # the live rows of the item chunks first; the loop runs the chunks holding them
            out = (each[0], *out[1:])
            need = live(each[0]) & (jnp.arange(size) < counts[0] * w)
            rows = jnp.argsort(~need, stable=True).astype(jnp.int32)
            trips = (jnp.sum(need, dtype=jnp.int32) + w - 1) // w

        def body(i: jax.Array, out: Any) -> Any:
            if rows is None:
                got = run(*chunk(each, i), *rest)
                if w == 1:
                    return jax.tree.map(lambda o, g: jax.lax.dynamic_update_index_in_dim(o, g, i, 0), out, got)
                return jax.tree.map(lambda o, g: jax.lax.dynamic_update_slice_in_dim(o, g, i * w, 0), out, got)
            at = chunk(rows, i)  # the rows of this chunk: [w] (a scalar if w == 1)
            got = run(*jax.tree.map(lambda a: a[at], each), *rest)
            return jax.tree.map(lambda o, g: o.at[at].set(g), out, got)

        return jax.lax.fori_loop(0, trips, body, out)

    return batched


@dataclass(frozen=True, eq=False)
class Programs:
    """Compiled-on-demand programs for one objective, optimizer and interval; trainings
    are scored on the validation set by ``score`` (:data:`SCORES`).  ``keep`` and
    ``linesearch`` as in :func:`make_block` (the polish phase: ``"best"``, True)."""

    objective: Objective
    optimizer: optax.GradientTransformation
    check_every: int
    score: str = "mse"
    keep: str = "last"  # the early-stopping rule of subset trainings (make_block)
    linesearch: bool = False  # the optimizer needs the loss (optax.lbfgs: the polish phase)
    # what the engine measured for these programs (memory per item), for its next batches
    compiled: dict[Any, Any] = field(default_factory=dict, repr=False)

    def key(self) -> tuple:
        """What these programs compute, as a hashable value (:meth:`Objective.key`, the
        optimizer's functions by identity, and the settings): equal keys and equal argument
        shapes compile to the same executable (:func:`kvq.engine.runner.compile_cached`)."""
        return (self.objective.key(), tuple(self.optimizer), self.check_every, self.score, self.keep, self.linesearch)

    def subset_block(self, pattern: tuple[int, ...], vectorize: int = 1, mesh: Any = None):
        """jit ``(state[B], masks[B,n], data[B], points, valid, counts) -> (state, errors [B, d_out])``:
        one check interval, then the validation MSE per output of each item's kept weights
        (``valid`` = ``(vx [V, d_in], vy [V, d_out])``; NaN for a diverged item).  Those are
        the weights a run with a budget ending at this check would keep, so the errors of
        every check form the value table as it stood after that many steps.

        ``vectorize`` items train in lock-step under ``vmap``, such chunks one after another
        (which keeps a CPU's caches warm for large collocation sets), ``counts`` [devices]
        chunks on each device (:func:`lockstep`; every device's rows are whole chunks).

        ``mesh``: a one-axis ``jax.sharding.Mesh`` of devices; the items are split evenly
        between them (``B`` a multiple of its size; ``vectorize`` counts per device) and each
        device trains its share with the same per-item program (``jax.shard_map``; nothing is
        communicated), while the rule points and the validation set are copied to every device.
        """
        obj = self.objective
        objective = jax.jit(lambda p, mask, data, points: obj(p, mask, data, points, pattern))

        def one(s, mask, data, points, valid):
            loss = lambda p: objective(p, mask, data, points)
            s = make_block(loss, self.optimizer, self.check_every, self.keep, self.linesearch)(s)
            vx, vy = valid
            err = SCORES[self.score](obj.apply(s.best_params, vx), vy)
            return s, jnp.where(s.diverged, jnp.nan, err)

        return spread(
            lockstep(one, vectorize, 3, 2, live=lambda s: ~s.frozen), mesh, (True, True, True, False, False, True)
        )

    def pretrain_block(self, mesh: Any = None):
        """jit data-only block over seeds, one after another (:func:`lockstep`):
        ``(state[S], data[S], counts) -> state``; ``mesh`` splits the seeds between devices
        as in :meth:`subset_block`."""
        obj = self.objective

        def one(s, data):
            return make_block(lambda p: obj.data_loss(p, data), self.optimizer, self.check_every, "best")(s)

        return spread(lockstep(one, 1, 2, 0), mesh, (True, True, True))

    def validation(self, mesh: Any = None):
        """jit(vmap) ``(params[B], vx [V, d_in], vy [V, d_out]) -> per-output score [B, d_out]``;
        ``mesh`` splits the models between devices as in :meth:`subset_block`."""
        apply, score = self.objective.apply, self.score

        def one(params, vx, vy):
            return SCORES[score](apply(params, vx), vy)

        return spread(jax.vmap(one, in_axes=(0, None, None)), mesh, (True, False, False))


def take(tree: Any, idx: Any) -> Any:
    """Rows ``idx`` of every leaf of a batched pytree (numpy leaves stay numpy: no compile)."""
    return jax.tree.map(lambda a: a[idx], tree)
