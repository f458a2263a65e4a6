"""Data flows one way (docs/design.md §8): a module imports only from its own layer and the
layers below it.  Checked on the source, so a new upward import fails here, not in review.
A layer is a subpackage of kvq (or a module at its top)."""

from __future__ import annotations

import ast
from pathlib import Path

KVQ = Path(__file__).resolve().parents[1] / "kvq"

# lowest first; the same order and names as the module map in docs/design.md §8
LAYERS = [
    ("foundations", {"errors", "core"}),
    ("problems", {"problems", "knowledge"}),  # knowledge builds Rules; the tlc problem uses it
    ("game", {"game"}),
    ("engine", {"engine"}),
    ("methods", {"methods"}),
    ("store", {"store"}),
    ("workflows", {"workflows"}),
    ("present", {"present"}),
    ("command line", {"cli"}),
]
PACKAGE = {"__init__", "__main__", "_aliases"}  # the public face and the old module paths


def layer_of(module: str) -> int:
    for k, (_, names) in enumerate(LAYERS):
        if module in names:
            return k
    raise AssertionError(f"kvq.{module} is in no layer of docs/design.md §8; add it to the map")


def kvq_imports(tree: ast.AST):
    """(imported kvq layer, enclosing function or None, line) for every import in ``tree``."""

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                parts = child.module.split(".")
                if parts[0] == "kvq":
                    names = [parts[1]] if len(parts) > 1 else [a.name for a in child.names]
                    for name in names:
                        yield name, function, child.lineno
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    parts = alias.name.split(".")
                    if parts[0] == "kvq" and len(parts) > 1:
                        yield parts[1], function, child.lineno
            yield from visit(child, inner)

    yield from visit(tree, None)


def modules():
    for path in sorted(KVQ.rglob("*.py")):
        rel = path.relative_to(KVQ)
        name = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if name not in PACKAGE:
            yield name, path


def test_every_module_imports_only_its_layer_and_below():
    upward = []
    for name, path in modules():
        own = layer_of(name)
        for target, function, line in kvq_imports(ast.parse(path.read_text())):
            if target in PACKAGE or target == name:
                continue
            if layer_of(target) > own:
                where = f"in {function}()" if function else "at import time"
                upward.append(f"{path.relative_to(KVQ.parent)}:{line} kvq.{name} ({LAYERS[own][0]}) imports "
                              f"kvq.{target} ({LAYERS[layer_of(target)][0]}) {where}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import():
    tree = ast.parse("def f():\n    from kvq.present.report import importance_table\nfrom kvq.store import results\n")
    found = sorted((t, f) for t, f, _ in kvq_imports(tree))
    assert found == [("present", "f"), ("store", None)]
    assert layer_of("store") > layer_of("game") and layer_of("present") > layer_of("engine")


def test_the_old_module_paths_still_import():
    import importlib

    import kvq
    from kvq._aliases import OLD_PATHS

    for old, new in OLD_PATHS.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    assert kvq.sampling.SampledResult is kvq.SampledResult and kvq.optimizers.adam
