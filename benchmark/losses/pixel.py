"""Pixel losses: L1, MSE, Charbonnier, and the Gaussian-weighted L1 of Zhao et al.'s mix.

L1, L2, Charbonnier (LapSRN; S3Net's pixel term); Zhao, Gallo, Frosio & Kautz,
"Loss Functions for Image Restoration with Neural Networks", IEEE TCI 2017 (the ``gaussian_l1``
half of their MS-SSIM + l1 mix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images
from benchmark.losses.ssim import gaussian_kernel_1d


class L1Loss(Loss):
    r"""Mean absolute error, identical to ``nn.L1Loss()``.

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i |x_i - y_i|

    Source: ``nn.L1Loss``, the usual LLIE code. No deviation.

    Args:
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (each image's mean
            absolute error, shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhao2017loss",)
    paper = "L1 / MAE (as a restoration loss: Zhao et al., IEEE TCI 2017)"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("l1", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("l1", pred, target)
        if self.reduction != "mean":
            per_image = F.l1_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
            return reduce_images(per_image, self.reduction)
        return F.l1_loss(pred, target)


class MSELoss(Loss):
    r"""Mean squared error, identical to ``nn.MSELoss()``.

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i (x_i - y_i)^2

    Source: ``nn.MSELoss()``. No deviation.

    Args:
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (each image's mean
            squared error, shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhao2017loss",)
    paper = "L2 / MSE (as a restoration loss: Zhao et al., IEEE TCI 2017)"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("mse", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("mse", pred, target)
        if self.reduction != "mean":
            per_image = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
            return reduce_images(per_image, self.reduction)
        return F.mse_loss(pred, target)


class CharbonnierLoss(Loss):
    r"""Charbonnier (smooth L1) loss as the source codes it.

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i \sqrt{(x_i - y_i)^2 + \varepsilon}

    Source: the common ``L1_Charbonnier_loss`` code (``eps = 1e-6``), as S3Net uses it; Lai et al.,
    "Fast and Accurate Image Super-Resolution with Deep Laplacian Pyramid Networks" (LapSRN), CVPR
    2017. Note the code adds ``eps`` itself, not ``eps**2`` as S3Net's formula writes; we follow the
    code, so the minimum (perfect prediction) is ``sqrt(eps)`` = 1e-3, not 0.

    Args:
        eps: the constant under the square root (> 0; it also keeps the gradient finite at 0).
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (one value per image,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("charbonnier1994two", "lai2017lapsrn")
    paper = "Charbonnier et al., ICIP 1994; as a loss: LapSRN, Lai et al., CVPR 2017"
    reduces = True

    def __init__(self, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__()
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"charbonnier: eps must be a finite number > 0, got {eps!r}")
        self.eps = float(eps)
        self.reduction = check_reduction("charbonnier", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("charbonnier", pred, target)
        diff = pred - target
        values = torch.sqrt(diff * diff + self.eps)
        if self.reduction != "mean":
            return reduce_images(values.mean(dim=(1, 2, 3)), self.reduction)
        return values.mean()


class GaussianL1Loss(Loss):
    r"""The Gaussian-weighted L1 term of Zhao et al.'s mix (``L_mix = 0.84 L_MS-SSIM + 0.16 this``).

    The paper writes the term as :math:`G_{\sigma_G^M} \cdot \mathcal{L}^{\ell_1}`: the absolute
    error around a pixel, weighted by the normalised Gaussian of the coarsest MS-SSIM scale
    (:math:`\sigma_G^M = 8`), and the loss of an image is the mean over its pixels. Their
    reference Caffe layer (NVlabs/PL4NN ``src/loss.py``, class ``MSSSIML1``) evaluates it for the
    centre pixel of each odd, square training patch: a ``width x width`` Gaussian with
    sigma 8, normalised to sum 1, multiplied with ``|x - y|`` and summed over the patch, then
    averaged over batch and channels. We apply exactly that to every ``win_size x win_size``
    window that fits inside the image (valid positions) and average over positions:

    .. math:: \mathcal{L} = \frac{1}{NCP}\sum_{n,c}\sum_{p}\sum_{q \in W(p)} G(q - p)\,|x_q - y_q|

    With one window (an odd square input of side ``win_size``) this is the Caffe layer's value
    to the last digit. Computed as one weight map (the Gaussian summed over the window
    positions that cover each pixel), so it costs one multiply, not a convolution.

    Deliberate differences: the window is ``win_size`` (default 49, i.e. truncated at 3 sigma)
    instead of the whole training patch, so the loss is the same on patches and full images;
    this module holds no 0.16 (the weight belongs in the recipe). On images much larger than
    the window the weight map is flat inside and tapers only within ``win_size`` of the border,
    so the value is close to plain L1.

    Args:
        sigma: standard deviation of the Gaussian, in pixels (> 0; the paper's coarsest scale 8).
        win_size: odd side of the Gaussian window (>= 1); also the smallest input side accepted.
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (one value per image,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhao2017loss",)
    paper = "Zhao, Gallo, Frosio, Kautz, Loss Functions for Image Restoration..., IEEE TCI 2017"
    reduces = True

    def __init__(self, sigma: float = 8.0, win_size: int = 49, reduction: str = "mean") -> None:
        super().__init__()
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"gaussian_l1: sigma must be a finite number > 0, got {sigma!r}")
        if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 1:
            raise ValueError(f"gaussian_l1: win_size must be an odd integer >= 1, got {win_size!r}")
        if win_size % 2 != 1:
            raise ValueError(f"gaussian_l1: win_size must be odd, got {win_size}")
        self.sigma = float(sigma)
        self.win_size = win_size
        self.reduction = check_reduction("gaussian_l1", reduction)
        self.register_buffer("win", gaussian_kernel_1d(win_size, self.sigma), persistent=False)

    def min_input_size(self) -> int:
        return self.win_size

    def _axis_weights(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Sum of the 1-D window over the valid positions covering each of ``n`` pixels."""
        positions = n - self.win_size + 1
        ones = like.new_ones(1, 1, positions)
        win = self.win.to(like).view(1, 1, -1)
        # conv_transpose spreads every window position's kernel back onto the pixels it covers
        return F.conv_transpose1d(ones, win).view(n) / positions

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("gaussian_l1", pred, target)
        h, w = pred.shape[-2:]
        if min(h, w) < self.win_size:
            raise ValueError(
                f"gaussian_l1: input {h}x{w} is smaller than the {self.win_size}x{self.win_size} "
                f"Gaussian window; use inputs of at least {self.win_size}x{self.win_size}"
            )
        weight = self._axis_weights(h, pred).view(h, 1) * self._axis_weights(w, pred).view(1, w)
        n, c = pred.shape[:2]
        weighted = (pred - target).abs() * weight
        if self.reduction != "mean":
            return reduce_images(weighted.sum(dim=(1, 2, 3)) / c, self.reduction)
        return weighted.sum() / (n * c)
