"""Every batch shared between several devices: four CPU devices forced in a subprocess
(``--xla_force_host_platform_device_count``, read when jax starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kvq
from kvq.errors import KvqError

SCRIPT = """
import json, sys
import jax, numpy as np, kvq
tiny = json.loads(sys.argv[1])
problem = kvq.problems.get("burgers", n_data=16, n_valid=128)
out = {"devices": len(jax.local_devices())}
for d in (1, 2, 3, 4):
    result = kvq.scan(problem, kvq.ScanConfig(**tiny, devices=d), progress=False)
    out[d] = {"errors": np.asarray(result.errors).tolist(), "by_check": np.asarray(result.errors_by_check).tolist(),
              "used": result.timing["devices"]}
print(json.dumps(out))
"""


def forced_devices_env(n: int) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
    return env


@pytest.mark.slow
def test_batches_shared_between_devices_give_the_one_device_numbers(tiny_config):
    # vectorize fixed: every device then trains chunks of the same width as one device does
    tiny = {**{k: getattr(tiny_config, k) for k in ("width", "depth", "activation", "learning_rate", "steps",
                                                    "check_every", "pretrain_steps", "seeds", "collocation")},
            "max_batch": 8, "vectorize": 2}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(tiny)], capture_output=True, text=True,
                          timeout=600, env=forced_devices_env(4), cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert [out[str(d)]["used"] for d in (1, 2, 3, 4)] == [1, 2, 3, 4]
    one = np.array(out["1"]["errors"], float)
    assert np.isfinite(one).all()
    for d in ("2", "3", "4"):
        # every device count computes the same numbers bit for bit (3 devices: padded batches) ...
        np.testing.assert_array_equal(np.array(out[d]["errors"], float), np.array(out["2"]["errors"], float))
        np.testing.assert_array_equal(np.array(out[d]["by_check"], float), np.array(out["2"]["by_check"], float))
        # ... and the one-device numbers up to the last float32 bits (XLA compiles the
        # partitioned program with other simplifications; docs/design.md §5)
        np.testing.assert_allclose(np.array(out[d]["errors"], float), one, rtol=1e-5, atol=0)


def test_more_devices_than_there_are_is_refused(tiny_burgers, tiny_config):
    with pytest.raises(KvqError, match="devices=64.*--devices"):
        kvq.scan(tiny_burgers, tiny_config.replace(devices=64), progress=False)


def test_devices_is_not_part_of_a_scans_identity(tiny_config):
    assert tiny_config.replace(devices=2).identity() == tiny_config.identity()
    with pytest.raises(KvqError, match="devices"):
        tiny_config.replace(devices=0)
