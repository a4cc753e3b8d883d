"""Gradient-domain losses (benchmark/losses/gradient.py) against references written here.

References follow the reference code literally: the common EdgeLoss (per-channel loop,
two F.conv2d per channel), the exposure-fusion LumaGradLoss code, SRGAN v1's
RegularizationLoss; the formula-only terms of 003 are computed with 2x2 difference kernels
(valid convolution), an implementation independent of the package's slicing.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from benchmark.losses import LOSSES, build_loss
from benchmark.losses.gradient import (
    EdgeLoss,
    GradientLoss,
    GradSignLoss,
    HighSmoothLoss,
    LumaGradLoss,
    TVLoss,
)
from tests.loss_helpers import assert_matches, random_pair

NAMES = ["edge", "gradient", "gradsign", "highsmooth", "luma_grad", "tv"]


# ----------------------------------------------------------------------------- inputs
def natural_pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real photo crops: targets, and a plausible under-enhanced, noisy, blurred pred."""
    crops = [
        data.astronaut()[100 : 100 + size, 180 : 180 + size],
        data.coffee()[50 : 50 + size, 300 : 300 + size],
    ]
    target = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    gen = torch.Generator().manual_seed(0)
    pred = F.avg_pool2d(target.pow(1.3) * 0.9, 3, stride=1, padding=1, count_include_pad=False)
    pred = (pred + 0.02 * torch.randn(pred.shape, generator=gen)).clamp(0, 1)
    return pred, target


PAIRS = {"random": partial(random_pair, (2, 3, 32, 40), seed=1), "natural": natural_pair}


# ----------------------------------------------------------------------------- references
def ref_edge(x, x_hat):  # the common EdgeLoss code, literally: a loop over channels, two convs each
    kx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float32).view(1, 1, 3, 3)
    ky = torch.tensor([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=torch.float32).view(1, 1, 3, 3)
    gx, gx_hat = [], []
    for c in range(x.shape[1]):
        a = F.conv2d(x[:, c : c + 1], kx, padding=1)
        b = F.conv2d(x[:, c : c + 1], ky, padding=1)
        gx.append(torch.sqrt(a**2 + b**2 + 1e-6))
        a = F.conv2d(x_hat[:, c : c + 1], kx, padding=1)
        b = F.conv2d(x_hat[:, c : c + 1], ky, padding=1)
        gx_hat.append(torch.sqrt(a**2 + b**2 + 1e-6))
    return F.mse_loss(torch.cat(gx, 1), torch.cat(gx_hat, 1))


def ref_diffs(x):
    """Forward differences via 2x2 valid convolutions anchored at the top-left pixel."""
    c = x.shape[1]
    kx = torch.tensor([[-1.0, 1.0], [0.0, 0.0]], dtype=x.dtype).expand(c, 1, 2, 2)
    ky = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=x.dtype).expand(c, 1, 2, 2)
    return F.conv2d(x, kx, groups=c), F.conv2d(x, ky, groups=c)


def ref_gradient(y, y_star):
    (yx, yy), (sx, sy) = ref_diffs(y), ref_diffs(y_star)
    return torch.abs(yx - sx).mean() + torch.abs(yy - sy).mean()


def ref_gradsign(y, y_star):
    (yx, yy), (sx, sy) = ref_diffs(y), ref_diffs(y_star)
    return torch.relu(-yx * sx).mean() + torch.relu(-yy * sy).mean()


def ref_highsmooth(y, y_star, threshold=0.8):
    (yx, yy), (sx, sy) = ref_diffs(y), ref_diffs(y_star)
    indicator = torch.where(y_star >= threshold, 1.0, 0.0)[:, :, :-1, :-1]
    return (torch.abs(yx - sx) * indicator).mean() + (torch.abs(yy - sy) * indicator).mean()


