"""Rule constructors for tabular knowledge: bounds, monotone trends, orderings, empirical laws.

Every rule here has a residual ``r(u, points [P, d_in]) -> [P]`` (or ``[P, 2]``) and the loss
``sum(r^2) / P`` (:func:`kvq.problems.rules.mean_square`); a point where the knowledge holds
has ``r = 0``.  Inequalities are hinges (``relu`` of the violation), so only the wrong side
costs, quadratically in the size of the violation, in the output's units (squared).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from kvq.core.text import function_name
from kvq.errors import KvqError
from kvq.problems.rules import PointFn, Rule

Array = jax.Array
Direction = Any  # a vector [d_in] or a function points [P, d_in] -> directions [P, d_in]
PointMap = Callable[[Array], Array]  # points [P, d_in] -> [P, d_in] or [P]


def _describe(value: Any) -> str:
    """How a parameter appears in a residual's name: numbers to 6 digits, functions by name."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, functools.partial):
        kw = ", ".join(f"{k}={_describe(v)}" for k, v in sorted(value.keywords.items()))
        return f"{function_name(value.func)}({kw})"
    if callable(value):
        return function_name(value)
    arr = np.asarray(value, np.float64)
    return "[" + ", ".join(f"{v:.6g}" for v in arr.ravel()) + "]" if arr.ndim else f"{float(arr):.6g}"


def _named(residual: Callable, kind: str, **params: Any) -> Callable:
    """``residual`` named ``kind(param=value, ...)`` in this module: what a fingerprint records."""
    text = ", ".join(f"{k}={_describe(v)}" for k, v in params.items())
    residual.__name__ = kind
    residual.__qualname__ = f"{kind}({text})"
    residual.__module__ = "kvq.knowledge"
    return residual


def _check_output(output: Any) -> int:
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)) or output < 0:
        raise KvqError(f"output must be the index (an int >= 0) of one of the model's outputs; got {output!r}")
    return int(output)


def _check_points(name: str, points: Any) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise KvqError(f"rule {name!r}: points must be a non-empty [P, d_in] array; got shape {pts.shape}")
    return pts


def _check_direction(name: str, direction: Direction, d_in: int) -> Direction:
    if callable(direction):
        return direction
    vec = np.asarray(direction, np.float64)
    if vec.shape != (d_in,) or not np.all(np.isfinite(vec)) or not np.any(vec):
        raise KvqError(
            f"rule {name!r}: direction must be a finite, non-zero vector of the {d_in} inputs "
            f"(or a function points -> directions); got {direction!r}"
        )
    return vec


def _select(values: Array, output: int) -> Array:
    """Column ``output`` of model outputs [..., d_out], refusing an index the model lacks
    (jax would clamp it silently)."""
    if output >= values.shape[-1]:
        raise KvqError(f"the rule reads output {output} but the model has {values.shape[-1]} output(s)")
    return values[..., output]


def _directions(direction: Direction, points: Array) -> Array:
    """Directions [P, d_in] at ``points`` [P, d_in] (a fixed vector broadcast, or the function's)."""
    if callable(direction):
        d = direction(points)
        chex.assert_shape(d, points.shape)
        return d
    return jnp.broadcast_to(jnp.asarray(direction, points.dtype), points.shape)


def _curvature(u: PointFn, p: Array, d: Array, output: int) -> tuple[Array, Array, Array]:
    """``y``, ``dy/dt`` and ``d^2y/dt^2`` of ``y(t) = u(p + t d)[output]`` at ``t = 0`` (nested
    ``jax.jvp``; ``p``, ``d`` one point [d_in])."""
    one = jnp.ones((), p.dtype)

    def y(t: Array) -> Array:
        return _select(u(p + t * d), output)

    def dy(t: Array) -> tuple[Array, Array]:
        return jax.jvp(y, (t,), (one,))

    (value, first), (_, second) = jax.jvp(dy, (jnp.zeros((), p.dtype),), (one,))
    return value, first, second


def _bend(transform: Callable[[Array], Array], y: Array) -> Array:
    """``T''(y) / T'(y)`` of a transform ``T`` at outputs ``y`` [P] (nested ``jax.jvp``)."""

    def ratio(v: Array) -> Array:
        slope = lambda w: jax.jvp(transform, (w,), (jnp.ones_like(w),))[1]
        t1, t2 = jax.jvp(slope, (v,), (jnp.ones_like(v),))
        return t2 / t1

    return jax.vmap(ratio)(y)


def bounds(
    name: str,
    points: Any,
    lower: float | None = None,
    upper: float | None = None,
    *,
    output: int = 0,
    weight: float = 1.0,
    kind: str = "global",
) -> Rule:
    """``lower <= y <= upper`` for output ``output`` at ``points`` [P, d_in] (either bound may
    be None).  Residual [P, 2]: ``relu(lower - y)``, ``relu(y - upper)``, in the output's units;
    a prediction 0.1 outside the range costs 0.01 at that point."""
    pts, o = _check_points(name, points), _check_output(output)
    if lower is None and upper is None:
        raise KvqError(f"rule {name!r}: give lower, upper or both")
    lo = -np.inf if lower is None else float(lower)
    hi = np.inf if upper is None else float(upper)
    if not lo < hi:
        raise KvqError(f"rule {name!r}: lower ({lower}) must be below upper ({upper})")

    def residual(u: PointFn, points: Array) -> Array:
        y = _select(jax.vmap(u)(points), o)
        below = jax.nn.relu(lo - y) if lower is not None else jnp.zeros_like(y)
        above = jax.nn.relu(y - hi) if upper is not None else jnp.zeros_like(y)
        return jnp.stack([below, above], axis=1)

    residual = _named(residual, "bounds", lower=lower, upper=upper, output=o)
    return Rule(name, points=pts, residual=residual, weight=weight, kind=kind)


