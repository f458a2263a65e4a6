"""An algebraic system: a network maps (a, b) to (c, d, e, f) with

    c = |sin a - cos b|,  d = log((a - b)^2 + 1),  e = (1 + c^2) / 2,  f = exp(-e).

Rules (in order), each on a 100 x 100 grid of a in [0, pi], b in [-pi, pi] (wider than the
in-distribution data): ``c_law`` and ``d_law`` tie outputs to the inputs; ``e_law`` and
``f_law`` tie outputs to the network's own other outputs; ``range`` asks e >= 0 and f >= 0
(ReLU^2 penalty).  Observations are Latin-hypercube samples of a in [0, pi), b in [-pi, 0);
validation uses 5 000 held-out rows from the same box (interpolation) or from
a, b in [pi, 2 pi) (extrapolation), scored overall and per output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kvq.problems.assembly import builtin
from kvq.problems.rules import Rule, mean_square
from kvq.problems.sampling import VALIDATION_SEED, Pools
from kvq.problems.spec import Spec

IN_BOX = ((0.0, np.pi), (-np.pi, 0.0))
OUT_BOX = ((np.pi, 2 * np.pi), (np.pi, 2 * np.pi))
RULE_BOX = ((0.0, np.pi), (-np.pi, np.pi))
POOL = 10_000  # observation pool: any volume up to this many rows
SPEC = Spec(
    name="equations",
    equation="c = |sin a - cos b|, d = log((a - b)^2 + 1), e = (1 + c^2)/2, f = exp(-e)",
    inputs=("a", "b"),
    outputs=("c", "d", "e", "f"),
    domain={"a": (0.0, 2 * np.pi), "b": (-np.pi, 2 * np.pi)},
    rules=(("c_law", "global"), ("d_law", "global"), ("e_law", "global"), ("f_law", "global"), ("range", "global")),
    splits={
        "interpolation": "observations and validation rows both from a in [0, pi), b in [-pi, 0) (disjoint)",
        "extrapolation": "observations from a in [0, pi), b in [-pi, 0); validation from a, b in [pi, 2 pi)",
    },
    presets={
        "paper": {"width": 50, "depth": 3, "activation": "relu"},
        "quick": {"width": 32, "depth": 3, "activation": "relu", "collocation": 256},
        "standard": {"width": 32, "depth": 3, "activation": "relu", "collocation": 256},
    },
    n_data=100,
    settles={  # measured by benchmarks/settle.py
        "quick": "unsettled: every training still running at the cap",
        "standard": "settled: every training stops by ~18 000 steps; 5.6 min on 2 CPU cores (measured, 3 seeds, benchmarks/time_to_settled.py)",
    },
)


def solution(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(c, d, e, f) at inputs a, b (float64, broadcast shapes) -> [..., 4]."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    c = np.abs(np.sin(a) - np.cos(b))
    e = (1.0 + c**2) / 2.0
    return np.stack([c, np.log((a - b) ** 2 + 1.0), e, np.exp(-e)], axis=-1)


def reference(points: np.ndarray) -> np.ndarray:
    """Exact outputs at points [P, 2] (columns a, b) -> [P, 4] (columns c, d, e, f)."""
    points = np.asarray(points, np.float64)
    return solution(points[:, 0], points[:, 1])


def latin_hypercube(n: int, box: tuple[tuple[float, float], ...], rng: np.random.Generator) -> np.ndarray:
    """``n`` Latin-hypercube points in ``box`` (one (low, high) per axis) -> [n, len(box)]:
    along every axis each of the n equal slices holds exactly one point."""
    cols = [(rng.permutation(n) + rng.uniform(size=n)) / n for _ in box]
    lo, hi = np.array(box).T
    return lo + np.stack(cols, axis=1) * (hi - lo)


def _outputs(u, points):
    out = jax.vmap(u)(points)
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3]


@mean_square
def c_law(u, points):
    c, _, _, _ = _outputs(u, points)
    return c - jnp.abs(jnp.sin(points[:, 0]) - jnp.cos(points[:, 1]))


@mean_square
def d_law(u, points):
    _, d, _, _ = _outputs(u, points)
    return d - jnp.log((points[:, 0] - points[:, 1]) ** 2 + 1.0)


@mean_square
def e_law(u, points):
    c, _, e, _ = _outputs(u, points)
    return e - (1.0 + c**2) / 2.0


@mean_square
def wrong_e_law(u, points):
    """A deliberately wrong law, e = (1 - c^2) / 2 (improper knowledge, for demonstrations)."""
    c, _, e, _ = _outputs(u, points)
    return e - (1.0 - c**2) / 2.0


WRONG = {"e_law": (wrong_e_law, "e = (1 - c^2)/2 instead of (1 + c^2)/2")}


@mean_square
def f_law(u, points):
    _, _, e, f = _outputs(u, points)
    return f - jnp.exp(-e)


@mean_square
def range_law(u, points):
    _, _, e, f = _outputs(u, points)
    return jnp.stack([jax.nn.relu(-e), jax.nn.relu(-f)], axis=1)  # [P, 2]


def make_rules(n_side: int = 100, wrong: str | None = None) -> tuple[Rule, ...]:
    """The paper's rules on an n_side x n_side grid of a in [0, pi], b in [-pi, pi]
    (``wrong="e_law"``: that law replaced by the wrong one in :data:`WRONG`)."""
    a, b = (np.linspace(lo, hi, n_side) for lo, hi in RULE_BOX)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    pts = np.stack([aa.ravel(), bb.ravel()], axis=1)
    laws = (("c_law", c_law), ("d_law", d_law), ("e_law", e_law), ("f_law", f_law), ("range", range_law))
    return tuple(Rule(name, WRONG[name][0] if name == wrong else loss, pts, kind="global") for name, loss in laws)


def points(n_valid: int) -> np.ndarray:
    """The fixed Latin-hypercube rows observations and validation come from: POOL + n_valid
    in the in-distribution box, then n_valid in the shifted box -> [POOL + 2 n_valid, 2]."""
    rng = np.random.default_rng(VALIDATION_SEED)
    inside = latin_hypercube(POOL + n_valid, IN_BOX, rng)
    return np.concatenate([inside, latin_hypercube(n_valid, OUT_BOX, rng)])


def splits(points: np.ndarray) -> Pools:
    """Pools [G] of each split: rows of the in-distribution box (b < 0) for observations;
    validation from the same box (interpolation) or the shifted one (extrapolation)."""
    is_in = points[:, 1] < OUT_BOX[1][0]
    return {"interpolation": (is_in, is_in), "extrapolation": (is_in, ~is_in)}


make = builtin(
    SPEC,
    rules=make_rules,
    reference=reference,
    points=points,
    splits=splits,
    n_valid=5_000,
    wrong=WRONG,
    doc="""The algebraic system with ``n_data`` observations (noise in % of each output's std)
    and a split.  Observation and validation rows are fixed Latin-hypercube draws.
    ``wrong="e_law"`` replaces that rule by a wrong law (improper knowledge; the data stay true).""",
)