def ref_luma_grad(prediction, target):  # the LumaGradLoss code, with the ground truth as target
    prediction = torch.nn.AdaptiveAvgPool2d((8, 8))(prediction)
    target = torch.nn.AdaptiveAvgPool2d((8, 8))(target)
    target = torch.clamp(target, 0.0, 1.0)
    prediction = torch.clamp(prediction, 0.0, 1.0)
    p_x = prediction[:, :, :-1, :-1] - prediction[:, :, :-1, 1:]
    p_y = prediction[:, :, :-1, :-1] - prediction[:, :, 1:, :-1]
    t_x = target[:, :, :-1, :-1] - target[:, :, :-1, 1:]
    t_y = target[:, :, :-1, :-1] - target[:, :, 1:, :-1]
    return torch.mean((t_x - p_x) ** 2.0 + (t_y - p_y) ** 2.0)


def ref_tv(x, _target=None):  # SRGAN arXiv v1's regulariser, literally
    h, w = x.shape[2], x.shape[3]
    a = torch.square(x[:, :, : h - 1, : w - 1] - x[:, :, 1:h, : w - 1])
    b = torch.square(x[:, :, : h - 1, : w - 1] - x[:, :, : h - 1, 1:w])
    return torch.sum(torch.pow(a + b, 1.25))


REFERENCES = {
    "edge": ref_edge,
    "gradient": ref_gradient,
    "gradsign": ref_gradsign,
    "highsmooth": ref_highsmooth,
    "luma_grad": ref_luma_grad,
    "tv": ref_tv,
}


# ----------------------------------------------------------------------------- equality
@pytest.mark.parametrize("inputs", PAIRS)
@pytest.mark.parametrize("name", NAMES)
def test_equals_source_reference(name, inputs):
    pred, target = PAIRS[inputs]()
    assert_matches(build_loss(name), REFERENCES[name], pred, target)


def test_highsmooth_threshold_param_matches_reference():
    pred, target = natural_pair()
    for threshold in (0.3, 0.6, 0.95):
        loss = HighSmoothLoss(threshold=threshold)
        assert_matches(loss, lambda p, t, th=threshold: ref_highsmooth(p, t, th), pred, target)


def test_edge_eps_param():
    pred, target = PAIRS["random"]()
    big = EdgeLoss(eps=1.0)(pred, target)
    small = EdgeLoss()(pred, target)
    assert big.item() < small.item()  # a larger eps flattens the magnitude's response


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    loss = build_loss(name).double()
    gen = torch.Generator().manual_seed(3)
    shape = (1, 1, 9, 9) if name == "luma_grad" else (1, 3, 5, 5)  # luma_grad pools to 8x8
    pred = 0.1 + 0.8 * torch.rand(shape, generator=gen, dtype=torch.float64)
    target = 0.1 + 0.8 * torch.rand(shape, generator=gen, dtype=torch.float64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,), eps=1e-6, atol=1e-5)


