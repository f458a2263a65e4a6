"""Thin-layer chromatography: a compound's retardation factor Rf under an eluent, from measurements.

The paper's chemistry application, on a table of measurements the user gives (``data_file``:
an ``.xlsx`` whose first sheet has the columns ``COMPOUND_SMILES``, ``H``, ``EA``, ``DCM``,
``MeOH``, ``Et2O`` and ``Rf``, as the public TLC data set of Xu et al.'s structure-polarity
study does); kvq ships no data.  Reading it needs ``pip install "kvq[tlc]"`` (openpyxl, RDKit).

Inputs (10): five RDKit descriptors of the compound (Crippen logP, topological polar surface
area, H-bond donors, H-bond acceptors, molecular weight), each standardized over the table's
distinct compounds, then the eluent's volume fractions of hexane (H), ethyl acetate (EA),
dichloromethane (DCM), methanol (MeOH) and diethyl ether (Et2O), unscaled (they sum to 1).
Output: Rf (dimensionless).  Five descriptors keep the input small: they are the polarity
descriptors a chemist reads first; compounds that share all five are one compound to the model.

Rules (in order), on points made of the table's compounds (their structures, never their Rf)
and eluents along the three measured binary series (EA in H, MeOH in DCM, Et2O in H):

- ``bounds``: ``0 <= Rf <= 1``;
- ``monotone``: Rf does not fall as the polar fraction of the binary eluent grows;
- ``ordering``: moving every solvent one step up the series hexane -> DCM -> EA (a stronger
  eluent) does not lower Rf: pure DCM is stronger than pure hexane, pure EA than pure DCM;
- ``snyder``: the Snyder-Soczewinski displacement model, ``ln((1 - Rf)/Rf)`` linear in
  ``ln`` of the polar fraction for each compound and series (only where 0.05 < Rf < 0.95).

Splits: ``interpolation`` (in distribution: random measurements for observations and
validation); ``compounds`` (out of distribution: validation on the measurements of 20 % of the
compounds, never observed); ``eluents`` (out of distribution: validation on the most polar
mixture of each series, EA 100 %, MeOH 9.1 % in DCM and Et2O 100 %, never observed).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kvq import knowledge
from kvq.errors import KvqError
from kvq.problems.rules import Problem, Rule
from kvq.problems.sampling import VALIDATION_SEED, check_options, grid_split
from kvq.problems.spec import Spec

SOLVENTS = ("H", "EA", "DCM", "MeOH", "Et2O")
DESCRIPTORS = ("logP", "TPSA", "HBD", "HBA", "MW")  # RDKit: MolLogP, TPSA, NumHDonors, NumHAcceptors, MolWt
_RDKIT = ("MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "MolWt")
COLUMNS = ("COMPOUND_SMILES", *SOLVENTS, "Rf")
D = len(DESCRIPTORS)
H, EA, DCM, MEOH, ET2O = range(D, D + len(SOLVENTS))  # input columns of the solvents
# the binary series: (apolar, polar, smallest measured polar fraction above 0, largest)
SERIES = ((H, EA, 0.0196, 1.0), (DCM, MEOH, 0.0099, 1.0 / 11.0), (H, ET2O, 1.0 / 3.0, 1.0))
HELD_OUT_ELUENTS = ((EA, 1.0), (MEOH, 1.0 / 11.0), (ET2O, 1.0))  # the eluents split's validation
HELD_OUT_COMPOUNDS = 0.2
RULE_POINTS = 2_000  # per rule (the presets use a fixed subsample of 500)
RULE_SEED = 20240202
INSTALL = 'pip install "kvq[tlc]"'

_NETWORK = {
    "width": 16,
    "depth": 2,
    "activation": "tanh",
    "learning_rate": 1e-2,
    "check_every": 500,
    "collocation": 128,
}
SPEC = Spec(
    name="tlc",
    equation="Rf of a compound under an eluent, measured (no closed form); needs data_file=PATH",
    inputs=(*DESCRIPTORS, *SOLVENTS),
    outputs=("Rf",),
    domain={s: (0.0, 1.0) for s in SOLVENTS},
    rules=(("bounds", "global"), ("monotone", "global"), ("ordering", "global"), ("snyder", "global")),
    splits={
        "interpolation": "observations and validation both random measurements (disjoint)",
        "compounds": "validation on the measurements of 20 % of the compounds, never observed",
        "eluents": "validation on the most polar eluent of each series (EA, MeOH 9.1 % in DCM, Et2O), never observed",
    },
    presets={  # a small network (10 inputs, a few hundred measurements); 128 points per rule
        "quick": {**_NETWORK, "steps": 4_000},
        "standard": {**_NETWORK, "steps": 16_000},
    },
    n_data=200,
    settles={  # measured by benchmarks/tlc.py (200 measurements, 3 seeds)
        "standard": "settled: every training stopped before the cap; about 2.5 min on 2 (shared) CPU cores",
    },
)
WRONG = {"monotone": "Rf falls as the polar fraction grows (the trend reversed)"}


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KvqError(
            f"the tlc problem needs openpyxl (to read the .xlsx) and rdkit (the compound descriptors); "
            f"{module} is not installed: {INSTALL}"
        ) from None


@dataclass(frozen=True, eq=False)
class Table:
    """Measurements: ``smiles`` [N] (str), ``eluent`` [N, 5] volume fractions (columns
    :data:`SOLVENTS`), ``rf`` [N] (dimensionless), the file's name and a hash of its bytes."""

    smiles: tuple[str, ...]
    eluent: np.ndarray
    rf: np.ndarray
    source: str = ""
    digest: str = ""

    def __len__(self) -> int:
        return len(self.smiles)


