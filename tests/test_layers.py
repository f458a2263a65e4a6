"""Data flows one way (docs/design.md §8): a module imports only from its own layer and the
layers below it.  Checked on the source, so a new upward import fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

KVQ = Path(__file__).resolve().parents[1] / "kvq"

# lowest first; the same order and names as the module map in docs/design.md §8
LAYERS = [
    ("foundations", {"errors", "coalitions", "derivatives", "nn", "curvature", "checkpoint", "text", "table", "devices",
                     "optimizers"}),
    ("objective and settings", {"train", "config", "newton"}),
    ("problems", {"rules", "problems"}),
    ("engine", {"models", "engine", "identity"}),
    ("importance", {"importance", "trend", "verdicts", "sampling", "summary"}),
    ("methods", {"methods"}),
    ("results on disk", {"io"}),
    ("pipeline", {"pipeline", "estimators"}),
    ("workflows", {"sweeps", "tune", "bench"}),
    ("output", {"report", "plots", "document", "cli", "interop"}),
]
PACKAGE = {"__init__", "__main__"}  # the public face
# conveniences on a result the user holds that import a layer above inside the method
# (docs/design.md §8): (module, function) -> modules it may import there
ON_REQUEST = {
    ("table", "table"): {"report"},
    ("table", "save"): {"io"},
    ("table", "load"): {"io"},
    ("table", "ri"): {"importance"},  # SampledResult.ri / .fi / .plain: the estimate of the table it is
    ("table", "fi"): {"importance"},
    ("table", "plain"): {"importance"},
    ("sweeps", "table"): {"report"},
    ("tune", "table"): {"report"},
}


def layer_of(module: str) -> int:
    for k, (_, names) in enumerate(LAYERS):
        if module in names:
            return k
    raise AssertionError(f"kvq.{module} is in no layer of docs/design.md §8; add it to the map")


def kvq_imports(tree: ast.AST):
    """(imported kvq module, enclosing function or None, line) for every import in ``tree``."""

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
            if layer_of(target) > own and target not in ON_REQUEST.get((name, function), set()):
                where = f"in {function}()" if function else "at import time"
                upward.append(f"{path.relative_to(KVQ.parent)}:{line} kvq.{name} ({LAYERS[own][0]}) imports "
                              f"kvq.{target} ({LAYERS[layer_of(target)][0]}) {where}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import():
    tree = ast.parse("def f():\n    from kvq.report import importance_table\nfrom kvq.io import save_result\n")
    found = sorted((t, f) for t, f, _ in kvq_imports(tree))
    assert found == [("io", None), ("report", "f")]
    assert layer_of("io") > layer_of("table") and layer_of("report") > layer_of("engine")
