"""W-SSIM against an independent re-implementation of Y-Net's ``WSloss``.

The reference follows github.com/dectrfov/Y-net ``wavelet_ssim_loss.py`` line by line: SSIM of
Po-Hsun-Su's ``pytorch_ssim.SSIM()`` (2-D 11x11 Gaussian, sigma 1.5, zero padding 5, C1/C2
fixed), the authors' ``dwt`` (pywt db1 filters, stride-2 2x2 convolution, returning LL, the
concatenated (LH, HL) pair and HH), the ``l, m, h`` weight recursion with r = 0.7, loops over
channels and levels. Ours returns ``sum gamma (1 - SSIM)`` = reference + sum(gamma) (= 2).

Tolerances: values within 1e-5 relative, gradients within 1e-4 relative (max-norm); the loss
runs in float32, the reference in float64 (see test_losses_ssim.py for why).
"""

from __future__ import annotations

import math
from functools import partial

import pytest
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

# pywt.Wavelet('db1'): dec_lo = [s, s], dec_hi = [-s, s]; Y-Net reverses both
_S = 0.7071067811865476
DEC_LO = torch.tensor([_S, _S], dtype=torch.float64).flip(0)
DEC_HI = torch.tensor([-_S, _S], dtype=torch.float64).flip(0)


natural_pair = partial(darkened_pair, top=200, left=60)
PAIRS = {"random": blended_random_pair, "natural": natural_pair}


def ref_ssim(img1: torch.Tensor, img2: torch.Tensor, padding: int = 5) -> torch.Tensor:
    """pytorch_ssim.SSIM()(img1, img2), one channel at a time."""
    g = torch.tensor([math.exp(-((x - 5) ** 2) / (2 * 1.5**2)) for x in range(11)],
                     dtype=img1.dtype)
    g = g / g.sum()
    window = torch.outer(g, g).view(1, 1, 11, 11)
    maps = []
    for c in range(img1.shape[1]):
        x, y = img1[:, c : c + 1], img2[:, c : c + 1]
        mu1, mu2 = F.conv2d(x, window, padding=padding), F.conv2d(y, window, padding=padding)
        s11 = F.conv2d(x * x, window, padding=padding) - mu1 * mu1
        s22 = F.conv2d(y * y, window, padding=padding) - mu2 * mu2
        s12 = F.conv2d(x * y, window, padding=padding) - mu1 * mu2
        maps.append(((2 * mu1 * mu2 + 0.01**2) * (2 * s12 + 0.03**2))
                    / ((mu1 * mu1 + mu2 * mu2 + 0.01**2) * (s11 + s22 + 0.03**2)))
    return torch.cat(maps, dim=1).mean()