def _number(value: Any, row: int, column: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise KvqError(f"row {row}, column {column}: {value!r} is not a number; fix the table") from None


def read_table(path: str | Path) -> Table:
    """The measurements of the first sheet of the ``.xlsx`` at ``path`` (columns :data:`COLUMNS`,
    found by their header; other columns are ignored, as are rows without a SMILES)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise KvqError(
            f"no TLC data file at {str(file)!r}; give the path of the measurements' .xlsx "
            "(kvq.problems.get('tlc', data_file=PATH) or kvq scan tlc --data-file PATH)"
        )
    stat = file.stat()
    return _read(str(file.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> Table:  # cached: a sweep builds the problem per point
    openpyxl = _require("openpyxl")
    raw = Path(path).read_bytes()
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several types for a file that is not a workbook
        raise KvqError(f"cannot read {Path(path).name!r} as an .xlsx workbook ({type(e).__name__}: {e})") from e
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise KvqError(f"{Path(path).name!r} lacks the column(s) {missing}; its first sheet needs {list(COLUMNS)}")
        at = [header.index(c) for c in COLUMNS]
        smiles, values = [], []
        for k, row in enumerate(rows, start=2):
            cells = [row[i] if i < len(row) else None for i in at]
            if cells[0] is None or not str(cells[0]).strip():
                continue
            smiles.append(str(cells[0]).strip())
            values.append([_number(v, k, c) for v, c in zip(cells[1:], COLUMNS[1:])])
    finally:
        book.close()
    if not smiles:
        raise KvqError(f"{Path(path).name!r} holds no measurements")
    arr = np.asarray(values, np.float64)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return Table(tuple(smiles), arr[:, :-1], arr[:, -1], Path(path).name, digest)


@functools.lru_cache(maxsize=4096)
def _descriptor_row(smiles: str) -> tuple[float, ...]:
    chem = _require("rdkit.Chem")
    from rdkit.Chem import Descriptors  # imported by _require's check above

    mol = chem.MolFromSmiles(smiles)
    if mol is None:
        raise KvqError(f"RDKit cannot parse the SMILES {smiles!r}; fix or drop that row")
    return tuple(float(getattr(Descriptors, name)(mol)) for name in _RDKIT)


def descriptors(smiles: tuple[str, ...] | list[str]) -> np.ndarray:
    """The raw RDKit descriptors :data:`DESCRIPTORS` of each SMILES -> [n, 5] (float64)."""
    return np.asarray([_descriptor_row(s) for s in smiles], np.float64).reshape(len(smiles), D)


def features(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs [N, 10] (standardized descriptors, then eluent fractions) and the distinct
    compounds' standardized descriptors [C, 5]; the mean and std are the distinct compounds'."""
    raw = descriptors(table.smiles)
    distinct = np.unique(raw, axis=0)
    std = distinct.std(axis=0)
    mean, std = distinct.mean(axis=0), np.where(std > 0, std, 1.0)
    return np.concatenate([(raw - mean) / std, table.eluent], axis=1), (distinct - mean) / std


def compositions(n: int, rng: np.random.Generator, log: bool) -> np.ndarray:
    """``n`` eluents [n, 5] along the binary series (one drawn per row): the polar fraction
    uniform in (0, largest] (``log``: log-uniform over the measured range)."""
    out = np.zeros((n, len(SOLVENTS)))
    which = rng.integers(len(SERIES), size=n)
    for k, (apolar, polar, low, high) in enumerate(SERIES):
        rows = np.flatnonzero(which == k)
        if log:
            phi = np.exp(rng.uniform(np.log(low), np.log(high), rows.size))
        else:
            phi = np.maximum(rng.uniform(0.0, high, rows.size), 1e-4)
        out[rows, polar - D], out[rows, apolar - D] = phi, 1.0 - phi
    return out


def rule_points(compounds: np.ndarray, n: int, seed: int, log: bool = False) -> np.ndarray:
    """``n`` points [n, 10]: a compound of ``compounds`` [C, 5] and an eluent of
    :func:`compositions`, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.concatenate([compounds[rng.integers(len(compounds), size=n)], compositions(n, rng, log)], axis=1)


def polar_direction(points: jax.Array) -> jax.Array:
    """At each point [P, 10] the direction [P, 10] that adds polar solvent to its binary
    eluent (one unit of polar fraction per unit step; zero on a pure apolar eluent)."""
    eye = jnp.eye(points.shape[1], dtype=points.dtype)

    def on(col: int) -> jax.Array:
        return (points[:, col] > 0).astype(points.dtype)[:, None]

    return on(EA) * (eye[EA] - eye[H]) + on(MEOH) * (eye[MEOH] - eye[DCM]) + on(ET2O) * (eye[ET2O] - eye[H])


def polar_fraction(points: jax.Array) -> jax.Array:
    """The polar fraction [P] of each point's binary eluent (EA + MeOH + Et2O)."""
    return points[:, EA] + points[:, MEOH] + points[:, ET2O]


def stronger_eluent(points: jax.Array) -> jax.Array:
    """The same compounds [P, 10] with every solvent moved one step up hexane -> DCM -> EA:
    hexane becomes DCM and DCM becomes EA (MeOH and Et2O stay)."""
    return points.at[:, H].set(0.0).at[:, DCM].set(points[:, H]).at[:, EA].add(points[:, DCM])


def make_rules(compounds: np.ndarray, wrong: str | None = None, n: int = RULE_POINTS) -> tuple[Rule, ...]:
    """The four chemistry rules on points built from ``compounds`` [C, 5] (standardized
    descriptors); ``wrong="monotone"`` reverses the monotone trend (improper knowledge)."""
    if wrong is not None and wrong not in WRONG:
        raise KvqError(f"problem 'tlc' can make these rules wrong: {sorted(WRONG)}; got wrong={wrong!r}")
    pts = [rule_points(compounds, n, RULE_SEED + k, log=(k == 3)) for k in range(4)]
    return (
        knowledge.bounds("bounds", pts[0], 0.0, 1.0),
        knowledge.monotone("monotone", pts[1], polar_direction, increasing=wrong != "monotone"),
        knowledge.ordering("ordering", pts[2], stronger_eluent),
        knowledge.linear_law(
            "snyder", pts[3], polar_direction, transform=knowledge.retention_log, log_coordinate=polar_fraction
        ),
    )


def pools(x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Observation and validation pools (boolean [N]) of each split, from the inputs [N, 10]."""
    everywhere = np.ones(len(x), bool)
    _, group = np.unique(x[:, :D], axis=0, return_inverse=True)
    groups = int(group.max()) + 1
    held = np.random.default_rng(VALIDATION_SEED).permutation(groups)[: max(1, round(HELD_OUT_COMPOUNDS * groups))]
    unseen = np.isin(group.ravel(), held)
    polar = np.zeros(len(x), bool)
    for col, phi in HELD_OUT_ELUENTS:
        polar |= np.abs(x[:, col] - phi) < 1e-3
    return {"interpolation": (everywhere, everywhere), "compounds": (~unseen, unseen), "eluents": (~polar, polar)}


def make(
    data_file: str | Path | None = None,
    n_data: int = SPEC.n_data,
    noise: float = 0.0,
    split: str = "interpolation",
    seed: int = 0,
    n_valid: int = 1_000,
    noisy_validation: bool = False,
    wrong: str | None = None,
) -> Problem:
    """The TLC problem from the measurements in ``data_file`` (an ``.xlsx``, see the module's
    docstring): ``n_data`` measurements observed per seed (drawn from the split's pool),
    ``n_valid`` validation measurements (fixed; at most half the table in the interpolation
    split), optional added noise (% of std(Rf)).
    ``wrong="monotone"`` reverses the monotone rule (improper knowledge; the data stay true)."""
    if data_file is None:
        raise KvqError(
            "the tlc problem reads the measurements from a file you give: kvq.problems.get('tlc', "
            "data_file=PATH) or kvq scan tlc --data-file PATH (an .xlsx with the columns "
            f"{', '.join(COLUMNS)})"
        )
    n_data, noise, seed, n_valid = check_options(SPEC, n_data, noise, split, seed, n_valid)
    if wrong is not None and wrong not in WRONG:
        raise KvqError(f"problem 'tlc' can make these rules wrong: {sorted(WRONG)}; got wrong={wrong!r}")
    _require("rdkit")
    table = read_table(data_file)
    x, compounds = features(table)
    train_pool, valid_pool = pools(x)[split]
    if split == "interpolation":  # one pool for both: leave at least half of it to observe
        n_valid = min(n_valid, len(x) // 2)
    valid, sampler = grid_split(
        x,
        table.rf[:, None],
        train_pool,
        valid_pool,
        n_data=n_data,
        noise=noise,
        n_valid=n_valid,
        split=split,
        noisy_validation=noisy_validation,
    )
    info = {
        **SPEC.info(),
        "n_data": n_data,
        "noise_pct": noise,
        "split": split,
        "split_meaning": SPEC.splits[split],
        "noisy_validation": bool(noisy_validation),
        "n_valid": len(valid),
        "data": {
            "file": table.source,
            "sha256": table.digest,
            "rows": len(table),
            "distinct_compounds": len(compounds),
        },
        **({"wrong": {"rule": wrong, "law": WRONG[wrong]}} if wrong is not None else {}),
    }
    rules = make_rules(compounds, wrong)
    return Problem(SPEC.name, rules, sampler(seed), valid, sampler=sampler, seed=seed, info=info)
