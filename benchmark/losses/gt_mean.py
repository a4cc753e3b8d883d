"""The GT-mean loss: any base loss, blended with its value on a brightness-aligned prediction.

Liao, Hao, Hong, Wang, "GT-Mean Loss: A Simple Yet Effective Solution for Brightness Mismatch in
Low-Light Image Enhancement", ICCV 2025, arXiv 2507.20148 (BibTeX key ``liao2025gtmean``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images

#: luma weights of the grey image whose mean is an image's brightness (torchvision's Grayscale,
#: which the authors' code uses: ITU-R 601-2)
GREY = (0.2989, 0.587, 0.114)
_GREY_WEIGHTS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
#: brightness floor: an all-black prediction would divide by 0 (the authors' code gives NaN)
MIN_MEAN = 1e-6


def _kl_normal(mu_1: torch.Tensor, sd_1: torch.Tensor, mu_2: torch.Tensor,
               sd_2: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_1, sd_1^2) || N(mu_2, sd_2^2))."""
    return torch.log(sd_2 / sd_1) + (sd_1**2 + (mu_1 - mu_2) ** 2) / (2 * sd_2**2) - 0.5


def mismatch_weight(mu_y: torch.Tensor, mu_x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The paper's weight W in [0, 1]: a Jensen-Shannon-style divergence of two brightness laws.

    Each image's mean brightness mu is modelled as N(mu, (sigma mu)^2); M is the moment-matched
    mixture N((mu_y + mu_x) / 2, (sd_y^2 + sd_x^2) / 2);
    W = clip(KL(P_y || M) / 2 + KL(P_x || M) / 2, 0, 1), per image, without gradient.
    """
    sd_y, sd_x = sigma * mu_y, sigma * mu_x
    mu_m = 0.5 * (mu_y + mu_x)
    sd_m = torch.sqrt(0.5 * (sd_y**2 + sd_x**2))
    w = 0.5 * _kl_normal(mu_y, sd_y, mu_m, sd_m) + 0.5 * _kl_normal(mu_x, sd_x, mu_m, sd_m)
    return w.clamp(0.0, 1.0).detach()


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean of each image's grey version (N x 3 x H x W -> N)."""
    key = (images.device, images.dtype)
    w = _GREY_WEIGHTS.get(key)
    if w is None:  # one host-to-device copy per device, not one per step
        w = _GREY_WEIGHTS[key] = images.new_tensor(GREY).view(1, 3, 1, 1)
    return (images * w).sum(dim=1).mean(dim=(1, 2))


class GTMeanLoss(Loss):
    r"""GT-mean form of a base loss L (Liao et al., ICCV 2025), per image n of the batch:

    .. math::

        \mathcal{L} = \frac{1}{N}\sum_n W_n\,L(x_n, y_n)
                      + (1 - W_n)\,L(\mathrm{clip}(\tfrac{\mu_{y_n}}{\mu_{x_n}} x_n, 0, 1), y_n)

    where mu is the mean of the grey image (0.2989 R + 0.587 G + 0.114 B) and W_n the
    :func:`mismatch_weight` of (mu_y, mu_x) with spread ``sigma`` (the authors' LOL setting,
    0.1, is the default). W is treated as a constant (no gradient), the ratio mu_y / mu_x is
    not: the gradient reaches the prediction through both terms. A small brightness mismatch
    (W near 0) makes the loss that of the brightness-aligned prediction; a large one (W -> 1)
    that of the plain prediction.

    Source: the paper's definition, checked against the authors' code (github.com/jingxiLiao/
    GT-mean-loss, ``GTmeanLoss`` with ``loss_weight: dou_KL_2``, ``reduction: none``, the base
    L1 averaged over every element of both weighted terms, as ``L1Loss`` there). The authors ship
    only the L1 form; here any registered loss is the base, evaluated image by image (for the
    element-wise means l1, mse and charbonnier this equals the authors' batch mean): in one
    batched call when the base :attr:`~benchmark.losses.base.Loss.reduces` (its
    ``reduction="none"``), else one call per image. Deliberate
    difference: mean brightness is floored at 1e-6 before the ratio and the divergence, so an
    all-black prediction gives a finite loss instead of NaN (identical values otherwise).

    Args:
        base: name of the registered base loss (default ``l1``); not ``gt_mean`` nor
            ``adversarial`` (its discriminator is trained by the loop only as a recipe term).
        base_params: the base loss's parameters.
        sigma: relative spread of the brightness model (> 0).
        reduction: ``"mean"`` (the batch mean), ``"sum"`` or ``"none"`` (each image's term,
            shape ``(N,)``); a library keyword, not a recipe parameter.
    """

    references = ("liao2025gtmean",)
    paper = "Liao, Hao, Hong, Wang, GT-Mean Loss, ICCV 2025 (arXiv 2507.20148)"
    #: the registry base names are looked up in; set by ``benchmark.losses`` (its ``LOSSES``)
    registry: ClassVar[dict[str, type[nn.Module]]] = {}
    reduces = True

    def __init__(self, base: str = "l1", base_params: dict[str, Any] | None = None,
                 sigma: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        if not isinstance(base, str) or base not in self.registry:
            names = ", ".join(n for n in self.registry if n not in ("gt_mean", "adversarial"))
            raise ValueError(f"gt_mean: base must name a registered loss ({names}), got {base!r}")
        if base in ("gt_mean", "adversarial"):
            raise ValueError(f"gt_mean: base cannot be '{base}' (use it as a recipe term)")
        if base_params is not None and not isinstance(base_params, dict):
            raise ValueError(f"gt_mean: base_params must be a mapping, got {base_params!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (
            math.isfinite(sigma) and sigma > 0
        ):
            raise ValueError(f"gt_mean: sigma must be a finite number > 0, got {sigma!r}")
        cls = self.registry[base]
        self.batched = bool(getattr(cls, "reduces", False))  # per-image values in one call
        if self.batched and "reduction" in (base_params or {}):
            raise ValueError("gt_mean: base_params: 'reduction' is gt_mean's own keyword, not "
                             "the base loss's")
        self.base_name = base
        self.base = cls(**(base_params or {}), **({"reduction": "none"} if self.batched else {}))
        self.sigma = float(sigma)
        self.reduction = check_reduction("gt_mean", reduction)

    def min_input_size(self) -> int:
        return int(self.base.min_input_size()) if hasattr(self.base, "min_input_size") else 1

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("gt_mean", pred, target, channels=3)
        mu_x = brightness(pred).clamp_min(MIN_MEAN)
        mu_y = brightness(target).clamp_min(MIN_MEAN)
        w = mismatch_weight(mu_y, mu_x, self.sigma)
        aligned = (pred * (mu_y / mu_x).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
        if self.batched:
            plain = self.base(pred, target, low=low)
            matched = self.base(aligned, target, low=low)
        else:  # a base without per-image values: one image at a time
            plain, matched = (torch.stack([
                self.base(x[n : n + 1], target[n : n + 1],
                          low=None if low is None else low[n : n + 1]).reshape(())
                for n in range(pred.shape[0])]) for x in (pred, aligned))
        per_image = w * plain + (1 - w) * matched
        if self.reduction != "mean":
            return reduce_images(per_image, self.reduction)
        # the batch mean summed in image order, as training always has (torch.sum may pair
        # the values otherwise and differ in the last bit)
        total = pred.new_zeros(())
        for value in per_image.unbind():
            total = total + value
        return total / pred.shape[0]
