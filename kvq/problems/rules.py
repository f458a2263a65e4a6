"""The types a user builds a problem from: observations, rules and the problem itself.

A *rule* is a loss term that encodes prior knowledge.  Its loss receives the model as a
function of ONE input point, ``u(p: [d_in]) -> [d_out]``, and a batch of points
``[P, d_in]``, so any derivative can be taken with ``jax.grad``/``jax.jvp`` (or the
helpers in :mod:`kvq.core.derivatives`) on the point function and ``vmap``-ped over the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvq.core.text import function_name
from kvq.errors import KvqError

PointFn = Callable[[Any], Any]
RuleLoss = Callable[[PointFn, Any], Any]
RuleResidual = Callable[[PointFn, Any], Any]
RULE_KINDS = ("global", "local")


def mean_square(residual: RuleResidual) -> RuleLoss:
    """The loss ``sum(r^2) / P`` of a residual function ``residual(u, points [P, d_in]) -> r``
    ([P] or [P, k]): the mean over points of the squared residual (summed over its k
    components)."""

    @functools.wraps(residual)
    def loss(u, points):
        r = residual(u, points)
        return (r**2).sum() / r.shape[0]

    loss.residual = residual  # type: ignore[attr-defined]
    return loss


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_2d(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise KvqError(f"{name} must be a 2-D array [N, dim]; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise KvqError(
            f"{name} contains NaN or inf values (first at row {bad[0]}, column {bad[1]}); clean the data first"
        )
    big = np.abs(arr) > FLOAT32_MAX
    if big.any():
        row, col = np.argwhere(big)[0]
        raise KvqError(
            f"{name} holds {arr[row, col]:.3g} (row {row}, column {col}), beyond float32's range "
            f"(±{FLOAT32_MAX:.3g}) that training uses; rescale the data"
        )
    return arr


@dataclass(frozen=True, eq=False)
class Dataset:
    """Observations: inputs ``x`` [N, d_in] and targets ``y`` [N, d_out] (float64 numpy).

    ``N`` may be 0 (no observations: the data loss is then 0).  1-D arrays are read as
    a single column.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        x = _as_2d("Dataset.x", self.x)
        y = _as_2d("Dataset.y", self.y)
        if x.shape[0] != y.shape[0]:
            raise KvqError(
                f"Dataset.x has {x.shape[0]} rows but Dataset.y has {y.shape[0]}; "
                "every input needs exactly one target row"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:  # short: error messages quote it, and the arrays can be large
        return f"Dataset({len(self)} rows, {self.d_in} inputs -> {self.d_out} outputs)"

    @property
    def d_in(self) -> int:
        return int(self.x.shape[1])

    @property
    def d_out(self) -> int:
        return int(self.y.shape[1])


@dataclass(frozen=True, eq=False)
class Rule:
    """A named loss term ``loss(u, points) -> scalar >= 0`` with weight ``weight``.

    Give either ``loss`` or ``residual``: ``residual(u, points) -> r`` ([P] or [P, k])
    defines the loss as ``sum(r^2) / P`` (:func:`mean_square`) and lets the second-order
    estimator use a Gauss-Newton product for this rule (an opaque ``loss`` gets an exact
    Hessian product instead).  ``points`` [P, d_in] are the rule's collocation points
    (shared by every mask and seed).  ``kind`` is ``"global"`` (holds everywhere, e.g. a
    PDE) or ``"local"`` (holds on part of the domain, e.g. an initial condition).
    """

    name: str
    loss: RuleLoss | None = None
    points: np.ndarray = None  # type: ignore[assignment]
    weight: float = 1.0
    kind: str = "global"
    residual: RuleResidual | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise KvqError(f"a rule needs a non-empty string name; got {self.name!r}")
        if self.residual is not None:
            if not callable(self.residual):
                raise KvqError(f"rule {self.name!r}: residual must be callable residual(u, points)")
            if self.loss is not None and getattr(self.loss, "residual", None) is not self.residual:
                raise KvqError(
                    f"rule {self.name!r}: give loss or residual, not both "
                    "(with a residual the loss is the mean squared residual)"
                )
            if self.loss is None:
                object.__setattr__(self, "loss", mean_square(self.residual))
        elif self.loss is None:
            raise KvqError(f"rule {self.name!r} needs a loss(u, points) or a residual(u, points)")
        elif getattr(self.loss, "residual", None) is not None:  # built by mean_square
            object.__setattr__(self, "residual", self.loss.residual)  # type: ignore[attr-defined]
        if not callable(self.loss):
            raise KvqError(f"rule {self.name!r}: loss must be callable loss(u, points)")
        if self.points is None:
            raise KvqError(f"rule {self.name!r} needs points [P, d_in]")
        if self.kind not in RULE_KINDS:
            raise KvqError(f"rule {self.name!r}: kind must be one of {RULE_KINDS}; got {self.kind!r}")
        w = float(self.weight)
        if not np.isfinite(w) or w < 0:
            raise KvqError(f"rule {self.name!r}: weight must be a finite number >= 0; got {self.weight!r}")
        object.__setattr__(self, "weight", w)
        pts = _as_2d(f"rule {self.name!r} points", self.points)
        if pts.shape[0] == 0:
            raise KvqError(f"rule {self.name!r} has no points; give it at least one point")
        object.__setattr__(self, "points", pts)


ObservationSampler = Callable[[int], Dataset]


@dataclass(frozen=True, eq=False)
class Problem:
    """Rules (ordered, unique names), observations and a validation set.

    - ``train``: the observations for ``seed``; ``sampler(seed)`` (optional) draws the
      observations for any other seed so multi-seed scans vary the data draw too.
    - ``valid``: held-out points and their targets (clean by default).
    - ``reference(points [P, d_in]) -> [P, d_out]``: the exact solution, where known.
    - ``info``: JSON-ready description (domain, split, noise, n_data, ...).
    - ``outputs``: a name for each output (default ``y0``, ``y1``, ...), used in per-output
      importances, tables and reports.
    - ``version``: a tag of your own (e.g. ``"v2"``) that you change when you change what a
      rule's code computes.  A saved scan is reused only for the same problem: kvq compares
      every array (observations, validation set, rule points), the weights and the rule
      functions' names, but it cannot compare code.
    """

    name: str
    rules: tuple[Rule, ...]
    train: Dataset
    valid: Dataset
    reference: Callable[[np.ndarray], np.ndarray] | None = None
    sampler: ObservationSampler | None = None
    seed: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    outputs: tuple[str, ...] = ()

    def __repr__(self) -> str:  # short: error messages quote it, and the arrays can be large
        return (
            f"Problem({self.name!r}, rules={list(self.rule_names)}, train={len(self.train)} rows, "
            f"valid={len(self.valid)} rows)"
        )

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "_digests", {})
        if not isinstance(self.version, str):
            raise KvqError(f"problem {self.name!r}: version must be a string tag such as 'v2'; got {self.version!r}")
        if not rules:
            raise KvqError(f"problem {self.name!r} has zero rules; add at least one kvq.Rule")
        for r in rules:
            if not isinstance(r, Rule):
                raise KvqError(f"problem {self.name!r}: every rule must be a kvq.Rule; got {type(r).__name__}")
        names = [r.name for r in rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise KvqError(f"problem {self.name!r}: repeated rule name(s) {dup}; rule names must be unique")
        if len(self.valid) == 0:
            raise KvqError(f"problem {self.name!r} has an empty validation set; importance needs held-out points")
        d_in, d_out = self.valid.d_in, self.valid.d_out
        outputs = tuple(
            str(o) for o in (self.outputs or self.info.get("outputs", ()) or (f"y{j}" for j in range(d_out)))
        )
        if len(outputs) != d_out or len(set(outputs)) != d_out:
            raise KvqError(
                f"problem {self.name!r}: outputs must name each of the {d_out} output(s) once; got {list(outputs)}"
            )
        object.__setattr__(self, "outputs", outputs)
        if self.train.d_in != d_in or self.train.d_out != d_out:
            raise KvqError(
                f"problem {self.name!r}: observations are [{self.train.d_in} -> {self.train.d_out}] "
                f"but validation is [{d_in} -> {d_out}]; they must match"
            )
        for r in rules:
            if r.points.shape[1] != d_in:
                raise KvqError(
                    f"rule {r.name!r} points have {r.points.shape[1]} columns; the problem's inputs have {d_in}"
                )

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    @property
    def d_in(self) -> int:
        return self.valid.d_in

    @property
    def d_out(self) -> int:
        return self.valid.d_out

    def describe(self) -> dict[str, Any]:
        """JSON description: name, seed, rules (name, kind, weight, points) and ``info``."""
        rules = [{"name": r.name, "kind": r.kind, "weight": r.weight, "points": len(r.points)} for r in self.rules]
        return {
            "name": self.name,
            "seed": self.seed,
            "rules": rules,
            **dict(self.info),
            "outputs": list(self.outputs),
            **({"version": self.version} if self.version else {}),
        }

    def identity(self, n_seeds: int) -> dict[str, Any]:
        """What identifies this problem's numbers in a scan with ``n_seeds`` seeds (JSON):
        :meth:`describe`, a hash of every array the scan uses (the observations of each
        seed, the validation set, the rule points) and the rule functions' names."""
        digests: dict[int, str] = self._digests  # type: ignore[attr-defined]
        if n_seeds not in digests:
            h = hashlib.sha256()
            sets = [self.observations(k) for k in range(n_seeds)] + [self.valid]
            for a in [a for d in sets for a in (d.x, d.y)] + [r.points for r in self.rules]:
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
            digests[n_seeds] = h.hexdigest()[:16]
        code = [function_name(r.residual if r.residual is not None else r.loss, missing_module="") for r in self.rules]
        return {**self.describe(), "data_digest": digests[n_seeds], "rule_functions": code}

    def observations(self, seed_offset: int) -> Dataset:
        """Observations for seed ``self.seed + seed_offset`` (``train`` for offset 0)."""
        if seed_offset == 0 or self.sampler is None:
            return self.train
        return self.sampler(self.seed + seed_offset)


def with_weights(problem: Problem, weights: Any) -> Problem:
    """``problem`` with rule ``i``'s weight set to ``weights[i]`` (finite, > 0)."""
    w = np.asarray(weights, float)
    if w.shape != (len(problem.rules),) or not np.all(np.isfinite(w) & (w > 0)):
        raise KvqError(
            f"weights must be {len(problem.rules)} finite numbers > 0 (one per rule "
            f"{list(problem.rule_names)}); got {np.asarray(weights).tolist()}"
        )
    rules = tuple(dataclasses.replace(r, weight=float(x)) for r, x in zip(problem.rules, w, strict=True))
    return dataclasses.replace(problem, rules=rules)
