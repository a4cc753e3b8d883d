"""SSIM and MS-SSIM losses, built on the ``pytorch-msssim`` package.

The common LLIE ``SSIM_loss`` (11x11 gaussian, sigma 1.5, valid convolution, mean over the map)
and Zhao et al. 2017 (``1 - MS-SSIM``). ``pytorch_msssim.ssim(x, y, data_range=1)`` computes the
same numbers as the reference code (separable valid convolution instead of one 11x11 kernel;
tests/test_losses_ssim.py checks value and gradient against a re-implementation of it).

We hand pytorch-msssim a Gaussian window normalised in float64 (then cast), not its own
float32 one: a window whose sum is off by one float32 ulp already moves SSIM by ~1e-5
relative on natural images (sigma^2 = E[x^2] - mu^2 cancels), while ours stays within ~1e-6
of the formula evaluated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytorch_msssim
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _ssim as _library_ssim

from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images

# pytorch_msssim.ms_ssim asserts min(H, W) > (win_size - 1) * 2**4, whatever the number of levels
_MS_SSIM_ASSERT_DOWNSAMPLINGS = 4
#: the 5-scale weights of Wang et al. 2003, pytorch_msssim's default
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_kernel_1d(size: int, sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size`` centred on ``size // 2`` (computed in float64)."""
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def _check_window(name: str, win_size: object, win_sigma: object) -> None:
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3:
        raise ValueError(f"{name}: win_size must be an odd integer >= 3, got {win_size!r}")
    if win_size % 2 != 1:
        raise ValueError(f"{name}: win_size must be odd, got {win_size}")
    ok = isinstance(win_sigma, (int, float)) and not isinstance(win_sigma, bool)
    if not (ok and math.isfinite(win_sigma) and win_sigma > 0):
        raise ValueError(f"{name}: win_sigma must be a finite number > 0, got {win_sigma!r}")


def _check_size(name: str, pred: torch.Tensor, minimum: int, why: str) -> None:
    h, w = pred.shape[-2:]
    if min(h, w) < minimum:
        raise ValueError(
            f"{name}: input {h}x{w} is too small: {why} needs height and width >= {minimum}"
        )


class SSIMLoss(Loss):
    r"""One minus SSIM, mean over the valid SSIM map of every channel.

    .. math::
        \mathcal{L} = 1 - \operatorname{mean}_{n,c,p}
        \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 +
        \sigma_y^2 + C_2)},\quad C_1 = 0.01^2,\ C_2 = 0.03^2

    with local statistics from an 11x11 Gaussian (sigma 1.5), valid convolution, data range 1.
    Source: the common ``SSIM_loss`` code; Wang et al., "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 2004. Library: ``pytorch_msssim.ssim``.
    Deviation: inputs smaller than the window raise ``ValueError`` (pytorch-msssim would
    silently skip the smoothing along that axis and the reference code would fail in conv2d).

    Args:
        win_size: odd side of the Gaussian window (the reference code: 11).
        win_sigma: its standard deviation (the reference code: 1.5).
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (each image's 1 - SSIM,
            shape ``(N,)``: ``size_average=False`` of pytorch-msssim); a library keyword.
    """

    references = ("wang2004ssim", "zhao2017loss")
    paper = "Wang et al., SSIM, IEEE TIP 2004 (as a loss: Zhao et al., IEEE TCI 2017)"
    reduces = True

    def __init__(self, win_size: int = 11, win_sigma: float = 1.5, reduction: str = "mean"
                 ) -> None:
        super().__init__()
        _check_window("ssim", win_size, win_sigma)
        self.reduction = check_reduction("ssim", reduction)
        self.win_size = win_size
        self.win_sigma = float(win_sigma)
        win = gaussian_kernel_1d(win_size, self.win_sigma).view(1, 1, 1, -1)
        self.register_buffer("win", win, persistent=False)

    def min_input_size(self) -> int:
        return self.win_size

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("ssim", pred, target)
        _check_size("ssim", pred, self.win_size, f"the {self.win_size}x{self.win_size} window")
        win = self.win.to(pred.dtype).repeat(pred.shape[1], 1, 1, 1)
        if self.reduction != "mean":
            per_image = pytorch_msssim.ssim(pred, target, data_range=1.0, win=win,
                                            size_average=False)
            return reduce_images(1.0 - per_image, self.reduction)
        return 1.0 - pytorch_msssim.ssim(pred, target, data_range=1.0, win=win)


