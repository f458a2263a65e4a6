"""Every batch shared between several devices: four CPU devices forced in a subprocess
(``--xla_force_host_platform_device_count``, read when jax starts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kvq
from kvq.core.devices import layout
from kvq.errors import KvqError
from kvq.core.train import lockstep

SCRIPT = """
import json, sys
import jax, numpy as np, kvq
from kvq.cli import main
from kvq.workflows.tune import balance_weights
scan, folder = json.loads(sys.argv[1]), sys.argv[2]
out = {"devices": len(jax.local_devices())}
problem = kvq.problems.get("burgers", n_data=12, n_valid=128)
for d in (1, 3):  # 3: padded batches and a device without a seed (2: the two-process test below)
    out[d] = main([*scan, "--devices", str(d), "--out", f"{folder}-{d}"])
    config = kvq.ScanConfig(width=8, depth=1, activation="tanh", learning_rate=1e-2, steps=20, check_every=10,
                            pretrain_steps=20, seeds=2, collocation=32, devices=d)
    balanced = balance_weights(problem, config, update_every=config.check_every)  # Engine.per_seed
    out[f"balanced-{d}"] = [np.asarray(balanced.weights).tolist(), np.asarray(balanced.errors).tolist()]
print(json.dumps(out))
"""


def users_env(devices: int | None = None) -> dict[str, str]:
    """The environment as a user's: XLA's optimisations on and its default code generation
    (tests/conftest.py switches them off to compile faster; what XLA rewrites differently for
    one device and for several is what these tests are about), and ``devices`` forced CPU
    devices (else one per process)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_DISABLE_MOST_OPTIMIZATIONS"}
    test_only = ("xla_cpu_use_fusion_emitters", "xla_cpu_parallel_codegen_split_count", "device_count")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not any(t in f for t in test_only)]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory) -> tuple[dict, Path]:
    """One process with four forced CPU devices: the two-process test's scan on 1 and on 3 of
    them (folders ``<base>-1`` and ``<base>-3``) and weight balancing on 1 and 3."""
    base = tmp_path_factory.mktemp("devices") / "one-process"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(SCAN), str(base)],
                          capture_output=True, text=True, timeout=600, env=users_env(4),
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), base


def check_one_device_numbers(out: dict, base: Path) -> None:
    """Batches shared between devices give the one-device numbers (the fixture's scans)."""
    assert {k: out[k] for k in ("devices", "1", "3")} == {"devices": 4, "1": 0, "3": 0}
    one, three = (Path(f"{base}-{d}") for d in (1, 3))
    assert [json.loads((f / "results.json").read_text())["timing"]["devices"] for f in (one, three)] == [1, 3]
    assert np.isfinite(table(one)["errors"]).all()
    # three devices (padded batches, a device without a seed in the warm start) compute one
    # device's numbers bit for bit, compiled as users compile (kvq's Adam and the chunk loop:
    # docs/design.md §5), every check's errors too
    assert "errors_by_check" in table(one)
    assert_same_tables(one, three)
    # ... and so do the one-shot programs of a seed: weight balancing (Engine.per_seed, which the
    # Newton solves also use)
    for k in (0, 1):
        np.testing.assert_array_equal(np.array(out["balanced-3"][k]), np.array(out["balanced-1"][k]))


@pytest.mark.parametrize("devices, n, per, rows, chunk", [(1, 1, 1, 2, 1), (3, 7, 3, 4, 1), (4, 9, 3, 6, 2),
                                                           (2, 2, 1, 2, 1), (3, 2, 1, 4, 2)])
