"""Linear Klein-Gordon: u_tt + 5u - 0.5 u_xx = 0 on x in [-1, 1], t in [0, 3].

u(x, 0) = exp(-20 x^2) (sin(pi x) + sin(2 pi x)), u_t(x, 0) = 0, zero Dirichlet
boundaries.  This module holds the reference solver; the problem's rules and
observations come with the problem library (issue 3).
"""

from __future__ import annotations

import numpy as np

MASS2 = 5.0
C2 = 0.5
X_RANGE = (-1.0, 1.0)
T_RANGE = (0.0, 3.0)


def initial_condition(x: np.ndarray) -> np.ndarray:
    return np.exp(-20.0 * x**2) * (np.sin(np.pi * x) + np.sin(2 * np.pi * x))


def solution(x: np.ndarray, t: np.ndarray, modes: int = 120, nodes: int = 400) -> np.ndarray:
    """Exact u(x, t) (float64, broadcast shapes) by the eigenfunction (sine) series.

    u = sum_k a_k sin(k pi (x + 1) / 2) cos(w_k t), w_k^2 = 5 + 0.5 (k pi / 2)^2, with a_k
    the sine coefficients of the initial condition (Gauss-Legendre quadrature, ``nodes``
    nodes).  The initial condition's spectrum decays like exp(-(k pi / 2)^2 / 80): 120
    modes are exact to machine precision.
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    k = np.arange(1, modes + 1)
    z, wq = np.polynomial.legendre.leggauss(nodes)
    basis = lambda s: np.sin(k * np.pi * (s[..., None] + 1.0) / 2.0)  # noqa: E731
    a = (wq * initial_condition(z)) @ basis(z)
    omega = np.sqrt(MASS2 + C2 * (k * np.pi / 2.0) ** 2)
    xs, ts = x.ravel(), t.ravel()
    return np.sum(a * basis(xs) * np.cos(omega * ts[:, None]), axis=1).reshape(x.shape)