class MSSSIMLoss(Loss):
    r"""One minus multi-scale SSIM: ``1 - pytorch_msssim.ms_ssim(pred, target, data_range=1)``.

    .. math::
        \mathcal{L} = 1 - \operatorname{mean}_{n,c}\Big[\mathrm{SSIM}_M^{\,w_M}
        \prod_{j=1}^{M-1} \mathrm{cs}_j^{\,w_j}\Big]

    over ``M = len(weights)`` scales (2x average-pool between scales), 11x11 Gaussian windows
    (sigma 1.5), valid convolution, and the per-channel cs/SSIM clamped at 0 by pytorch-msssim.
    Source: Zhao et al., "Loss Functions for Image Restoration with Neural Networks", IEEE TCI
    2017; MS-SSIM from Wang, Simoncelli & Bovik, Asilomar 2003. Library: ``pytorch_msssim``.
    Deviation: inputs too small for the scales raise a ``ValueError`` that says the minimum
    (pytorch-msssim has a bare ``assert``); :meth:`min_input_size` gives the same bound so
    recipes are refused before training. Zhao et al.'s own Caffe layer computes MS-SSIM at the
    patch centre with 5 Gaussian widths and no downsampling; the benchmark uses the standard
    pyramid of pytorch-msssim, as the project's issue 2 specifies.

    Args:
        win_size: odd side of the Gaussian window (11).
        win_sigma: its standard deviation (1.5).
        weights: per-scale exponents, finest first (default: Wang et al.'s five).
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (each image's
            1 - MS-SSIM, shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhao2017loss", "wang2003msssim")
    paper = "Zhao, Gallo, Frosio, Kautz, Loss Functions for Image Restoration..., IEEE TCI 2017"
    reduces = True

    def __init__(
        self, win_size: int = 11, win_sigma: float = 1.5, weights: Sequence[float] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_window("ms_ssim", win_size, win_sigma)
        self.reduction = check_reduction("ms_ssim", reduction)
        if weights is None:
            weights = MS_SSIM_WEIGHTS
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or not weights:
            raise ValueError(
                f"ms_ssim: weights must be a non-empty list of numbers, got {weights!r}"
            )
        for w in weights:
            ok = isinstance(w, (int, float)) and not isinstance(w, bool)
            if not (ok and math.isfinite(w) and w >= 0):
                raise ValueError(
                    f"ms_ssim: weights must be finite numbers >= 0, got {list(weights)}"
                )
        self.win_size = win_size
        self.win_sigma = float(win_sigma)
        self.weights = [float(w) for w in weights]
        win = gaussian_kernel_1d(win_size, self.win_sigma).view(1, 1, 1, -1)
        self.register_buffer("win", win, persistent=False)

    def min_input_size(self) -> int:
        # the library's assert, and every scale at least one window wide (2x pooling rounds up)
        by_assert = (self.win_size - 1) * 2**_MS_SSIM_ASSERT_DOWNSAMPLINGS + 1
        by_levels = (self.win_size - 1) * 2 ** (len(self.weights) - 1) + 1
        return max(by_assert, by_levels)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("ms_ssim", pred, target)
        _check_size(
            "ms_ssim", pred, self.min_input_size(),
            f"MS-SSIM with {len(self.weights)} scales and a {self.win_size}x{self.win_size} window",
        )
        win = self.win.to(pred.dtype).repeat(pred.shape[1], 1, 1, 1)
        values = ms_ssim_per_channel(pred, target, win, self.weights)
        if self.reduction == "mean":
            return 1.0 - values.mean()
        return reduce_images(1.0 - values.mean(dim=1), self.reduction)


def ms_ssim_per_channel(
    pred: torch.Tensor, target: torch.Tensor, win: torch.Tensor, weights: Sequence[float]
) -> torch.Tensor:
    """MS-SSIM per image and channel, shape ``(N, C)``: ``pytorch_msssim.ms_ssim(pred, target,
    data_range=1, win=win, weights=weights)`` before its mean, computed without a host round trip.

    The same pyramid (its ``_ssim`` at every scale, 2x average pooling with odd sides padded,
    negative cs/SSIM clamped at 0), but the scales are combined by multiplying one factor
    ``x ** w`` (``w`` a Python float) after another instead of ``torch.prod`` over a stacked
    tensor raised to a weight tensor: ``torch.prod``'s backward asks the host whether any factor
    is zero (an ``.item()``), a CUDA synchronisation every step that also keeps the step out
    of a CUDA graph, and ``new_tensor(weights)`` is a host-to-device copy. Equal to the library
    within float rounding (tests/test_losses_ssim.py).
    """
    x, y = pred, target
    value: torch.Tensor | None = None
    last = len(weights) - 1
    for level, weight in enumerate(weights):
        ssim_per_channel, cs = _library_ssim(x, y, data_range=1.0, win=win, size_average=False)
        factor = torch.relu(ssim_per_channel if level == last else cs) ** weight
        value = factor if value is None else value * factor
        if level < last:
            padding = [side % 2 for side in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    assert value is not None  # weights is never empty (checked in __init__)
    return value
