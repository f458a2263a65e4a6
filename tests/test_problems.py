"""The built-in problem library: specs, splits, observations, presets and rule losses."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import kvq
from kvq.problems import burgers, convection_diffusion, equations, fourth_order_2d, kdv, klein_gordon

from conftest import reference_points

NAMES = kvq.problems.names()


def test_every_problem_of_the_paper_is_registered():
    paper = ("burgers", "convection_diffusion", "kdv", "klein_gordon", "fourth_order_2d", "equations")
    assert NAMES == (*paper, "kovasznay", "poisson_segments")  # the paper's, then the many-rule problems
    assert [len(kvq.problems.spec(n).rules) for n in NAMES] == [4, 4, 3, 5, 7, 5, 11, 21]


def test_kovasznay_flow_satisfies_its_rules_and_a_wrong_reynolds_number_does_not():
    import jax.numpy as jnp

    from kvq.problems import kovasznay

    def flow(lam):
        def u(p):  # the closed form, written again here in jax
            e, y = jnp.exp(lam * p[0]), 2 * jnp.pi * p[1]
            return jnp.stack([1 - e * jnp.cos(y), lam / (2 * jnp.pi) * e * jnp.sin(y), 0.5 * (1 - jnp.exp(2 * lam * p[0]))])

        return u

    problem = kvq.problems.get("kovasznay", n_data=10)
    np.testing.assert_allclose(problem.reference(problem.valid.x), problem.valid.y)
    for rule in problem.rules:
        pts = jnp.asarray(rule.points, jnp.float32)
        assert float(jnp.max(jnp.abs(rule.residual(flow(kovasznay.LAMBDA), pts)))) < 1e-5, rule.name
    wrong = 40.0 / 2 - np.sqrt(40.0**2 / 4 + 4 * np.pi**2)  # the flow at Re = 40 violates the Re = 20 momentum laws
    for name in ("momentum_x", "momentum_y"):
        rule = problem.rules[problem.rule_names.index(name)]
        assert float(jnp.max(jnp.abs(rule.residual(flow(wrong), jnp.asarray(rule.points, jnp.float32))))) > 1e-2


@pytest.mark.parametrize("name", NAMES)
def test_problem_matches_its_spec(name):
    spec = kvq.problems.spec(name)
    problem = kvq.problems.get(name, n_data=7)
    assert problem.rule_names == spec.rule_names
    assert tuple((r.name, r.kind) for r in problem.rules) == spec.rules
    assert (problem.d_in, problem.d_out) == (len(spec.inputs), len(spec.outputs))
    assert len(problem.train) == 7
    assert problem.info["splits"] == list(spec.splits)
    assert problem.describe()["outputs"] == list(spec.outputs)
    # clean observations and validation targets are the reference itself
    np.testing.assert_allclose(problem.reference(problem.train.x), problem.train.y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(problem.reference(problem.valid.x), problem.valid.y, rtol=1e-12, atol=1e-12)
    assert kvq.problems.get(name).info["n_data"] == spec.n_data


def test_make_has_a_real_signature_and_checks_its_options():
    import inspect

    options = ["n_data", "noise", "split", "seed", "n_valid", "noisy_validation"]
    for name in NAMES:
        make = kvq.problems._module(name).make
        params = inspect.signature(make).parameters
        assert list(params) == options + (["wrong"] if name in ("burgers", "equations", "poisson_segments") else [])
        assert params["n_data"].default == kvq.problems.spec(name).n_data
        assert (make.__name__, make.__module__) == ("make", f"kvq.problems.{name}") and make.__doc__
    assert inspect.signature(equations.make).parameters["n_valid"].default == 5_000
    positional = burgers.make(5, 0.0, "extrapolation", 2, 40)
    assert positional.identity(1) == kvq.problems.get(
        "burgers", n_data=5, split="extrapolation", seed=2, n_valid=40
    ).identity(1)
    with pytest.raises(kvq.KvqError, match="no option"):
        kvq.problems.get("kdv", wrong="ic")
    with pytest.raises(kvq.KvqError, match="can make these rules wrong"):
        kvq.problems.get("burgers", wrong="pde")
    for bad in (-1, "x"):  # checked before the problem's points are drawn
        with pytest.raises(kvq.KvqError, match="n_valid"):
            kvq.problems.get("equations", n_valid=bad)
    assert kvq.problems.get("equations", wrong="e_law", n_data=3).info["wrong"]["rule"] == "e_law"


def _rows(a: np.ndarray) -> set:
    return set(map(tuple, np.round(a, 12)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("split", ["interpolation", "extrapolation"])
def test_splits_any_volume_and_disjoint_sets(name, split):
    big = kvq.problems.get(name, n_data=10_000, split=split)
    assert len(big.train) == 10_000
    assert not _rows(big.train.x) & _rows(big.valid.x)
    none = kvq.problems.get(name, n_data=0, split=split)
    assert len(none.train) == 0 and len(none.valid) > 1000
    # every seed is scored on the same validation points; observations differ per seed
    other = kvq.problems.get(name, n_data=20, split=split, seed=3)
    np.testing.assert_array_equal(other.valid.x, none.valid.x)
    assert not np.array_equal(other.train.x, kvq.problems.get(name, n_data=20, split=split).train.x)


@pytest.mark.parametrize("name", ["burgers", "convection_diffusion", "kdv", "klein_gordon"])
def test_time_split_of_the_1d_problems(name):
    p = kvq.problems.get(name, n_data=500, split="extrapolation")
    lo, hi = kvq.problems.spec(name).domain["t"]
    mid = (lo + hi) / 2
    assert p.train.x[:, 1].max() < mid <= p.valid.x[:, 1].min()


def test_spatial_split_of_the_2d_problem():
    p = kvq.problems.get("fourth_order_2d", n_data=500, split="extrapolation")
    inside = lambda x: np.all((x > 0.2) & (x < 0.8), axis=1)  # noqa: E731
    assert inside(p.valid.x).all() and not inside(p.train.x).any()


def test_shifted_domain_of_the_algebraic_system():
    p = kvq.problems.get("equations", n_data=500, split="extrapolation")
    a, b = p.train.x.T
    assert (a >= 0).all() and (a < np.pi).all() and (b >= -np.pi).all() and (b < 0).all()
    assert (p.valid.x >= np.pi).all() and (p.valid.x < 2 * np.pi).all()
    assert len(p.valid) == 5000 and p.valid.d_out == 4


def test_latin_hypercube_fills_every_slice_once():
    pts = equations.latin_hypercube(50, ((0.0, 1.0), (-2.0, 0.0)), np.random.default_rng(0))
    assert sorted(np.floor(pts[:, 0] * 50).astype(int)) == list(range(50))
    assert sorted(np.floor((pts[:, 1] + 2.0) / 2.0 * 50).astype(int)) == list(range(50))


@pytest.mark.parametrize("name", NAMES)
def test_noise_is_a_percentage_of_each_outputs_std(name):
    clean = kvq.problems.get(name, n_data=4000)
    noisy = kvq.problems.get(name, n_data=4000, noise=20)
    np.testing.assert_array_equal(clean.train.x, noisy.train.x)
    grid_std = np.concatenate([clean.train.y, clean.valid.y]).std(axis=0)
    measured = (noisy.train.y - clean.train.y).std(axis=0)
    np.testing.assert_allclose(measured, 0.2 * grid_std, rtol=0.15)


def test_presets_carry_each_problems_network():
    paper = {n: kvq.problems.config(n, "paper") for n in NAMES}
    assert (paper["burgers"].depth, paper["burgers"].width, paper["burgers"].activation) == (5, 50, "sin")
    assert paper["convection_diffusion"].activation == "tanh"
    assert (paper["fourth_order_2d"].depth, paper["fourth_order_2d"].width) == (4, 32)
    assert (paper["equations"].depth, paper["equations"].width, paper["equations"].activation) == (3, 50, "relu")
    assert kvq.problems.config("kdv", "quick", seeds=5).seeds == 5
    with pytest.raises(kvq.KvqError, match="preset"):
        kvq.problems.config("kdv", "slow")


def _loss(module, rule: str):
    return {r.name: r.loss for r in module.make_rules(4, 8)}[rule]


def _pts(lo, hi, n=32, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, (n, 2)), jnp.float32)


# manufactured u = sin(A x + B t) (+ C): each PDE loss must equal the mean square of the
# residual written out by hand, so a wrong coefficient or sign fails
A, B = 1.3, -0.7


def _wave(p):
    return jnp.array([jnp.sin(A * p[0] + B * p[1])])


@pytest.mark.parametrize(
    "module, residual",
    [
        (burgers, lambda s, c: B * c + s * A * c + (0.01 / np.pi) * A**2 * s),  # 0.01 or -0.01/pi: loss off by ~1 %
        (convection_diffusion, lambda s, c: B * c + A * c + 0.25 * A**2 * s),
        (kdv, lambda s, c: B * c + s * A * c - 0.0025 * A**3 * c),
        (klein_gordon, lambda s, c: -(B**2) * s + 5 * s + 0.5 * A**2 * s),
    ],
)
def test_pde_losses_equal_the_hand_written_residual(module, residual):
    pts = _pts([-1, 0], [1, 1])
    phase = A * pts[:, 0] + B * pts[:, 1]
    expected = jnp.mean(residual(jnp.sin(phase), jnp.cos(phase)) ** 2)
    np.testing.assert_allclose(float(module.pde_loss(_wave, pts)), float(expected), rtol=1e-4)


def test_1d_condition_rules_vanish_only_on_matching_functions():
    line = jnp.stack([jnp.linspace(-1, 1, 9), jnp.zeros(9)], axis=1)
    cd_ic = lambda p: jnp.array([jnp.sin(jnp.pi * p[0]) * jnp.exp(-p[0])])  # noqa: E731
    assert float(_loss(convection_diffusion, "ic")(cd_ic, line)) < 1e-12
    assert float(_loss(convection_diffusion, "ic")(_wave, line)) > 1e-2
    kdv_ic = lambda p: jnp.array([jnp.cos(jnp.pi * p[0])])  # noqa: E731
    assert float(_loss(kdv, "ic")(kdv_ic, line)) < 1e-12
    periodic = lambda p: jnp.array([jnp.cos(jnp.pi * p[0]) * (1 + p[1])])  # noqa: E731
    left = jnp.stack([-jnp.ones(9), jnp.linspace(0, 1, 9)], axis=1)
    assert float(_loss(kdv, "periodic")(periodic, left)) < 1e-10
    assert float(_loss(kdv, "periodic")(_wave, left)) > 1e-2
    standing = lambda p: jnp.array([jnp.sin(jnp.pi * p[0]) * jnp.cos(2.0 * p[1])])  # noqa: E731
    assert float(_loss(klein_gordon, "ic_velocity")(standing, line)) < 1e-10
    assert float(_loss(klein_gordon, "ic_velocity")(_wave, line)) == pytest.approx(B**2 * float(jnp.mean(jnp.cos(A * line[:, 0]) ** 2)), rel=1e-4)


def _exact_2d(p):
    return jnp.array([p[0] ** 2 * jnp.exp(-p[1])])


def test_2d_rules_vanish_on_the_exact_solution_and_not_on_a_wrong_one():
    wrong = lambda p: jnp.array([p[0] ** 2 * jnp.exp(-1.1 * p[1]) + 0.05 * p[0] * (1 - p[0])])  # noqa: E731
    for rule in fourth_order_2d.make_rules(6, 10):
        assert float(rule.loss(_exact_2d, jnp.asarray(rule.points, jnp.float32))) < 1e-9, rule.name
        if rule.name != "left":  # u(0, y) = 0 holds for the wrong function too
            assert float(rule.loss(wrong, jnp.asarray(rule.points, jnp.float32))) > 1e-5, rule.name


def test_the_segmented_boundary_covers_each_side_once_and_every_rule_holds_on_the_exact_solution():
    from kvq.problems import poisson_segments as ps

    def exact(p):  # the closed form, written again here in jax
        return jnp.array([jnp.sin(2 * p[0] + 1) * jnp.exp(-p[1]) + 0.5 * p[0] * p[1]])

    wrong = lambda p: exact(p) + 0.1 * p[0] * (1 - p[0]) * p[1] * (1 - p[1])  # noqa: E731  same boundary
    rules = ps.make_rules(6, 8)
    assert len(rules) == 21 and [r.name for r in rules] == list(ps.SPEC.rule_names)
    for rule in rules:
        pts = jnp.asarray(rule.points, jnp.float32)
        assert float(rule.loss(exact, pts)) < 1e-9, rule.name
        assert (float(rule.loss(wrong, pts)) > 1e-6) == (rule.name == "pde"), rule.name
    for side in ps.SIDES:  # the five segments of a side tile it: disjoint, in order, corners left out
        along = np.concatenate([ps.segment_points(side, k, 10) for k in range(1, 6)])
        coord = along[:, 0] if side in ("bottom", "top") else along[:, 1]
        assert np.all(np.diff(coord) > 0) and 0 < coord.min() and coord.max() < 1
    top_3 = dict(zip(ps.SPEC.rule_names, ps.make_rules(6, 8, wrong="top_3")))["top_3"]
    assert float(top_3.loss(exact, jnp.asarray(top_3.points, jnp.float32))) == pytest.approx(1.0, rel=1e-5)
    p = kvq.problems.get("poisson_segments", n_data=500, split="extrapolation")
    inside = lambda x: np.all((x > 0.2) & (x < 0.8), axis=1)  # noqa: E731
    assert inside(p.train.x).all() and not inside(p.valid.x).any()


def test_2d_pde_loss_on_a_manufactured_function():
    u = lambda p: jnp.array([jnp.sin(p[0]) * jnp.cos(2 * p[1])])  # noqa: E731  u_xx = -u, u_yyyy = 16 u
    pts = _pts([0, 0], [1, 1])
    x, y = pts[:, 0], pts[:, 1]
    val = jnp.sin(x) * jnp.cos(2 * y)
    expected = jnp.mean((-val - 16 * val - (2 - x**2) * jnp.exp(-y)) ** 2)
    np.testing.assert_allclose(float(fourth_order_2d.pde_loss(u, pts)), float(expected), rtol=1e-4)


def test_2d_reference_satisfies_its_equation_by_finite_differences():
    rng = np.random.default_rng(0)
    x, y, h = rng.uniform(0.1, 0.9, 50), rng.uniform(0.1, 0.9, 50), 1e-2
    f = fourth_order_2d.solution
    u_xx = (f(x + h, y) - 2 * f(x, y) + f(x - h, y)) / h**2
    u_yyyy = (f(x, y + 2 * h) - 4 * f(x, y + h) + 6 * f(x, y) - 4 * f(x, y - h) + f(x, y - 2 * h)) / h**4
    np.testing.assert_allclose(u_xx - u_yyyy, (2 - x**2) * np.exp(-y), atol=1e-3)


def test_equation_laws_vanish_on_the_exact_outputs():
    pts = np.asarray(equations.make_rules(12)[0].points)
    table = jnp.asarray(equations.reference(pts), jnp.float32)

    def u(p):  # the exact outputs as a point function (a table lookup by index under vmap)
        return table[p[2].astype(jnp.int32)]

    indexed = jnp.asarray(np.concatenate([pts, np.arange(len(pts))[:, None]], axis=1), jnp.float32)
    for rule in equations.make_rules(12):
        assert float(rule.loss(u, indexed)) < 1e-10, rule.name
    # negative e and f break the range rule by exactly relu(-e)^2 + relu(-f)^2
    neg = lambda p: jnp.array([0.0, 0.0, -2.0, -1.0])  # noqa: E731
    assert float(equations.range_law(neg, indexed)) == pytest.approx(5.0)
    off = lambda p: u(p) + jnp.array([0.1, 0.0, 0.0, 0.0])  # noqa: E731
    assert float(equations.c_law(off, indexed)) == pytest.approx(0.01, rel=1e-4)
    assert float(equations.e_law(off, indexed)) > 1e-4  # e no longer equals (1 + c^2)/2


def test_equations_match_the_papers_datasets():
    for name in ("equations_dataset", "equations_dataset_out"):
        rows = reference_points(name)
        ref = equations.reference(rows[:, :2])
        assert np.linalg.norm(ref - rows[:, 2:]) / np.linalg.norm(rows[:, 2:]) <= 1e-12


def test_kdv_reference_at_arbitrary_points_and_its_splits():
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-1, 1, 500), rng.uniform(0, 1, 500)], axis=1)
    u = kdv.reference(pts)
    assert u.shape == (500, 1) and np.all(np.isfinite(u))
    with pytest.raises(kvq.KvqError, match="split"):
        kvq.problems.get("kdv", split="spatial")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_problem_scans_end_to_end(name, tiny_config):
    split = "extrapolation" if name in ("kdv", "equations") else "interpolation"
    problem = kvq.problems.get(name, n_data=16, n_valid=64, split=split)
    config = tiny_config.replace(steps=20, check_every=10, pretrain_steps=10, collocation=24)
    n = len(problem.rules)
    if n > 8:  # many rules: sampled coalitions, not 2^n trainings
        # one program for every coalition (grouping="none"): compiling dominates at this size
        sampled = kvq.estimate(problem, config.replace(seeds=1, grouping="none"), coalitions="msr", budget=n + 6)
        assert np.isfinite(sampled.ri.mean).all() and np.isfinite(sampled.fi.mean).all()
        assert sampled.errors.shape[1] == 1 and len(sampled.masks) <= n + 6
        return
    result = kvq.scan(problem, config)
    assert result.errors.shape == (2**n, 2) and np.isfinite(result.errors).all()
    assert result.errors_by_output.shape == (2**n, 2, problem.d_out)
    assert result.output_names == kvq.problems.spec(name).outputs
    assert np.isfinite(kvq.rule_importance(result, output=result.output_names[-1]).mean).all()
