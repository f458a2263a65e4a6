"""Kovasznay flow: steady incompressible Navier-Stokes at Re = 20, a problem with many rules.

On x in [-0.5, 1], y in [-0.5, 1.5] the outputs (u, v, p) satisfy
``u_x + v_y = 0`` and ``(u . grad) u + grad p = (1/Re) lap u``, with the exact solution
(Kovasznay 1948) ``u = 1 - e^(lx) cos(2 pi y)``, ``v = l/(2 pi) e^(lx) sin(2 pi y)``,
``p = (1 - e^(2 lx)) / 2``, ``l = Re/2 - sqrt(Re^2/4 + 4 pi^2)``.

Rules (11, in order): ``continuity``, ``momentum_x``, ``momentum_y`` (global); then the
Dirichlet value of u and of v on each side: ``u_left``, ``v_left``, ``u_right``,
``v_right``, ``u_bottom``, ``v_bottom``, ``u_top``, ``v_top`` (local).  2^11 = 2 048
subsets: exact on an accelerator, sampled coalitions (``kvq.estimate(...,
coalitions=...)``) on a CPU.  Not a problem of the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kvq.core.derivatives import partials
from kvq.problems import pde
from kvq.problems.assembly import builtin
from kvq.problems.rules import Rule
from kvq.problems.sampling import Pools, extrapolating
from kvq.problems.spec import Spec

RE = 20.0
LAMBDA = RE / 2.0 - np.sqrt(RE**2 / 4.0 + 4.0 * np.pi**2)
X_RANGE = (-0.5, 1.0)
Y_RANGE = (-0.5, 1.5)
SIDES = ("left", "right", "bottom", "top")
SPEC = Spec(
    name="kovasznay",
    equation="u_x + v_y = 0, (u . grad) u + grad p = (1/20) lap u (Kovasznay flow)",
    inputs=("x", "y"),
    outputs=("u", "v", "p"),
    domain={"x": X_RANGE, "y": Y_RANGE},
    rules=(
        ("continuity", "global"),
        ("momentum_x", "global"),
        ("momentum_y", "global"),
        *((f"{c}_{side}", "local") for side in SIDES for c in ("u", "v")),
    ),
    splits={
        "interpolation": "observations and validation points both from the whole 150 x 200 grid (disjoint)",
        "extrapolation": "observations where x < 0.25 (upstream), validation where x >= 0.25",
    },
    presets={
        "quick": {"steps": 2_000, "collocation": 256},
        "standard": {"steps": 16_000, "collocation": 256},
    },
    n_data=100,
    settles={
        "quick": "not measured: 2 048 subsets; use kvq.estimate(..., coalitions='regression-banzhaf', budget=B) on a CPU",
        "standard": "not measured: 2 048 subsets; exact on an accelerator, sampled coalitions on a CPU",
    },
)


def solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact (u, v, p) at broadcast x, y (float64): [..., 3]."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    e = np.exp(LAMBDA * x)
    u = 1.0 - e * np.cos(2 * np.pi * y)
    v = LAMBDA / (2 * np.pi) * e * np.sin(2 * np.pi * y)
    p = 0.5 * (1.0 - np.exp(2 * LAMBDA * x))
    return np.stack([u, v, p], axis=-1)


def reference(points: np.ndarray) -> np.ndarray:
    """Exact (u, v, p) at points [P, 2]: [P, 3] (float64)."""
    points = np.asarray(points, np.float64)
    return solution(points[:, 0], points[:, 1])


def _fields(u, points):
    """(w, w_x, w_xx, w_y, w_yy), each [P, 3] for the outputs (u, v, p)."""
    (w, w_x, w_xx), (_, w_y, w_yy) = partials(u, points, (2, 2))
    return w, w_x, w_xx, w_y, w_yy


def continuity(u, points):
    """Residual u_x + v_y [P]."""
    _, w_x, _, w_y, _ = _fields(u, points)
    return w_x[:, 0] + w_y[:, 1]


def momentum(component: int):
    """Residual of the x (0) or y (1) momentum equation [P]."""

    def residual(u, points):
        w, w_x, w_xx, w_y, w_yy = _fields(u, points)
        grad_p = w_x[:, 2] if component == 0 else w_y[:, 2]
        c = component
        return w[:, 0] * w_x[:, c] + w[:, 1] * w_y[:, c] + grad_p - (w_xx[:, c] + w_yy[:, c]) / RE

    residual.__name__ = residual.__qualname__ = f"momentum_{'xy'[component]}"
    return residual


def dirichlet(component: int):
    """Residual of the exact u (0) or v (1) on boundary points [P]."""

    def residual(u, points):
        return jax.vmap(u)(points)[:, component] - _exact_component(points, component)

    residual.__name__ = residual.__qualname__ = f"dirichlet_{'uv'[component]}"
    return residual


def _exact_component(points: jax.Array, component: int) -> jax.Array:
    e = jnp.exp(LAMBDA * points[:, 0])
    y = 2 * jnp.pi * points[:, 1]
    return 1.0 - e * jnp.cos(y) if component == 0 else LAMBDA / (2 * jnp.pi) * e * jnp.sin(y)


def make_rules(n_side: int = 40, n_line: int = 100) -> tuple[Rule, ...]:
    """The equations on an n_side x n_side interior grid, each side's u and v on n_line points."""
    inner = pde.mesh(np.linspace(*X_RANGE, n_side + 2)[1:-1], np.linspace(*Y_RANGE, n_side + 2)[1:-1])
    xs, ys = np.linspace(*X_RANGE, n_line), np.linspace(*Y_RANGE, n_line)
    sides = {
        "left": np.stack([np.full_like(ys, X_RANGE[0]), ys], 1),
        "right": np.stack([np.full_like(ys, X_RANGE[1]), ys], 1),
        "bottom": np.stack([xs, np.full_like(xs, Y_RANGE[0])], 1),
        "top": np.stack([xs, np.full_like(xs, Y_RANGE[1])], 1),
    }
    rules = [
        Rule("continuity", points=inner, residual=continuity, kind="global"),
        Rule("momentum_x", points=inner, residual=momentum(0), kind="global"),
        Rule("momentum_y", points=inner, residual=momentum(1), kind="global"),
    ]
    for side in SIDES:
        for c, name in enumerate("uv"):
            rules.append(Rule(f"{name}_{side}", points=sides[side], residual=dirichlet(c), kind="local"))
    return tuple(rules)


def splits(points: np.ndarray) -> Pools:
    """Pools [G] of each split: ``extrapolation`` observes upstream (x < 0.25), validates downstream."""
    upstream = points[:, 0] < 0.25
    return extrapolating(upstream, ~upstream)


make = builtin(
    SPEC,
    rules=make_rules,
    reference=reference,
    points=pde.fixed_grid(np.linspace(*X_RANGE, 150), np.linspace(*Y_RANGE, 200)),
    splits=splits,
    doc="""Kovasznay flow with ``n_data`` observations of (u, v, p) (noise in % of each output's
    std) from a 150 x 200 grid of the domain; ``extrapolation`` observes upstream (x < 0.25)
    and validates downstream.""",
)
