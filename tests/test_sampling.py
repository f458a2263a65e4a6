"""Importances from sampled coalitions: exact where the draws cover the game, honest standard
errors where they do not, and the batched training behind them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import kvq
from kvq.core.coalitions import all_masks
from kvq.errors import KvqError
from kvq.game.importance import values_importance
from kvq.game.sampling import (
    PROXY_SAMPLERS,
    SAMPLERS,
    WEIGHTING,
    adjusted_importance,
    chain_masks,
    coalitions_of,
    draw,
    draws_within,
    estimate_importance,
    full_importance_from,
    full_masks,
    kernel_sizes,
    pair_strata,
    plan_draws,
    stratum_pairs,
)


def random_game(n: int, seeds: int, rng: np.random.Generator) -> tuple[tuple[str, ...], np.ndarray]:
    """Validation errors [2^n, seeds] with additive rule effects, pair interactions and noise."""
    masks = all_masks(n).astype(float)
    effects, pairs = rng.normal(0, 0.5, n), rng.normal(0, 0.2, (n, n))
    v = masks @ effects + np.einsum("ki,ij,kj->k", masks, np.triu(pairs, 1), masks)
    v = v[:, None] + rng.normal(0, 0.05, (2**n, seeds))
    return tuple(f"r{i}" for i in range(n)), 10.0 ** (-v - 2)


def test_msr_over_every_coalition_is_the_exact_banzhaf_value():
    names, errors = random_game(5, 3, np.random.default_rng(0))
    masks = all_masks(5)
    est = estimate_importance("msr", names, masks, -np.log10(errors), masks)
    exact = kvq.rule_importance((names, errors), "uniform")
    np.testing.assert_allclose(est.per_seed, exact.per_seed, atol=1e-12)
    np.testing.assert_allclose(est.mean, exact.mean, atol=1e-12)
    np.testing.assert_allclose(est.se_seeds, exact.se, atol=1e-12)


def test_permutations_over_every_order_give_the_exact_shapley_value_as_shapiq_computes_it():
    shapiq = pytest.importorskip("shapiq")
    n = 4
    names, errors = random_game(n, 2, np.random.default_rng(1))
    v = -np.log10(errors)
    # every order once, each beside its reverse (antithetic pairs)
    orders = [p for p in itertools.permutations(range(n)) if p < p[::-1]]
    draws = np.array([x for p in orders for x in (p, p[::-1])])
    est = estimate_importance("permutation", names, all_masks(n), v, draws)
    for s in range(2):
        def game(coalitions, s=s):
            return v[coalitions.astype(int) @ (1 << np.arange(n)), s]

        theirs = shapiq.ExactComputer(game, n_players=n)("SV", order=1)
        np.testing.assert_allclose(est.per_seed[s], [theirs[(i,)] for i in range(n)], atol=1e-10)
    assert est.samples == len(orders) and est.weighting == "shapley"


def test_the_kernel_samplers_converge_to_the_values_shapiq_computes():
    """Paired KernelSHAP (exact design matrix) is unbiased for the Shapley value and its
    uniform analogue for the Banzhaf value: with 40 000 pairs every rule is within 4 se
    of shapiq's exact values, and se has shrunk below 0.02 decades."""
    shapiq = pytest.importorskip("shapiq")
    n = 5
    names, errors = random_game(n, 1, np.random.default_rng(6))
    v = -np.log10(errors)

    def game(coalitions):
        return v[coalitions.astype(int) @ (1 << np.arange(n)), 0]

    exact = shapiq.ExactComputer(game, n_players=n)
    for sampler, index in (("kernel", "SV"), ("kernel-banzhaf", "BV")):
        est = estimate_importance(sampler, names, all_masks(n), v, draw(sampler, n, 40_000, np.random.default_rng(7)))
        theirs = exact(index, order=1)
        want = np.array([theirs[(i,)] for i in range(n)])
        assert np.all(est.se_sampling < 0.02)
        assert np.all(np.abs(est.mean - want) <= 4 * est.se_sampling), (sampler, est.mean, want)
    # the Shapley estimate's efficiency holds in every pair: sum(phi) = v(all) - v(empty)
    est = estimate_importance("kernel", names, all_masks(n), v, draw("kernel", n, 3, np.random.default_rng(8)))
    np.testing.assert_allclose(est.mean.sum(), v[-1, 0] - v[0, 0], atol=1e-10)


