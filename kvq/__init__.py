"""kvq: knowledge value quantification — how much each rule is worth to a neural network.

Train a model with every subset of its rules (all subsets and seeds batched in one
jit-compiled program), score each on held-out data, and turn the table into Rule
Importance (RI), Full Importance (FI) and rule interactions.
"""

from kvq import methods, optimizers, problems, sampling
from kvq.config import ScanConfig
from kvq.errors import KvqError
from kvq.importance import (
    DependenceProfile,
    Importance,
    dependence_profile,
    full_importance,
    interactions,
    rule_importance,
)
from kvq.pipeline import estimate, scan
from kvq.rules import Dataset, Problem, Rule
from kvq.sweeps import SweepResult, sweep
from kvq.table import SampledResult, ScanResult, ValueTable
from kvq.tune import TuneResult, tune_weights
from kvq.verdicts import assess, best_rule_set, eliminate, improper_rules, pair_relations, settledness

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
    "full_importance",
    "improper_rules",
    "interactions",
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
