"""Per-image quality metrics on NCHW float tensors in [0, 1] (conventions: docs/METRICS.md).

- :func:`psnr`: float64, data_range 1, equal to ``skimage.metrics.peak_signal_noise_ratio``.
- :func:`ssim`: batched float64 torch code equal to ``skimage.metrics.structural_similarity(...,
  channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
- :class:`LPIPSMetric`: the ``lpips`` package, AlexNet, v0.1, inputs scaled to [-1, 1], with the
  AlexNet trunk loaded through :mod:`benchmark.weights` (checksum and offline policy).
- :func:`gt_mean`: the GT-mean rescaling of the LLIE literature, for the extra columns.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import lpips
import torch
from torch import nn

from benchmark import weights

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage's value for gaussian_weights=True: an 11-tap window at sigma 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: cv2.COLOR_BGR2GRAY weights applied to (R, G, B) planes, as the GT-mean scripts do (see gt_mean)
GT_MEAN_GRAY = (0.114, 0.587, 0.299)

# (weights file, sha256, device) -> the LPIPS network (building one costs seconds)
_LPIPS_CACHE: dict[tuple[str, str, str], lpips.LPIPS] = {}


def _check(name: str, pred: torch.Tensor, ref: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape != ref.shape:
        raise ValueError(
            f"{name}: expected two NCHW tensors of the same shape, got {tuple(pred.shape)} "
            f"and {tuple(ref.shape)}"
        )


def psnr(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, ``10 log10(1 / mse)`` in float64 (``inf`` for identical images)."""
    _check("psnr", pred, ref)
    mse = (pred.double() - ref.double()).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D gaussian: radius int(truncate * sigma + 0.5), normalised to sum 1."""
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 / SSIM_SIGMA**2 * x * x)
    return g / g.sum()


def _filter_valid(t: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate ``t`` with the 1-D window ``g`` along ``dim``, valid part only.

    A weighted sum of shifted views: exact in float64 and much faster on CPU than a float64
    depthwise ``conv2d``.
    """
    taps = g.tolist()
    out_len = t.shape[dim] - len(taps) + 1
    acc = taps[0] * t.narrow(dim, 0, out_len)
    for i in range(1, len(taps)):
        acc = acc + taps[i] * t.narrow(dim, i, out_len)
    return acc


def ssim(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (float64), per channel then averaged over channels.

    Matches skimage's gaussian-weighted SSIM: an 11x11 separable gaussian (sigma 1.5, truncate
    3.5), population covariances, C1 = 0.01^2, C2 = 0.03^2, and the mean taken over the map with
    a border of 5 pixels cropped. skimage filters with ``mode='reflect'`` and then crops exactly
    the pixels the padding reaches, so a valid (unpadded) convolution gives the same numbers.

    Raises:
        ValueError: shapes differ, or an image side is smaller than the 11-pixel window.
    """
    _check("ssim", pred, ref)
    g = _gaussian_window(torch.float64, pred.device)
    k = g.numel()
    if min(pred.shape[-2:]) < k:
        raise ValueError(
            f"ssim: images must be at least {k}x{k} (the gaussian window), got "
            f"{pred.shape[-2]}x{pred.shape[-1]}"
        )
    x, y = pred.double(), ref.double()
    n, c = x.shape[:2]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H, W)
    stack = _filter_valid(_filter_valid(stack, g, -1), g, -2)
    ux, uy, uxx, uyy, uxy = stack.split(c, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s_map.mean(dim=(2, 3)).mean(dim=1).view(n)


def gt_mean(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Rescale each prediction to its reference's mean grey level, then clip to [0, 1].

    ``out = clip(pred * mean_gray(ref) / mean_gray(pred), 0, 1)``, Retinexformer's GT-mean
    protocol (``Enhancement/test_from_dataset.py --GT_mean``, Cai et al., ICCV 2023). It computes
    the grey level with ``cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`` on RGB arrays, i.e. weights
    0.114, 0.587, 0.299 on R, G, B (not the Rec. 601 order); this follows it exactly so the column
    is comparable with Retinexformer's GT-mean figures. Other papers' "GT-mean" differ: LLFlow's
    test code rescales by the mean of the unclamped output and quantises to uint8 before PSNR,
    and KinD does not rescale the output at all (docs/METRICS.md measures the differences). An
    all-black prediction (mean 0) is returned unchanged instead of becoming NaN. The ratio is
    computed in float64.
    """
    _check("gt_mean", pred, ref)
    if pred.shape[1] != 3:
        raise ValueError(f"gt_mean: expected RGB images (3 channels), got {pred.shape[1]}")
    w = torch.tensor(GT_MEAN_GRAY, dtype=torch.float64, device=pred.device).view(1, 3, 1, 1)
    mean_pred = (pred.double() * w).sum(dim=1).mean(dim=(1, 2))
    mean_ref = (ref.double() * w).sum(dim=1).mean(dim=(1, 2))
    ratio = torch.where(mean_pred > 0, mean_ref / mean_pred.clamp_min(1e-300), 1.0)
    return (pred.double() * ratio.view(-1, 1, 1, 1)).clamp(0.0, 1.0).to(pred.dtype)