# ----------------------------------------------------------------------------- exact values
def test_finite_difference_convention_by_hand():
    # one channel, 2x3; forward differences on the common 1x2 grid
    pred = torch.tensor([[[[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]]])
    target = torch.zeros_like(pred)
    # dx = [0.5, 0.0], dy = [1.0, -0.5] -> mean|dx| + mean|dy| = 0.25 + 0.75
    assert GradientLoss()(pred, target).item() == pytest.approx(1.0)
    # TV: (0.5^2 + 1^2)^1.25 + (0 + 0.25)^1.25
    assert TVLoss()(pred, target).item() == pytest.approx(1.25**1.25 + 0.25**1.25, rel=1e-6)


def test_gradsign_reversed_edge_by_hand():
    target = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    pred = target.flip(-1)  # the edge goes the other way
    assert GradSignLoss()(pred, target).item() == pytest.approx(1.0)  # relu(1*1) + 0
    assert GradSignLoss()(2 * target, target).item() == 0.0  # same direction: no penalty


def test_highsmooth_mask_by_hand():
    # the mask is taken from target at the pixel each difference starts from
    target = torch.tensor([[[[0.9, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    pred = torch.zeros_like(target)
    # grid 2x2; only (0,0) is bright: |dx| = |0 - 0.9| (pred diff 0), |dy| = 0.9 -> /4 each
    assert HighSmoothLoss()(pred, target).item() == pytest.approx(0.9 / 4 * 2)
    assert HighSmoothLoss(threshold=0.95)(pred, target).item() == 0.0
    pred2, target2 = natural_pair()
    torch.testing.assert_close(
        HighSmoothLoss(threshold=0.0)(pred2, target2), GradientLoss()(pred2, target2)
    )


def test_tv_is_a_sum_that_scales_with_batch_and_area():
    x, _ = random_pair((1, 3, 16, 16), seed=1)
    one = TVLoss()(x, x)
    torch.testing.assert_close(TVLoss()(x.repeat(4, 1, 1, 1), x.repeat(4, 1, 1, 1)), 4 * one)
    tiled = x.repeat(1, 1, 2, 2)
    assert TVLoss()(tiled, tiled).item() > 3.5 * one.item()


def test_tv_mean_reduction_is_the_sum_over_its_terms():
    x, _ = random_pair((2, 3, 16, 12), seed=2)
    terms = 2 * 3 * 15 * 11  # N * C * (H-1) * (W-1)
    torch.testing.assert_close(TVLoss(reduction="mean")(x, x), TVLoss()(x, x) / terms)
    assert TVLoss(reduction="mean")(x.repeat(4, 1, 1, 1), x.repeat(4, 1, 1, 1)).item() == (
        pytest.approx(TVLoss(reduction="mean")(x, x).item(), rel=1e-6))
    with pytest.raises(ValueError, match=r"^tv: reduction must be 'sum' or 'mean', got 'avg'$"):
        TVLoss(reduction="avg")


def test_luma_grad_clamp_blocks_out_of_range_gradient():
    _, target = natural_pair()
    pred = (target + 2.0).requires_grad_(True)  # every pooled value above 1
    LumaGradLoss()(pred, target).backward()
    assert torch.count_nonzero(pred.grad) == 0


# ----------------------------------------------------------------------------- perfect prediction
@pytest.mark.parametrize("name", ["edge", "gradient", "gradsign", "highsmooth", "luma_grad"])
def test_perfect_prediction_is_zero_with_finite_gradient(name):
    _, target = natural_pair()
    pred = target.clone().requires_grad_(True)
    value = build_loss(name)(pred, target)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(pred.grad).all()


def test_tv_constant_image_is_zero():
    pred = torch.full((2, 3, 8, 8), 0.4, requires_grad=True)
    value = TVLoss()(pred, pred.detach())
    value.backward()
    assert value.item() == 0.0
    assert torch.count_nonzero(pred.grad) == 0


# ----------------------------------------------------------------------------- errors + contract
@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes(name):
    with pytest.raises(
        ValueError,
        match=rf"^{name}: pred and target must have the same shape, "
        r"got \(1, 3, 16, 16\) and \(1, 3, 16, 17\)$",
    ):
        build_loss(name)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match=rf"^{name}: expected NCHW tensors, got pred of shape"):
        build_loss(name)(torch.rand(3, 16, 16), torch.rand(3, 16, 16))


@pytest.mark.parametrize(
    ("name", "size", "minimum"),
    [
        ("gradient", 1, 2),
        ("gradsign", 1, 2),
        ("highsmooth", 1, 2),
        ("tv", 1, 2),
        ("luma_grad", 7, 8),
    ],
)
def test_too_small_input(name, size, minimum):
    loss = build_loss(name)
    assert loss.min_input_size() == minimum
    x = torch.rand(1, 3, size, 12)
    with pytest.raises(
        ValueError,
        match=rf"^{name}: needs height and width >= {minimum}, "
        rf"got {size}x12$",
    ):
        loss(x, x)


def test_constructor_validation():
    with pytest.raises(ValueError, match=r"^highsmooth: threshold must be in \[0, 1\] .*got 1.5$"):
        HighSmoothLoss(threshold=1.5)
    with pytest.raises(ValueError, match=r"^edge: eps must be > 0 .*got 0$"):
        EdgeLoss(eps=0)


def test_registry_and_kernel_buffers():
    for name in NAMES:
        loss = build_loss(name)
        assert type(loss) is LOSSES[name]
        assert loss.references and loss.paper
    edge = EdgeLoss()
    assert edge.state_dict() == {}  # the Sobel kernel is a non-persistent buffer
    assert edge.double().kernel.dtype == torch.float64
