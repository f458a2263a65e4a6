"""The tlc problem: reading a measurements table, descriptors, splits, the chemistry rules, the
command line.  Most tests build a small synthetic table; those on the real data set skip when it
is absent (set KVQ_TLC_DATA to its path)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import kvq

openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("rdkit")

from kvq.problems import tlc  # noqa: E402

REAL = Path(os.environ.get("KVQ_TLC_DATA", Path(__file__).resolve().parents[2] / "shared/refdata/tlc/TLC_dataset.xlsx"))
SMILES = ("c1ccccc1", "CC(=O)c1ccccc1", "Oc1ccccc1", "OC(=O)c1ccccc1", "CCCCO", "Nc1ccccc1", "COc1ccccc1",
          "O=C(C1=CC=CC=C1)CCCl", "Clc1ccccc1", "OCc1ccccc1")
EA_IN_H = (0.0, 0.0196, 0.0476, 0.1667, 0.25, 0.5, 0.6667, 1.0)
MEOH_IN_DCM = (0.0, 0.0099, 0.0196, 0.0323, 0.0476, 0.0909)
ET2O_IN_H = (1 / 3, 0.5, 1.0)


def eluents() -> list[tuple[float, ...]]:
    """The 17 measured compositions (H, EA, DCM, MeOH, Et2O)."""
    return ([(1 - x, x, 0.0, 0.0, 0.0) for x in EA_IN_H] + [(0.0, 0.0, 1 - x, x, 0.0) for x in MEOH_IN_DCM]
            + [(1 - x, 0.0, 0.0, 0.0, x) for x in ET2O_IN_H])


def write_table(path: Path, smiles=SMILES, header=None) -> Path:
    """A synthetic table: every compound under every eluent, Rf from a displacement-like curve."""
    book = openpyxl.Workbook()
    sheet = book.active
    header = header or ["", "COMPOUND_ID", "Rf", "COMPOUND_SMILES", "Et2O", "MeOH", "DCM", "EA", "H", "NOTE"]
    sheet.append(header)
    for k, s in enumerate(smiles):
        for h, ea, dcm, meoh, et2o in eluents():
            strength = 0.6 * dcm + 2.0 * ea + 8.0 * meoh + 1.5 * et2o
            rf = 1 / (1 + np.exp(1.0 + 0.3 * k - 2.0 * strength))
            row = {"Rf": f"{rf:.6f}", "COMPOUND_SMILES": s, "H": h, "EA": ea, "DCM": dcm, "MeOH": meoh,
                   "Et2O": et2o, "COMPOUND_ID": k, "NOTE": "x"}
            sheet.append([row.get(c) for c in header])
    sheet.append([None] * len(header))  # a blank row at the end is skipped
    book.save(path)
    return path


@pytest.fixture(scope="module")
def table_file(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("tlc") / "synthetic.xlsx")


def test_the_table_is_read_by_its_headers(table_file):
    table = tlc.read_table(table_file)
    assert len(table) == len(SMILES) * 17 and table.source == "synthetic.xlsx" and len(table.digest) == 16
    np.testing.assert_allclose(table.eluent.sum(axis=1), 1.0, atol=1e-9)
    assert table.smiles[17] == SMILES[1]
    np.testing.assert_allclose(table.eluent[17 + 7], [0.0, 1.0, 0.0, 0.0, 0.0])  # pure EA, 8th eluent
    assert np.all((table.rf > 0) & (table.rf < 1))
    x, compounds = tlc.features(table)
    assert x.shape == (len(table), 10) and compounds.shape == (len(SMILES), 5)
    np.testing.assert_allclose(compounds.mean(axis=0), 0.0, atol=1e-9)  # standardized over the compounds
    np.testing.assert_allclose(x[:, 5:], table.eluent)  # fractions unscaled


def test_the_problem_and_its_splits(table_file, tmp_path):
    seen = {}
    for split in tlc.SPEC.splits:
        p = kvq.problems.get("tlc", data_file=table_file, n_data=20, split=split, n_valid=30, seed=3)
        assert p.rule_names == ("bounds", "monotone", "ordering", "snyder") and (p.d_in, p.d_out) == (10, 1)
        assert len(p.train) == 20 and p.info["split"] == split and p.outputs == ("Rf",)
        train_rows = {tuple(r) for r in p.train.x}
        assert not train_rows & {tuple(r) for r in p.valid.x}  # no measurement both observed and validated
        assert str(table_file.parent) not in json.dumps(p.describe())  # the file's name only, not its path
        seen[split] = p
    c = seen["compounds"]
    assert not {tuple(r) for r in c.train.x[:, :5]} & {tuple(r) for r in c.valid.x[:, :5]}  # unseen compounds
    e = seen["eluents"]
    held = np.isclose(e.valid.x[:, tlc.EA], 1) | np.isclose(e.valid.x[:, tlc.MEOH], 1 / 11, atol=1e-3) | np.isclose(
        e.valid.x[:, tlc.ET2O], 1
    )
    assert held.all() and len(e.valid) == 30
    pool = e.observations(1).x  # another seed's draw: never a held-out eluent
    assert not (np.isclose(pool[:, tlc.EA], 1) | np.isclose(pool[:, tlc.ET2O], 1)).any()
    assert seen["interpolation"].identity(1) != kvq.problems.get(
        "tlc", data_file=table_file, n_data=20, n_valid=30, seed=3, wrong="monotone"
    ).identity(1)


def test_the_eluent_maps_of_the_rules():
    def point(h, ea, dcm, meoh, et2o):
        return jnp.asarray([[0.1, 0.2, 0.3, 0.4, 0.5, h, ea, dcm, meoh, et2o]], jnp.float32)

    stronger = tlc.stronger_eluent(point(1, 0, 0, 0, 0))
    np.testing.assert_allclose(stronger[0, 5:], [0, 0, 1, 0, 0])  # hexane -> DCM
    np.testing.assert_allclose(tlc.stronger_eluent(point(0, 0, 1, 0, 0))[0, 5:], [0, 1, 0, 0, 0])  # DCM -> EA
    np.testing.assert_allclose(tlc.stronger_eluent(point(0.5, 0, 0, 0, 0.5))[0, 5:], [0, 0, 0.5, 0, 0.5])
    np.testing.assert_allclose(stronger[0, :5], [0.1, 0.2, 0.3, 0.4, 0.5])  # the same compound
    for p, polar, apolar in ((point(0.5, 0.5, 0, 0, 0), tlc.EA, tlc.H), (point(0, 0, 0.95, 0.05, 0), tlc.MEOH, tlc.DCM),
                             (point(0.5, 0, 0, 0, 0.5), tlc.ET2O, tlc.H)):
        d = np.asarray(tlc.polar_direction(p))[0]
        assert d[polar] == 1 and d[apolar] == -1 and np.abs(d).sum() == 2
        assert float(tlc.polar_fraction(p + 0.01 * d)[0]) == pytest.approx(float(tlc.polar_fraction(p)[0]) + 0.01)
    assert not np.asarray(tlc.polar_direction(point(1, 0, 0, 0, 0))).any()  # pure hexane: no series to follow


def test_the_rules_hold_for_a_compliant_model_and_the_reversed_trend_does_not(table_file):
    problem = kvq.problems.get("tlc", data_file=table_file, n_data=10, n_valid=10)
    rules = dict(zip(problem.rule_names, problem.rules))

    def compliant(p):  # rises with the polar fraction of every series and with DCM over hexane
        return jnp.array([0.2 + 0.5 * p[tlc.EA] + 3.0 * p[tlc.MEOH] + 0.4 * p[tlc.ET2O] + 0.1 * p[tlc.DCM]])

    def value(rule, u):
        return float(rule.loss(u, jnp.asarray(rule.points, jnp.float32)))

    for name in ("bounds", "monotone", "ordering"):
        assert value(rules[name], compliant) == 0.0, name
    assert value(rules["ordering"], lambda p: compliant(p) - 0.5 * p[tlc.DCM]) > 1e-3  # DCM weaker than hexane
    assert value(rules["bounds"], lambda p: compliant(p) + 0.5) > 1e-3
    reversed_ = kvq.problems.get("tlc", data_file=table_file, n_data=10, n_valid=10, wrong="monotone")
    assert reversed_.info["wrong"]["rule"] == "monotone"
    assert value(reversed_.rules[1], compliant) > 1e-3
    assert "increasing=False" in reversed_.identity(1)["rule_functions"][1]


def test_missing_files_packages_and_columns_say_what_to_do(table_file, tmp_path, monkeypatch):
    with pytest.raises(kvq.KvqError, match="data_file=PATH"):
        kvq.problems.get("tlc")
    with pytest.raises(kvq.KvqError, match="no TLC data file"):
        kvq.problems.get("tlc", data_file=tmp_path / "absent.xlsx")
    text = tmp_path / "text.xlsx"
    text.write_text("not a workbook")
    with pytest.raises(kvq.KvqError, match="cannot read"):
        tlc.read_table(text)
    short = write_table(tmp_path / "short.xlsx", header=["COMPOUND_SMILES", "H", "EA", "Rf"])
    with pytest.raises(kvq.KvqError, match=r"lacks the column\(s\) \['DCM', 'MeOH', 'Et2O'\]"):
        tlc.read_table(short)
    with pytest.raises(kvq.KvqError, match="cannot parse the SMILES"):
        kvq.problems.get("tlc", data_file=write_table(tmp_path / "bad.xlsx", smiles=("c1ccccc1", "C1CC(")))
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if not installed: importing it raises ImportError
    tlc._read.cache_clear()
    with pytest.raises(kvq.KvqError, match=r'openpyxl is not installed: pip install "kvq\[tlc\]"'):
        kvq.problems.get("tlc", data_file=table_file)
    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(kvq.KvqError, match=r'rdkit is not installed: pip install "kvq\[tlc\]"'):
        kvq.problems.get("tlc", data_file=table_file)


@pytest.mark.slow
def test_kvq_scan_tlc_with_a_data_file(table_file, tmp_path):
    from kvq.cli import main

    out = tmp_path / "run"
    args = ["scan", "tlc", "--data-file", str(table_file), "--data", "16", "--max-batch", "64", "--seeds", "2", "--width", "8",
            "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps", "20", "--collocation", "16",
            "--out", str(out)]
    assert main(args) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["rule_names"] == ["bounds", "monotone", "ordering", "snyder"]
    assert np.isfinite(saved["mse_all_rules"]).all() and np.isfinite(saved["mse_no_rules"]).all()
    assert saved["problem"]["data"]["file"] == "synthetic.xlsx" and str(tmp_path) not in json.dumps(saved["problem"])


@pytest.mark.skipif(not REAL.is_file(), reason="the TLC data set is absent (set KVQ_TLC_DATA to its path)")
def test_the_real_table_and_the_chemistry_the_rules_state():
    table = tlc.read_table(REAL)
    assert len(table) == 4944 and len(set(table.smiles)) > 300
    comps = {tuple(np.round(e, 3)) for e in table.eluent}
    assert len(comps) == 17
    problem = kvq.problems.get("tlc", data_file=REAL, split="eluents", n_data=100)
    assert len(problem.valid) == 819  # EA, MeOH 9.1 % in DCM and Et2O: every row of those eluents
    by = {}
    for s, e, rf in zip(table.smiles, np.round(table.eluent, 3), table.rf):
        by.setdefault(s, {})[tuple(e)] = rf
    hexane, dcm, ea = (1.0, 0, 0, 0, 0), (0, 0, 1.0, 0, 0), (0, 1.0, 0, 0, 0)
    for weak, strong in ((hexane, dcm), (dcm, ea)):  # the ordering rule, measured (within 0.05 Rf)
        pairs = [(v[weak], v[strong]) for v in by.values() if weak in v and strong in v]
        assert len(pairs) > 100 and np.mean([b >= a - 0.05 for a, b in pairs]) > 0.97
