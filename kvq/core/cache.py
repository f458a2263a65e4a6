"""kvq's persistent compilation cache: a second run of the same programs loads them from disk
instead of compiling them again (docs/design.md §5).

On by default when kvq is imported, in ``$KVQ_CACHE_DIR`` or else ``$XDG_CACHE_HOME/kvq/jax``
(``~/.cache/kvq/jax``); ``KVQ_CACHE=0`` turns it off.  A cache the user configured for JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is kept as it is.  JAX decides whether to use a
cache at its first compile, so a process that compiled something before importing kvq keeps
running without one.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

MIN_COMPILE_S = 0.2
"""Programs that compile faster than this are not written to the cache (JAX's default is 1 s,
which would leave out kvq's warm-start and validation programs)."""


def default_dir() -> Path:
    """Where kvq keeps compiled programs: ``$KVQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/kvq/jax``."""
    if os.environ.get("KVQ_CACHE_DIR"):
        return Path(os.environ["KVQ_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kvq" / "jax"


def enable() -> Path | None:
    """Turn the cache on (unless ``KVQ_CACHE=0``, or JAX already has one); returns the folder in
    use, or None when off."""
    if os.environ.get("KVQ_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    configured = getattr(jax.config, "jax_compilation_cache_dir", None)  # set by the user or JAX_COMPILATION_CACHE_DIR
    if configured:
        return Path(configured)
    path = default_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without a cache rather than fail
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return path
