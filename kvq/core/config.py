"""Scan settings: network, optimizer, training budget, early stopping, seeds, collocation."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optax

from kvq.core import optimizers
from kvq.core.nn import ACTIVATIONS
from kvq.core.text import function_name
from kvq.core.train import DATA_LOSSES, SCORES
from kvq.errors import KvqError

GROUPINGS = ("auto", "none")
OPTIMIZERS = ("adam", "adamw", "sgd")


MEMORY_ONLY = ("max_batch", "vectorize", "devices")


def config_identity(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict (as :meth:`ScanConfig.to_dict`) without its ``MEMORY_ONLY`` settings."""
    return {k: v for k, v in config.items() if k not in MEMORY_ONLY}


@dataclass(frozen=True)
class ScanConfig:
    """How every rule subset is trained.

    Network: an MLP of ``depth`` hidden layers of ``width`` units with ``activation``
    (``depth = 0``: an affine model).
    Optimizer: ``optimizer`` (``"adam"``, the paper's; ``"adamw"``; ``"sgd"``) with
    ``learning_rate``, or any ``optax.GradientTransformation`` (schedules, ``optax.chain``,
    clipping; ``learning_rate`` is then unused), or a function ``steps -> transformation``
    for a schedule over the budget (``lambda steps: optax.adam(optax.cosine_decay_schedule(
    1e-3, steps))``): kvq builds it for ``steps``, so a longer budget stretches the schedule,
    and judges such a scan's settledness by the drift of its numbers alone, since every
    training is meant to run to the cap (docs/design.md §3).  kvq identifies a transformation by its
    first updates on a fixed probe (:func:`describe_optimizer`).  Each subset trains up to ``steps`` steps and
    is checked every ``check_every`` steps: it stops (keeping the weights of the last
    check) once its total loss rose since the previous check.  With ``warm_start`` the
    network is first trained on the data loss alone (up to ``pretrain_steps``, checked
    every ``check_every``, keeping the best) and every subset starts from those weights
    and optimizer state.  ``seeds`` seeds vary the initialisation and the observation
    draw.  ``collocation`` caps the points per rule (``None``: all the problem defines;
    a fixed subsample otherwise).  ``grouping``: ``"auto"`` compiles one program per
    on/off pattern of the expensive rules so they are never computed for a mask that
    excludes them; ``"none"`` computes every rule for every mask and multiplies by the
    mask; or a tuple of rule names to treat as expensive.  ``max_batch``: at most this
    many (mask, seed) trainings per compiled call, a bound on memory (``None``: as many as
    fit in half the device's free memory, estimated from XLA's memory analysis).
    ``vectorize``: how many of them train in lock-step under ``vmap`` inside the call (the
    rest run one chunk after another in the same program); ``None`` picks it from the
    device (all on accelerators, ~4 000 expensive-rule points' worth on a CPU).
    ``devices``: how many of this process's devices share every batch (the items are split
    evenly between them, ``max_batch`` and ``vectorize`` count per device; ``None``: all of
    them).  Like ``max_batch`` and ``vectorize`` it changes where and how fast, not what is
    computed, so a run may resume with another.  (A different lock-step width can round the
    same float32 arithmetic differently, which the early-stopping check may amplify into
    visibly different numbers: docs/design.md §5.)
    ``score``: how a training is scored on the validation set, per output: ``"mse"`` (the
    paper's), ``"relative_l2"`` or ``"max_error"``; the value of a rule subset is
    ``-log10(score)``, so importances stay in decades of that score.
    ``data_loss``: the loss on the observations, ``"mse"`` (the paper's), ``"relative_l2"``,
    ``"huber"`` (:data:`kvq.core.train.DATA_LOSSES`) or your own ``loss(pred [N, d_out], y [N, d_out],
    w [N]) -> scalar`` (``w``: 0/1 real rows; identified by its module-qualified name);
    ``output_weights`` [d_out] weight the outputs in a built-in data loss (None: equal).
    ``polish_steps``: after its first optimizer, every training takes up to this many
    ``optax.lbfgs`` steps from the weights it kept (the PINN recipe Adam then L-BFGS),
    checked every ``min(check_every, polish_steps)`` steps and stopped once its loss no
    longer falls; 0: no polish.
    """

    width: int = 50
    depth: int = 5
    activation: str = "sin"
    optimizer: str | optax.GradientTransformation | Callable[[int], optax.GradientTransformation] = "adam"
    learning_rate: float = 1e-3
    steps: int = 20_000
    check_every: int = 1_000
    warm_start: bool = True
    pretrain_steps: int = 50_000
    seeds: int = 3
    collocation: int | None = None
    grouping: str | tuple[str, ...] = "auto"
    max_batch: int | None = None
    vectorize: int | None = None
    score: str = "mse"
    data_loss: Any = "mse"  # str | kvq.core.train.DataLossFn
    output_weights: tuple[float, ...] | None = None
    polish_steps: int = 0
    devices: int | None = None

    def __post_init__(self) -> None:
        for name in ("width", "steps", "check_every", "seeds"):
            _positive_int(name, getattr(self, name))
        _positive_int("depth", self.depth, allow_zero=True)
        _positive_int("pretrain_steps", self.pretrain_steps, allow_zero=True)
        if self.collocation is not None:
            _positive_int("collocation", self.collocation)
        if self.max_batch is not None:
            _positive_int("max_batch", self.max_batch)
        if self.vectorize is not None:
            _positive_int("vectorize", self.vectorize)
        if self.devices is not None:
            _positive_int("devices", self.devices)
        if self.activation not in ACTIVATIONS:
            raise KvqError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if isinstance(self.optimizer, str):
            if self.optimizer not in OPTIMIZERS:
                raise KvqError(
                    f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS} or give an "
                    "optax.GradientTransformation"
                )
        elif is_transformation(self.optimizer):  # checked (and described) once, here
            object.__setattr__(self, "_optimizer_description", describe_optimizer(self.optimizer))
        elif callable(self.optimizer):  # a factory of the budget: steps -> transformation
            built = self.optimizer(self.steps)
            if not is_transformation(built):
                raise KvqError(
                    f"optimizer {function_name(self.optimizer)}(steps) must return an optax.GradientTransformation; "
                    f"got {type(built).__name__}"
                )
            object.__setattr__(
                self,
                "_optimizer_description",
                {**describe_optimizer(built), "kind": "budget schedule", "factory": function_name(self.optimizer)},
            )
        else:
            raise KvqError(
                f"optimizer must be one of {OPTIMIZERS}, an optax.GradientTransformation or a function "
                f"steps -> optax.GradientTransformation (a schedule over the budget); got {type(self.optimizer).__name__}"
            )
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise KvqError(f"learning_rate must be a number > 0; got {lr!r}")
        if self.steps % self.check_every:
            raise KvqError(f"steps ({self.steps}) must be a multiple of check_every ({self.check_every})")
        if self.pretrain_steps % self.check_every:
            raise KvqError(
                f"pretrain_steps ({self.pretrain_steps}) must be a multiple of check_every ({self.check_every})"
            )
        if self.score not in SCORES:
            raise KvqError(f"unknown score {self.score!r}; choose one of {sorted(SCORES)}")
        if not (callable(self.data_loss) or (isinstance(self.data_loss, str) and self.data_loss in DATA_LOSSES)):
            raise KvqError(
                f"unknown data_loss {self.data_loss!r}; choose one of {sorted(DATA_LOSSES)} or give a "
                "function loss(pred, y, w) -> scalar"
            )
        if self.output_weights is not None:
            ow = tuple(self.output_weights)
            if (
                not ow
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0 for v in ow)
                or not any(v > 0 for v in ow)
            ):
                raise KvqError(
                    f"output_weights must be numbers >= 0 (one per output, not all 0); got {self.output_weights!r}"
                )
            if callable(self.data_loss):
                raise KvqError(
                    "output_weights weight the outputs of a built-in data_loss; a custom data_loss "
                    "weights its outputs itself"
                )
            object.__setattr__(self, "output_weights", tuple(float(v) for v in ow))
        _positive_int("polish_steps", self.polish_steps, allow_zero=True)
        if self.polish_steps and self.polish_steps % min(self.check_every, self.polish_steps):
            raise KvqError(
                f"polish_steps ({self.polish_steps}) must be below check_every ({self.check_every}) or a multiple of it"
            )
        if isinstance(self.grouping, list):
            object.__setattr__(self, "grouping", tuple(self.grouping))
        if isinstance(self.grouping, str) and self.grouping not in GROUPINGS:
            raise KvqError(f"grouping must be one of {GROUPINGS} or a tuple of rule names; got {self.grouping!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ScanConfig:
        """``"paper"``: the paper's protocol (docs/design.md §2; 5x50 sin MLP, Adam 1e-3, 20 000
        steps checked every 1 000, 50 000 data-only pre-training steps, all collocation
        points, one seed as in the paper).  ``"quick"``: a CPU-sized scan (a minute or so
        on 2 cores): a 3x32 tanh MLP (``tanh`` is about twice as fast as ``sin`` on CPUs),
        3 000 steps checked every 1 000, 500 collocation points per rule, two seeds; its
        budget is too short for the numbers to settle (the output says which).
        ``"standard"``: the quick network with a budget long enough for most trainings to
        stop early and the importances to settle (``benchmarks/settle.py``), three seeds:
        minutes to a quarter of an hour on 2 CPU cores (a built-in problem may change the
        network, step size or seeds to get there: Klein-Gordon, the 2-D problem).  Built-in problems adjust each preset
        (``kvq.problems.config``)."""
        if name not in PRESETS:
            raise KvqError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @property
    def budget_schedule(self) -> bool:
        """The optimizer is a factory of the budget (``steps -> transformation``): its schedule
        spans ``steps``, so every training is meant to run to the cap (docs/design.md §3)."""
        return not isinstance(self.optimizer, str) and not is_transformation(self.optimizer)

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optax transformation this config trains with (a budget schedule's, built for ``steps``)."""
        if not isinstance(self.optimizer, str):
            return self.optimizer if is_transformation(self.optimizer) else self.optimizer(self.steps)
        return _named_optimizer(self.optimizer, self.learning_rate)

    def replace(self, **changes: Any) -> ScanConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; an optax transformation is written as :func:`describe_optimizer`'s dict."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(d["grouping"], tuple):
            d["grouping"] = list(d["grouping"])
        if not isinstance(self.optimizer, str):
            d["optimizer"] = dict(self._optimizer_description)  # type: ignore[attr-defined]
        if callable(self.data_loss):
            d["data_loss"] = {"kind": "function", "name": function_name(self.data_loss)}
        if self.output_weights is not None:
            d["output_weights"] = list(self.output_weights)
        return d

    @property
    def polish_every(self) -> int:
        """Steps between two checks of the polish phase."""
        return min(self.check_every, self.polish_steps)

    def identity(self) -> dict[str, Any]:
        """What of the config changes a scan's numbers: :meth:`to_dict` without the
        memory and layout settings (``MEMORY_ONLY``), so a run may resume with another."""
        return config_identity(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanConfig:
        """The config a :meth:`to_dict` dict (or a result's ``config``, which also records
        the model) describes."""
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        if isinstance(d.get("optimizer"), dict):
            raise KvqError(
                f"this config trained with a custom optax optimizer ({d['optimizer']}); it cannot be "
                "rebuilt from its description: pass the transformation as ScanConfig(optimizer=...)"
            )
        if isinstance(d.get("data_loss"), dict):
            raise KvqError(
                f"this config trained with your own data loss ({d['data_loss']['name']}); pass the "
                "function as ScanConfig(data_loss=...)"
            )
        if isinstance(d.get("output_weights"), list):
            d["output_weights"] = tuple(d["output_weights"])
        if isinstance(d.get("grouping"), list):
            d["grouping"] = tuple(d["grouping"])
        return cls(**d)


def is_transformation(optimizer: Any) -> bool:
    """Whether ``optimizer`` is an optax transformation (has ``init`` and ``update``)."""
    return callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))


def describe_optimizer(transformation: optax.GradientTransformation, probes: int = 8) -> dict[str, Any]:
    """``{"kind": "optax", "probe_digest"}``: a custom optimizer identified by its
    first ``probes`` updates of a fixed 32-parameter probe under gradients of changing size
    (1e-3 to 10, so clipping and scaling show).  A change that only shows later (the tail
    of a schedule) is not seen: set ``Problem(version=...)`` for that."""
    params = {"w": np.linspace(-1.0, 1.0, 32, dtype=np.float32)}
    try:
        state = transformation.init(params)
        h = hashlib.sha256()
        for t in range(probes):
            grads = {"w": (np.sin(np.arange(32, dtype=np.float32) * (t + 1)) * 10.0 ** (t % 5 - 3)).astype(np.float32)}
            updates, state = transformation.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            h.update(" ".join(f"{v:.6e}" for v in np.asarray(updates["w"], np.float64)).encode())
    except Exception as e:  # any failure of the user's transformation: say so
        raise KvqError(
            f"the optimizer failed on a probe update ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "kvq needs update(grads, state, params) without extra arguments (optax.lbfgs is not "
            "supported as the optimizer; ScanConfig(polish_steps=...) adds an L-BFGS phase after it)"
        ) from e
    return {"kind": "optax", "probe_digest": h.hexdigest()[:16]}


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise KvqError(f"{name} must be a whole number {bound}; got {value!r}")


PRESETS: dict[str, ScanConfig] = {
    "paper": ScanConfig(seeds=1),
    "quick": ScanConfig(
        width=32,
        depth=3,
        activation="tanh",
        learning_rate=1e-3,
        steps=3_000,
        check_every=1_000,
        pretrain_steps=2_000,
        seeds=2,
        collocation=500,
    ),
    "standard": ScanConfig(
        width=32,
        depth=3,
        activation="tanh",
        learning_rate=1e-3,
        steps=24_000,
        check_every=1_000,
        pretrain_steps=2_000,
        seeds=3,
        collocation=500,
    ),
}


@functools.lru_cache(maxsize=64)
def _named_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """The optax transformation of a named optimizer: one object per name and rate in a
    process (optax transformations are pure), so scans with equal settings share programs."""
    return {"adam": optimizers.adam, "adamw": optimizers.adamw, "sgd": optax.sgd}[name](learning_rate)
