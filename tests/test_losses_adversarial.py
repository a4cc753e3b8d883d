"""SRGAN adversarial loss (benchmark/losses/adversarial.py).

Reference: SRGAN's generator term ``forward(x) = sum(-log(x))`` applied to the
probabilities ``sigmoid(D(pred))`` of the same discriminator.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from benchmark.losses import build_loss
from benchmark.losses.adversarial import AdversarialLoss


def ref_generator_term(probabilities: torch.Tensor) -> torch.Tensor:  # SRGAN's term, literally
    return torch.sum(-torch.log(probabilities))


def natural_batch(size: int = 48) -> torch.Tensor:
    crops = [
        data.astronaut()[60 : 60 + size, 200 : 200 + size],
        data.coffee()[120 : 120 + size, 260 : 260 + size],
        data.chelsea()[100 : 100 + size, 150 : 150 + size],
    ]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def make_loss(seed: int = 0, **params) -> AdversarialLoss:
    torch.manual_seed(seed)
    return AdversarialLoss(**params)


@pytest.mark.parametrize("kind", ["random", "natural"])
def test_generator_term_equals_source_value_and_gradient(kind):
    target = natural_batch() if kind == "natural" else torch.rand(4, 3, 40, 36)
    pred = (target * 0.6).clamp(0, 1)
    loss = make_loss()
    p1 = pred.clone().requires_grad_(True)
    value = loss(p1, target)
    value.backward()
    p2 = pred.clone().requires_grad_(True)
    ref = ref_generator_term(torch.sigmoid(loss.discriminator(p2)))
    ref.backward()
    torch.testing.assert_close(value, ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-4 * p2.grad.abs().max())


def test_sum_over_batch():
    target = natural_batch()
    loss = make_loss()
    per_image = [loss(target[i : i + 1], target[i : i + 1]) for i in range(3)]
    torch.testing.assert_close(loss(target, target), sum(per_image), rtol=1e-5, atol=0)
    assert loss.discriminator(target).shape == (3,)  # one logit per image


def test_gradcheck_float64():
    loss = make_loss(width=4).double()
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 3, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,))


def test_safe_for_huge_negative_logits():
    loss = make_loss()
    last = loss.discriminator[-2]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias.fill_(-1000.0)  # D is sure every image is fake: sigmoid underflows to 0
    target = natural_batch()
    pred = target.clone().requires_grad_(True)
    assert torch.isinf(ref_generator_term(torch.sigmoid(loss.discriminator(pred))))
    value = loss(pred, target)
    value.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(3000.0, rel=1e-3)
    assert torch.isfinite(pred.grad).all()


def test_forward_leaves_no_gradient_on_discriminator():
    loss = make_loss()
    target = natural_batch()
    pred = (target * 0.5).requires_grad_(True)
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.discriminator.parameters())
    assert all(p.requires_grad for p in loss.discriminator.parameters())  # still trainable


def test_discriminator_loss_is_bce_and_training_lowers_it():
    loss = make_loss(d_lr=1e-3, width=8)
    real = natural_batch(32)
    fake = F.avg_pool2d(real * 0.4, 5, stride=1, padding=2)  # darker and blurred
    fake.requires_grad_(True)
    first = loss.discriminator_loss(fake, real)
    logits_fake, logits_real = loss.discriminator(fake), loss.discriminator(real)
    expected = -(
        torch.log(torch.sigmoid(logits_real)).mean()
        + torch.log(1 - torch.sigmoid(logits_fake)).mean()
    )
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=0)

    opt = torch.optim.Adam(loss.discriminator.parameters(), lr=loss.d_lr, betas=loss.d_betas)
    for _ in range(20):
        opt.zero_grad()
        d_loss = loss.discriminator_loss(fake, real)
        d_loss.backward()
        opt.step()
    assert fake.grad is None  # the D objective never reaches the generator
    after = loss.discriminator_loss(fake, real).item()
    assert after < 0.9 * first.item()


def test_parameters_and_validation():
    loss = build_loss("adversarial", d_lr=2e-4, d_betas=[0.5, 0.999])
    assert loss.d_lr == 2e-4 and loss.d_betas == (0.5, 0.999)
    default = AdversarialLoss()
    assert default.d_lr == 1e-4 and default.d_betas == (0.9, 0.999)
    assert default.references[0] == "ledig2017srgan" and "SRGAN" in default.paper
    assert any(k.startswith("discriminator.") for k in default.state_dict())  # checkpointed
    with pytest.raises(ValueError, match=r"^adversarial: d_lr must be a number > 0, got -1$"):
        AdversarialLoss(d_lr=-1)
    with pytest.raises(
        ValueError,
        match=r"^adversarial: d_betas must be two numbers in \[0, 1\), "
        r"got \[0.9\]$",
    ):
        AdversarialLoss(d_betas=[0.9])
    with pytest.raises(ValueError, match=r"^adversarial: d_betas .*got \(0.9, 1.0\)$"):
        AdversarialLoss(d_betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"^adversarial: width must be a positive integer, got 0$"):
        AdversarialLoss(width=0)


def test_shape_errors():
    loss = make_loss()
    with pytest.raises(
        ValueError,
        match=r"^adversarial: pred and target must have the same "
        r"shape, got \(2, 3, 16, 16\) and \(2, 3, 8, 8\)$",
    ):
        loss(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^adversarial: expected 3 channels, got 1$"):
        loss.discriminator_loss(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