def test_fi_needs_only_its_n_plus_one_coalitions():
    names, errors = random_game(4, 3, np.random.default_rng(2))
    masks = all_masks(4)
    keep = [int((m * (1 << np.arange(4))).sum()) for m in full_masks(4)]
    fi = full_importance_from(names, masks[keep], -np.log10(errors[keep]))
    exact = kvq.full_importance((names, errors))
    np.testing.assert_allclose(fi.per_seed, exact.per_seed, atol=1e-12)
    np.testing.assert_allclose(fi.se, exact.se, atol=1e-12)


@pytest.mark.parametrize("sampler, weighting", [("msr", "uniform"), ("permutation", "shapley"),
                                                ("kernel", "shapley"), ("kernel-banzhaf", "uniform")])
def test_the_sampling_standard_error_covers_the_exact_value(sampler, weighting):
    """Over 300 independent draws of 24 samples, mean ± 2 se_sampling holds the exact value
    of the seed-averaged game about 95 % of the time (a normal interval: 88-99 % accepted)."""
    n = 6
    names, errors = random_game(n, 2, np.random.default_rng(3))
    v = -np.log10(errors)
    exact = kvq.rule_importance((names, errors), weighting).mean
    rng = np.random.default_rng(4)
    hits, total = 0, 0
    for _ in range(300):
        draws = draw(sampler, n, 24 if sampler == "msr" else 12, rng)  # kernel: 12 pairs
        est = estimate_importance(sampler, names, all_masks(n), v, draws)
        hits += int(np.sum(np.abs(est.mean - exact) <= 2 * est.se_sampling))
        total += n
    assert 0.88 <= hits / total <= 0.99


def test_draws_and_chains():
    rng = np.random.default_rng(5)
    orders = draw("permutation", 5, 3, rng)
    assert orders.shape == (6, 5) and np.array_equal(orders[1], orders[0][::-1])
    chains = chain_masks(orders)
    assert chains.shape == (6, 6, 5) and np.all(chains.sum(-1) == np.arange(6))
    assert np.all(chains[:, -1] == 1) and np.all(np.diff(chains, axis=1) >= 0)
    coalitions = draw("msr", 5, 1000, rng)
    assert coalitions.shape == (1000, 5) and abs(coalitions.mean() - 0.5) < 0.03
    with pytest.raises(KvqError, match="unknown coalition sampler"):
        draw("shapley", 5, 3, rng)
    # the Shapley kernel: sizes 1..n-1 with probability proportional to 1/(s(n-s)); never empty or full
    kernel = draw("kernel", 5, 4000, rng)
    sizes = np.bincount(kernel.sum(1), minlength=6) / 4000
    assert sizes[0] == sizes[5] == 0
    np.testing.assert_allclose(sizes[1:5], kernel_sizes(5), atol=0.03)
    np.testing.assert_allclose(kernel_sizes(5), np.array([1 / 4, 1 / 6, 1 / 6, 1 / 4]) / (5 / 6))
    pairs = coalitions_of("kernel", kernel[:3])
    assert pairs.shape == (8, 5) and pairs[0].sum() == 0 and pairs[1].sum() == 5  # v(empty), v(all), then pairs
    np.testing.assert_array_equal(pairs[5:], 1 - pairs[2:5])
    assert coalitions_of("kernel-banzhaf", kernel[:3]).shape == (6, 5)


def test_values_importance_is_the_exact_value_shapiq_computes():
    shapiq = pytest.importorskip("shapiq")
    n = 4
    names, errors = random_game(n, 1, np.random.default_rng(11))
    v = -np.log10(errors)
    exact = shapiq.ExactComputer(lambda c: v[c.astype(int) @ (1 << np.arange(n)), 0], n_players=n)
    for weighting, index in (("shapley", "SV"), ("uniform", "BV")):
        theirs = exact(index, order=1)
        np.testing.assert_allclose(values_importance(v, weighting)[0], [theirs[(i,)] for i in range(n)], atol=1e-10)