def monotone(
    name: str,
    points: Any,
    direction: Direction,
    *,
    increasing: bool = True,
    output: int = 0,
    weight: float = 1.0,
    kind: str = "global",
) -> Rule:
    """Output ``output`` does not fall (``increasing``; or not rise) along ``direction`` at
    ``points`` [P, d_in].  ``direction``: a vector [d_in] or a function points [P, d_in] ->
    [P, d_in] (a direction per point; a zero row switches the rule off there).  Residual [P]:
    ``relu(-D)`` (``relu(D)`` when decreasing) of the directional derivative ``D = dy/dt`` at
    ``p + t d`` (``jax.jvp``), in output units per unit step along the direction."""
    pts, o = _check_points(name, points), _check_output(output)
    direction = _check_direction(name, direction, pts.shape[1])
    sign = 1.0 if increasing else -1.0

    def residual(u: PointFn, points: Array) -> Array:
        def slope(p: Array, d: Array) -> Array:
            return _select(jax.jvp(u, (p,), (d,))[1], o)

        return jax.nn.relu(-sign * jax.vmap(slope)(points, _directions(direction, points)))

    residual = _named(residual, "monotone", direction=direction, increasing=bool(increasing), output=o)
    return Rule(name, points=pts, residual=residual, weight=weight, kind=kind)


def ordering(
    name: str,
    points: Any,
    stronger: PointMap,
    *,
    margin: float = 0.0,
    output: int = 0,
    weight: float = 1.0,
    kind: str = "global",
) -> Rule:
    """Output ``output`` at ``stronger(p)`` is at least its value at ``p`` (plus ``margin``)
    for every point of ``points`` [P, d_in].  ``stronger``: a pure function points [P, d_in]
    -> the stronger counterparts [P, d_in] (e.g. a stronger eluent for the same compound).
    Residual [P]: ``relu(y(p) - y(stronger(p)) + margin)``, in output units."""
    pts, o = _check_points(name, points), _check_output(output)
    if not callable(stronger):
        raise KvqError(f"rule {name!r}: stronger must be a function points [P, d_in] -> [P, d_in]")
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise KvqError(f"rule {name!r}: margin must be a finite number >= 0; got {margin}")

    def residual(u: PointFn, points: Array) -> Array:
        other = stronger(points)
        chex.assert_shape(other, points.shape)
        weak = _select(jax.vmap(u)(points), o)
        strong = _select(jax.vmap(u)(other), o)
        return jax.nn.relu(weak - strong + margin)

    residual = _named(residual, "ordering", stronger=stronger, margin=margin, output=o)
    return Rule(name, points=pts, residual=residual, weight=weight, kind=kind)


def retention_log(rf: Array, floor: float = 0.05) -> Array:
    """``ln((1 - Rf) / Rf)``, the log of a TLC retention factor ``k`` (dimensionless), on
    ``[floor, 1 - floor]``, continued by its tangent lines outside: defined for any
    prediction, strictly decreasing, so a law written in it costs everywhere (a flat clip
    would let a model escape the law by predicting near 0 or 1)."""
    r = jnp.clip(rf, floor, 1.0 - floor)
    return jnp.log((1.0 - r) / r) - (rf - r) / (r * (1.0 - r))


def linear_law(
    name: str,
    points: Any,
    direction: Direction,
    *,
    transform: Callable[[Array], Array] | None = None,
    log_coordinate: PointMap | None = None,
    output: int = 0,
    weight: float = 1.0,
    kind: str = "global",
) -> Rule:
    """``transform(y)`` is linear in ``s`` along ``direction`` at ``points`` [P, d_in]: its
    second derivative in ``s`` vanishes (any slope and intercept on each point's line).

    ``s = t`` (the step along ``direction``) by default.  With ``log_coordinate``, a function
    points [P, d_in] -> ``phi`` [P] that grows at unit rate along the direction (``phi(p + t d)
    = phi(p) + t``), ``s = ln(phi)`` (``d/ds = phi d/dt``); points with ``phi <= 0`` are left out
    (residual 0).  Example: Snyder-Soczewinski, ``transform=retention_log`` and ``phi`` the
    polar fraction of a binary eluent.

    The residual [P] is ``T(y)``'s second derivative in ``s`` divided by ``T'(y)``:
    ``y'' + (T''(y)/T'(y)) y'^2`` (derivatives in ``s``), the law's violation in output units per
    unit of ``s`` squared, on the data's scale whatever the transform (``transform`` must be
    strictly monotone with a finite slope everywhere, as :func:`retention_log` is).
    Derivatives by nested ``jax.jvp``.
    """
    pts, o = _check_points(name, points), _check_output(output)
    direction = _check_direction(name, direction, pts.shape[1])
    if (transform is not None and not callable(transform)) or (
        log_coordinate is not None and not callable(log_coordinate)
    ):
        raise KvqError(f"rule {name!r}: transform and log_coordinate must be functions")

    def residual(u: PointFn, points: Array) -> Array:
        y, first, second = jax.vmap(lambda p, d: _curvature(u, p, d, o))(points, _directions(direction, points))
        if log_coordinate is not None:
            phi = log_coordinate(points)
            chex.assert_shape(phi, (points.shape[0],))
            first, second = phi * first, phi * first + phi**2 * second  # dy/ds, d2y/ds2
        r = second if transform is None else second + _bend(transform, y) * first**2
        return r if log_coordinate is None else jnp.where(phi > 0, r, 0.0)

    residual = _named(
        residual, "linear_law", direction=direction, transform=transform, log_coordinate=log_coordinate, output=o
    )
    return Rule(name, points=pts, residual=residual, weight=weight, kind=kind)
