"""Write ``reference_points.npz``: a fixed sample of 400 points of each of the paper's
reference files, so the reference tests run without the files themselves.

  python tests/data/make_reference_points.py FOLDER   # FOLDER holds the paper's .mat/.npy files

Each entry holds the points (x, t) or inputs (a, b) and the file's values there, as the
file stores them (float64).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import io as sio

N = 400


def _grid(x: np.ndarray, t: np.ndarray, u_xt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[N, 3] rows (x, t, u) drawn from a [x, t] grid."""
    i, j = rng.integers(0, len(x), N), rng.integers(0, len(t), N)
    return np.stack([x[i], t[j], u_xt[i, j]], axis=1)


def main(folder: Path) -> None:
    rng = np.random.default_rng(0)
    out = {}
    d = sio.loadmat(folder / "burgers_shock.mat")
    out["burgers"] = _grid(d["x"].ravel(), d["t"].ravel(), d["usol"], rng)
    d = sio.loadmat(folder / "CD.mat")
    out["convection_diffusion"] = _grid(d["x"].ravel(), d["t"].ravel(), d["u"].T, rng)  # stored [t, x]
    d = sio.loadmat(folder / "KG.mat")
    out["klein_gordon"] = _grid(d["x"].ravel(), d["t"].ravel(), d["usol"], rng)
    d = sio.loadmat(folder / "KdV-PINN.mat")
    out["kdv"] = _grid(d["x"].ravel(), d["tt"].ravel(), d["uu"], rng)
    for name in ("dataset", "dataset_out"):
        rows = np.load(folder / f"{name}.npy")
        out[f"equations_{name}"] = rows[rng.choice(len(rows), N, replace=False)]
    np.savez_compressed(Path(__file__).with_name("reference_points.npz"), **out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