def test_kernel_pair_strata_partition_every_pair():
    for n in (5, 6):
        strata = pair_strata(n)
        assert abs(sum(p for p, _ in strata.values()) - 1) < 1e-12
        assert sum(c for _, c in strata.values()) == (2**n - 2) // 2
        for k, (_, count) in strata.items():
            sides = stratum_pairs(n, k)
            canon = {min(z.tobytes(), (1 - z).tobytes()) for z in sides}
            assert len(sides) == count == len(canon) and np.all(sides.sum(1) == k)


def test_the_kernel_border_trick_is_unbiased_covers_and_beats_plain_draws():
    """Budgets that would draw the size-1 stratum (and more) anyway enumerate it instead:
    over 300 repeats the estimate stays centred on shapiq-independent exact values
    (``values_importance``), ± 2 se covers 88-99 %, and the error is below the plain
    kernel draws' at the same budget; a budget of every coalition gives the exact value."""
    n = 6
    names, errors = random_game(n, 2, np.random.default_rng(18))
    v, masks = -np.log10(errors), all_masks(n)
    exact = values_importance(v, "shapley").mean(axis=0)
    full = {m.tobytes() for m in full_masks(n)}
    rng = np.random.default_rng(19)
    est, plain, hits = [], [], 0
    for _ in range(300):
        d, enumerated = plan_draws("kernel", n, 40, set(full), rng)
        assert 1 in enumerated and np.array_equal(d[:n], stratum_pairs(n, 1))
        e = estimate_importance("kernel", names, masks, v, d, enumerated)
        est.append(e.mean)
        hits += int(np.sum(np.abs(e.mean - exact) <= 2 * e.se_sampling))
        plain.append(estimate_importance("kernel", names, masks, v, draws_within("kernel", n, 40, set(full), rng)).mean)
    est, plain = np.array(est), np.array(plain)
    assert np.all(np.abs(est.mean(0) - exact) <= 4 * est.std(0, ddof=1) / np.sqrt(len(est)) + 1e-12)
    assert 0.88 <= hits / (300 * n) <= 0.99, hits / (300 * n)
    assert np.mean((est - exact) ** 2) < np.mean((plain - exact) ** 2)
    d, enumerated = plan_draws("kernel", n, 64, set(full), rng)
    assert enumerated == (1, 2, 3)
    e = estimate_importance("kernel", names, masks, v, d, enumerated)
    np.testing.assert_allclose(e.mean, exact, atol=1e-10)
    assert np.all(e.se_sampling == 0)


@pytest.mark.parametrize("sampler", PROXY_SAMPLERS)
def test_a_perfect_proxy_leaves_no_sampling_error(sampler):
    """When the proxy equals the trained values, the correction is zero draw by draw: the
    adjusted estimate is the proxy game's exact value, beta = 1 and se_sampling = 0."""
    n = 5
    names, errors = random_game(n, 2, np.random.default_rng(12))
    v = -np.log10(errors)
    exact = values_importance(v, WEIGHTING[sampler])
    d = draw(sampler, n, 10, np.random.default_rng(13))
    est, beta = adjusted_importance(sampler, names, all_masks(n), v, v, d, exact, np.zeros(n))
    np.testing.assert_allclose(est.per_seed, exact, atol=1e-10)
    np.testing.assert_allclose(beta, 1.0, atol=1e-10)
    np.testing.assert_allclose(est.se_sampling, 0.0, atol=1e-10)
    few, beta = adjusted_importance(sampler, names, all_masks(n), v, v, d[:2], exact, np.zeros(n))
    assert np.all(beta == 0)  # too few draws to fit a weight: the plain estimate (msr: NaN where a side is empty)
    np.testing.assert_allclose(few.mean, estimate_importance(sampler, names, all_masks(n), v, d[:2]).mean)


