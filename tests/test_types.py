"""Problem/Rule/Dataset/ScanConfig validation: bad input is a KvqError that says what to do."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kvq


def _loss(u, pts):
    return jnp.mean(pts[:, 0] ** 2)


def _data(n=4):
    return kvq.Dataset(np.zeros((n, 2)), np.zeros((n, 1)))


def _rule(name="a"):
    return kvq.Rule(name, _loss, np.zeros((3, 2)))


def test_repeated_rule_names_are_refused():
    with pytest.raises(kvq.KvqError, match="repeated rule name"):
        kvq.Problem("p", (_rule("a"), _rule("a")), _data(), _data())


def test_zero_rules_are_refused():
    with pytest.raises(kvq.KvqError, match="zero rules"):
        kvq.Problem("p", (), _data(), _data())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="everywhere"), "kind"),
        (dict(weight=-1.0), "weight"),
        (dict(points=np.zeros((0, 2))), "no points"),
        (dict(name=""), "name"),
        (dict(loss="not callable"), "callable"),
    ],
)
def test_bad_rules(kwargs, message):
    args = dict(name="a", loss=_loss, points=np.zeros((3, 2)))
    args.update(kwargs)
    with pytest.raises(kvq.KvqError, match=message):
        kvq.Rule(**args)


def test_dataset_shapes():
    d = kvq.Dataset(np.arange(6.0).reshape(3, 2), np.arange(3.0))
    assert d.y.shape == (3, 1) and len(d) == 3 and d.d_in == 2
    with pytest.raises(kvq.KvqError, match="rows"):
        kvq.Dataset(np.zeros((3, 2)), np.zeros((4, 1)))
    with pytest.raises(kvq.KvqError, match="NaN"):
        kvq.Dataset(np.full((2, 2), np.nan), np.zeros((2, 1)))
    empty = kvq.Dataset(np.zeros((0, 2)), np.zeros((0, 1)))
    assert len(empty) == 0


def test_problem_checks_dimensions():
    with pytest.raises(kvq.KvqError, match="columns"):
        kvq.Problem("p", (kvq.Rule("a", _loss, np.zeros((3, 3))),), _data(), _data())
    with pytest.raises(kvq.KvqError, match="empty validation"):
        kvq.Problem("p", (_rule(),), _data(), _data(0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seeds=0), "seeds"),
        (dict(steps=1500), "multiple of check_every"),
        (dict(activation="swish"), "activation"),
        (dict(learning_rate=0), "learning_rate"),
        (dict(grouping="sometimes"), "grouping"),
        (dict(width=2.5), "width"),
        (dict(optimizer="lbfgs"), "optimizer"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(kvq.KvqError, match=message):
        kvq.ScanConfig(**kwargs)


def test_presets():
    paper = kvq.ScanConfig.preset("paper")
    assert (paper.width, paper.depth, paper.activation, paper.learning_rate) == (50, 5, "sin", 1e-3)
    assert (paper.steps, paper.check_every, paper.pretrain_steps, paper.collocation) == (20_000, 1_000, 50_000, None)
    quick = kvq.ScanConfig.preset("quick", seeds=4)
    assert quick.seeds == 4 and quick.steps < paper.steps
    with pytest.raises(kvq.KvqError, match="preset"):
        kvq.ScanConfig.preset("slow")


@pytest.mark.slow
def test_grouping_by_unknown_rule_name(tiny_burgers, tiny_config):
    with pytest.raises(kvq.KvqError, match="unknown rule"):
        kvq.scan(tiny_burgers, tiny_config.replace(grouping=("pde", "viscosity")))


def test_a_rule_that_returns_per_point_values_is_named_before_training(tiny_burgers, tiny_config):
    base = tiny_burgers.rules[1]
    per_point = kvq.Rule("sloppy", lambda u, pts: jax.vmap(u)(pts)[:, 0] ** 2, base.points)  # [P], not a scalar
    problem = kvq.Problem("p", (base, per_point), tiny_burgers.train, tiny_burgers.valid)
    with pytest.raises(kvq.KvqError, match=r"rule 'sloppy': its loss must return a scalar.*\(48,\).*residual="):
        kvq.scan(problem, tiny_config)
    broken = kvq.Rule("broken", lambda u, pts: jnp.dot(jax.vmap(u)(pts), jnp.ones(3)).mean(), base.points)  # [P,1]·[3]
    with pytest.raises(kvq.KvqError, match=r"rule 'broken' failed on its 48 points: TypeError"):
        kvq.scan(kvq.Problem("p", (base, broken), tiny_burgers.train, tiny_burgers.valid), tiny_config)


def test_values_beyond_float32_are_refused_with_their_place():
    x = np.zeros((3, 1))
    y = np.array([[1.0], [1e300], [2.0]])
    with pytest.raises(kvq.KvqError, match=r"row 1, column 0.*float32"):
        kvq.Dataset(x, y)
    with pytest.raises(kvq.KvqError, match=r"NaN or inf.*row 2"):
        kvq.Dataset(x, np.array([[1.0], [2.0], [np.nan]]))


def test_messages_about_a_problem_stay_short(tiny_burgers):
    assert len(repr(tiny_burgers)) < 200 and "rules=['pde', 'ic', 'bc_left', 'bc_right']" in repr(tiny_burgers)
    with pytest.raises(kvq.KvqError) as err:
        kvq.problems.get(tiny_burgers)
    assert len(str(err.value)) < 300 and "kvq.scan" in str(err.value)
    with pytest.raises(kvq.KvqError) as err:
        kvq.sweep(tiny_burgers, data=[0, 10])
    assert len(str(err.value)) < 300


def test_outputs_are_named_on_the_problem():
    x = np.linspace(0, 1, 5)[:, None]
    rule = kvq.Rule("r", residual=lambda u, pts: pts[:, 0], points=x)
    two = kvq.Dataset(x, np.hstack([x, 2 * x]))
    assert kvq.Problem("p", (rule,), two, two).outputs == ("y0", "y1")
    named = kvq.Problem("p", (rule,), two, two, outputs=("u", "v"))
    assert named.outputs == ("u", "v") and named.describe()["outputs"] == ["u", "v"]
    for bad in (("u",), ("u", "u")):
        with pytest.raises(kvq.KvqError, match="must name each of the 2 output"):
            kvq.Problem("p", (rule,), two, two, outputs=bad)
