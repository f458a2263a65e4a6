"""The Burgers problem: exact Cole-Hopf reference, observations, splits, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import kvq
from kvq.problems import burgers

from conftest import reference_points


def test_cole_hopf_satisfies_the_pde():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.95, 0.95, 200)
    t = rng.uniform(0.05, 0.95, 200)
    h = 1e-4
    u = burgers.cole_hopf(x, t)
    u_t = (burgers.cole_hopf(x, t + h) - burgers.cole_hopf(x, t - h)) / (2 * h)
    u_x = (burgers.cole_hopf(x + h, t) - burgers.cole_hopf(x - h, t)) / (2 * h)
    u_xx = (burgers.cole_hopf(x + h, t) - 2 * u + burgers.cole_hopf(x - h, t)) / h**2
    residual = u_t + u * u_x - burgers.NU * u_xx
    scale = np.abs(u_t) + np.abs(u * u_x) + np.abs(burgers.NU * u_xx) + 1e-3
    assert np.max(np.abs(residual) / scale) < 1e-4


def test_cole_hopf_initial_and_boundary_conditions():
    x = np.linspace(-1, 1, 101)
    np.testing.assert_allclose(burgers.cole_hopf(x, 0.0), -np.sin(np.pi * x), atol=1e-15)
    t = np.linspace(0.01, 1.0, 50)
    np.testing.assert_allclose(burgers.cole_hopf(-1.0, t), 0.0, atol=1e-10)
    np.testing.assert_allclose(burgers.cole_hopf(1.0, t), 0.0, atol=1e-10)
    # a wrong sign in the solution would flip this: u is positive left of the shock
    assert burgers.cole_hopf(-0.5, 0.5) > 0.3


def test_cole_hopf_matches_the_papers_file():
    x, t, u_file = reference_points("burgers").T
    u = burgers.cole_hopf(x, t)
    assert np.linalg.norm(u - u_file) / np.linalg.norm(u_file) <= 1e-8  # measured on the whole grid: 2.9e-12


def test_reference_at_arbitrary_points():
    problem = kvq.problems.get("burgers", n_data=10)
    pts = np.array([[0.3, 0.0], [-0.2, 0.4], [0.7, 0.9]])
    ref = problem.reference(pts)
    assert ref.shape == (3, 1)
    np.testing.assert_allclose(ref[:, 0], [burgers.cole_hopf(x, t) for x, t in pts])


def test_interpolation_split_is_disjoint_and_validation_is_fixed():
    problem = kvq.problems.get("burgers", n_data=200, split="interpolation")
    valid = {tuple(p) for p in problem.valid.x}
    assert len(problem.valid) == 10_000
    for k in range(3):
        obs = problem.observations(k)
        assert len(obs) == 200
        assert not valid & {tuple(p) for p in obs.x}
    assert not np.array_equal(problem.observations(0).x, problem.observations(1).x)
    again = kvq.problems.get("burgers", n_data=50, seed=5)
    np.testing.assert_array_equal(again.valid.x, problem.valid.x)
    np.testing.assert_allclose(problem.valid.y, problem.reference(problem.valid.x))  # clean targets


def test_extrapolation_split_uses_first_half_for_observations():
    problem = kvq.problems.get("burgers", n_data=500, split="extrapolation")
    assert problem.train.x[:, 1].max() < 0.5
    assert problem.valid.x[:, 1].min() >= 0.5
    # the rules still cover the whole time span
    assert problem.rules[0].points[:, 1].max() == pytest.approx(1.0)


def test_noise_is_a_percentage_of_the_solution_std():
    clean = kvq.problems.get("burgers", n_data=8000, noise=0)
    noisy = kvq.problems.get("burgers", n_data=8000, noise=20)
    np.testing.assert_array_equal(clean.train.x, noisy.train.x)
    _, u = burgers.grid()
    ratio = np.std(noisy.train.y - clean.train.y) / (0.2 * u.std())
    assert 0.95 < ratio < 1.05
    np.testing.assert_allclose(noisy.valid.y, clean.valid.y)  # validation stays clean by default
    scored_noisy = kvq.problems.get("burgers", n_data=10, noise=20, noisy_validation=True)
    assert not np.allclose(scored_noisy.valid.y, clean.valid.y)


def test_rules_in_the_papers_order():
    problem = kvq.problems.get("burgers")
    assert problem.rule_names == ("pde", "ic", "bc_left", "bc_right")
    assert [r.kind for r in problem.rules] == ["global", "local", "local", "local"]
    assert len(problem.rules[0].points) == 40_000
    assert all(len(r.points) == 200 for r in problem.rules[1:])


def test_rule_losses_vanish_on_the_exact_solution():
    import jax.numpy as jnp

    def u(p):  # the exact solution as a smooth-enough point function, away from the shock
        return jnp.array([jnp.sin(0.0 * p[0])])  # u = 0 solves the PDE and the boundary rules

    rules = {r.name: r.loss for r in burgers.make_rules(8, 8)}
    pts = jnp.asarray(np.random.default_rng(0).uniform([-1, 0], [1, 1], (20, 2)), jnp.float32)
    assert float(burgers.pde_loss(u, pts)) == pytest.approx(0.0, abs=1e-12)
    assert float(rules["bc_left"](u, pts)) == pytest.approx(0.0, abs=1e-12)
    ic_pts = jnp.stack([jnp.linspace(-1, 1, 9), jnp.zeros(9)], axis=1)
    exact_ic = lambda p: jnp.array([-jnp.sin(jnp.pi * p[0])])  # noqa: E731
    assert float(rules["ic"](exact_ic, ic_pts)) == pytest.approx(0.0, abs=1e-12)
    assert float(rules["ic"](u, ic_pts)) > 0.1
    # a travelling wave u = c + a tanh(...) is not a solution here: the residual is non-zero
    wave = lambda p: jnp.array([jnp.tanh(3 * p[0] - p[1])])  # noqa: E731
    assert float(burgers.pde_loss(wave, pts)) > 1e-3


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(noise=-1), "noise"),
        (dict(noise="loud"), "noise"),
        (dict(n_data=30_000), "larger than"),
        (dict(n_data=-3), "n_data"),
        (dict(split="sideways"), "split"),
        (dict(colour="red"), "no option"),
    ],
)
def test_bad_problem_options(options, message):
    with pytest.raises(kvq.KvqError, match=message):
        kvq.problems.get("burgers", **options)


def test_unknown_problem_lists_the_known_ones():
    with pytest.raises(kvq.KvqError, match="burgers"):
        kvq.problems.get("navier_stokes")