@pytest.mark.parametrize("sampler", PROXY_SAMPLERS)
@pytest.mark.parametrize("proxy_exact", [True, False])
def test_a_correlated_proxy_stays_unbiased_and_cuts_the_error(sampler, proxy_exact):
    """Trained values = a game with strong interactions + training noise; the proxy =
    0.7 x the noise-free game + 0.3 + its own noise (mis-scaled and shifted, as a Newton step
    can be), its value exact or from an independent sample of 400 draws.  Over 200 repeats
    the adjusted estimate is centred on the exact value (within 4 standard errors of the
    repeat mean), its mean squared error is at most half the plain estimate's on the same
    draws, and ± 2 se covers the exact value 88-99 % of the time."""
    n, rng = 6, np.random.default_rng(15)
    masks = all_masks(n)
    names = tuple(f"r{i}" for i in range(n))
    m = masks.astype(float)
    quadratic = m @ rng.normal(0, 0.5, n) + np.einsum("ki,ij,kj->k", m, np.triu(rng.normal(0, 0.5, (n, n)), 1), m)
    game = 2 * np.tanh(quadratic / 2)  # interactions of every order (antithetic pairs are exact for pairs only)
    v = game[:, None] + rng.normal(0, 0.02, (2**n, 2))
    f = 0.7 * game[:, None] + 0.3 + rng.normal(0, 0.02, (2**n, 2))
    weighting = WEIGHTING[sampler]
    exact = values_importance(v, weighting).mean(axis=0)
    count = 24 if sampler == "msr" else 12
    adj, plain, hits = [], [], 0
    for _ in range(200):
        d = draw(sampler, n, count, rng)
        if proxy_exact:
            phi_f, se_f = values_importance(f, weighting), np.zeros(n)
        else:
            big = estimate_importance(sampler, names, masks, f, draw(sampler, n, 400, rng))
            phi_f, se_f = big.per_seed, big.se_sampling
        est, _ = adjusted_importance(sampler, names, masks, v, f, d, phi_f, se_f)
        adj.append(est.mean)
        plain.append(estimate_importance(sampler, names, masks, v, d).mean)
        hits += int(np.sum(np.abs(est.mean - exact) <= 2 * est.se_sampling))
    adj, plain = np.array(adj), np.array(plain)
    bias_se = adj.std(axis=0, ddof=1) / np.sqrt(len(adj))
    assert np.all(np.abs(adj.mean(axis=0) - exact) <= 4 * bias_se + 1e-12), (adj.mean(axis=0), exact)
    assert np.mean((adj - exact) ** 2) <= 0.5 * np.mean((plain - exact) ** 2)
    assert 0.88 <= hits / (200 * n) <= 0.99, hits / (200 * n)


@pytest.mark.parametrize("sampler", PROXY_SAMPLERS)
def test_a_proxy_unrelated_to_the_values_is_given_no_weight(sampler):
    n = 12
    names, errors = random_game(n, 1, np.random.default_rng(16))
    v, rng = -np.log10(errors), np.random.default_rng(17)
    noise = rng.normal(0, 1, v.shape)
    d = draw(sampler, n, 4000, rng)
    est, beta = adjusted_importance(sampler, names, all_masks(n), v, noise, d,
                                    values_importance(noise, WEIGHTING[sampler]), np.zeros(n))
    assert np.all(np.abs(beta) < 0.4), beta
    plain = estimate_importance(sampler, names, all_masks(n), v, d)
    assert np.all(est.se_sampling <= 1.1 * plain.se_sampling)  # no worse than without it