def test_a_layout_gives_every_device_its_items_in_order_then_padding(devices, n, per, rows, chunk):
    order, counts = layout(devices, n, per, rows, chunk)
    assert sorted(order.tolist()) == list(range(devices * rows))  # every host row once
    for k in range(devices):
        mine = order[k * rows : (k + 1) * rows]
        items = [i for i in range(k * per, min((k + 1) * per, n))]
        assert mine[: len(items)].tolist() == items and (mine[len(items) :] >= n).all()
        assert counts[k] == -(-len(items) // chunk)
    with pytest.raises(ValueError):
        layout(2, 5, 2, 2)


@pytest.mark.parametrize("width", [1, 2])
def test_lockstep_runs_the_counted_chunks_and_skips_the_padding(width):
    one = lambda x, y, c: {"out": x * c + jnp.sum(y), "mask": x > 0}  # noqa: E731
    x = jnp.arange(1.0, 9.0)
    y = jnp.arange(16.0).reshape(8, 2)
    batched = jax.jit(lockstep(one, width, 2, 1))
    got = batched(x, y, 3.0, jnp.asarray([6 // width], jnp.int32))
    want = jax.vmap(one, in_axes=(0, 0, None))(x, y, 3.0)
    np.testing.assert_array_equal(got["out"][:6], want["out"][:6])
    np.testing.assert_array_equal(got["mask"][:6], want["mask"][:6])
    assert (got["out"][6:] == 0).all() and not got["mask"][6:].any()  # padding: skipped


@pytest.mark.parametrize("width", [1, 2, 4])
def test_lockstep_skips_the_rows_that_are_not_live(width):
    """The live rows run first, in as few chunks as hold them, and get what plain lock-step
    gives them whichever rows share their chunk; a stopped row comes back unchanged (run only
    to fill a chunk's spare places, where ``one`` leaves it as it is)."""

    def one(state, y, c):  # a stopped row's state stays as it is, as a stopped training's does
        x, stopped = state
        return (jnp.where(stopped, x, x + 1.0), stopped), x * c + jnp.sum(y)

    x = jnp.arange(1.0, 9.0)
    stopped = jnp.asarray([0, 1, 1, 0, 1, 0, 1, 1], bool)
    y = jnp.arange(16.0).reshape(8, 2)
    batched = jax.jit(lockstep(one, width, 2, 1, live=lambda state: ~state[1]))
    (got_x, _), out = batched((x, stopped), y, 3.0, jnp.asarray([8 // width], jnp.int32))
    (want_x, _), want_out = jax.vmap(one, in_axes=(0, 0, None))((x, stopped), y, 3.0)
    live = np.flatnonzero(~stopped)
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(out[live], want_out[live])
    ran = -(-len(live) // width) * width  # chunks hold the live rows first, then fill up
    assert int(np.sum(out != 0)) == ran < 8


def test_more_devices_than_there_are_is_refused(tiny_burgers, tiny_config):
    with pytest.raises(KvqError, match="devices=64.*--devices"):
        kvq.scan(tiny_burgers, tiny_config.replace(devices=64), progress=False)


def test_devices_is_not_part_of_a_scans_identity(tiny_config):
    assert tiny_config.replace(devices=2).identity() == tiny_config.identity()
    with pytest.raises(KvqError, match="devices"):
        tiny_config.replace(devices=0)


RUNNER = Path(__file__).resolve().parent / "sigkill_run.py"
SCAN = ["scan", "burgers", "--data", "12", "--seeds", "2", "--width", "8", "--depth", "1", "--steps", "20", "--check-every", "10", "--pretrain-steps",
        "20", "--collocation", "32", "--max-batch", "8", "--vectorize", "2", "--no-plot"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(out: Path, when: str = "never") -> list[subprocess.CompletedProcess]:
    """``kvq scan`` as two processes (one CPU device each) joined on the loopback address;
    process 0 SIGKILLs itself at ``when`` (tests/sigkill_run.py), and then process 1,
    stranded without it, is stopped."""
    port = free_port()
    env = users_env()  # one CPU device each, compiled as the reference was
    procs = [
        subprocess.Popen([sys.executable, str(RUNNER), when if pid == 0 else "never", "--", *SCAN, "--out", str(out),
                          "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(pid)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for pid in (0, 1)
    ]
    done = []
    try:
        for k, p in enumerate(procs):
            if k == 1 and done[0].returncode != 0:
                p.kill()
            stdout, stderr = p.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def table(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "table.npz") as z:
        return {k: z[k] for k in z.files}


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = table(a), table(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


# one test uses the fixture (its jax start and compiles, about 15 s cold): pytest-xdist 3.8's
# --dist loadgroup did not keep two tests of one xdist_group on one worker, so each set it up
@pytest.mark.slow
def test_devices_and_two_processes_give_the_numbers_of_one_device_and_resume_after_a_kill(tmp_path, four_devices):
    runs, base = four_devices
    check_one_device_numbers(runs, base)

    out = tmp_path / "two-processes"
    killed = two_processes(out, when="train")
    assert killed[0].returncode == -signal.SIGKILL, killed[0].stderr[-3000:]
    assert not (out / "results.json").exists() and (out / ".checkpoint").exists()

    resumed = two_processes(out)
    assert [p.returncode for p in resumed] == [0, 0], resumed[0].stderr[-3000:] + resumed[1].stderr[-3000:]
    assert "resuming from the checkpoint" in resumed[0].stdout and "RI uniform" in resumed[0].stdout
    assert "kvq" not in resumed[1].stdout and "RI uniform" not in resumed[1].stdout  # process 0 prints and writes
    meta = json.loads((out / "results.json").read_text())
    assert meta["timing"]["devices"] == 2
    assert_same_tables(Path(f"{base}-1"), out)  # two processes: one device's numbers too
