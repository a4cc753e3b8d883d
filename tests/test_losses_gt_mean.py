"""GT-mean loss against the authors' batch formulation and a numerically integrated divergence.

References: the GT-mean L1 as the authors' code computes it (torchvision's grey conversion,
element-wise weighted L1, mean over every element), written here in float64; the weight W from
KL divergences integrated numerically with scipy. Tolerances: values 1e-5 relative, gradients
1e-4 relative (float32 against float64); W within 1e-6 absolute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, stats
from torchvision.transforms.functional import rgb_to_grayscale

from benchmark.losses import build_loss
from benchmark.losses.gt_mean import mismatch_weight
from tests.loss_helpers import GRAD_RTOL, VALUE_RTOL, darkened_pair, rel_err, value_and_grad


def authors_form(pred: torch.Tensor, target: torch.Tensor, sigma: float = 0.1,
                 criterion=F.l1_loss) -> torch.Tensor:
    """The authors' GTmeanLoss (dou_KL_2, reduction none, then .mean()) in float64."""
    x, y = pred.double(), target.double()
    e_y = rgb_to_grayscale(y).mean(dim=(1, 2, 3))
    e_x = rgb_to_grayscale(x).mean(dim=(1, 2, 3))
    s1, s2 = sigma * e_y, sigma * e_x
    mu_m, s_m = 0.5 * (e_y + e_x), torch.sqrt((s1**2 + s2**2) / 2)

    def kl(m1, sd1, m2, sd2):
        return torch.log(sd2 / sd1) + 0.5 * (sd1**2 + (m1 - m2) ** 2) / sd2**2 - 0.5

    w = torch.clip(0.5 * kl(e_y, s1, mu_m, s_m) + 0.5 * kl(e_x, s2, mu_m, s_m), 0, 1).detach()
    aligned = torch.clip((e_y / e_x)[:, None, None, None] * x, 0, 1)
    plain = criterion(x, y, reduction="none") * w[:, None, None, None]
    matched = criterion(aligned, y, reduction="none") * (1 - w)[:, None, None, None]
    return (plain + matched).mean()


def _pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    pred, target = darkened_pair(48, top=100, left=180)  # 0.6x darker: W clipped at 1
    gen = torch.Generator().manual_seed(3)
    y = torch.rand(3, 3, 32, 32, generator=gen) * 0.8 + 0.1
    scale = torch.tensor([0.97, 1.0, 1.04]).view(3, 1, 1, 1)  # small mismatches: 0 <= W < 1
    x = (y * scale + 0.05 * torch.randn(y.shape, generator=gen)).clamp(0, 1)
    return {"natural_dark": (pred, target), "near_match": (x, y)}


@pytest.mark.parametrize("kind", ["natural_dark", "near_match"])
@pytest.mark.parametrize("base", ["l1", "mse"])
def test_gt_mean_matches_authors_formulation(kind: str, base: str) -> None:
    pred, target = _pairs()[kind]
    loss = build_loss("gt_mean", base=base, sigma=0.1)
    criterion = {"l1": F.l1_loss, "mse": F.mse_loss}[base]
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = value_and_grad(
        lambda p, t: authors_form(p, t, 0.1, criterion), pred.double(), target.double()
    )
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * ref_value.item()
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_the_near_match_case_exercises_both_terms() -> None:
    pred, target = _pairs()["near_match"]
    w = mismatch_weight(rgb_to_grayscale(target).mean(dim=(1, 2, 3)),
                        rgb_to_grayscale(pred).mean(dim=(1, 2, 3)), 0.1)
    assert bool(((w > 0.01) & (w < 0.99)).any()), w
    dark = _pairs()["natural_dark"]
    w_dark = mismatch_weight(rgb_to_grayscale(dark[1]).mean(dim=(1, 2, 3)),
                             rgb_to_grayscale(dark[0]).mean(dim=(1, 2, 3)), 0.1)
    assert w_dark.tolist() == [1.0]


def _kl_integrated(p: stats.rv_continuous, q: stats.rv_continuous) -> float:
    lo, hi = min(p.ppf(1e-12), q.ppf(1e-12)), max(p.isf(1e-12), q.isf(1e-12))
    value, _ = integrate.quad(lambda t: p.pdf(t) * (p.logpdf(t) - q.logpdf(t)), lo, hi,
                              limit=200, epsabs=1e-12)
    return value


@pytest.mark.parametrize(("mu_y", "mu_x", "sigma"),
                         [(0.4, 0.4, 0.1), (0.4, 0.38, 0.1), (0.3, 0.33, 0.1), (0.5, 0.45, 0.2),
                          (0.2, 0.6, 0.1)])
def test_weight_is_the_divergence_to_the_moment_matched_mixture(mu_y, mu_x, sigma) -> None:
    p_y, p_x = stats.norm(mu_y, sigma * mu_y), stats.norm(mu_x, sigma * mu_x)
    sd_m = math.sqrt(0.5 * ((sigma * mu_y) ** 2 + (sigma * mu_x) ** 2))
    m = stats.norm(0.5 * (mu_y + mu_x), sd_m)
    expected = min(1.0, 0.5 * _kl_integrated(p_y, m) + 0.5 * _kl_integrated(p_x, m))
    got = mismatch_weight(torch.tensor([mu_y], dtype=torch.float64),
                          torch.tensor([mu_x], dtype=torch.float64), sigma)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_equal_brightness_gives_the_aligned_loss_and_black_stays_finite() -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 16, 16, generator=gen)
    loss = build_loss("gt_mean")
    assert loss(y, y).item() == 0.0
    black = torch.zeros_like(y, requires_grad=True)
    value = loss(black, y)
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(black.grad).all()


def test_any_base_with_params_and_min_size_delegates() -> None:
    pred, target = _pairs()["near_match"]
    loss = build_loss("gt_mean", base="charbonnier", base_params={"eps": 1e-3})
    value = loss(pred, target).item()
    ref = authors_form(pred, target, 0.1,
                       lambda a, b, reduction: torch.sqrt((a - b) ** 2 + 1e-3)).item()
    assert value == pytest.approx(ref, rel=VALUE_RTOL)
    assert build_loss("gt_mean", base="ms_ssim").min_input_size() == 161
    assert np.isfinite(value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"base": "l2"}, "gt_mean: base must name a registered loss (l1, mse,"),
        ({"base": "gt_mean"}, "gt_mean: base cannot be 'gt_mean' (use it as a recipe term)"),
        ({"base": "adversarial"}, "gt_mean: base cannot be 'adversarial'"),
        ({"sigma": 0}, "gt_mean: sigma must be a finite number > 0, got 0"),
        ({"base_params": [1]}, "gt_mean: base_params must be a mapping, got [1]"),
    ],
)
def test_bad_params_are_refused_with_a_message(params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_loss("gt_mean", **params)
    assert message in str(info.value)
