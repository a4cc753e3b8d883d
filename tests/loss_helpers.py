"""Inputs and comparisons shared by the loss tests (``tests/test_losses_*.py``).

Each test file fixes its own crop, shape and seed (``functools.partial`` of these), so the
inputs of every test stay those written next to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from skimage import data

#: the loss runs in float32: values within 1e-5 relative, gradients within 1e-4 (max-norm)
VALUE_RTOL = 1e-5
GRAD_RTOL = 1e-4


def darkened_pair(
    size: int = 64, *, top: int, left: int, extra_width: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target): an astronaut crop and a darker, noisy version of it, float32 NCHW.

    The crop starts at ``(top, left)`` and is ``size`` high, ``size + extra_width`` wide.
    """
    crop = data.astronaut()[top : top + size, left : left + size + extra_width]
    target = (torch.from_numpy(crop).float() / 255).permute(2, 0, 1).unsqueeze(0)
    gen = torch.Generator().manual_seed(1)
    pred = (0.6 * target + 0.03 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    return pred, target


def random_pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target): two independent uniform batches."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)


def blended_random_pair(
    shape: tuple[int, ...] = (2, 3, 48, 48),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target): a uniform target and a pred halfway between it and independent noise."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=gen)
    return (0.5 * target + 0.5 * torch.rand(shape, generator=gen)), target


def rel_err(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """max |a - b| / max |b|, in float64."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / b.abs().max())


def value_and_grad(
    fn: Callable[..., torch.Tensor], pred: torch.Tensor, *rest: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(pred, *rest)`` (detached) and its gradient with respect to ``pred``."""
    pred = pred.clone().requires_grad_(True)
    value = fn(pred, *rest)
    (grad,) = torch.autograd.grad(value, pred)
    return value.detach(), grad


def assert_matches(loss: Callable, reference: Callable, pred: torch.Tensor,
                   target: torch.Tensor) -> None:
    """Value within 1e-5 relative, gradient w.r.t. pred within 1e-4 relative (float32)."""
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = value_and_grad(reference, pred, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4 * ref_grad.abs().max())


def record_cuda_figure(name: str, **figures: float | bool | str) -> None:
    """Append a CUDA test's measured figures to ``$LOSSBENCH_CUDA_FIGURES`` (JSON lines) when
    set: ``benchmarks/gpu_check.py`` reports them, so a passing test still shows its margin."""
    import json
    import os

    path = os.environ.get("LOSSBENCH_CUDA_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": name, **figures}) + "\n")
