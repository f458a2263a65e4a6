"""Shared tiny fixtures: every training test uses a few-second configuration.

Compilation dominates the tiny trainings of the tests, so the session (and every CLI or
notebook subprocess, which inherit the environment) uses JAX's persistent compilation
cache in ``.cache/jax`` at the top of the repository: identical programs compiled by
different tests are compiled once, and a second run of the suite reuses the first's.  XLA's
optimisation passes are switched off for the same reason (see below).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "jax"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))  # read when jax is imported
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' programs are tiny: compiling them takes far longer than running them, and XLA's
# optimisation passes are most of the compile time (measured: -24 % on the engine and estimator
# tests).  Every comparison in the suite is between runs compiled the same way.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# XLA's CPU compiler also spends most of a tiny program's compile time in its MLIR fusion
# emitters and in splitting every kernel for parallel code generation: the older emitters and
# one split compile the suite's programs in about half the time (same numbers; measured on a
# tiny Burgers scan: 3.7-4.8 s -> 1.5-2 s of compiling).
TEST_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kvq  # noqa: E402

REFERENCE_POINTS = Path(__file__).resolve().parent / "data" / "reference_points.npz"


def reference_points(name: str) -> np.ndarray:
    """400 points of one of the paper's reference files, shipped with the tests
    (``tests/data/make_reference_points.py`` made them): rows (x, t, u), or for
    ``equations_dataset[_out]`` rows (a, b, c, d, e, f)."""
    with np.load(REFERENCE_POINTS) as z:
        return z[name]


# max_batch: no memory-estimate compile; grouping "none": one subset program instead of one per on/off
# pattern of the PDE rule (compiling is most of a tiny scan's time: 1.9 s instead of 3.0 s cold).  The
# grouped programs are tested where grouping is the point (tests/test_engine.py) and by every CLI test.
# depth 1 (one hidden layer): the programs the suite compiles are smaller (suite -9 % on 2 cores); what
# is tested is the mechanics, which a one-layer network exercises as a deeper one does.
TINY = dict(width=8, depth=1, activation="tanh", learning_rate=1e-2, steps=40, check_every=20,
            pretrain_steps=40, seeds=2, collocation=48, max_batch=64, grouping="none")


@pytest.fixture(scope="session")
def tiny_config() -> kvq.ScanConfig:
    return kvq.ScanConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_burgers() -> kvq.Problem:
    return kvq.problems.get("burgers", n_data=16, n_valid=128)


@pytest.fixture(scope="session")
def tiny_scan(tiny_burgers, tiny_config) -> kvq.ScanResult:
    """The exact scan of ``tiny_burgers`` at ``tiny_config``, trained once for every test that needs it."""
    return kvq.scan(tiny_burgers, tiny_config)


@pytest.fixture(scope="session")
def grouped_config(tiny_config) -> kvq.ScanConfig:
    """``tiny_config`` with one program per on/off pattern of Burgers' PDE rule: two programs,
    two batches (the resume tests interrupt the second)."""
    return tiny_config.replace(grouping="auto")


@pytest.fixture(scope="session")
def grouped_scan(tiny_burgers, grouped_config) -> kvq.ScanResult:
    """The exact scan of ``tiny_burgers`` at ``grouped_config``."""
    return kvq.scan(tiny_burgers, grouped_config)
