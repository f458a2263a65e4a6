"""Prior knowledge for tabular models, as :class:`kvq.Rule` constructors.

Each constructor returns a rule whose loss is the mean over its collocation points of a
squared residual, the way every kvq rule is written: a pure function of the model as a
function of one input point, ``u(p: [d_in]) -> [d_out]``, ``vmap``-ped over points
``[P, d_in]`` drawn in the input domain (no targets needed).  The rules carry a residual, so
the second-order estimators use their Gauss-Newton products.

- :func:`bounds`: ``lower <= y <= upper`` (e.g. ``0 <= Rf <= 1``);
- :func:`monotone`: ``y`` does not fall (or rise) along an input direction;
- :func:`ordering`: ``y`` at a "stronger" input is at least ``y`` at the weaker one;
- :func:`linear_law`: a transformed output is linear in a (possibly log-) coordinate along
  an input direction (e.g. Snyder-Soczewinski: ``ln((1 - Rf)/Rf)`` linear in ``ln`` of the
  polar fraction), with :func:`retention_log` as that transform.

A constructor's parameters are part of its residual's name (``__qualname__``), so a saved scan
is reused only for the same parameters (kvq identifies a rule's code by that name).
"""

from kvq.knowledge.tabular import bounds, linear_law, monotone, ordering, retention_log

__all__ = ["bounds", "linear_law", "monotone", "ordering", "retention_log"]
