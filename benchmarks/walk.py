"""How far the ``problem`` argument travels through kvq's files in one ``kvq.scan``.

Every call of a kvq function that receives the problem object (as an argument, or as the
``problem`` field of the engine it is handed; the problem's own accessors such as
``problem.rule_names`` are not counted) is a *stop*.  A stop whose function lives in
another file than its caller's is a *move*; a move into a higher layer than the caller's
(docs/design.md §8: a lower layer calling back up, through a callback or a method object) is a
*climb*.  The tally is printed and written as JSON.

    python benchmarks/walk.py [--out benchmarks/results/walk.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import kvq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import machine, update_section  # noqa: E402

KVQ = Path(kvq.__file__).resolve().parent
LAYERS = ["errors", "core", "problems", "game", "engine", "methods", "store", "workflows", "present", "cli"]


_SEEN: dict = {}


def _where(code) -> tuple[str, int] | None:
    """(file relative to kvq/, layer) of a code object in kvq, else None (kept per code object:
    the profiler sees every call JAX makes while tracing)."""
    if code in _SEEN:
        return _SEEN[code]
    _SEEN[code] = found = _locate(code)
    return found


def _locate(code) -> tuple[str, int] | None:
    if not code.co_filename.startswith(str(KVQ)):
        return None
    try:
        rel = Path(code.co_filename).resolve().relative_to(KVQ)
    except ValueError:
        return None
    top = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    return str(rel), LAYERS.index(top) if top in LAYERS else -1


def walk(problem: kvq.Problem, config: kvq.ScanConfig) -> dict:
    stops: list[tuple[str, str, str]] = []

    def holds(frame) -> bool:
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if names and names[0] == "self" and frame.f_locals.get("self") is problem:
            return False  # the problem's own accessors (problem.rule_names, ...): not a move of the argument
        for name in names:
            value = frame.f_locals.get(name)
            if value is problem or getattr(value, "problem", None) is problem:
                return True
        return False

    def profile(frame, event, arg):
        if event != "call":
            return
        here = _where(frame.f_code)
        if here is None or not holds(frame):
            return
        caller = frame.f_back
        while caller is not None and _where(caller.f_code) is None:
            caller = caller.f_back
        there = None if caller is None else _where(caller.f_code)
        stops.append((there[0] if there else "<user>", here[0], frame.f_code.co_qualname))
        layers[len(stops) - 1] = (there[1] if there else len(LAYERS), here[1])

    layers: dict[int, tuple[int, int]] = {}
    sys.setprofile(profile)
    try:
        kvq.scan(problem, config)
    finally:
        sys.setprofile(None)
    moves = [(a, b, f) for a, b, f in stops if a != b]
    climbs = [(a, b, f) for k, (a, b, f) in enumerate(stops) if a != b and layers[k][1] > layers[k][0]]
    entered: dict[str, int] = {}
    for _, b, _ in moves:
        entered[b] = entered.get(b, 0) + 1
    return {
        "stops": len(stops),
        "moves": len(moves),
        "climbs": len(climbs),
        "files": sorted({b for _, b, _ in stops}),
        "entered": dict(sorted(entered.items(), key=lambda kv: -kv[1])),
        "path": [f"{a} -> {b}: {f}" for a, b, f in moves],
        "climbed": [f"{a} -> {b}: {f}" for a, b, f in climbs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "walk.json")
    args = parser.parse_args()
    problem = kvq.problems.get("burgers", n_data=16, n_valid=128)
    config = kvq.ScanConfig(width=8, depth=2, steps=20, check_every=10, pretrain_steps=20, seeds=1, collocation=32,
                            max_batch=64)
    result = walk(problem, config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"stops {result['stops']}, moves between files {result['moves']}, climbs {result['climbs']}")
    for line in result["path"]:
        print("  " + line)
    print(f"wrote {args.out}")
    where = machine()
    update_section(
        "walk",
        "## How far `problem` travels in one `kvq.scan`\n\n"
        f"`python benchmarks/walk.py` ({where['date']}): {result['stops']} stops, {result['moves']} moves between "
        f"files, {result['climbs']} climbs into a higher layer (definitions in the script's docstring).\n\n"
        + "\n".join(f"- {line}" for line in result["path"])
        + "\n",
    )


if __name__ == "__main__":
    main()
