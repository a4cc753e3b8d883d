"""Zero-DCE colour-constancy loss."""

from __future__ import annotations

import torch

from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at exactly 0 is 0 instead of inf/NaN.

    Values are untouched everywhere; only the derivative at the single point 0 changes.
    """
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


class ColorConstancyLoss(Loss):
    r"""Zero-DCE's colour-constancy loss exactly as its code computes it (uses only ``pred``).

    With :math:`\bar R, \bar G, \bar B` the spatial means of the channels of each image and
    :math:`D_{RG} = (\bar R - \bar G)^2` (likewise :math:`D_{RB}`, :math:`D_{GB}`):

    .. math:: \mathcal{L} = \frac{1}{N}\sum_n \sqrt{D_{RG}^2 + D_{RB}^2 + D_{GB}^2}

    Note the code squares the already squared differences (fourth powers of the mean
    differences under the root), unlike the paper's sum over pairs of :math:`(J^p - J^q)^2`;
    we follow the code. Source: the official code's ``L_color``; Guo et al., "Zero-Reference
    Deep Curve Estimation for Low-Light Image Enhancement" (Zero-DCE), CVPR 2020.

    It is a no-reference loss: ``target`` is accepted for the common interface (its shape is
    checked) and otherwise ignored. Deliberate difference: the square root is a safe one whose
    gradient at exactly 0 (an image with equal channel means, e.g. a grey image) is 0; the
    source's ``pow(., 0.5)`` gives an infinite/NaN gradient there. Values are identical.
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("guo2020zerodce",)
    paper = "Guo et al., Zero-DCE, CVPR 2020"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("color_constancy", reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("color_constancy", pred, target, channels=3)
        mean_r, mean_g, mean_b = pred.mean(dim=(2, 3)).unbind(dim=1)
        d_rg = (mean_r - mean_g) ** 2
        d_rb = (mean_r - mean_b) ** 2
        d_gb = (mean_b - mean_g) ** 2
        per_image = safe_sqrt(d_rg**2 + d_rb**2 + d_gb**2)
        if self.reduction != "mean":
            return reduce_images(per_image, self.reduction)
        return per_image.mean()
