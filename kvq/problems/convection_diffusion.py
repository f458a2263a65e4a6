"""Convection-diffusion: u_t + u_x - 0.25 u_xx = 0 on x in [0, 2], t in [0, 1].

Initial condition u(x, 0) = sin(pi x) exp(-x), zero Dirichlet boundaries.  This module
holds the reference solver; the problem's rules and observations come with the problem
library (issue 3).
"""

from __future__ import annotations

import numpy as np

D = 0.25
X_RANGE = (0.0, 2.0)
T_RANGE = (0.0, 1.0)
_L = X_RANGE[1] - X_RANGE[0]


def initial_condition(x: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * x) * np.exp(-x)


def _sine_coefficients(k: np.ndarray) -> np.ndarray:
    """Sine-series coefficients of w0(x) = sin(pi x) exp(-3x) on [0, 2], in closed form.

    sin(pi x) sin(k pi x / 2) = [cos(a x) - cos(b x)] / 2 with a, b = (k/2 -+ 1) pi, and
    int_0^2 exp(-3x) cos(w x) dx = (3 - 3 exp(-6) (-1)^k) / (9 + w^2) for those w.
    """
    integral = lambda w: (3.0 - 3.0 * np.exp(-6.0) * (-1.0) ** k) / (9.0 + w**2)  # noqa: E731
    return (2.0 / _L) * 0.5 * (integral((k / 2 - 1) * np.pi) - integral((k / 2 + 1) * np.pi))


def solution(x: np.ndarray, t: np.ndarray, tol: float = 1e-16) -> np.ndarray:
    """Exact u(x, t) (float64, broadcast shapes).

    With u = exp(x / (2D) - t / (4D)) w = exp(2x - t) w the equation becomes the heat
    equation w_t = D w_xx with zero boundary values, solved by its sine series (exact in
    time).  Modes are kept while exp(-D (k pi / L)^2 t) > ``tol`` at the smallest t > 0;
    t = 0 returns the initial condition itself.
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    xs, ts = x.ravel(), t.ravel()
    out = initial_condition(xs)
    later = ts > 0
    if later.any():
        t_min = ts[later].min()
        n_modes = int(np.ceil(_L / np.pi * np.sqrt(-np.log(tol) / (D * t_min)))) + 1
        k = np.arange(1, n_modes + 1)
        b = _sine_coefficients(k)
        decay = np.exp(-D * (k * np.pi / _L) ** 2 * ts[later, None])
        w = (np.sin(k * np.pi * xs[later, None] / _L) * decay) @ b
        out[later] = np.exp(xs[later] / (2 * D) - ts[later] / (4 * D)) * w
    return out.reshape(x.shape)
