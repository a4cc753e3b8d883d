"""Frequency loss against a DFT written out with explicit cos/sin matrices (not torch.fft).

The common FrequencyLoss code: criterion(|rfft2(x, norm='backward')|, |rfft2(y)|), without its
built-in 0.01. Tolerances: values within 1e-5 relative, gradients within 1e-4 relative
(max-norm); the loss runs in float32, the reference in float64.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from benchmark.losses import build_loss
from tests.loss_helpers import (
    GRAD_RTOL,
    VALUE_RTOL,
    darkened_pair,
    random_pair,
    rel_err,
    value_and_grad,
)

natural_pair = partial(darkened_pair, size=48, top=300, left=250, extra_width=6)
PAIRS = {"random": partial(random_pair, (2, 3, 24, 31)), "natural": natural_pair}


def dft_amplitude(img: torch.Tensor) -> torch.Tensor:
    """|sum_{h,w} x[h,w] exp(-2 pi i (u h / H + v w / W))|, v = 0..W//2, per image and channel."""
    h, w = img.shape[-2:]
    u = torch.arange(h, dtype=torch.float64)
    v = torch.arange(w // 2 + 1, dtype=torch.float64)
    ang_h = 2 * math.pi * torch.outer(u, u) / h  # (H, H)
    ang_w = 2 * math.pi * torch.outer(torch.arange(w, dtype=torch.float64), v) / w  # (W, W//2+1)
    out = torch.empty(*img.shape[:2], h, w // 2 + 1, dtype=torch.float64)
    for n in range(img.shape[0]):
        for c in range(img.shape[1]):
            x = img[n, c].double()
            # e^{-ia} e^{-ib} = cos(a+b) - i sin(a+b), split into real and imaginary parts
            ch, sh, cw, sw = ang_h.cos(), ang_h.sin(), ang_w.cos(), ang_w.sin()
            re = ch @ x @ cw - sh @ x @ sw
            im = -(sh @ x @ cw + ch @ x @ sw)
            out[n, c] = torch.sqrt(re * re + im * im)
    return out


def reference(pred: torch.Tensor, target: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    diff = dft_amplitude(pred) - dft_amplitude(target)
    return diff.abs().mean() if criterion == "l1" else (diff * diff).mean()


@pytest.mark.parametrize("criterion", ["l1", "l2"])
@pytest.mark.parametrize("kind", PAIRS)
def test_matches_dft_reference(kind: str, criterion: str) -> None:
    pred, target = PAIRS[kind]()
    loss = build_loss("frequency") if criterion == "l1" else build_loss("frequency", criterion="l2")
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = value_and_grad(
        lambda p, t: reference(p, t, criterion), pred.double(), target.double()
    )
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * ref_value.item()
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_no_built_in_weight_and_backward_norm() -> None:
    # constant images: only the DC amplitude differs, by |c1 - c2| * H * W (no normalisation)
    h, w = 16, 10
    pred, target = torch.full((1, 1, h, w), 0.75), torch.full((1, 1, h, w), 0.25)
    expected = 0.5 * h * w / (h * (w // 2 + 1))  # one non-zero entry among H x (W//2+1)
    assert build_loss("frequency")(pred, target).item() == pytest.approx(expected, rel=1e-6)
    expected_l2 = (0.5 * h * w) ** 2 / (h * (w // 2 + 1))
    l2 = build_loss("frequency", criterion="l2")(pred, target).item()
    assert l2 == pytest.approx(expected_l2, rel=1e-6)


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(6)
    pred = torch.rand(1, 2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 6, 7, generator=gen, dtype=torch.float64)
    for criterion in ("l1", "l2"):
        loss = build_loss("frequency", criterion=criterion)
        assert torch.autograd.gradcheck(lambda p, loss=loss: loss(p, target), (pred,))


def test_perfect_prediction_is_zero_with_finite_gradient() -> None:
    _, target = natural_pair()
    value, grad = value_and_grad(build_loss("frequency"), target, target)
    assert value.item() == 0.0
    assert torch.isfinite(grad).all()
    black = torch.zeros(1, 3, 8, 8)  # all amplitudes 0: |z| at z = 0
    value, grad = value_and_grad(build_loss("frequency", criterion="l2"), black, black)
    assert value.item() == 0.0 and torch.isfinite(grad).all()


def test_mismatched_shapes() -> None:
    with pytest.raises(ValueError) as info:
        build_loss("frequency")(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 33))
    assert str(info.value) == (
        "frequency: pred and target must have the same shape, got (1, 3, 32, 32) and "
        "(1, 3, 32, 33)"
    )


def test_bad_criterion() -> None:
    with pytest.raises(ValueError) as info:
        build_loss("frequency", criterion="L1")
    assert str(info.value) == "frequency: criterion must be 'l1' or 'l2', got 'L1'"