def _build_lpips(device: torch.device) -> lpips.LPIPS:
    feats = weights.alexnet_state_dict()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True)
    # the package's slices hold torchvision's modules under their original indices
    by_index = {int(n): m for part in model.net.children() for n, m in part.named_children()}
    trunk = nn.Sequential(*(by_index[i] for i in range(len(by_index))))
    trunk.load_state_dict({k[len("features.") :]: v for k, v in feats.items()})
    return model.to(device).eval().requires_grad_(False)


class LPIPSMetric:
    """LPIPS (``lpips`` package, AlexNet, v0.1) per image, inputs in [0, 1] scaled to [-1, 1].

    The package is built with a random trunk (``pnet_rand=True``) and the AlexNet features are
    then loaded from :func:`benchmark.weights.alexnet_state_dict`, so the checksum and offline
    policy apply; the package's own v0.1 linear-layer weights ship inside it. The network is
    built once per process, weights file and device (building one takes seconds on a CPU).
    """

    backbones: tuple[str, ...] = ("alexnet",)

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = weights.canonical_device(device)
        info = weights.ensure("alexnet")
        key = (str(info.path), info.sha256, str(self.device))
        if key not in _LPIPS_CACHE:
            _LPIPS_CACHE[key] = _build_lpips(self.device)
        self.model = _LPIPS_CACHE[key]

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image, shape ``[N]`` (float32, on the metric's device)."""
        _check("lpips", pred, ref)
        x = pred.to(self.device, torch.float32) * 2 - 1
        y = ref.to(self.device, torch.float32) * 2 - 1
        return self.model(x, y).reshape(-1)


def evaluate(
    pred: torch.Tensor, ref: torch.Tensor, lpips_metric: LPIPSMetric | None = None
) -> dict[str, torch.Tensor]:
    """Every per-image metric: ``psnr``, ``ssim``, ``lpips`` (only with a metric), GT-mean variants.

    ``pred`` is clamped to [0, 1] first, as the LLIE evaluation scripts clamp the network output.
    """
    _check("evaluate", pred, ref)
    pred = pred.clamp(0.0, 1.0)
    adjusted = gt_mean(pred, ref)
    out = {"psnr": psnr(pred, ref), "ssim": ssim(pred, ref)}
    if lpips_metric is not None:
        out["lpips"] = lpips_metric(pred, ref)
    out["psnr_gtmean"] = psnr(adjusted, ref)
    out["ssim_gtmean"] = ssim(adjusted, ref)
    return out


__all__ = ["LPIPSMetric", "evaluate", "gt_mean", "psnr", "ssim"]
