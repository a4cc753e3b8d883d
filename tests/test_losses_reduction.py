"""``reduction`` of the losses: ``"none"`` gives each image's value, ``"sum"`` their sum, and
``"mean"`` (the default, what recipes train with) is the batch value exactly as before.

Outside references: torch's own ``reduction="none"`` (l1, mse), pytorch-msssim's
``size_average=False`` (ssim, ms_ssim); for every loss, each image's value equals the loss of
that image alone, and their mean equals the batch value. ``reduction`` is a library keyword: it
is not a recipe parameter and does not enter the config hash.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F
import yaml

from benchmark.errors import UserError
from benchmark.losses import LOSSES, build_loss, loss_params
from benchmark.losses.gt_mean import MIN_MEAN, brightness, mismatch_weight
from benchmark.recipes.mix import load_recipe
from benchmark.recipes.schema import validate_recipe

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference" / "LOL-v1" / "lite" / "runs"

#: losses with a batch reduction, with the parameters and input size to try them at
REDUCING = {
    "l1": {}, "mse": {}, "charbonnier": {}, "gaussian_l1": {"win_size": 9},
    "ssim": {}, "ms_ssim": {"weights": [0.5, 0.5]}, "gt_mean": {}, "gt_mean_ssim": {},
    "flw_color": {}, "flw_brightness": {}, "flw_structure": {}, "frequency": {}, "edge": {},
    "gradient": {}, "gradsign": {}, "highsmooth": {"threshold": 0.5}, "luma_grad": {},
    "color_constancy": {},
}


def _build(key: str, **extra: object) -> torch.nn.Module:
    if key == "gt_mean_ssim":
        return build_loss("gt_mean", base="ssim", **extra)
    return build_loss(key, **REDUCING[key], **extra)


def _pair(n: int = 3, size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, size, size, generator=gen, dtype=torch.float64)
    pred = (target * 0.6 + 0.3 * torch.rand(n, 3, size, size, generator=gen,
                                             dtype=torch.float64)).clamp(0, 1)
    return pred, target


def test_every_registered_loss_with_reduction_is_listed() -> None:
    reducing = {name for name, cls in LOSSES.items() if getattr(cls, "reduces", False)}
    assert reducing == set(REDUCING) - {"gt_mean_ssim"} | {"perceptual"}  # its own test
    assert not getattr(LOSSES["tv"], "reduces", False)  # its own reduction, a recipe parameter
    assert "reduction" in loss_params("tv")


@pytest.mark.parametrize("key", sorted(REDUCING))
def test_none_is_each_image_alone_and_mean_is_their_mean(key: str) -> None:
    pred, target = _pair(size=176 if key == "ms_ssim" else 48)
    per_image = _build(key, reduction="none").double()(pred, target)
    assert per_image.shape == (3,)
    alone = torch.stack([_build(key).double()(pred[i : i + 1], target[i : i + 1]).reshape(())
                         for i in range(3)])
    torch.testing.assert_close(per_image, alone, rtol=1e-10, atol=1e-12)
    batch = _build(key).double()(pred, target)
    torch.testing.assert_close(per_image.mean(), batch, rtol=1e-10, atol=1e-12)
    total = _build(key, reduction="sum").double()(pred, target)
    torch.testing.assert_close(total, per_image.sum(), rtol=1e-12, atol=0.0)
    assert len(set(per_image.tolist())) == 3  # the images differ: a broadcast mean would not


def test_pixel_losses_match_torch_reduction_none() -> None:
    pred, target = _pair(n=4)
    for name, fn in (("l1", F.l1_loss), ("mse", F.mse_loss)):
        expected = fn(pred, target, reduction="none").mean(dim=(1, 2, 3))
        torch.testing.assert_close(build_loss(name, reduction="none")(pred, target), expected,
                                   rtol=1e-12, atol=0.0)
        # "mean" is torch's own mean, unchanged (exact)
        assert torch.equal(build_loss(name)(pred, target), fn(pred, target))


def test_ssim_losses_match_pytorch_msssim_per_image() -> None:
    pred, target = (t.float() for t in _pair(n=2, size=192))
    got = build_loss("ssim", reduction="none")(pred, target)
    expected = 1 - pytorch_msssim.ssim(pred, target, data_range=1.0, size_average=False)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    got = build_loss("ms_ssim", reduction="none")(pred, target)
    expected = 1 - pytorch_msssim.ms_ssim(pred, target, data_range=1.0, size_average=False)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_perceptual_per_image(planted_weights) -> None:
    pred, target = (t.float() for t in _pair(n=2, size=32))
    per_image = build_loss("perceptual", reduction="none")(pred, target)
    alone = torch.stack([build_loss("perceptual")(pred[i : i + 1], target[i : i + 1])
                         for i in range(2)])
    torch.testing.assert_close(per_image, alone, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(per_image.mean(), build_loss("perceptual")(pred, target),
                               rtol=1e-5, atol=1e-7)


def _gt_mean_loop(base: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The GT-mean loss as it was computed before vectorising: one base call per image."""
    mu_x = brightness(pred).clamp_min(MIN_MEAN)
    mu_y = brightness(target).clamp_min(MIN_MEAN)
    w = mismatch_weight(mu_y, mu_x, 0.1)
    aligned = (pred * (mu_y / mu_x).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    loss = build_loss(base)
    total = pred.new_zeros(())
    for n in range(pred.shape[0]):
        one = slice(n, n + 1)
        total = total + w[n] * loss(pred[one], target[one]) + (1 - w[n]) * loss(aligned[one],
                                                                               target[one])
    return total / pred.shape[0]


@pytest.mark.parametrize("n", [1, 4, 8, 16])
def test_vectorised_gt_mean_l1_is_bit_identical_to_the_loop(n: int) -> None:
    """The shipped gt_mean_l1 recipe trains as before: value and gradient bit for bit (CPU,
    float32, the profiles' batch sizes)."""
    gen = torch.Generator().manual_seed(n)
    for _ in range(5):
        pred = torch.rand(n, 3, 32, 32, generator=gen).requires_grad_()
        target = torch.rand(n, 3, 32, 32, generator=gen) * 0.5
        new = build_loss("gt_mean")(pred, target)
        (g_new,) = torch.autograd.grad(new, pred)
        old = _gt_mean_loop("l1", pred, target)
        (g_old,) = torch.autograd.grad(old, pred)
        assert torch.equal(new, old) and torch.equal(g_new, g_old)


def test_bad_reduction_and_reduction_in_base_params_are_refused() -> None:
    with pytest.raises(ValueError, match="l1: reduction must be 'mean', 'sum' or 'none', got "
                                         "'avg'"):
        build_loss("l1", reduction="avg")
    with pytest.raises(ValueError, match="'reduction' is gt_mean's own keyword"):
        build_loss("gt_mean", base_params={"reduction": "none"})


def test_reduction_is_not_a_recipe_parameter(tmp_path: Path) -> None:
    data = {"name": "mine", "losses": [{"name": "l1", "weight": 1.0,
                                        "params": {"reduction": "none"}}]}
    with pytest.raises(UserError, match=r"losses\[0\]\.params\.reduction: loss 'l1' has no "
                                        r"parameter 'reduction' \(it takes: none\) \('reduction' "
                                        r"is for library use: a recipe's terms are batch means\)"):
        validate_recipe(data, tmp_path / "mine.yaml")


@pytest.mark.parametrize("folder", sorted(p.name for p in REFERENCE.iterdir()))
def test_shipped_recipes_resolve_to_the_losses_their_reference_runs_hashed(folder: str) -> None:
    """What the config hash covers of a recipe (its name and resolved losses) is what the
    shipped reference runs recorded: ``reduction`` added nothing to it."""
    config = yaml.safe_load(next((REFERENCE / folder).glob("*/seed*/config.yaml")).read_text())
    resolved = load_recipe(folder).to_dict()
    assert resolved["losses"] == config["recipe"]["losses"]
