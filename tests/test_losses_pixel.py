"""Pixel losses (l1, mse, charbonnier, gaussian_l1) against references written from the sources.

Tolerances: values within 1e-5 relative, gradients within 1e-4 relative (max-norm), float32.
"""

from __future__ import annotations

from functools import partial

import numpy as np
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

natural_pair = partial(darkened_pair, top=100, left=180)
PAIRS = {"random": partial(random_pair, (2, 3, 40, 40)), "natural": natural_pair}


@pytest.mark.parametrize("kind", PAIRS)
def test_l1_and_mse_equal_torch_nn(kind: str) -> None:
    pred, target = PAIRS[kind]()
    for name, ref in (("l1", torch.nn.L1Loss()), ("mse", torch.nn.MSELoss())):
        value, grad = value_and_grad(build_loss(name), pred, target)
        ref_value, ref_grad = value_and_grad(ref, pred, target)
        assert torch.equal(value, ref_value)
        assert torch.equal(grad, ref_grad)


def charbonnier_reference(pred: np.ndarray, target: np.ndarray, eps: float):
    """S3Net's code: mean(sqrt(d*d + eps)), eps added (not squared); gradient by hand."""
    d = pred.astype(np.float64) - target.astype(np.float64)
    root = np.sqrt(d * d + eps)
    return root.mean(), d / root / d.size


@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_charbonnier_matches_source_formula(kind: str, eps: float) -> None:
    pred, target = PAIRS[kind]()
    loss = build_loss("charbonnier") if eps == 1e-6 else build_loss("charbonnier", eps=eps)
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = charbonnier_reference(pred.numpy(), target.numpy(), eps)
    assert abs(value.item() - ref_value) <= VALUE_RTOL * ref_value
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_charbonnier_adds_eps_not_eps_squared() -> None:
    x = torch.zeros(1, 1, 4, 4)
    assert build_loss("charbonnier")(x, x).item() == pytest.approx(1e-3, rel=1e-6)
    assert build_loss("charbonnier", eps=0.25)(x, x).item() == pytest.approx(0.5, rel=1e-6)