@pytest.mark.slow
def test_a_sampled_estimate_trains_the_same_coalitions_a_scan_trains(tiny_burgers, tiny_config, tiny_scan):
    result = kvq.estimate(tiny_burgers, tiny_config, coalitions="msr", budget=10)
    assert isinstance(result, kvq.sampling.SampledResult) and len(result.masks) <= 10
    full = {tuple(m) for m in full_masks(4)}
    assert full <= {tuple(m) for m in result.masks}
    rows = [int((m * (1 << np.arange(4))).sum()) for m in result.masks]
    # each coalition trained from the same warm start as in the exact scan (other batch widths:
    # the last float32 bits may differ)
    np.testing.assert_allclose(result.errors, tiny_scan.errors[rows], rtol=2e-5)
    np.testing.assert_allclose(result.fi.mean, kvq.full_importance(tiny_scan).mean, atol=1e-4)
    assert np.all(result.ri.se >= result.ri.se_sampling) and "se sampling" in result.table()
    assert result.sampling.sampler == "msr" and result.method == "sampled"
    # a target the first round meets: the rest of the budget is not spent
    early = kvq.estimate(tiny_burgers, tiny_config, coalitions="msr", budget=16, target_se=10.0)
    assert len(early.masks) < 16 and np.nanmax(early.ri.se_sampling) <= 10.0
    shapley = kvq.estimate(tiny_burgers, tiny_config, coalitions="permutation", budget=16)
    assert shapley.ri.weighting == "shapley" and shapley.draws.shape[1] == 4 and len(shapley.masks) <= 16
    kernel = kvq.estimate(tiny_burgers, tiny_config, coalitions="kernel", budget=12)
    assert kernel.ri.weighting == "shapley" and len(kernel.masks) <= 12 and "RI Shapley (kernel)" in kernel.table()
    assert kernel.ri.samples < 10 and "a rough error bar" in kernel.table()  # se from a handful of pairs
    assert {(0, 0, 0, 0), (1, 1, 1, 1)} <= {tuple(m) for m in kernel.masks}  # the constraint's two coalitions
    rows = [int((m * (1 << np.arange(4))).sum()) for m in kernel.masks]
    np.testing.assert_allclose(kernel.errors, tiny_scan.errors[rows], rtol=2e-5)


@pytest.mark.slow
def test_a_newton_proxy_scores_every_coalition_as_the_newton_estimator_does(tiny_burgers, tiny_config, tmp_path):
    """The proxy's anchor is the sampled all-rules training and its steps are the Newton
    estimator's: the adjusted RI recomputed from ``kvq.estimate(method="newton")``'s table
    (trained apart) agrees; the plain estimate is the same draws' without it."""
    r = kvq.estimate(tiny_burgers, tiny_config, coalitions="kernel-banzhaf", budget=16, proxy="newton")
    assert r.proxy["exact"] and r.proxy["coalitions"] == 16 and r.plain is not None
    assert "adjusted by a newton proxy" in r.table()
    back = kvq.ScanResult.load(r.save(tmp_path / "saved"))
    assert isinstance(back, kvq.SampledResult) and back.table() == r.table() and back.proxy == r.proxy
    np.testing.assert_allclose(r.plain.mean, estimate_importance("kernel-banzhaf", r.rule_names, r.masks,
                                                                 -np.log10(r.errors), r.draws).mean)
    newton = kvq.estimate(tiny_burgers, tiny_config, "newton")
    f = -np.log10(newton.errors)  # [16, S]
    rows = [int((m * (1 << np.arange(4))).sum()) for m in r.masks]
    # the two anchors differ in the last float32 bits (batches of other widths); the Newton
    # step amplifies that to a few 1e-3 decades
    np.testing.assert_allclose(r.sampling.proxy_values, f[rows], atol=1e-2)  # [M, S]
    want, _ = adjusted_importance("kernel-banzhaf", r.rule_names, r.masks, -np.log10(r.errors), f[rows], r.draws,
                                  values_importance(f, "uniform"), np.zeros(4))
    np.testing.assert_allclose(r.ri.mean, want.mean, atol=1e-2)
    with pytest.raises(KvqError, match="proxy= corrects sampled"):
        kvq.estimate(tiny_burgers, tiny_config, proxy="newton")
    with pytest.raises(KvqError, match="proxy must be"):
        kvq.estimate(tiny_burgers, tiny_config, coalitions="msr", budget=12, proxy="finetune")


