"""Bring your own network: any model becomes a pure ``init(key) -> params`` and
``apply(params, x) -> y`` pair that the engine trains.

``model=`` (in :func:`kvq.scan`, :func:`kvq.estimate`, :func:`kvq.sweep`,
:func:`kvq.tune_weights`) accepts

- ``None``: kvq's MLP from the config (``width``, ``depth``, ``activation``), with its
  one-pass Taylor derivatives;
- a pure pair ``(init, apply)``: ``init(key, d_in, d_out) -> params`` (any pytree) and
  ``apply(params, x [d_in]) -> [d_out]`` for ONE point (kvq vmaps it over batches);
- a Flax Linen module: ``module.init(key, x [d_in])`` / ``module.apply(params, x)``;
- a Flax NNX module instance: split into its graph definition, its ``nnx.Param`` state
  (what is trained) and the rest (kept fixed).  An instance holds one set of initial
  weights, so every seed starts from them (the seeds still vary the observations); to
  vary the initialisation too, pass ``kvq.core.models.nnx_factory(make)`` with
  ``make(rngs) -> module``.

Derivatives of other models than kvq's MLP use nested ``jax.jvp`` (see
:func:`kvq.core.derivatives.partials`).  The model's description (kind, function names, number
of parameters and a hash of the seed-0 initial weights) enters the scan's fingerprint and
``results.json``; kvq cannot compare code, so rename a function or set
``Problem(version=...)`` when you change what a model computes but not its shapes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kvq.core.config import ScanConfig
from kvq.core.nn import Params, make_mlp
from kvq.core.text import function_name
from kvq.errors import KvqError


@dataclass(frozen=True, eq=False)
class Model:
    """A network as pure functions: ``init(key) -> params``; ``apply(params, x [..., d_in])
    -> [..., d_out]`` (one point or a batch); ``description``: JSON, what it is."""

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    description: dict[str, Any]

    @functools.cached_property
    def init_seeds(self) -> Callable[[Any], Params]:
        """``init_seeds(seeds [S] int) -> params`` with leading axis S (seed s: ``init(PRNGKey(s))``),
        one compiled call; made once per model, so scans that share a model share its program."""
        return jax.jit(jax.vmap(lambda s: self.init(jax.random.PRNGKey(s))))


@dataclass(frozen=True, eq=False)
class NnxFactory:
    """``make(rngs) -> nnx.Module``: an NNX model initialised anew for every seed."""

    make: Callable[[Any], Any]


def nnx_factory(make: Callable[[Any], Any]) -> NnxFactory:
    """Wrap ``make(rngs: nnx.Rngs) -> nnx.Module`` so every seed gets its own initial weights."""
    if not callable(make):
        raise KvqError("nnx_factory needs a function make(rngs) -> nnx.Module")
    return NnxFactory(make)


def _per_point(apply: Callable[[Params, jax.Array], jax.Array]) -> Callable[[Params, jax.Array], jax.Array]:
    """``apply`` for one point, extended to any leading batch axes by ``vmap``."""

    def batched(params: Params, x: jax.Array) -> jax.Array:
        if x.ndim == 1:
            return apply(params, x)
        flat = x.reshape(-1, x.shape[-1])
        out = jax.vmap(apply, in_axes=(None, 0))(params, flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return batched


def _nnx_model(make: Callable[[Any], Any]) -> tuple[Callable, Callable]:
    """Pure ``init``/``apply`` of the NNX module ``make(key)`` builds: its ``nnx.Param``
    state is the params; every other variable stays as built."""
    from flax import nnx

    parts: tuple[Any, ...] = nnx.split(make(0), nnx.Param, ...)
    graphdef, rest = parts[0], parts[2]

    def init(key: jax.Array) -> Params:
        return nnx.split(make(key), nnx.Param, ...)[1]

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params, rest)(x)

    return init, apply


def resolve(model: Any, config: ScanConfig, d_in: int, d_out: int) -> Model:
    """``model`` (see the module docstring) as a :class:`Model` for ``d_in`` inputs and
    ``d_out`` outputs; checks that it maps one point [d_in] to [d_out]."""
    if model is None:
        return _mlp(config.width, config.depth, d_in, d_out, config.activation)
    if isinstance(model, Model):
        return model
    from flax import linen, nnx

    if isinstance(model, tuple | list) and len(model) == 2 and all(callable(f) for f in model):
        user_init, user_apply = model
        init = lambda key: user_init(key, d_in, d_out)
        apply = _per_point(user_apply)
        described = {"kind": "pure", "init": function_name(user_init), "apply": function_name(user_apply)}
    elif isinstance(model, linen.Module):
        init = lambda key: model.init(key, jnp.zeros((d_in,), jnp.float32))
        module = model

        def linen_apply(params: Params, x: jax.Array) -> jax.Array:
            return module.apply(params, x)  # type: ignore[return-value]

        apply = _per_point(linen_apply)
        described = {"kind": "flax.linen", "module": function_name(type(model))}
    elif isinstance(model, NnxFactory):
        init, apply = _nnx_model(lambda key: model.make(nnx.Rngs(key)))
        apply = _per_point(apply)
        described = {"kind": "flax.nnx", "factory": function_name(model.make), "init": "per seed"}
    elif isinstance(model, nnx.Module):
        instance = model
        init, apply = _nnx_model(lambda key: instance)
        apply = _per_point(apply)
        described = {
            "kind": "flax.nnx",
            "module": function_name(type(model)),
            "init": "the instance's weights, every seed",
        }
    else:
        raise KvqError(
            f"model must be None (kvq's MLP), a pair (init, apply), a Flax Linen module or a Flax NNX "
            f"module; got {type(model).__name__}"
        )
    return Model(init, apply, {**described, **_fingerprint_weights(init, apply, d_in, d_out)})


@functools.lru_cache(maxsize=32)
def _mlp(width: int, depth: int, d_in: int, d_out: int, activation: str) -> Model:
    """kvq's MLP: one :class:`Model` per shape and activation in a process (pure functions, so
    every scan of that network reuses its compiled initialiser)."""
    init, apply = make_mlp(width, depth, d_in, d_out, activation)
    return Model(init, apply, {"kind": "kvq.MLP", "width": width, "depth": depth, "activation": activation})


def _fingerprint_weights(init: Callable, apply: Callable, d_in: int, d_out: int) -> dict[str, Any]:
    """Parameter count and a hash of the seed-0 initial weights; checks one point's output shape."""
    try:
        params = init(jax.random.PRNGKey(0))
        out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((d_in,), jnp.float32))
    except Exception as e:
        raise KvqError(
            f"the model failed on one point of {d_in} inputs: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        ) from e
    if getattr(out, "shape", None) != (d_out,):
        raise KvqError(
            f"the model maps one point [{d_in}] to shape {getattr(out, 'shape', None)}; the problem "
            f"needs [{d_out}] (one value per output)"
        )
    h = hashlib.sha256()
    leaves = jax.tree.leaves(params)
    for leaf in leaves:
        a = np.asarray(leaf)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return {"parameters": int(sum(np.size(a) for a in leaves)), "init_digest": h.hexdigest()[:16]}
