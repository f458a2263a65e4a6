"""Run ``kvq`` (its CLI, in this process) and SIGKILL the process at a chosen point.

    python tests/sigkill_run.py WHEN -- kvq-arguments...

WHEN is ``pretrain`` (after the first warm-start check), ``train`` (half-way through the
training), ``checkpoint`` (in the middle of writing the second training checkpoint
file), ``results`` (in the middle of writing a ``results.json``) or ``never``.  A kill
is a real ``SIGKILL``: no Python clean-up runs, exactly as when the machine loses power
or the out-of-memory killer strikes.  Checkpoints are saved after every check interval
(not every 60 s) so every kill point has saved work to resume from.
"""

from __future__ import annotations

import io
import os
import signal
import sys

import numpy as np

import kvq.checkpoint
import kvq.cli
import kvq.io


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(when: str) -> None:
    init = kvq.checkpoint.Checkpoint.__init__

    def every_check(self, directory, fingerprint, every_s=60.0, **options):
        init(self, directory, fingerprint, 0.0, **options)

    kvq.checkpoint.Checkpoint.__init__ = every_check

    if when in ("pretrain", "train"):
        show = kvq.cli.ProgressPrinter.__call__

        def progress(self, phase, done, total):
            if phase.endswith(when) and 0 < done and (when == "pretrain" or done >= total // 2):
                die()
            show(self, phase, done, total)

        kvq.cli.ProgressPrinter.__call__ = progress
    elif when == "checkpoint":
        savez, calls = np.savez, []

        def half_written(f, *args, **kwargs):
            calls.append(1)
            if len(calls) < 2:
                return savez(f, *args, **kwargs)
            buf = io.BytesIO()
            savez(buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            die()

        kvq.checkpoint.np.savez = half_written
    elif when == "results":
        write_atomic = kvq.io.write_atomic

        def torn(path, write):
            if path.name != "results.json":
                return write_atomic(path, write)
            tmp = path.with_name(path.name + ".tmp")
            write(tmp)
            data = tmp.read_bytes()
            tmp.write_bytes(data[: len(data) // 2])
            die()

        kvq.io.write_atomic = torn
    elif when != "never":
        raise SystemExit(f"unknown kill point {when!r}")


if __name__ == "__main__":
    when, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: sigkill_run.py WHEN -- kvq-arguments..."
    arm(when)
    sys.exit(kvq.cli.main(args))
