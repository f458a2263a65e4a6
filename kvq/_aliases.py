"""Old module paths, kept for a release (docs/design.md §8): ``import kvq.io`` still gives the
module that now lives at ``kvq.store.results``, and so on.  New code uses the new paths."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

OLD_PATHS = {
    "kvq.coalitions": "kvq.core.coalitions",
    "kvq.derivatives": "kvq.core.derivatives",
    "kvq.nn": "kvq.core.nn",
    "kvq.curvature": "kvq.core.curvature",
    "kvq.optimizers": "kvq.core.optimizers",
    "kvq.config": "kvq.core.config",
    "kvq.train": "kvq.core.train",
    "kvq.models": "kvq.core.models",
    "kvq.devices": "kvq.core.devices",
    "kvq.text": "kvq.core.text",
    "kvq.rules": "kvq.problems.rules",
    "kvq.table": "kvq.game.table",
    "kvq.importance": "kvq.game.importance",
    "kvq.trend": "kvq.game.trend",
    "kvq.verdicts": "kvq.game.verdicts",
    "kvq.sampling": "kvq.game.sampling",
    "kvq.checkpoint": "kvq.engine.checkpoint",
    "kvq.estimators": "kvq.methods",
    "kvq.io": "kvq.store.results",
    "kvq.sweeps": "kvq.workflows.sweeps",
    "kvq.tune": "kvq.workflows.tune",
    "kvq.bench": "kvq.workflows.bench",
    "kvq.report": "kvq.present.report",
    "kvq.plots": "kvq.present.plots",
    "kvq.document": "kvq.present.document",
    "kvq.interop": "kvq.present.interop",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module at its new one (the same module object)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name in OLD_PATHS else None

    def create_module(self, spec: Any) -> ModuleType:
        return importlib.import_module(OLD_PATHS[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        return None


def install() -> None:
    """Make the old paths importable (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())


def attribute(name: str) -> ModuleType:
    """The module ``kvq.<name>`` names by its old path (AttributeError where none does)."""
    target = OLD_PATHS.get(f"kvq.{name}")
    if target is None:
        raise AttributeError(f"module 'kvq' has no attribute {name!r}")
    return importlib.import_module(target)
