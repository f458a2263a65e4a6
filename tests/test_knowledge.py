"""kvq.knowledge: each rule constructor on synthetic functions with known violations, and on
built-in problems (a bound on Burgers' u, a bound on the algebraic system's e)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kvq
from kvq import knowledge

RNG = np.random.default_rng(0)
BOX = RNG.uniform(-1.0, 1.0, (64, 2))  # points [P, 2]
POSITIVE = RNG.uniform(0.1, 1.0, (64, 2))  # first input > 0: a log coordinate


def loss(rule: kvq.Rule, u, points=None) -> float:
    pts = rule.points if points is None else points
    return float(rule.loss(u, jnp.asarray(pts, jnp.float32)))


def affine(a: float, b: float, c: float = 0.0):
    return lambda p: jnp.array([a * p[0] + b * p[1] + c])


def test_bounds_cost_only_the_violation_squared():
    rule = knowledge.bounds("range", BOX, 0.0, 1.0)
    assert loss(rule, lambda p: jnp.array([0.5 + 0.4 * p[0]])) == 0.0
    assert loss(rule, lambda p: jnp.array([1.5 + 0.0 * p[0]])) == pytest.approx(0.25)  # 0.5 above: 0.25 per point
    assert loss(rule, lambda p: jnp.array([-0.2 + 0.0 * p[0]])) == pytest.approx(0.04)
    upper_only = knowledge.bounds("cap", BOX, upper=1.0)
    assert loss(upper_only, lambda p: jnp.array([-5.0 + 0.0 * p[0]])) == 0.0
    second = knowledge.bounds("second", BOX, lower=0.0, output=1)
    assert loss(second, lambda p: jnp.array([-1.0, 2.0]) + 0.0 * p[0]) == 0.0
    with pytest.raises(kvq.KvqError, match="lower, upper or both"):
        knowledge.bounds("none", BOX)
    with pytest.raises(kvq.KvqError, match="must be below"):
        knowledge.bounds("empty", BOX, 1.0, 0.0)


def test_monotone_is_zero_along_the_trend_and_the_slope_squared_against_it():
    rising = knowledge.monotone("rising", BOX, [1.0, 0.0])
    assert loss(rising, affine(2.0, -3.0)) == 0.0  # rises along x0 (falls along x1: not asked)
    assert loss(rising, affine(-2.0, 5.0)) == pytest.approx(4.0, rel=1e-5)  # slope -2 along the direction
    falling = knowledge.monotone("falling", BOX, [1.0, 0.0], increasing=False)
    assert loss(falling, affine(-2.0, 0.0)) == 0.0 and loss(falling, affine(0.5, 0.0)) == pytest.approx(0.25)
    diagonal = knowledge.monotone("diagonal", BOX, [1.0, 1.0])
    assert loss(diagonal, affine(1.0, -3.0)) == pytest.approx(4.0, rel=1e-5)  # D = 1 - 3

    def right_half(points):  # a direction per point: only where x0 > 0
        return jnp.where(points[:, :1] > 0, 1.0, 0.0) * jnp.array([1.0, 0.0])

    per_point = knowledge.monotone("half", BOX, right_half)
    share = float(np.mean(BOX[:, 0] > 0))
    assert loss(per_point, affine(-1.0, 0.0)) == pytest.approx(share, rel=1e-5)
    with pytest.raises(kvq.KvqError, match="non-zero vector of the 2 inputs"):
        knowledge.monotone("bad", BOX, [1.0, 0.0, 0.0])


def test_ordering_compares_the_output_at_a_point_and_its_stronger_counterpart():
    def shifted(points):
        return points.at[:, 0].add(0.5)

    rule = knowledge.ordering("stronger", BOX, shifted)
    assert loss(rule, affine(1.0, 7.0)) == 0.0
    assert loss(rule, affine(-2.0, 7.0)) == pytest.approx(1.0, rel=1e-5)  # falls by 1 at every point
    strict = knowledge.ordering("strict", BOX, shifted, margin=1.0)
    assert loss(strict, affine(1.0, 0.0)) == pytest.approx(0.25, rel=1e-5)  # rises 0.5, asked 1.0
    with pytest.raises(kvq.KvqError, match="function points"):
        knowledge.ordering("bad", BOX, np.zeros((64, 2)))


def test_linear_law_holds_for_lines_in_the_transformed_coordinates_only():
    plain = knowledge.linear_law("line", BOX, [1.0, 0.0])
    assert loss(plain, affine(3.0, -1.0, 2.0)) < 1e-10
    assert loss(plain, lambda p: jnp.array([p[0] ** 2])) == pytest.approx(4.0, rel=1e-5)  # second derivative 2

    def first(points):
        return points[:, 0]

    log_law = knowledge.linear_law("log", POSITIVE, [1.0, 0.0], log_coordinate=first)
    assert loss(log_law, lambda p: jnp.array([-0.8 * jnp.log(p[0]) + p[1]])) < 1e-10
    # y = x0 = exp(s): d2y/ds2 = x0, so the loss is mean(x0^2)
    assert loss(log_law, affine(1.0, 0.0)) == pytest.approx(float(np.mean(POSITIVE[:, 0] ** 2)), rel=1e-4)


def test_the_snyder_law_holds_for_a_displacement_curve_and_not_for_a_straight_one():
    def rf(n: float, a: float):  # ln((1 - Rf)/Rf) = a - n ln(phi): the Snyder-Soczewinski curve
        return lambda p: jnp.array([jax.nn.sigmoid(n * jnp.log(p[0]) - a)])

    phi = np.stack([np.geomspace(0.3, 1.0, 40), np.zeros(40)], axis=1)  # Rf stays within 0.05..0.95

    def first(points):
        return points[:, 0]

    snyder = knowledge.linear_law(
        "snyder", phi, [1.0, 0.0], transform=knowledge.retention_log, log_coordinate=first
    )
    assert loss(snyder, rf(1.2, 0.3)) < 1e-8
    assert loss(snyder, lambda p: jnp.array([0.1 + 0.8 * p[0]])) > 0.1  # Rf linear in phi is not the law
    values = knowledge.retention_log(jnp.array([-0.5, 0.0, 0.05, 0.5, 0.95, 1.0, 1.5]))
    assert np.all(np.diff(np.asarray(values)) < 0)  # strictly decreasing, also beyond the floor
    assert float(values[3]) == pytest.approx(0.0, abs=1e-7)


def test_a_rule_reading_a_missing_output_says_so():
    rule = knowledge.bounds("third", BOX, 0.0, 1.0, output=2)
    with pytest.raises(kvq.KvqError, match="output 2 but the model has 1"):
        loss(rule, affine(1.0, 1.0))


def test_the_parameters_are_part_of_the_rule_code_name():
    problem_rules = [knowledge.bounds("b", BOX, 0.0, upper) for upper in (1.0, 2.0)]
    names = [r.residual.__qualname__ for r in problem_rules]
    assert names == ["bounds(lower=0, upper=1, output=0)", "bounds(lower=0, upper=2, output=0)"]
    assert problem_rules[0].residual.__module__ == "kvq.knowledge"
    flipped = knowledge.monotone("m", BOX, [1.0, 0.0], increasing=False).residual.__qualname__
    assert "increasing=False" in flipped and "direction=[1, 0]" in flipped


def test_a_bound_on_burgers_u_and_on_the_algebraic_systems_e():
    burgers = kvq.problems.get("burgers", n_data=8, n_valid=16)
    pts = burgers.rules[0].points  # the PDE grid: the whole domain
    bounded = knowledge.bounds("bounded", pts, -1.0, 1.0)  # |u| <= 1: the maximum principle
    problem = dataclasses.replace(burgers, rules=(*burgers.rules, bounded))
    assert problem.rule_names == ("pde", "ic", "bc_left", "bc_right", "bounded")
    initial = lambda p: jnp.array([-jnp.sin(jnp.pi * p[0])])  # noqa: E731  the initial condition
    assert loss(bounded, initial) == 0.0 and loss(bounded, lambda p: 2 * initial(p)) > 0.1
    assert float(np.abs(burgers.valid.y).max()) <= 1.0  # the reference obeys it

    system = kvq.problems.get("equations", n_data=8, n_valid=16)
    e_floor = knowledge.bounds("e_floor", system.rules[0].points, lower=0.5, output=2)  # e = (1 + c^2)/2

    def exact(p):
        c = jnp.abs(jnp.sin(p[0]) - jnp.cos(p[1]))
        e = (1 + c**2) / 2
        return jnp.stack([c, jnp.log((p[0] - p[1]) ** 2 + 1), e, jnp.exp(-e)])

    assert loss(e_floor, exact) == 0.0
    assert loss(e_floor, lambda p: exact(p) - 1.0) > 0.1
    assert np.all(system.valid.x[:, 0] > system.valid.x[:, 1])  # validation box: a in [0, pi), b in [-pi, 0)
    rising_d = knowledge.monotone("d_grows_with_a", system.valid.x, [1.0, 0.0], output=1)
    assert loss(rising_d, exact) == 0.0  # d = log((a - b)^2 + 1) rises with a where a > b
    assert loss(knowledge.monotone("d_falls", system.valid.x, [1.0, 0.0], increasing=False, output=1), exact) > 0.1