@pytest.mark.slow
def test_a_kernel_estimate_enumerates_the_border_pairs_its_budget_affords(tiny_config, tmp_path):
    """Six rules, 40 of 64 coalitions: the pairs of sizes 1 and 5 are trained once each (FI
    trains the size-5 side anyway) and enter exactly; the saved result says so and reads
    back the same."""
    import factory_problem

    base = factory_problem.make(n_data=6, noise=0.0, split="interpolation", seed=0)
    six = kvq.Problem(name="six", rules=(base.rules[0], *(kvq.Rule(f"edge{i}", points=base.rules[1].points,
                      residual=factory_problem.boundary, kind="local") for i in range(5))),
                      train=base.train, valid=base.valid)
    r = kvq.estimate(six, tiny_config.replace(seeds=1, grouping="none"), coalitions="kernel", budget=40)
    assert r.enumerated == (1,) and len(r.masks) <= 40
    assert {tuple(m) for m in stratum_pairs(6, 1)} <= {tuple(m) for m in r.masks}
    want = estimate_importance("kernel", r.rule_names, r.masks, -np.log10(r.errors), r.draws, r.enumerated)
    np.testing.assert_allclose(r.ri.mean, want.mean)
    assert "every pair of sizes 1 and 5 among them, exactly" in r.table()
    back = kvq.ScanResult.load(r.save(tmp_path / "saved"))
    assert back.enumerated == (1,) and back.table() == r.table()


@pytest.mark.slow
def test_many_rules_are_sampled_not_enumerated(tiny_config):
    import factory_problem

    base = factory_problem.make(n_data=6, noise=0.0, split="interpolation", seed=0)
    edge = base.rules[1]
    many = kvq.Problem(name="many", rules=(base.rules[0], *(kvq.Rule(f"edge{i}", points=edge.points,
                       residual=factory_problem.boundary, kind="local") for i in range(20))),
                       train=base.train, valid=base.valid)
    with pytest.raises(KvqError, match="2\\^21 = 2,097,152 subsets.*coalitions='regression-banzhaf'"):
        kvq.scan(many, tiny_config)
    result = kvq.estimate(many, tiny_config.replace(seeds=1, grouping="none"), coalitions="msr", budget=32,
                          proxy="newton", proxy_budget=100)
    assert 22 < len(result.masks) <= 32  # FI's 22, then draws while the budget lasts
    assert result.ri.mean.shape == (21,) and np.all(np.isfinite(result.ri.mean))
    # over 12 rules the proxy scores its own sample, not all 2^21 coalitions; its error adds
    assert not result.proxy["exact"] and 50 < result.proxy["coalitions"] <= 100
    assert result.plain is not None and np.all(np.isfinite(result.plain.mean))
    assert np.all(result.ri.se_sampling > 0)
    with pytest.raises(KvqError, match="budget must be"):
        kvq.estimate(many, tiny_config, coalitions="msr", budget=10)
    with pytest.raises(KvqError, match="needs budget"):
        kvq.estimate(many, tiny_config, coalitions="msr")


@pytest.mark.slow
def test_the_command_line_samples_coalitions(tmp_path, capsys):
    import json

    from kvq.cli import main
    from kvq.store.results import load_result

    args = ["scan", "burgers", "--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20",
            "--collocation", "32", "--max-batch", "64", "--coalitions", "msr", "--budget", "12", "--out", str(tmp_path)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "RI uniform (msr)" in printed and "of 16 coalitions trained" in printed
    meta = json.loads((tmp_path / "results.json").read_text())
    assert meta["sampling"]["sampler"] == "msr" and meta["method"] == "sampled"
    assert len(load_result(tmp_path).masks) <= 12 and (tmp_path / ".checkpoint").is_dir()
    assert {"ri.png", "ri-steps.png"} <= {p.name for p in tmp_path.iterdir()}
    assert main(["show", str(tmp_path)]) == 0  # the saved estimate, read back: the same table
    shown = capsys.readouterr().out
    table = printed[printed.index("rule "):printed.index("\nre-run")]
    assert shown.startswith("scan: ") and table in shown
    assert main(args) == 0  # the same run again: loaded, not trained
    again = capsys.readouterr().out
    assert "holds this run already" in again and f"time: loaded from {tmp_path}/ in " in again
    assert main(["report", str(tmp_path)]) == 0 and (tmp_path / "report.html").exists()
    assert main([*args[:-4], "--budget", "12", "--method", "newton"]) == 2
    assert "--coalitions" in capsys.readouterr().err
    assert main([*args[:-6], "--proxy", "newton", "--out", str(tmp_path / "p")]) == 2
    assert "--proxy corrects sampled coalitions" in capsys.readouterr().err
