"""Reference solvers of further paper problems: equation, initial/boundary conditions,
and agreement with the paper's files (skipped where they are absent)."""

from __future__ import annotations

import numpy as np
import pytest

from kvq.problems import convection_diffusion as cd
from kvq.problems import klein_gordon as kg

from conftest import refdata


def _fd(f, x, t, h=1e-4):
    u = f(x, t)
    u_t = (f(x, t + h) - f(x, t - h)) / (2 * h)
    u_tt = (f(x, t + h) - 2 * u + f(x, t - h)) / h**2
    u_x = (f(x + h, t) - f(x - h, t)) / (2 * h)
    u_xx = (f(x + h, t) - 2 * u + f(x - h, t)) / h**2
    return u, u_t, u_tt, u_x, u_xx


def test_convection_diffusion_satisfies_its_equation_and_conditions():
    rng = np.random.default_rng(0)
    x, t = rng.uniform(0.05, 1.95, 300), rng.uniform(0.05, 0.95, 300)
    u, u_t, _, u_x, u_xx = _fd(cd.solution, x, t)
    residual = u_t + u_x - cd.D * u_xx
    assert np.max(np.abs(residual)) < 1e-5 * (1 + np.max(np.abs(u_xx)))
    xb = np.linspace(0, 2, 41)
    np.testing.assert_allclose(cd.solution(xb, 0.0), np.sin(np.pi * xb) * np.exp(-xb), atol=1e-15)
    tb = np.linspace(0.001, 1, 30)
    np.testing.assert_allclose(cd.solution(0.0, tb), 0.0, atol=1e-10)
    np.testing.assert_allclose(cd.solution(2.0, tb), 0.0, atol=1e-10)
    # continuous at t -> 0+ (the series reaches the initial condition)
    np.testing.assert_allclose(cd.solution(xb, 1e-6), cd.solution(xb, 0.0), atol=1e-4)


def test_klein_gordon_satisfies_its_equation_and_conditions():
    rng = np.random.default_rng(1)
    x, t = rng.uniform(-0.95, 0.95, 300), rng.uniform(0.05, 2.95, 300)
    u, _, u_tt, _, u_xx = _fd(kg.solution, x, t, h=2e-4)
    residual = u_tt + kg.MASS2 * u - kg.C2 * u_xx
    scale = np.abs(u_tt) + kg.MASS2 * np.abs(u) + kg.C2 * np.abs(u_xx) + 1e-3
    assert np.max(np.abs(residual) / scale) < 1e-4  # finite differences: ~5e-6; a wrong mass term: ~0.1
    xb = np.linspace(-1, 1, 41)
    np.testing.assert_allclose(kg.solution(xb, 0.0), kg.initial_condition(xb), atol=1e-12)
    u_t0 = (kg.solution(xb, 1e-4) - kg.solution(xb, -1e-4)) / 2e-4
    np.testing.assert_allclose(u_t0, 0.0, atol=1e-9)
    tb = np.linspace(0, 3, 30)
    np.testing.assert_allclose(kg.solution(-1.0, tb), 0.0, atol=1e-12)
    np.testing.assert_allclose(kg.solution(1.0, tb), 0.0, atol=1e-12)


def test_convection_diffusion_matches_the_papers_file():
    sio = pytest.importorskip("scipy.io")
    data = sio.loadmat(refdata("CD.mat"))
    x, t, u_file = data["x"].ravel(), data["t"].ravel(), data["u"]  # stored [t, x]
    u = cd.solution(x[None, :], t[:, None])
    # the file is a second-order finite-difference solve, good to ~1e-4
    assert np.linalg.norm(u - u_file) / np.linalg.norm(u_file) <= 2e-4


def test_klein_gordon_matches_the_papers_file():
    sio = pytest.importorskip("scipy.io")
    data = sio.loadmat(refdata("KG.mat"))
    x, t, u_file = data["x"].ravel(), data["t"].ravel(), data["usol"]  # stored [x, t]
    u = kg.solution(x[:, None], t[None, :])
    assert np.linalg.norm(u - u_file) / np.linalg.norm(u_file) <= 1e-8
