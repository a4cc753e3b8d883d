"""FLW-Net losses (benchmark/losses/flw.py) against a literal rendering of FLW-Net's code.

The references below follow the FLW code line by line (``** 0.5``, unclamped ``torch.acos``,
``x.min(2)[0].min(3)[0]`` shifts, one 'same'-padded ``F.conv2d`` per channel and direction),
called as the FLW training script calls them: ``L(enhanced, ground_truth)``.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from benchmark.losses import build_loss
from benchmark.losses.flw import (
    FLWBrightnessLoss,
    FLWColorLoss,
    FLWStructureLoss,
    bounded_acos,
    difference_maps,
)
from tests.loss_helpers import assert_matches, random_pair, value_and_grad

NAMES = ["flw_color", "flw_brightness", "flw_structure"]


# ----------------------------------------------------------------------------- references
def _cos_acos(product, x_abs, y_abs):
    ratio = product / (x_abs * y_abs + 0.00001)
    return (1 - ratio).mean() + torch.mean(torch.acos(ratio))


def ref_color(x, y):
    product = (x * y).mean(1, keepdim=True)
    x_abs = (x**2).mean(1, keepdim=True) ** 0.5
    y_abs = (y**2).mean(1, keepdim=True) ** 0.5
    return _cos_acos(product, x_abs, y_abs)


def ref_patch(x, y):
    min_x = torch.abs(x.min(2, keepdim=True)[0].min(3, keepdim=True)[0]).detach()
    min_y = torch.abs(y.min(2, keepdim=True)[0].min(3, keepdim=True)[0]).detach()
    x = x - min_x
    y = y - min_y
    product = (x * y).mean([2, 3], keepdim=True)
    x_abs = (x**2).mean([2, 3], keepdim=True) ** 0.5
    y_abs = (y**2).mean([2, 3], keepdim=True) ** 0.5
    loss1 = _cos_acos(product, x_abs, y_abs)
    product_combine = torch.mean(product, 1, keepdim=True)
    x_abs2 = torch.mean(x_abs**2, 1, keepdim=True) ** 0.5
    y_abs2 = torch.mean(y_abs**2, 1, keepdim=True) ** 0.5
    loss2 = torch.mean(1 - product_combine / (x_abs2 * y_abs2 + 0.00001)) + torch.mean(
        torch.acos(product_combine / (x_abs2 * y_abs2 + 0.00001))
    )
    return loss1 + loss2


K_RIGHT = torch.tensor([[0.0, 0, 0], [0, 1, -1], [0, 0, 0]]).view(1, 1, 3, 3)
K_DOWN = torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, -1, 0]]).view(1, 1, 3, 3)


def ref_maps(x):
    right, down = [], []
    for c in range(3):
        right.append(torch.abs(F.conv2d(x[:, c : c + 1], K_RIGHT.to(x.dtype), padding="same")))
        down.append(torch.abs(F.conv2d(x[:, c : c + 1], K_DOWN.to(x.dtype), padding="same")))
    return torch.cat(right + down, 1)  # R1, G1, B1, R2, G2, B2


def ref_structure(x, y):
    return ref_patch(ref_maps(x), ref_maps(y))


REFERENCES = {"flw_color": ref_color, "flw_brightness": ref_patch, "flw_structure": ref_structure}


# ----------------------------------------------------------------------------- inputs
def natural_pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    crops = [
        data.astronaut()[200 : 200 + size, 200 : 200 + size],
        data.coffee()[100 : 100 + size, 250 : 250 + size],
    ]
    target = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    gen = torch.Generator().manual_seed(0)
    tint = torch.tensor([1.0, 0.85, 0.7]).view(1, 3, 1, 1)  # a colour cast
    pred = target.pow(1.4) * tint + 0.03 * torch.randn(target.shape, generator=gen)
    return pred.clamp(0.002, 1), target  # no exactly black pixel: see test_zero_norm_*


PAIRS = {"random": partial(random_pair, (2, 3, 24, 20), seed=1), "natural": natural_pair}


# ----------------------------------------------------------------------------- equality
@pytest.mark.parametrize("inputs", PAIRS)
@pytest.mark.parametrize("name", NAMES)
def test_equals_source_reference(name, inputs):
    pred, target = PAIRS[inputs]()
    assert_matches(build_loss(name), REFERENCES[name], pred, target)


def test_difference_maps_equal_same_padded_kernels_in_source_order():
    pred, _ = natural_pair(32)
    torch.testing.assert_close(difference_maps(pred), ref_maps(pred), rtol=0, atol=1e-7)


def test_gradcheck_color_float64():
    gen = torch.Generator().manual_seed(2)
    pred = 0.1 + 0.9 * torch.rand(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    target = 0.1 + 0.9 * torch.rand(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    loss = FLWColorLoss()
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred.requires_grad_(),))


@pytest.mark.parametrize("name", ["flw_brightness", "flw_structure"])
def test_gradcheck_consistency_float64(name):
    # The min-shift is detached (as in the source), so finite differences agree with autograd
    # only while no perturbation moves a minimum: hold fixed a 2x2 block at 0 (every plane's
    # minimum, and a zero right/down difference for the structure maps) and vary the rest.
    gen = torch.Generator().manual_seed(4)
    base = 0.2 + 0.8 * torch.rand(1, 3, 5, 5, generator=gen, dtype=torch.float64)
    base[..., :2, :2] = 0.0
    free = torch.ones_like(base, dtype=torch.bool)
    free[..., :2, :2] = False
    target = 0.2 + 0.8 * torch.rand(1, 3, 5, 5, generator=gen, dtype=torch.float64)
    target[..., :2, :2] = 0.0
    loss = build_loss(name)

    def fn(values):
        return loss(base.masked_scatter(free, values), target)

    values = base[free].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (values,))


# ----------------------------------------------------------------------------- perfect prediction
def test_perfect_prediction_color_known_value():
    _, target = natural_pair()
    pred = target.clone().requires_grad_(True)
    value = FLWColorLoss()(pred, target)
    value.backward()
    m = (target.double() ** 2).mean(1).numpy()  # per pixel: c = m / (m + 1e-5)
    c = m / (m + 1e-5)
    expected = np.mean(1 - c) + np.mean(np.arccos(c))
    assert value.item() == pytest.approx(expected, rel=1e-4)  # float32 vs exact
    assert FLWColorLoss()(target.double(), target.double()).item() == pytest.approx(
        expected, rel=1e-10
    )
    assert torch.isfinite(pred.grad).all()


def test_perfect_prediction_brightness_known_value():
    # acos near 1 amplifies float32 rounding (1 - c ~ 1e-4 here): compare in float64
    _, target = natural_pair()
    pred = target.double().requires_grad_(True)
    value = FLWBrightnessLoss()(pred, target.double())
    value.backward()
    t = target.double().numpy()
    shifted = t - np.abs(t.min(axis=(2, 3), keepdims=True))
    m = (shifted**2).mean(axis=(2, 3))  # (N, C)
    c1 = m / (m + 1e-5)
    c2 = m.mean(1) / (m.mean(1) + 1e-5)
    expected = np.mean(1 - c1) + np.mean(np.arccos(c1)) + np.mean(1 - c2) + np.mean(np.arccos(c2))
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert torch.isfinite(pred.grad).all()
    assert FLWBrightnessLoss()(target, target).item() == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_perfect_prediction_beats_noise_but_not_upscaling(name):
    pred, target = natural_pair()
    loss = build_loss(name)
    perfect = loss(target, target).item()  # > 0: the 1e-5 keeps c below 1 (dark pixels most)
    assert perfect < loss(pred, target).item()
    gen = torch.Generator().manual_seed(5)
    noisy = (target + 0.01 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    assert perfect < loss(noisy, target).item()
    # documented property of the source's +1e-5: a larger |pred| raises c slightly
    assert loss(1.5 * target, target).item() < perfect


# ----------------------------------------------------------------------------- hazards
def test_bounded_acos_values_and_gradients():
    c = torch.tensor([1.0, 1.0 + 1e-6, -1.0, 0.5, 0.999], dtype=torch.float64, requires_grad=True)
    value = bounded_acos(c)
    torch.testing.assert_close(
        value.detach(),
        torch.tensor([0.0, 0.0, math.pi, math.acos(0.5), math.acos(0.999)], dtype=torch.float64),
    )
    value.sum().backward()
    expected = [-1000.0, -1000.0, -1000.0, -1 / math.sqrt(0.75), -1 / math.sqrt(1 - 0.999**2)]
    torch.testing.assert_close(c.grad, torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("name", ["flw_color", "flw_brightness"])
def test_out_of_range_perfect_prediction_finite(name):
    _, target = natural_pair(32)
    loss, ref = build_loss(name), REFERENCES[name]
    for scale in (10.0, 30.0, 100.0):
        big = target * scale
        value, grad = value_and_grad(loss, big, big)
        ref_value, ref_grad = value_and_grad(ref, big, big)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        if torch.isfinite(ref_value):  # same value wherever the source has one
            torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=0)
    # at 100x the source's acos argument rounds to >= 1: NaN value or infinite gradient
    assert not (torch.isfinite(ref_value) and torch.isfinite(ref_grad).all())
    assert 0 <= value.item() < 0.01


def _black_pixel(t: torch.Tensor) -> torch.Tensor:
    pred = t.clone()
    pred[:, :, 5, 7] = 0.0
    return pred


@pytest.mark.parametrize(
    ("name", "make_pred"),
    [
        ("flw_color", _black_pixel),
        ("flw_brightness", lambda t: torch.full_like(t, 0.3)),
        ("flw_structure", torch.zeros_like),
    ],
)
def test_zero_norm_gives_finite_gradient(name, make_pred):
    _, target = natural_pair(32)
    pred = make_pred(target)
    value, grad = value_and_grad(build_loss(name), pred, target)
    ref_value, ref_grad = value_and_grad(REFERENCES[name], pred, target)
    assert not torch.isfinite(ref_grad).all()  # NaN from (0) ** 0.5 in the source
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref_value, rtol=1e-6, atol=0)


# ----------------------------------------------------------------------------- errors + contract
@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes(name):
    with pytest.raises(
        ValueError,
        match=rf"^{name}: pred and target must have the same shape, "
        r"got \(2, 3, 8, 8\) and \(2, 3, 8, 4\)$",
    ):
        build_loss(name)(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 4))


def test_symmetric_and_provenance():
    pred, target = PAIRS["random"]()
    for cls in (FLWColorLoss, FLWBrightnessLoss, FLWStructureLoss):
        loss = cls()
        assert loss.references == ("zhang2023flw",) and "FLW" in loss.paper
        torch.testing.assert_close(loss(pred, target), loss(target, pred))
