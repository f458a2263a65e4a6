"""Baseline: the paper's sequential, eager-PyTorch training of Burgers rule subsets.

This mirrors how the paper's published scripts train one rule subset at a time: eager PyTorch
(no ``torch.compile``, no tracing), float32, derivatives by nested ``torch.autograd.grad``
(``u_x``, ``u_t`` from the gradient of ``u`` with respect to the input with
``create_graph=True``, ``u_xx`` from the gradient of ``u_x``), Adam with learning rate 1e-3, and
the loss ``data MSE + sum of the mean squared residuals of the rules that are ON``. Rules that are
off are not computed at all. The network matches :mod:`kvq.nn`: ``depth`` hidden layers of
``width`` units, ``sin``/``tanh`` activation, Glorot-normal weights, zero biases, linear output.

Used by the JAX benchmark to compare throughput (seconds per subset-step) on the same machine.
Torch's default threading is left alone; ``__main__`` prints ``torch.get_num_threads()``.
On a small shared CPU the timings are very sensitive to other load (torch's intra-op threads wait
on each other, so one busy core can slow a step tenfold): time on a quiet machine, or repeat and
take the minimum.

Run: ``python benchmarks/paper_torch.py``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

NU = 0.01 / math.pi
X_RANGE = (-1.0, 1.0)
T_RANGE = (0.0, 1.0)
RULES = ("pde", "ic", "bc_left", "bc_right")
_ACTIVATIONS = {"sin": torch.sin, "tanh": torch.tanh}


def torch_version() -> str:
    """The installed PyTorch version string."""
    return str(torch.__version__)


def burgers_points(
    n_collocation: int, n_boundary: int = 200, n_data: int = 100, seed: int = 0
) -> dict[str, np.ndarray]:
    """Float32 point sets for the Burgers rules and a smooth stand-in data set.

    Keys: ``pde`` [n_collocation, 2] uniform in x∈[-1, 1], t∈[0, 1]; ``ic`` [n_boundary, 2] at
    t = 0 with x on a linspace; ``bc_left``/``bc_right`` [n_boundary, 2] at x = -1 / +1 with t on a
    linspace; ``data_x`` [n_data, 2] uniform; ``data_y`` [n_data, 1] = -sin(pi x) exp(-t)
    (a timing stand-in, not the Burgers solution). Columns are (x, t).
    """
    rng = np.random.default_rng(seed)
    lo = np.array([X_RANGE[0], T_RANGE[0]])
    hi = np.array([X_RANGE[1], T_RANGE[1]])
    pde = lo + (hi - lo) * rng.random((n_collocation, 2))
    xb = np.linspace(*X_RANGE, n_boundary)
    tb = np.linspace(*T_RANGE, n_boundary)
    data_x = lo + (hi - lo) * rng.random((n_data, 2))
    data_y = -np.sin(np.pi * data_x[:, :1]) * np.exp(-data_x[:, 1:2])
    out = {
        "pde": pde,
        "ic": np.stack([xb, np.zeros_like(xb)], axis=1),
        "bc_left": np.stack([np.full_like(tb, X_RANGE[0]), tb], axis=1),
        "bc_right": np.stack([np.full_like(tb, X_RANGE[1]), tb], axis=1),
        "data_x": data_x,
        "data_y": data_y,
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


class MLP(torch.nn.Module):
    """``d_in -> width x depth -> d_out``; Glorot-normal weights, zero biases, linear output."""

    def __init__(self, width: int, depth: int, d_in: int = 2, d_out: int = 1,
                 activation: str = "sin", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        dims = [d_in] + [width] * depth + [d_out]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, dtype=torch.float32) for a, b in zip(dims[:-1], dims[1:])
        )
        for layer in self.layers:
            torch.nn.init.xavier_normal_(layer.weight, generator=generator)
            torch.nn.init.zeros_(layer.bias)
        self.act = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def burgers_derivatives(model: torch.nn.Module, xt: torch.Tensor):
    """``(u, u_x, u_t, u_xx)`` at points ``xt`` [P, 2] by nested ``autograd.grad``; each [P, 1].

    ``xt`` must have ``requires_grad=True``.
    """
    u = model(xt)
    du = torch.autograd.grad(u, xt, grad_outputs=torch.ones_like(u), create_graph=True)[0]
    u_x, u_t = du[:, 0:1], du[:, 1:2]
    u_xx = torch.autograd.grad(u_x, xt, grad_outputs=torch.ones_like(u_x), create_graph=True)[0][:, 0:1]
    return u, u_x, u_t, u_xx


def _rule_losses(model: torch.nn.Module, pts: dict[str, torch.Tensor], mask) -> list[torch.Tensor]:
    """Mean squared residuals of the rules that are ON in ``mask`` (others are not computed)."""
    losses = []
    if mask[0]:
        u, u_x, u_t, u_xx = burgers_derivatives(model, pts["pde"])
        losses.append(torch.mean((u_t + u * u_x - NU * u_xx) ** 2))
    if mask[1]:
        xi = pts["ic"]
        losses.append(torch.mean((model(xi) + torch.sin(math.pi * xi[:, 0:1])) ** 2))
    if mask[2]:
        losses.append(torch.mean(model(pts["bc_left"]) ** 2))
    if mask[3]:
        losses.append(torch.mean(model(pts["bc_right"]) ** 2))
    return losses


def _total_loss(model: torch.nn.Module, pts: dict[str, torch.Tensor], mask) -> torch.Tensor:
    loss = torch.mean((model(pts["data_x"]) - pts["data_y"]) ** 2)
    for term in _rule_losses(model, pts, mask):
        loss = loss + term
    return loss


def _setup(mask, points: dict, width: int, depth: int, activation: str, seed: int):
    if len(mask) != len(RULES):
        raise ValueError(f"mask must have {len(RULES)} entries {RULES}; got {mask!r}")
    gen = torch.Generator().manual_seed(seed)
    model = MLP(width, depth, activation=activation, generator=gen)
    pts = {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in points.items()}
    pts["pde"] = pts["pde"].clone().requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, pts, opt


def _step(model, pts, opt, mask) -> float:
    opt.zero_grad()
    loss = _total_loss(model, pts, mask)
    loss.backward()
    opt.step()
    return loss.item()


def train_torch_subset(mask: tuple[int, int, int, int], points: dict, steps: int, width: int = 50,
                       depth: int = 5, activation: str = "sin", seed: int = 0) -> list[float]:
    """Train one subset for ``steps`` Adam steps; return the loss before each step (for checks)."""
    model, pts, opt = _setup(mask, points, width, depth, activation, seed)
    return [_step(model, pts, opt, mask) for _ in range(steps)]


def time_torch_subset_steps(mask: tuple[int, int, int, int], points: dict, steps: int, width: int = 50,
                            depth: int = 5, activation: str = "sin", warmup: int = 3,
                            seed: int = 0) -> float:
    """Seconds per optimizer step (zero_grad, loss, backward, step) for one rule subset.

    ``mask`` order is (pde, ic, bc_left, bc_right), 1 = rule on. Builds the model, runs
    ``warmup`` untimed steps, then times ``steps`` steps. The per-step ``loss.item()`` is left
    out of the timed loop so only the training work is timed (on CPU eager mode it would not
    change the result anyway).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    model, pts, opt = _setup(mask, points, width, depth, activation, seed)
    for _ in range(warmup):
        _step(model, pts, opt, mask)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = _total_loss(model, pts, mask)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    if not math.isfinite(float(loss.detach())):
        raise FloatingPointError("torch baseline loss is not finite")
    return elapsed / steps


def main(steps: int = 20) -> None:
    print(f"torch {torch_version()}, threads {torch.get_num_threads()}, eager float32, "
          f"MLP 5x50 sin, Adam 1e-3, {steps} timed steps")
    for n in (1000, 4000):
        points = burgers_points(n)
        for mask in ((1, 1, 1, 1), (0, 1, 1, 1)):
            sec = time_torch_subset_steps(mask, points, steps)
            print(f"  n_collocation={n:5d} mask={mask}: {sec * 1e3:8.2f} ms/step")


if __name__ == "__main__":
    main()
