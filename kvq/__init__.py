"""kvq: knowledge value quantification — how much each rule is worth to a neural network.

Train a model with every subset of its rules (all subsets and seeds batched in one
jit-compiled program), score each on held-out data, and turn the table into Rule
Importance (RI), Full Importance (FI) and rule interactions.
"""

from kvq.core import cache as _cache

COMPILE_CACHE = _cache.enable()  # before anything compiles: a second run loads its programs (KVQ_CACHE=0: off)

import kvq.present.report  # registers result.table() and the sweep/tuning tables
import kvq.store.results  # noqa: F401  registers result.save() and ScanResult.load()
from kvq import _aliases, knowledge, methods, problems
from kvq.core import optimizers
from kvq.core.config import ScanConfig
from kvq.errors import KvqError
from kvq.game import sampling
from kvq.game.games import estimate_game
from kvq.game.importance import (
    DependenceProfile,
    Importance,
    dependence_profile,
    full_importance,
    interactions,
    rule_importance,
)
from kvq.game.table import SampledResult, ScanResult, ValueTable
from kvq.game.verdicts import assess, best_rule_set, eliminate, improper_rules, pair_relations, settledness
from kvq.problems.rules import Dataset, Problem, Rule
from kvq.workflows.pipeline import estimate, scan
from kvq.workflows.sweeps import SweepResult, sweep
from kvq.workflows.tune import TuneResult, tune_weights

_aliases.install()  # kvq.store.results, kvq.present.report, ... keep importing for a release


def __getattr__(name: str) -> object:
    """``kvq.game.importance``, ``kvq.present.report``, ...: the old module paths as attributes, for a release."""
    return _aliases.attribute(name)


__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DependenceProfile",
    "Importance",
    "KvqError",
    "Problem",
    "Rule",
    "SampledResult",
    "ScanConfig",
    "ScanResult",
    "SweepResult",
    "TuneResult",
    "ValueTable",
    "assess",
    "best_rule_set",
    "dependence_profile",
    "eliminate",
    "estimate",
    "estimate_game",
    "full_importance",
    "improper_rules",
    "interactions",
    "knowledge",
    "methods",
    "optimizers",
    "pair_relations",
    "problems",
    "rule_importance",
    "sampling",
    "scan",
    "settledness",
    "sweep",
    "tune_weights",
]
