"""kvq turns on JAX's persistent compilation cache when it is imported (kvq/core/cache.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each case starts a Python that imports kvq (a few seconds)

PROBE = "import jax, kvq; print(kvq.COMPILE_CACHE); print(jax.config.jax_compilation_cache_dir)"


def _run(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "KVQ_", "XDG_CACHE"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("\n")[:2]


def test_the_cache_is_on_by_default_in_kvqs_folder_and_can_be_turned_off(tmp_path):
    home = tmp_path / "home"
    assert _run(tmp_path, HOME=str(home)) == [str(home / ".cache" / "kvq" / "jax")] * 2
    assert _run(tmp_path, HOME=str(home), KVQ_CACHE_DIR=str(tmp_path / "c")) == [str(tmp_path / "c")] * 2
    assert _run(tmp_path, HOME=str(home), KVQ_CACHE="0") == ["None", "None"]
    # a cache the user set for JAX is kept as it is
    assert _run(tmp_path, HOME=str(home), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "j")) == [str(tmp_path / "j")] * 2
