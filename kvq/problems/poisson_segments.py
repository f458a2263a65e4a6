"""A 2-D Poisson problem whose boundary is known piece by piece: 21 rules.

-(u_xx + u_yy) = 3 sin(2x + 1) exp(-y) on x, y in [0, 1], exact solution
u = sin(2x + 1) exp(-y) + x y / 2.  Rules (in order): ``pde`` (the residual on a 30 x 30
interior grid), then the Dirichlet condition u = g on each fifth of each side, 20 points
each: ``bottom_1`` ... ``bottom_5`` (y = 0, x rising), ``right_1`` ... ``right_5`` (x = 1,
y rising), ``top_1`` ... ``top_5`` (y = 1, x rising), ``left_1`` ... ``left_5`` (x = 0,
y rising).

Not one of the paper's problems: it is kvq's many-rule problem (2^21 coalitions, too many
to enumerate), for the sampled estimators.  The PDE with the whole boundary determines u;
each segment pins u near its own part of the boundary, where the observations of the
``extrapolation`` split never are (observations inside [0.2, 0.8]^2, validation outside).
``wrong="top_3"`` shifts the middle of the top side's condition by +1 (improper knowledge).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from kvq.core.derivatives import partials
from kvq.problems import pde
from kvq.problems.assembly import builtin
from kvq.problems.rules import Rule, mean_square
from kvq.problems.sampling import Pools, extrapolating
from kvq.problems.spec import Spec

RANGE = (0.0, 1.0)
INNER = (0.2, 0.8)
SIDES = ("bottom", "right", "top", "left")
PIECES = 5
SEGMENTS = tuple(f"{side}_{k}" for side in SIDES for k in range(1, PIECES + 1))
SPEC = Spec(
    name="poisson_segments",
    equation="-(u_xx + u_yy) = 3 sin(2x + 1) exp(-y); u = g on 20 boundary segments",
    inputs=("x", "y"),
    outputs=("u",),
    domain={"x": RANGE, "y": RANGE},
    rules=(("pde", "global"), *((name, "local") for name in SEGMENTS)),
    splits={
        "interpolation": "observations and validation points both from the whole 201 x 201 grid (disjoint)",
        "extrapolation": "observations inside the square [0.2, 0.8]^2, validation outside it (near the boundary)",
    },
    presets={
        "quick": {
            "width": 16,
            "depth": 2,
            "learning_rate": 3e-3,
            "steps": 2_000,
            "check_every": 250,
            "pretrain_steps": 500,
            "collocation": 64,
            "seeds": 2,
        },
        "standard": {
            "width": 16,
            "depth": 2,
            "learning_rate": 3e-3,
            "steps": 6_000,
            "check_every": 250,
            "pretrain_steps": 500,
            "collocation": 128,
            "seeds": 2,
        },
    },
    n_data=30,
    settles={  # measured by benchmarks/many_rules.py (2^21 coalitions: sampled, regression-banzhaf)
        "quick": "unsettled: 57 % of the trainings at the 2 000-step cap; 100 sampled coalitions in 38 s on 2 CPU cores",
        "standard": "settled: 1 % of the trainings at the 6 000-step cap; 200 sampled coalitions in 1.8 min on 2 CPU "
        "cores, ranked as 800 do (Spearman 0.86, no rule outside 2 se)",
    },
)


def solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact u(x, y) = sin(2x + 1) exp(-y) + x y / 2 (float64, broadcast shapes)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return np.sin(2.0 * x + 1.0) * np.exp(-y) + 0.5 * x * y


reference = pde.at_points(solution)  # [P, 2] -> [P, 1]


def _exact(points):
    """u at points [P, 2] (jax arrays, inside the losses)."""
    x, y = points[:, 0], points[:, 1]
    return jnp.sin(2.0 * x + 1.0) * jnp.exp(-y) + 0.5 * x * y


@mean_square
def pde_loss(u, points):
    """Mean squared residual of u_xx + u_yy + 3 sin(2x + 1) exp(-y) at points [P, 2]."""
    (_, _, u_xx), (_, _, u_yy) = partials(u, points, (2, 2))
    x, y = points[:, 0], points[:, 1]
    return u_xx[:, 0] + u_yy[:, 0] + 3.0 * jnp.sin(2.0 * x + 1.0) * jnp.exp(-y)


WRONG = {"top_3": (lambda p: _exact(p) + 1.0, "u = g + 1 on the middle fifth of the top side")}


def segment_points(side: str, piece: int, n: int = 20) -> np.ndarray:
    """``n`` points [n, 2] on fifth ``piece`` (1..5, in the rising coordinate) of ``side``."""
    s = np.linspace((piece - 1) / PIECES, piece / PIECES, n + 2)[1:-1]  # corners belong to no segment
    fixed = {"bottom": (1, 0.0), "top": (1, 1.0), "left": (0, 0.0), "right": (0, 1.0)}[side]
    return np.insert(s[:, None], fixed[0], fixed[1], axis=1)


def make_rules(n_side: int = 30, n_segment: int = 20, wrong: str | None = None) -> tuple[Rule, ...]:
    """The PDE on an n_side x n_side interior grid and the 20 segment conditions of
    ``n_segment`` points each (``wrong="top_3"``: that one replaced by :data:`WRONG`)."""
    inner = np.linspace(*RANGE, n_side + 2)[1:-1]
    rules = [Rule("pde", pde_loss, pde.mesh(inner, inner), kind="global")]
    for name in SEGMENTS:
        side, piece = name.rsplit("_", 1)
        target = WRONG[name][0] if name == wrong else _exact
        rules.append(Rule(name, pde.matches(target), segment_points(side, int(piece), n_segment), kind="local"))
    return tuple(rules)


def splits(points: np.ndarray) -> Pools:
    """Pools [G] of each split: ``extrapolation`` observes inside [0.2, 0.8]^2, validates outside."""
    inside = np.all((points > INNER[0]) & (points < INNER[1]), axis=1)
    return extrapolating(inside, ~inside)


make = builtin(
    SPEC,
    rules=make_rules,
    reference=reference,
    points=pde.fixed_grid(np.linspace(*RANGE, 201), np.linspace(*RANGE, 201)),
    splits=splits,
    wrong=WRONG,
    doc="""The 21-rule Poisson problem with ``n_data`` observations (noise in % of std(u)) and a
    split, drawn from a 201 x 201 grid of [0, 1]^2; ``wrong="top_3"`` makes one segment wrong.""",
)
