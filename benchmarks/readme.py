"""The README's measured numbers, measured: every figure in a ``<!-- BEGIN readme:KEY -->``
block of README.md is written here, never by hand.

  python benchmarks/readme.py            # the demo scan and the custom-problem example
  python benchmarks/readme.py --suite    # ... and the test suite, cold (no compilation cache)

- ``demo``: ``kvq scan burgers --preset quick`` (the ``make demo`` scan) in a fresh process
  without a compilation cache: its wall time and the table it prints;
- ``custom``: the Python block under "Your own problem" in README.md, run as written in a
  fresh process: wall time and every rule's RI;
- ``suite`` (with ``--suite``): in a fresh clone of HEAD, the install, ``make test`` (empty
  compilation cache), then ``make test-fast`` with the cache that run filled.

Writes benchmarks/results/readme-{platform}.json and the README blocks.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import machine, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def run(cmd: list[str], env: dict[str, str] | None = None, replace: bool = False) -> tuple[float, str]:
    """Wall seconds and stdout of ``cmd`` (run from the repository root; fails loudly);
    ``env`` is added to this process's environment, or with ``replace`` is the whole one."""
    t0 = time.perf_counter()
    environment = dict(env or {}) if replace else {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def demo() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, out = run([sys.executable, "-m", "kvq", "scan", "burgers", "--preset", "quick",
                         "--out", f"{tmp}/demo", "--overwrite"], {"JAX_ENABLE_COMPILATION_CACHE": "false"})
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("rule "))
    last = next(i for i, line in enumerate(lines) if line.startswith("time: "))
    table = [line.replace(f"{tmp}/demo", "results/demo") for line in lines[first:last]]
    while table and not table[-1].strip():
        table.pop()
    return {"wall_s": wall, "table": table}


def custom() -> dict:
    text = README.read_text()
    section = text[text.index("### Your own problem"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    probe = code + ("\nri = kvq.rule_importance(result)\n"
                    "print('RI ' + ' '.join(f'{n}={m:+.2f}' for n, m in zip(ri.names, ri.mean)))\n")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(probe)
    try:
        wall, out = run([sys.executable, f.name], {"JAX_ENABLE_COMPILATION_CACHE": "false"})
    finally:
        os.unlink(f.name)
    pairs = re.search(r"^RI (.*)$", out, re.M).group(1).split()
    return {"wall_s": wall, "ri": {p.split("=")[0]: float(p.split("=")[1]) for p in pairs}}


def suite() -> dict:
    """In a fresh clone of HEAD: the install, ``make test`` with an empty compilation cache,
    then ``make test-fast`` with the cache that run filled (what CI and a new developer see)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "kvq"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "VIRTUAL_ENV"))}
        out["install_s"], _ = run(["make", "-C", str(clone), ".venv/.installed-test"], env=env, replace=True)
        out["all_cold_s"], log = run(["make", "-C", str(clone), "test"], env=env, replace=True)
        out["all_summary"] = passed_line(log)
        out["fast_warm_s"], log = run(["make", "-C", str(clone), "test-fast"], env=env, replace=True)
        out["fast_summary"] = passed_line(log)
    return out


def passed_line(log: str) -> str:
    """pytest's closing line (``N passed in S s``) from a ``make`` log."""
    lines = [line.strip("= ") for line in log.splitlines() if " passed" in line]
    return lines[-1] if lines else "all passed"


def put(text: str, key: str, block: str) -> str:
    begin, end = f"<!-- BEGIN readme:{key} -->", f"<!-- END readme:{key} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{block.rstrip()}\n{end}", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", action="store_true", help="also time the test suite (about 10 minutes on 2 cores)")
    args = ap.parse_args()
    env = machine()
    where = f"{env['cores']}-core {env['cpu']}, {env['accelerator']}, {env['date']}"
    payload = {"machine": env, "demo": demo(), "custom": custom()}
    text = README.read_text()
    d = payload["demo"]
    text = put(text, "demo", f"The demo scan took {d['wall_s']:.0f} s, compilation included, in a fresh process "
               f"({where}; `python benchmarks/readme.py`). It prints\n\n```\n" + "\n".join(d["table"]) + "\n```")
    c = payload["custom"]
    ri = ", ".join(f"{name} {value:+.2f}".replace("-", "−") for name, value in c["ri"].items())
    text = put(text, "custom", f"This took {c['wall_s']:.0f} s in a fresh process ({where}; "
               f"`python benchmarks/readme.py`). RI (uniform): {ri}.")
    if args.suite:
        payload["suite"] = s = suite()
        text = put(text, "suite", f"Measured by `python benchmarks/readme.py --suite` ({where}) in a fresh clone: "
                   f"the install {s['install_s']:.0f} s; `make test` (empty compilation cache) {s['all_cold_s']:.0f} s, "
                   f"{s['all_summary']}; then `make test-fast` (warm cache) {s['fast_warm_s']:.0f} s, "
                   f"{s['fast_summary']}.")
    README.write_text(text)
    write_json(f"readme-{env['platform']}", payload)
    print(text[text.index("<!-- BEGIN readme:demo"):text.index("<!-- END readme:demo")])


if __name__ == "__main__":
    main()
