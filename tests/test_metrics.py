"""Metrics against outside references: skimage (PSNR, SSIM), cv2 (GT-mean), the lpips package."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import cv2
import lpips
import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.metrics import LPIPSMetric, evaluate, gt_mean, psnr, ssim


def _photo(name: str) -> np.ndarray:
    """A real photo as float64 HWC RGB in [0, 1], cropped to odd, non-square sizes (speed)."""
    return getattr(skimage.data, name)()[:251, :303].astype(np.float64) / 255.0


def _degrade(img: np.ndarray, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "dark_noisy":  # under-exposure, gamma, sensor noise, 8-bit quantisation
        out = 0.35 * img**1.4 + rng.normal(0.0, 0.03, img.shape)
        return np.round(np.clip(out, 0, 1) * 255) / 255
    if kind == "blur_cast":  # blur plus a colour cast
        out = cv2.GaussianBlur(img, (7, 7), 2.0) * np.array([1.1, 0.95, 0.8])
        return np.clip(out, 0, 1)
    raise ValueError(kind)


def _nchw(*imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


PHOTOS = ["astronaut", "coffee", "chelsea"]


@pytest.mark.parametrize("name", PHOTOS)
def test_psnr_and_ssim_equal_skimage_on_real_photos(name: str) -> None:
    ref = _photo(name)
    preds = [_degrade(ref, "dark_noisy", 0), _degrade(ref, "blur_cast", 1)]
    got_psnr = psnr(_nchw(*preds), _nchw(ref, ref))
    got_ssim = ssim(_nchw(*preds), _nchw(ref, ref))
    assert got_psnr.dtype == got_ssim.dtype == torch.float64 and got_psnr.shape == (2,)
    for i, pred in enumerate(preds):
        want_psnr = peak_signal_noise_ratio(ref, pred, data_range=1)
        want_ssim = structural_similarity(
            ref,
            pred,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
        )
        assert got_psnr[i].item() == pytest.approx(want_psnr, abs=1e-6)
        assert got_ssim[i].item() == pytest.approx(want_ssim, abs=1e-4)
        assert 0.05 < want_ssim < 0.98  # a real, discriminating case


def test_float32_inputs_are_scored_in_float64() -> None:
    ref = _photo("coffee")
    pred = _degrade(ref, "dark_noisy", 2)
    x, y = _nchw(pred).float(), _nchw(ref).float()
    want = peak_signal_noise_ratio(
        ref.astype(np.float32).astype(np.float64),
        pred.astype(np.float32).astype(np.float64),
        data_range=1,
    )
    assert psnr(x, y).item() == pytest.approx(want, abs=1e-6)


def test_identical_images() -> None:
    x = _nchw(_photo("chelsea"))
    assert psnr(x, x).item() == math.inf
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_shape_and_size_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"psnr: expected two NCHW tensors of the same shape, "
        r"got \(1, 3, 16, 16\) and \(1, 3, 16, 15\)",
    ):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 15))
    with pytest.raises(
        ValueError,
        match=r"ssim: images must be at least 11x11 \(the gaussian "
        r"window\), got 10x32",
    ):
        ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32))


def _gt_mean_reference(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Retinexformer's test_from_dataset.py --GT_mean on HWC RGB float arrays."""
    mean_restored = cv2.cvtColor(pred.astype(np.float32), cv2.COLOR_BGR2GRAY).mean()
    mean_target = cv2.cvtColor(ref.astype(np.float32), cv2.COLOR_BGR2GRAY).mean()
    return np.clip(pred * (mean_target / mean_restored), 0, 1)


@pytest.mark.parametrize("name", PHOTOS)
def test_gt_mean_equals_the_literature_scripts(name: str) -> None:
    ref = _photo(name)
    pred = _degrade(ref, "dark_noisy", 3)
    got = gt_mean(_nchw(pred), _nchw(ref))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, _gt_mean_reference(pred, ref), rtol=0, atol=1e-6)
    # and the result is brighter, so its PSNR improves on this under-exposed prediction
    assert psnr(torch.from_numpy(got).permute(2, 0, 1)[None], _nchw(ref)) > psnr(
        _nchw(pred), _nchw(ref)
    )


