"""Zero-DCE colour-constancy loss against Zero-DCE's L_color written out in float64.

Tolerances: values within 1e-5 relative, gradients within 1e-4 relative (max-norm).
"""

from __future__ import annotations

import pytest
import torch
from skimage import data

from benchmark.losses import build_loss
from benchmark.losses.zero_dce import safe_sqrt
from tests.loss_helpers import GRAD_RTOL, VALUE_RTOL, rel_err, value_and_grad


def natural_image(size: int = 64) -> torch.Tensor:
    """A dark, colour-cast astronaut crop (channel means differ clearly), float32 NCHW."""
    img = torch.from_numpy(data.astronaut()[:size, 256 : 256 + size]).float() / 255
    return (img.permute(2, 0, 1).unsqueeze(0) * torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1))


def random_image(shape: tuple[int, ...] = (4, 3, 20, 24)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=gen) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)


IMAGES = {"random": random_image, "natural": natural_image}


def seed_l_color(x: torch.Tensor) -> torch.Tensor:
    """Zero-DCE's L_color: squared channel-mean differences, then pow(sum of squares, 0.5)."""
    mean_rgb = torch.mean(x, [2, 3], keepdim=True)
    mr, mg, mb = torch.split(mean_rgb, 1, dim=1)
    drg = torch.pow(mr - mg, 2)
    drb = torch.pow(mr - mb, 2)
    dgb = torch.pow(mb - mg, 2)
    k = torch.pow(torch.pow(drg, 2) + torch.pow(drb, 2) + torch.pow(dgb, 2), 0.5)
    return k.mean()


@pytest.mark.parametrize("kind", IMAGES)
def test_matches_seed_code(kind: str) -> None:
    pred = IMAGES[kind]()
    loss = build_loss("color_constancy")
    value, grad = value_and_grad(lambda p: loss(p, torch.rand_like(p)), pred)
    ref_value, ref_grad = value_and_grad(seed_l_color, pred.double())
    assert abs(value.item() - ref_value.item()) <= VALUE_RTOL * ref_value.item()
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_fourth_powers_as_the_code_computes() -> None:
    # means (0.5, 0.3, 0.2): D = 0.04, 0.09, 0.01 -> sqrt(0.04^2 + 0.09^2 + 0.01^2)
    pred = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 5, 5)
    expected = (0.04**2 + 0.09**2 + 0.01**2) ** 0.5
    value = build_loss("color_constancy")(pred, pred)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_target_is_ignored() -> None:
    pred = random_image()
    loss = build_loss("color_constancy")
    assert loss(pred, torch.zeros_like(pred)).item() == loss(pred, torch.rand_like(pred)).item()


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(7)
    pred = torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    loss = build_loss("color_constancy")
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,))


def test_grey_image_minimum_with_zero_gradient() -> None:
    grey = torch.full((2, 3, 8, 8), 0.4)
    value, grad = value_and_grad(lambda p: build_loss("color_constancy")(p, p.detach()), grey)
    assert value.item() == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))
    # the hazard this fixes: the source's pow(0, 0.5) has a NaN gradient on a grey image
    _, ref_grad = value_and_grad(seed_l_color, grey)
    assert torch.isnan(ref_grad).all()


def test_mixed_batch_keeps_normal_gradients() -> None:
    # one grey image in the batch must not poison the others' gradients
    batch = torch.cat([torch.full((1, 3, 6, 6), 0.5), random_image((1, 3, 6, 6))])
    _, grad = value_and_grad(lambda p: build_loss("color_constancy")(p, p.detach()), batch)
    _, ref_grad = value_and_grad(seed_l_color, batch[1:].double())
    assert torch.equal(grad[0], torch.zeros_like(grad[0]))
    assert rel_err(grad[1:] * 2, ref_grad) <= GRAD_RTOL  # batch mean over 2 vs 1


def test_safe_sqrt() -> None:
    x = torch.tensor([0.0, 1e-30, 0.25, 4.0], dtype=torch.float64, requires_grad=True)
    y = safe_sqrt(x)
    assert torch.equal(y.detach(), torch.sqrt(x.detach()))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert grad[0].item() == 0.0
    assert torch.allclose(grad[1:], 0.5 / torch.sqrt(x.detach()[1:]), rtol=1e-15)


def test_shape_and_channel_errors() -> None:
    loss = build_loss("color_constancy")
    with pytest.raises(ValueError) as info:
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    assert str(info.value) == (
        "color_constancy: pred and target must have the same shape, got (1, 3, 8, 8) and "
        "(1, 3, 8, 9)"
    )
    with pytest.raises(ValueError) as info:
        loss(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8))
    assert str(info.value) == "color_constancy: expected 3 channels, got 4"