def ref_dwt(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Y-Net's dwt: LL, (LH, HL) interleaved per channel, HH; per-channel loop here."""
    lo, hi = DEC_LO.to(img.dtype), DEC_HI.to(img.dtype)
    ll_f = lo.unsqueeze(0) * lo.unsqueeze(1)
    m_f = [lo.unsqueeze(0) * hi.unsqueeze(1), hi.unsqueeze(0) * lo.unsqueeze(1)]
    hh_f = hi.unsqueeze(0) * hi.unsqueeze(1)
    ll, mid, hh = [], [], []
    for c in range(img.shape[1]):
        x = img[:, c : c + 1]
        ll.append(F.conv2d(x, ll_f.view(1, 1, 2, 2), stride=2))
        mid += [F.conv2d(x, f.view(1, 1, 2, 2), stride=2) for f in m_f]
        hh.append(F.conv2d(x, hh_f.view(1, 1, 2, 2), stride=2))
    return torch.cat(ll, 1), torch.cat(mid, 1), torch.cat(hh, 1)


def y_net_wsloss(x: torch.Tensor, y: torch.Tensor, r: float = 0.7, levels: int = 2,
                 padding: int = 5) -> torch.Tensor:
    """Y-Net WSloss.forward (levels generalises its ``range(2)``)."""
    loss = 0
    loss -= ref_ssim(x, y, padding)
    l, m, h = 1, 1, 1
    for _ in range(levels):
        l, m, h = l * r * r, l * r * (1 - r), l * (1 - r) * (1 - r)
        x0, x1, x2 = ref_dwt(x)
        y0, y1, y2 = ref_dwt(y)
        loss = loss - ref_ssim(x1, y1, padding) * 2 * m - ref_ssim(x2, y2, padding) * h
        x, y = x0, y0
    loss -= ref_ssim(x0, y0, padding) * l
    return loss


def test_haar_filters_are_pywt_db1() -> None:
    from benchmark.losses.wavelet import haar_filters

    x = torch.rand(1, 1, 6, 8, dtype=torch.float64)
    ll, mid, hh = ref_dwt(x)
    ours = F.conv2d(x, haar_filters(torch.float64), stride=2)
    assert torch.allclose(ours, torch.cat([ll, mid, hh], 1), atol=1e-15)
    # orthonormal: energy is preserved
    assert torch.allclose((ours**2).sum(), (x**2).sum())


@pytest.mark.parametrize("kind", PAIRS)
def test_matches_y_net_wsloss(kind: str) -> None:
    pred, target = PAIRS[kind]()
    value, grad = value_and_grad(build_loss("wssim"), pred, target)
    ref_value, ref_grad = value_and_grad(y_net_wsloss, pred.double(), target.double())
    ref_value = ref_value + 2.0  # sum of the gammas
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * abs(ref_value.item())
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


@pytest.mark.parametrize(
    ("params", "shape"),
    [
        ({"r": 0.5, "levels": 3}, (1, 3, 67, 45)),  # odd sides: the DWT drops the last row/column
        ({"levels": 1}, (2, 1, 20, 30)),
        ({"padding": "valid"}, (1, 3, 50, 47)),
    ],
)
def test_params_match_y_net_wsloss(params: dict, shape: tuple[int, ...]) -> None:
    pred, target = blended_random_pair(shape)
    value, grad = value_and_grad(build_loss("wssim", **params), pred, target)
    ref_params = {"padding": 0 if params.get("padding") == "valid" else 5}
    ref_params.update({k: v for k, v in params.items() if k in ("r", "levels")})
    ref_value, ref_grad = value_and_grad(
        lambda p, t: y_net_wsloss(p, t, **ref_params) + 2.0, pred.double(), target.double()
    )
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * abs(ref_value.item())
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_default_band_weights() -> None:
    expected = [(0.0, 0.21, 0.21, 0.09), (0.2401, 0.1029, 0.1029, 0.0441)]
    got = build_loss("wssim").band_weights()
    assert [pytest.approx(w, abs=1e-12) for w in expected] == got
    assert 1.0 + sum(map(sum, got)) == pytest.approx(2.0)


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(5)
    pred = torch.rand(1, 2, 8, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 8, 10, generator=gen, dtype=torch.float64)
    loss = build_loss("wssim")
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,), fast_mode=True)
    valid = build_loss("wssim", padding="valid", win_size=3, levels=2)
    pred = torch.rand(1, 1, 13, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 13, 12, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: valid(p, target), (pred,))


def test_perfect_prediction_is_zero() -> None:
    _, target = natural_pair(64)
    assert abs(build_loss("wssim")(target, target).item()) <= 1e-6
    assert abs(build_loss("wssim", padding="valid")(target, target).item()) <= 1e-6


def test_min_input_size() -> None:
    same, valid = build_loss("wssim"), build_loss("wssim", padding="valid")
    assert (same.min_input_size(), valid.min_input_size()) == (4, 44)
    assert build_loss("wssim", levels=3, padding="valid").min_input_size() == 88
    x = torch.rand(1, 3, 45, 44)
    assert torch.isfinite(valid(x, x.flip(-1)))  # the bound works without a warning or error
    assert torch.isfinite(same(x[..., :4, :4], x[..., :4, :4].flip(-1)))
    with pytest.raises(ValueError) as info:
        valid(x[..., :43, :], x[..., :43, :])
    assert str(info.value) == (
        "wssim: input 43x44 is too small: 2 Haar levels and a 11x11 valid window need height "
        "and width >= 44"
    )
    with pytest.raises(ValueError) as info:
        same(x[..., :3, :], x[..., :3, :])
    assert str(info.value) == (
        "wssim: input 3x44 is too small: 2 Haar levels need height and width >= 4"
    )


def test_mismatched_shapes() -> None:
    with pytest.raises(ValueError) as info:
        build_loss("wssim")(torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert str(info.value) == (
        "wssim: pred and target must have the same shape, got (2, 3, 64, 64) and (1, 3, 64, 64)"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"r": 1.0}, "wssim: r must be a number strictly between 0 and 1, got 1.0"),
        ({"levels": 0}, "wssim: levels must be an integer >= 1, got 0"),
        ({"padding": "reflect"}, "wssim: padding must be 'same' or 'valid', got 'reflect'"),
        ({"win_size": 4}, "wssim: win_size must be odd, got 4"),
        ({"win_sigma": -2}, "wssim: win_sigma must be a finite number > 0, got -2"),
    ],
)
def test_bad_params(params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_loss("wssim", **params)
    assert str(info.value) == message


def test_to_float64_and_no_saved_state() -> None:
    loss = build_loss("wssim").to(torch.float64)
    assert loss.state_dict() == {}
    pred, target = blended_random_pair((1, 3, 16, 16))
    assert loss(pred.double(), target.double()).dtype == torch.float64