def test_gt_mean_behaviour() -> None:
    ref = _nchw(_photo("astronaut") * 0.9)
    # a globally scaled prediction is restored exactly (no clipping happens here)
    restored = gt_mean(ref * 0.5, ref)
    torch.testing.assert_close(restored, ref, rtol=1e-12, atol=1e-12)
    # the grey level weighs R by 0.114 and B by 0.299 (cv2's BGR weights on RGB arrays)
    red, blue = torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 12, 12)
    red[:, 0], blue[:, 2] = 0.5, 0.5
    torch.testing.assert_close(gt_mean(red, blue)[:, 0], torch.full((1, 12, 12), 1.0))
    torch.testing.assert_close(
        gt_mean(blue, red)[:, 2], torch.full((1, 12, 12), 0.5 * 0.114 / 0.299)
    )
    # an all-black prediction cannot be rescaled: unchanged, not NaN
    black = torch.zeros(2, 3, 12, 12)
    assert torch.equal(gt_mean(black, torch.rand(2, 3, 12, 12)), black)
    with pytest.raises(ValueError, match="gt_mean: expected RGB images \\(3 channels\\), got 1"):
        gt_mean(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12))


def _package_lpips(planted_weights) -> lpips.LPIPS:
    """The lpips package with the planted AlexNet features, loaded here from the file."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True)
    state = torch.load(planted_weights.files["alexnet"], weights_only=True)
    net = model.net
    for part in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5):
        for index, module in part.named_children():
            for pname, param in module.named_parameters():
                param.data.copy_(state[f"features.{index}.{pname}"])
    return model.eval()


def test_lpips_equals_the_package_with_the_same_backbone(planted_weights) -> None:
    ref = _photo("astronaut")[:96, :128]
    x = _nchw(_degrade(ref, "dark_noisy", 4), _degrade(ref, "blur_cast", 5)).float()
    y = _nchw(ref, ref).float()
    metric = LPIPSMetric("cpu")
    got = metric(x, y)
    package = _package_lpips(planted_weights)
    with torch.no_grad():
        want = package(x * 2 - 1, y * 2 - 1).reshape(-1)
        also = package(x, y, normalize=True).reshape(-1)
    assert got.shape == (2,)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    torch.testing.assert_close(got, also, rtol=1e-5, atol=0)
    # the backbone really is the planted one (pnet_rand=True alone would leave a random trunk)
    planted = torch.load(planted_weights.files["alexnet"], weights_only=True)
    assert torch.equal(
        metric.model.net.slice5.get_submodule("10").weight, planted["features.10.weight"]
    )
    assert metric(y, y).abs().max().item() < 1e-6
    assert LPIPSMetric("cpu").model is metric.model  # built once per process and device


def test_evaluate_keys_clamping_and_gt_mean_columns(planted_weights) -> None:
    ref = _nchw(_photo("coffee")[:64, :80])
    pred = ref * 0.4 + 0.02
    out = evaluate(pred, ref)
    assert list(out) == ["psnr", "ssim", "psnr_gtmean", "ssim_gtmean"]
    assert out["psnr_gtmean"].item() > out["psnr"].item() + 5
    with_lpips = evaluate(pred, ref, ("psnr", "ssim", "lpips"))
    assert list(with_lpips) == ["psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean"]
    torch.testing.assert_close(with_lpips["psnr"], out["psnr"])
    # predictions are clamped to [0, 1] before scoring
    over = ref.clone()
    over[:, :, :8] = 1.7
    clamped = evaluate(over, ref)
    assert clamped["psnr"].item() == pytest.approx(psnr(over.clamp(0, 1), ref).item(), abs=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_on_cuda_equal_cpu(planted_weights) -> None:
    ref = _nchw(_photo("chelsea")[:64, :96])
    pred = _nchw(_degrade(_photo("chelsea")[:64, :96], "dark_noisy", 6))
    cpu = evaluate(pred, ref, ("psnr", "ssim", "lpips"))
    gpu = evaluate(pred.cuda(), ref.cuda(), ("psnr", "ssim", "lpips"))
    for key, value in cpu.items():  # LPIPS: cuDNN may use TF32 convolutions
        tol = 1e-2 if key == "lpips" else 1e-9
        torch.testing.assert_close(gpu[key].cpu(), value, rtol=tol, atol=tol)
