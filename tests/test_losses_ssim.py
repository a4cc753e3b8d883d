"""SSIM / MS-SSIM losses: against a re-implementation of the common LLIE SSIM_loss, an independent
MS-SSIM written from Wang et al. 2003 (with pytorch-msssim's pooling and clamping), and the
pytorch-msssim package itself.

Tolerances: the loss runs in float32; its values must be within 1e-5 relative and its
gradients within 1e-4 relative (max-norm) of the references evaluated in float64. (The
references run in float32 are themselves ~1e-5 off on natural images: sigma^2 = E[x^2] - mu^2
cancels, so 1-ulp differences in the window are amplified; see test_float32_noise_floor.)
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F

from benchmark.losses import build_loss
from tests.loss_helpers import (
    GRAD_RTOL,
    VALUE_RTOL,
    blended_random_pair,
    darkened_pair,
    rel_err,
    value_and_grad,
)

C1, C2 = 0.01**2, 0.03**2

natural_pair = partial(darkened_pair, top=40, left=120)
PAIRS = {"random": blended_random_pair, "natural": natural_pair}


def seed_ssim_loss(img1: torch.Tensor, img2: torch.Tensor, size: int = 11, sigma: float = 1.5):
    """The common SSIM_loss code written out: 2-D kernel from numpy exp, valid conv per channel."""
    g = np.array([np.exp(-((x - size // 2) ** 2) / float(2 * sigma**2)) for x in range(size)])
    g = torch.tensor(g / g.sum(), dtype=img1.dtype)
    kernel = torch.outer(g, g).view(1, 1, size, size)
    maps = []
    for c in range(img1.shape[1]):  # per channel, like groups=channel
        x, y = img1[:, c : c + 1], img2[:, c : c + 1]
        mu1, mu2 = F.conv2d(x, kernel), F.conv2d(y, kernel)
        s11 = F.conv2d(x * x, kernel) - mu1**2
        s22 = F.conv2d(y * y, kernel) - mu2**2
        s12 = F.conv2d(x * y, kernel) - mu1 * mu2
        maps.append(
            ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s11 + s22 + C2))
        )
    return 1 - torch.cat(maps, dim=1).mean()


def reference_ms_ssim(x: torch.Tensor, y: torch.Tensor, weights=(0.0448, 0.2856, 0.3001, 0.2363,
                                                                 0.1333)):
    """MS-SSIM from Wang et al. 2003: cs at scales 1..M-1, SSIM at scale M, 2x2 mean pooling.

    Conventions of pytorch-msssim: a zero row/column added on both sides of odd sides before
    pooling, per-channel cs and SSIM clamped at 0, mean over batch and channels.
    """
    size, sigma = 11, 1.5
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = torch.tensor(g / g.sum(), dtype=x.dtype)
    kernel = torch.outer(g, g).view(1, 1, size, size).repeat(x.shape[1], 1, 1, 1)
    groups = x.shape[1]
    result = 1.0
    for level, w in enumerate(weights):
        mu1, mu2 = F.conv2d(x, kernel, groups=groups), F.conv2d(y, kernel, groups=groups)
        s11 = F.conv2d(x * x, kernel, groups=groups) - mu1**2
        s22 = F.conv2d(y * y, kernel, groups=groups) - mu2**2
        s12 = F.conv2d(x * y, kernel, groups=groups) - mu1 * mu2
        cs = ((2 * s12 + C2) / (s11 + s22 + C2)).mean(dim=(2, 3))
        if level < len(weights) - 1:
            result = result * torch.relu(cs) ** w
            pad_h, pad_w = x.shape[2] % 2, x.shape[3] % 2
            x, y = (
                F.pad(t, (pad_w, pad_w, pad_h, pad_h)) for t in (x, y)
            )
            h, wd = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
            x, y = (
                t[..., :h, :wd].reshape(*t.shape[:2], h // 2, 2, wd // 2, 2).mean(dim=(3, 5))
                for t in (x, y)
            )
        else:
            lum = ((2 * mu1 * mu2 + C1) / (mu1**2 + mu2**2 + C1))
            s = (lum * (2 * s12 + C2) / (s11 + s22 + C2)).mean(dim=(2, 3))
            result = result * torch.relu(s) ** w
    return 1 - result.mean()


@pytest.mark.parametrize("kind", PAIRS)
def test_ssim_matches_seed_code(kind: str) -> None:
    pred, target = PAIRS[kind]()
    value, grad = value_and_grad(build_loss("ssim"), pred, target)
    ref_value, ref_grad = value_and_grad(seed_ssim_loss, pred.double(), target.double())
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * abs(ref_value.item())
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


@pytest.mark.parametrize("kind", PAIRS)
def test_ssim_equals_pytorch_msssim(kind: str) -> None:
    pred, target = PAIRS[kind]()
    ours = build_loss("ssim")(pred, target).item()
    # the library in float64 with a window normalised in float64 (ours): same number
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = torch.tensor(g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)
    lib64 = 1 - pytorch_msssim.ssim(pred.double(), target.double(), data_range=1, win=win).item()
    assert abs(ours - lib64) <= 1e-6 * lib64
    # the library as is: its window is normalised in float32, which alone moves SSIM on
    # natural images by ~1e-5 relative (a window not summing to 1 breaks E[x^2] - mu^2)
    lib32 = 1 - pytorch_msssim.ssim(pred, target, data_range=1).item()
    assert abs(ours - lib32) <= 2e-5 * lib32


def test_float32_noise_floor() -> None:
    # documents why references are compared in float64: the seed's own code in float32 is
    # already more than 1e-6 away from its float64 value on a natural image
    pred, target = natural_pair(64)
    exact = seed_ssim_loss(pred.double(), target.double()).item()
    seed32 = seed_ssim_loss(pred, target).item()
    ours = build_loss("ssim")(pred, target).item()
    assert 1e-6 < abs(seed32 - exact) / exact < 1e-4
    assert abs(ours - exact) / exact < 1e-6


def test_ssim_window_params_match_seed_code() -> None:
    pred, target = blended_random_pair((1, 3, 30, 30))
    ours = build_loss("ssim", win_size=7, win_sigma=1.0)(pred, target)
    ref = seed_ssim_loss(pred, target, size=7, sigma=1.0)
    assert abs(ours.item() - ref.item()) <= VALUE_RTOL * abs(ref.item())


@pytest.mark.parametrize("kind", ["random", "natural"])
def test_ms_ssim_matches_reference_and_library(kind: str) -> None:
    pred, target = (
        blended_random_pair((2, 3, 170, 163)) if kind == "random" else natural_pair(176)
    )
    loss = build_loss("ms_ssim")
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = value_and_grad(reference_ms_ssim, pred.double(), target.double())
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * abs(ref_value.item())
    assert rel_err(grad, ref_grad) <= GRAD_RTOL
    lib = 1 - pytorch_msssim.ms_ssim(pred.double(), target.double(), data_range=1).item()
    assert abs(value.item() - lib) <= VALUE_RTOL * lib


def test_ms_ssim_custom_weights_match_reference() -> None:
    pred, target = blended_random_pair((1, 3, 81, 90))
    weights = [0.5, 0.3, 0.2]
    loss = build_loss("ms_ssim", weights=weights)
    assert loss.min_input_size() == 161  # pytorch-msssim's assert ignores the level count
    with pytest.raises(ValueError, match="needs height and width >= 161"):
        loss(pred, target)
    pred, target = blended_random_pair((1, 3, 161, 170))
    value = loss(pred, target)
    ref = reference_ms_ssim(pred.double(), target.double(), weights=weights)
    assert abs(value.item() - ref.item()) <= VALUE_RTOL * abs(ref.item())


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(4)
    pred = torch.rand(1, 2, 13, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 13, 12, generator=gen, dtype=torch.float64)
    loss = build_loss("ssim")
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,), fast_mode=True)
    ms = build_loss("ms_ssim", win_size=3, weights=[0.3, 0.3, 0.4])
    pred = torch.rand(1, 2, 33, 35, generator=gen, dtype=torch.float64)
    target = (0.5 * pred + 0.5 * torch.rand(pred.shape, generator=gen, dtype=torch.float64))
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: ms(p, target), (pred,), fast_mode=True)


def test_perfect_prediction_is_zero() -> None:
    _, target = natural_pair(176)
    assert abs(build_loss("ssim")(target, target).item()) <= 1e-6
    assert abs(build_loss("ms_ssim")(target, target).item()) <= 1e-6


def test_ms_ssim_min_size_is_the_library_bound() -> None:
    loss = build_loss("ms_ssim")
    assert loss.min_input_size() == 161
    small = torch.rand(1, 3, 160, 200)
    with pytest.raises(AssertionError):  # what the library would do on its own
        pytorch_msssim.ms_ssim(small, small, data_range=1)
    with pytest.raises(ValueError) as info:
        loss(small, small)
    assert str(info.value) == (
        "ms_ssim: input 160x200 is too small: MS-SSIM with 5 scales and a 11x11 window "
        "needs height and width >= 161"
    )
    ok = torch.rand(1, 3, 161, 161)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping Gaussian Smoothing" at the bound
        loss(ok, ok)


def test_ms_ssim_more_levels_need_more_pixels() -> None:
    loss = build_loss("ms_ssim", weights=[0.2] * 6)
    assert loss.min_input_size() == 321
    x = torch.rand(1, 1, 321, 321)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every scale keeps a full window
        loss(x, x)
    with pytest.raises(ValueError, match=r"input 320x321 is too small: MS-SSIM with 6 scales"):
        loss(x[..., :320, :], x[..., :320, :])


def test_ssim_min_size() -> None:
    loss = build_loss("ssim")
    assert loss.min_input_size() == 11
    with pytest.raises(ValueError) as info:
        loss(torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30))
    assert str(info.value) == (
        "ssim: input 10x30 is too small: the 11x11 window needs height and width >= 11"
    )


def test_ms_ssim_anticorrelated_gradient_is_finite() -> None:
    # cs < 0 at some scale is clamped to 0 by pytorch-msssim: zero gradient there, never NaN
    _, target = natural_pair(176)
    value, grad = value_and_grad(build_loss("ms_ssim"), 1 - target, target)
    assert value.item() == pytest.approx(1.0)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", ["ssim", "ms_ssim"])
def test_mismatched_shapes(name: str) -> None:
    with pytest.raises(ValueError) as info:
        build_loss(name)(torch.rand(1, 3, 200, 200), torch.rand(1, 1, 200, 200))
    assert str(info.value) == (
        f"{name}: pred and target must have the same shape, got (1, 3, 200, 200) and "
        "(1, 1, 200, 200)"
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ssim", {"win_size": 8}, "ssim: win_size must be odd, got 8"),
        ("ssim", {"win_size": 1}, "ssim: win_size must be an odd integer >= 3, got 1"),
        ("ssim", {"win_sigma": 0}, "ssim: win_sigma must be a finite number > 0, got 0"),
        ("ms_ssim", {"weights": []},
         "ms_ssim: weights must be a non-empty list of numbers, got []"),
        ("ms_ssim", {"weights": [0.5, -1]},
         "ms_ssim: weights must be finite numbers >= 0, got [0.5, -1]"),
    ],
)
def test_bad_params(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_loss(name, **params)
    assert str(info.value) == message


def test_to_float64_and_no_saved_state() -> None:
    loss = build_loss("ssim").to(torch.float64)
    assert loss.state_dict() == {}
    pred, target = blended_random_pair((1, 3, 16, 16))
    assert loss(pred.double(), target.double()).dtype == torch.float64


def _autograd_nodes(tensor: torch.Tensor) -> set[str]:
    names: set[str] = set()
    visited: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        names.add(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return names


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [None, [0.5, 0.3, 0.2]])
def test_ms_ssim_equals_the_library_without_prod_or_host_copy(
    dtype: torch.dtype, weights: list[float] | None
) -> None:
    """The scales are multiplied one after another with Python-float exponents: value and
    gradient equal pytorch-msssim's ``ms_ssim`` to float rounding, and the autograd graph has
    no ``torch.prod`` (whose backward reads a value back to the host: a CUDA synchronisation
    every step, seen on an H200 under ``set_sync_debug_mode("error")``) and no tensor made
    from Python data, with no warning."""
    pred, target = blended_random_pair((2, 3, 170, 163))
    pred, target = pred.to(dtype), target.to(dtype)
    loss = build_loss("ms_ssim", **({} if weights is None else {"weights": weights}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = value_and_grad(loss, pred, target)
    win = loss.win.to(dtype).repeat(3, 1, 1, 1)
    expect, expect_grad = value_and_grad(
        lambda p, t: 1.0 - pytorch_msssim.ms_ssim(
            p, t, data_range=1.0, win=win, weights=loss.weights
        ),
        pred, target,
    )  # fmt: skip
    assert value.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert abs(value.item() - expect.item()) <= 8 * eps
    assert rel_err(grad, expect_grad) <= 64 * eps
    p = pred.clone().requires_grad_(True)
    nodes = _autograd_nodes(loss(p, target))
    assert "PowBackward0" in nodes and "AvgPool2DBackward0" in nodes  # the walk sees the graph
    assert not {n for n in nodes if n.startswith(("ProdBackward", "LiftFresh"))}, nodes
