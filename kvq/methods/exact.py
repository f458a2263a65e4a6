"""The exact scan: every subset of the rules trained for every seed (the paper's protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvq.core.coalitions import all_masks
from kvq.core.config import ScanConfig
from kvq.engine.batched import Engine, Progress
from kvq.methods.base import Outcome, require_every_subset, tabulate
from kvq.problems.rules import Problem


@dataclass(frozen=True)
class Exact:
    """Every subset of the rules trained for every seed: the paper's protocol."""

    name = "exact"
    groups = True  # the masks split by the expensive rules' on/off pattern (docs/design.md §5)
    continues = True  # a longer step cap continues its trainings (kvq.engine.identity.training_fingerprint)

    def record(self, config: ScanConfig) -> str:
        """The method as its result records it (part of the result's identity)."""
        return "exact"

    def training(self, config: ScanConfig) -> Any:
        """What besides the exact scan's identity decides the trainings (None: nothing)."""
        return None

    def check(self, problem: Problem, config: ScanConfig) -> None:
        require_every_subset(problem)

    def run(self, engine: Engine, progress: Progress) -> Outcome:
        trained = engine.train(all_masks(len(engine.problem.rules)), progress)
        return Outcome(tabulate(engine, trained), {}, {}, trained=trained)
