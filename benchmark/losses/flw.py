"""FLW-Net's cosine losses (arXiv 2304.02978): colour, brightness and structure consistency.

FLW-Net: "A Fast and Lightweight Network for Low-Light Image Enhancement", arXiv 2023, official
code github.com/hitzhangyu/FLW-Net (``Myloss.py``). Its training script calls every one of
these as ``L(enhanced_image, img_highlight)``: the first argument is the prediction, the second
the ground truth, which is how ``forward(pred, target)`` maps onto them. (All three happen to be
symmetric in their two arguments.)

Every loss is "cosine terms plus acos terms": for a cosine-like ratio
``c = <x, y> / (|x| |y| + 1e-5)`` it adds ``mean(1 - c) + mean(acos(c))``.

Numerical hazards of the source, fixed here without changing any value the source computes:

* ``acos`` has an infinite derivative at +-1, and float rounding can push ``c`` past 1 (NaN).
  :func:`bounded_acos` returns ``acos(clamp(c, -1, 1))`` (the source's value wherever that is
  finite; 0 instead of NaN past 1) with the derivative ``-1 / sqrt(max(1 - c^2, 1e-6))``
  (at most 1000 in magnitude instead of infinite). Because of the ``+1e-5`` in the
  denominator, ``|c| <= 1 - 1e-5 / (|x| |y| + 1e-5)``: on images in [0, 1] (float32/64),
  ``1 - c^2 >= ~2e-5`` and value and gradient are exactly the source's. The bound acts only
  for far out-of-range values (``|x| |y|`` above about 20) or in half precision.
* ``(.) ** 0.5`` of an exactly zero mean square (a black pixel for the colour loss; a
  constant channel after the min-shift for the consistency losses) has a NaN gradient in the
  source. Here the square root has the same value and a zero gradient at 0 (the subgradient).

Because of the same ``+1e-5``, ``pred == target`` is not the exact minimum: ``c`` grows with
``|pred|``, so e.g. ``1.5 * target`` scores slightly lower (faithful to the source; the L1/SSIM
terms of the FLW recipe pin the scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images

#: the constant the FLW code adds to every cosine denominator
COS_EPS = 1e-5
PAPER = "FLW-Net: A Fast and Lightweight Network for Low-Light Image Enhancement, arXiv 2023"


def safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """``sqrt(t)`` for ``t >= 0`` with gradient 0 (not NaN) where ``t == 0``."""
    positive = t > 0
    root = torch.sqrt(torch.where(positive, t, torch.ones_like(t)))
    return torch.where(positive, root, torch.zeros_like(t))


#: floor on 1 - c^2 in the derivative of :func:`bounded_acos` (|derivative| <= 1000)
ACOS_GRAD_FLOOR = 1e-6


class _BoundedAcos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(c)
        return torch.acos(c.clamp(-1.0, 1.0))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (c,) = ctx.saved_tensors
        wide = c.float() if c.dtype in (torch.float16, torch.bfloat16) else c
        slope = torch.rsqrt((1.0 - wide * wide).clamp_min(ACOS_GRAD_FLOOR)).to(c.dtype)
        return -grad * slope


def bounded_acos(c: torch.Tensor) -> torch.Tensor:
    """``acos(clamp(c, -1, 1))`` with derivative ``-1 / sqrt(max(1 - c^2, 1e-6))``."""
    return _BoundedAcos.apply(c)


def cosine_terms(product: torch.Tensor, norm_x: torch.Tensor, norm_y: torch.Tensor,
                 per_image: bool = False) -> torch.Tensor:
    """``mean(1 - c) + mean(acos(c))`` with ``c = product / (norm_x * norm_y + 1e-5)``; the
    means over everything, or (``per_image``) over each image's values, shape ``(N,)``."""
    c = product / (norm_x * norm_y + COS_EPS)
    if per_image:
        return (1 - c).mean(dim=(1, 2, 3)) + bounded_acos(c).mean(dim=(1, 2, 3))
    return (1 - c).mean() + bounded_acos(c).mean()


def consistency(x: torch.Tensor, y: torch.Tensor, per_image: bool = False) -> torch.Tensor:
    """FLW's ``gradient_Consistency_loss_patch``: min-shifted cosine per channel + over channels.

    Each (image, channel) plane is shifted by ``|its minimum|`` (detached), then
    ``loss1`` = cosine terms of the planes (per image and channel), ``loss2`` = cosine terms of
    the channel-averaged inner product against the channel-RMS norms; returns ``loss1 + loss2``
    (``per_image``: one value per image, shape ``(N,)``).
    """
    x = x - x.amin(dim=(2, 3), keepdim=True).abs().detach()
    y = y - y.amin(dim=(2, 3), keepdim=True).abs().detach()
    product = (x * y).mean(dim=(2, 3), keepdim=True)
    norm_x = safe_sqrt((x**2).mean(dim=(2, 3), keepdim=True))
    norm_y = safe_sqrt((y**2).mean(dim=(2, 3), keepdim=True))
    per_channel = cosine_terms(product, norm_x, norm_y, per_image)
    norm_x2 = safe_sqrt((norm_x**2).mean(dim=1, keepdim=True))
    norm_y2 = safe_sqrt((norm_y**2).mean(dim=1, keepdim=True))
    combined = cosine_terms(product.mean(dim=1, keepdim=True), norm_x2, norm_y2, per_image)
    return per_channel + combined