def caffe_msssim_l1_term(
    pred: np.ndarray, target: np.ndarray, sigma: float
) -> tuple[float, np.ndarray]:
    """NVlabs/PL4NN ``MSSSIML1``'s l1 part for one odd square patch batch (N, C, W, W).

    Gaussian of the coarsest sigma over the whole patch (Python 2 integer ``width/2``),
    normalised to sum 1, times |d|, summed, divided by N*C; gradient sign(d) * w / (N*C).
    """
    n, c, h, width = pred.shape
    assert h == width and width % 2 == 1
    g = np.exp(-1.0 * np.arange(-(width // 2), width // 2 + 1) ** 2 / (2 * sigma**2))
    w = np.outer(g, g.reshape((width, 1)))
    w = w / np.sum(w)
    diff = pred.astype(np.float64) - target.astype(np.float64)
    value = np.sum(np.abs(diff) * w) / (n * c)
    return value, np.sign(diff) * w / (n * c)


def sliding_reference(pred: np.ndarray, target: np.ndarray, sigma: float, win: int):
    """The Caffe term applied to every win x win window (valid positions), averaged."""
    h, w = pred.shape[-2:]
    total, grad, count = 0.0, np.zeros(pred.shape, dtype=np.float64), 0
    for i in range(h - win + 1):
        for j in range(w - win + 1):
            v, g = caffe_msssim_l1_term(
                pred[..., i : i + win, j : j + win], target[..., i : i + win, j : j + win], sigma
            )
            total += v
            grad[..., i : i + win, j : j + win] += g
            count += 1
    return total / count, grad / count


@pytest.mark.parametrize("kind", PAIRS)
def test_gaussian_l1_single_patch_equals_caffe_layer(kind: str) -> None:
    pred, target = PAIRS[kind](49) if kind == "natural" else random_pair((2, 3, 49, 49))
    value, grad = value_and_grad(build_loss("gaussian_l1"), pred, target)
    ref_value, ref_grad = caffe_msssim_l1_term(pred.numpy(), target.numpy(), sigma=8.0)
    assert abs(value.item() - ref_value) <= VALUE_RTOL * ref_value
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


@pytest.mark.parametrize("kind", PAIRS)
def test_gaussian_l1_sliding_windows_match_loop(kind: str) -> None:
    pred, target = PAIRS[kind](40) if kind == "natural" else random_pair((2, 3, 30, 37))
    loss = build_loss("gaussian_l1", sigma=2.0, win_size=11)
    value, grad = value_and_grad(loss, pred, target)
    ref_value, ref_grad = sliding_reference(pred.numpy(), target.numpy(), 2.0, 11)
    assert abs(value.item() - ref_value) <= VALUE_RTOL * ref_value
    assert rel_err(grad, ref_grad) <= GRAD_RTOL


def test_gaussian_l1_weights_sum_to_one() -> None:
    # a constant error e gives exactly e (the weight map of each channel sums to 1), but a
    # non-constant error is weighted: pixels near the border count less than inner ones
    loss = build_loss("gaussian_l1")
    target = torch.zeros(2, 3, 97, 130)
    assert loss(target + 0.25, target).item() == pytest.approx(0.25, rel=1e-6)
    border = target.clone()
    border[..., 0, :] = 1.0
    inner = target.clone()
    inner[..., 48, :] = 1.0
    assert loss(border, target).item() < 0.1 * loss(inner, target).item()


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    pred = torch.rand(1, 2, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 9, 9, generator=gen, dtype=torch.float64)
    for loss in (
        build_loss("charbonnier"),
        build_loss("gaussian_l1", sigma=1.5, win_size=5),
        build_loss("l1"),
        build_loss("mse"),
    ):
        assert torch.autograd.gradcheck(lambda p, loss=loss: loss(p, target), (pred,))


def test_perfect_prediction() -> None:
    _, target = natural_pair(64)
    for name in ("l1", "mse", "gaussian_l1"):
        assert build_loss(name)(target, target).item() == 0.0
    assert build_loss("charbonnier")(target, target).item() == pytest.approx(1e-3, rel=1e-6)


@pytest.mark.parametrize("name", ["l1", "mse", "charbonnier", "gaussian_l1"])
def test_mismatched_shapes(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: pred and target must have the same shape, "
                       r"got \(1, 3, 64, 64\) and \(1, 3, 64, 60\)$"):
        build_loss(name)(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 60))
    with pytest.raises(ValueError, match=rf"^{name}: expected NCHW tensors, got pred of shape"):
        build_loss(name)(torch.rand(3, 64, 64), torch.rand(3, 64, 64))


def test_gaussian_l1_size_limit() -> None:
    loss = build_loss("gaussian_l1")
    assert loss.min_input_size() == 49
    loss(torch.rand(1, 3, 49, 60), torch.rand(1, 3, 49, 60))
    with pytest.raises(ValueError, match=r"^gaussian_l1: input 48x60 is smaller than the 49x49 "
                       r"Gaussian window; use inputs of at least 49x49$"):
        loss(torch.rand(1, 3, 48, 60), torch.rand(1, 3, 48, 60))


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("charbonnier", {"eps": 0}, "charbonnier: eps must be a finite number > 0, got 0"),
        ("charbonnier", {"eps": "1"}, "charbonnier: eps must be a finite number > 0, got '1'"),
        ("gaussian_l1", {"sigma": -1}, "gaussian_l1: sigma must be a finite number > 0, got -1"),
        ("gaussian_l1", {"win_size": 10}, "gaussian_l1: win_size must be odd, got 10"),
        ("gaussian_l1", {"win_size": 2.5},
         "gaussian_l1: win_size must be an odd integer >= 1, got 2.5"),
    ],
)
def test_bad_params(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_loss(name, **params)
    assert str(info.value) == message


def test_buffers_follow_dtype_and_are_not_saved() -> None:
    loss = build_loss("gaussian_l1", sigma=1.0, win_size=5).to(torch.float64)
    assert loss.state_dict() == {}
    pred, target = random_pair((1, 3, 8, 8))
    value = loss(pred.double(), target.double())
    assert value.dtype == torch.float64
