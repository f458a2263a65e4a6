"""What every built-in problem declares about itself, before anything is computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spec:
    """A built-in problem's fixed description.

    - ``rules``: ``(name, kind)`` in the problem's order (kind ``"global"``/``"local"``);
    - ``splits``: split name -> what it means (observations vs validation points);
    - ``presets``: preset name -> :class:`kvq.ScanConfig` fields that differ from the
      generic preset of that name (the paper's network for this problem, a quick budget);
    - ``n_data``: the paper's default number of observations;
    - ``settles``: preset name -> what ``benchmarks/settle.py`` measured about it on a
      2-core CPU (wall time, whether the numbers settle), shown by ``kvq problems``.
    """

    name: str
    equation: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    domain: Mapping[str, tuple[float, float]]
    rules: tuple[tuple[str, str], ...]
    splits: Mapping[str, str]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_data: int = 100
    settles: Mapping[str, str] = field(default_factory=dict)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.rules)

    def info(self) -> dict[str, Any]:
        """JSON-ready fields every problem instance carries in ``Problem.info``."""
        return {
            "equation": self.equation,
            "domain": {k: list(v) for k, v in self.domain.items()},
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "splits": list(self.splits),
        }