def difference_maps(x: torch.Tensor) -> torch.Tensor:
    """``|right|`` and ``|down|`` difference maps, ``(N, 2C, H, W)``: all right maps, then down.

    Equal to FLW's 3x3 kernels ``[[0,0,0],[0,1,-1],[0,0,0]]`` and ``[[0,0,0],[0,1,0],[0,-1,0]]``
    under ``F.conv2d(..., padding="same")``: ``x[i, j] - x[i, j+1]`` and ``x[i, j] - x[i+1, j]``
    with zeros beyond the right and bottom borders.
    """
    right = x - F.pad(x, (0, 1, 0, 0))[..., :, 1:]
    down = x - F.pad(x, (0, 0, 0, 1))[..., 1:, :]
    return torch.cat([right, down], dim=1).abs()


class FLWColorLoss(Loss):
    """FLW's colour loss ``L_color_zy``: per-pixel cosine between RGB vectors.

    ``c[n, i, j] = mean_c(x*y) / (sqrt(mean_c(x^2)) * sqrt(mean_c(y^2)) + 1e-5)``,
    ``L = mean(1 - c) + mean(acos(c))`` over batch and pixels (``x = pred``, ``y = target``).

    Source: FLW-Net's official training code (``L_color_zy``). Paper: FLW-Net, arXiv 2023.
    Differences: the bounded acos and the zero-safe square root of the module docstring (same values
    on [0, 1] images).

    Args:
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (one value per image,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhang2023flw",)
    paper = PAPER
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("flw_color", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("flw_color", pred, target)
        product = (pred * target).mean(dim=1, keepdim=True)
        norm_pred = safe_sqrt((pred**2).mean(dim=1, keepdim=True))
        norm_target = safe_sqrt((target**2).mean(dim=1, keepdim=True))
        if self.reduction != "mean":
            return reduce_images(cosine_terms(product, norm_pred, norm_target, True),
                                 self.reduction)
        return cosine_terms(product, norm_pred, norm_target)


class FLWBrightnessLoss(Loss):
    """FLW's brightness-consistency loss ``L_bright_cosist``.

    The whole image: each channel plane is shifted by ``|min|`` (detached) and compared with the
    target's by the cosine terms, per channel and then over channels (see :func:`consistency`):
    bright regions of the target must be bright in the prediction, up to scale.

    Source: FLW-Net's official training code (``L_bright_cosist``; the commented-out quadrant terms
    of the source are not used there either). Paper: FLW-Net, arXiv 2023. Differences: the bounded
    acos and the zero-safe square root of the module docstring (a constant channel in ``pred`` has a
    NaN gradient in the source, 0 here).

    Args:
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (one value per image,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhang2023flw",)
    paper = PAPER
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("flw_brightness", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("flw_brightness", pred, target)
        if self.reduction != "mean":
            return reduce_images(consistency(pred, target, True), self.reduction)
        return consistency(pred, target)


class FLWStructureLoss(Loss):
    """FLW's structure (gradient) consistency loss ``L_grad_cosist``.

    The brightness-consistency computation (:func:`consistency`) applied to the 2C-channel
    maps ``|x[i,j] - x[i,j+1]|`` (all channels) then ``|x[i,j] - x[i+1,j]|`` (zero beyond the
    right/bottom border) of ``pred`` and of ``target``: 6 channels for RGB.

    Source: FLW-Net's official training code (``L_grad_cosist``). Paper: FLW-Net, arXiv 2023.
    Differences: the source runs two 'same'-padded 3x3 convolutions per channel in a Python loop
    over exactly three channels; here two shifted subtractions cover all channels at once (same
    numbers; for C channels there are 2C maps). Plus the bounded acos and zero-safe square root of
    the module docstring (a black ``pred`` has a NaN gradient in the source, 0 here).

    Args:
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (one value per image,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("zhang2023flw",)
    paper = PAPER
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("flw_structure", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("flw_structure", pred, target)
        maps = difference_maps(pred), difference_maps(target)
        if self.reduction != "mean":
            return reduce_images(consistency(*maps, True), self.reduction)
        return consistency(*maps)
