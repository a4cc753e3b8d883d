"""Gradient-domain losses: Sobel edge, exposure-fusion family, SRGAN TV.

Finite differences used by every loss here except ``edge`` (pinned down once, so that the
exposure-fusion losses agree with each other): *forward differences on the common
(H-1) x (W-1) grid*, the convention of the LumaGradLoss code::

    dx[i, j] = x[i, j + 1] - x[i, j]        dy[i, j] = x[i + 1, j] - x[i, j]
    for 0 <= i < H - 1, 0 <= j < W - 1

so ``dx`` and ``dy`` are defined at the same pixels (the last row of ``dx`` and the last
column of ``dy`` are cropped away). The sources write ``x[i, j] - x[i, j + 1]``; the sign does
not matter to any loss here (each uses ``|.|``, a square, or the product of two differences).
"L1" means the mean absolute value, like ``nn.L1Loss``; the x and y terms are added.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.losses.base import Loss, check_pair, check_reduction, image_means, reduce_images


def forward_diffs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences ``(dx, dy)`` of an NCHW tensor on the common (H-1) x (W-1) grid."""
    base = x[..., :-1, :-1]
    return x[..., :-1, 1:] - base, x[..., 1:, :-1] - base


def _check_size(name: str, pred: torch.Tensor, min_size: int) -> None:
    height, width = pred.shape[-2:]
    if min(height, width) < min_size:
        raise ValueError(f"{name}: needs height and width >= {min_size}, got {height}x{width}")


class EdgeLoss(Loss):
    """MSE between the Sobel gradient magnitudes of ``pred`` and ``target``.

    ``L = mean((G(pred) - G(target))^2)``, ``G(x) = sqrt(gx^2 + gy^2 + eps)`` per channel, where
    ``gx``/``gy`` are the 3x3 Sobel kernels applied as ``F.conv2d`` (cross-correlation) with
    zero padding 1, so ``G`` has the input's size.

    Source: the common LLIE ``EdgeLoss`` code. Paper: none; the operator is Sobel and Feldman's.
    Differences: the source loops over channels with two convolutions per channel and image;
    here one grouped convolution per image batch computes both gradients of every channel
    (same numbers, about 6x faster on CPU). ``eps`` (default 1e-6, as in the source) is a parameter.
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("sobel1968isotropic",)
    paper = "Sobel gradient-magnitude MSE (Sobel and Feldman 1968 operator)"
    reduces = True

    def __init__(self, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("edge", reduction)
        if not eps > 0:
            raise ValueError(f"edge: eps must be > 0 (sqrt has no gradient at 0), got {eps}")
        self.eps = float(eps)
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer(
            "kernel", torch.stack([sobel_x, sobel_x.t()]).unsqueeze(1), persistent=False
        )

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel Sobel magnitude ``sqrt(gx^2 + gy^2 + eps)``, same shape as ``x``."""
        channels = x.shape[1]
        # one grouped convolution: channel c -> outputs (2c, 2c + 1) = (gx, gy) of channel c
        weight = self.kernel.to(x.dtype).repeat(channels, 1, 1, 1)
        grads = F.conv2d(x, weight, padding=1, groups=channels).unflatten(1, (channels, 2))
        return torch.sqrt(grads.pow(2).sum(2) + self.eps)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("edge", pred, target)
        if self.reduction != "mean":
            squared = F.mse_loss(self.magnitude(pred), self.magnitude(target), reduction="none")
            return reduce_images(image_means(squared), self.reduction)
        return F.mse_loss(self.magnitude(pred), self.magnitude(target))


class GradientLoss(Loss):
    """L1 between the image gradients of ``pred`` and ``target``.

    ``L = mean|dx(pred) - dx(target)| + mean|dy(pred) - dy(target)|`` with the forward
    differences of this module's docstring.

    Source: the exposure-fusion loss note, the ``||grad y - grad y*||_1`` term. Paper: none for this
    form (cf. Mathieu et al.'s gradient difference loss). The note gives only the formula: the
    difference convention and the mean (not sum) reduction are this project's choices, documented
    above.
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("exposurefusion_losses", "mathieu2016gdl")
    paper = "exposure-fusion gradient L1 (cf. gradient difference loss, Mathieu et al., ICLR 2016)"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("gradient", reduction)

    def min_input_size(self) -> int:
        return 2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("gradient", pred, target)
        _check_size("gradient", pred, 2)
        # differences are linear: dx(pred) - dx(target) == dx(pred - target)
        dx, dy = forward_diffs(pred - target)
        if self.reduction != "mean":
            return reduce_images(image_means(dx.abs()) + image_means(dy.abs()), self.reduction)
        return dx.abs().mean() + dy.abs().mean()


class GradSignLoss(Loss):
    """Penalty on gradients whose sign disagrees with the target's.

    ``L = mean(ReLU(-dx(pred) * dx(target))) + mean(ReLU(-dy(pred) * dy(target)))``: zero where
    ``pred`` changes in the same direction as ``target`` (or is flat), positive across edges
    that ``pred`` reverses.

    Source: the exposure-fusion note, ``L_gradsign = ReLU(-grad y * grad y*)`` (weight gamma in
    the recipe).
    The note gives no reduction: mean over pixels and channels, x and y terms added.
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("exposurefusion_losses",)
    paper = "exposure-fusion gradient-sign term (technical note, no paper)"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("gradsign", reduction)

    def min_input_size(self) -> int:
        return 2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("gradsign", pred, target)
        _check_size("gradsign", pred, 2)
        px, py = forward_diffs(pred)
        tx, ty = forward_diffs(target)
        sx, sy = F.relu(-px * tx), F.relu(-py * ty)
        if self.reduction != "mean":
            return reduce_images(image_means(sx) + image_means(sy), self.reduction)
        return sx.mean() + sy.mean()


class HighSmoothLoss(Loss):
    """Gradient L1 restricted to the highlights of the target.

    ``L = mean(|dx(pred) - dx(target)| * M) + mean(|dy(pred) - dy(target)| * M)`` with
    ``M[n, c, i, j] = 1 if target[n, c, i, j] >= threshold else 0``: the indicator of the note
    taken per channel at the pixel each forward difference starts from, multiplied into the
    difference map, and the product averaged over *all* positions (like the gradient term, so
    the recipe weight eta reads as extra weight on highlight pixels; a target with no highlight
    gives 0, never 0/0).

    Source: the exposure-fusion note, ``L_highsmooth = ||grad y - grad y*||_1 * I(y*, H_th)``.
    The note gives no value for ``H_th``: the default ``threshold=0.8`` (on [0, 1] images) is this
    project's choice. The mask is a constant (no gradient flows through it).
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("exposurefusion_losses",)
    paper = "exposure-fusion high-light smoothness term (technical note, no paper)"
    reduces = True

    def __init__(self, threshold: float = 0.8, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("highsmooth", reduction)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(
                f"highsmooth: threshold must be in [0, 1] (images are in [0, 1]), got {threshold}"
            )
        self.threshold = float(threshold)

    def min_input_size(self) -> int:
        return 2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("highsmooth", pred, target)
        _check_size("highsmooth", pred, 2)
        mask = (target[..., :-1, :-1] >= self.threshold).to(pred.dtype)
        dx, dy = forward_diffs(pred - target)
        mx, my = dx.abs() * mask, dy.abs() * mask
        if self.reduction != "mean":
            return reduce_images(image_means(mx) + image_means(my), self.reduction)
        return mx.mean() + my.mean()


class LumaGradLoss(Loss):
    """Squared-error match of the coarse (8x8) brightness gradients.

    ``p = clamp(avgpool8x8(pred), 0, 1)``, ``t = clamp(avgpool8x8(target), 0, 1)``,
    ``L = mean((dx(t) - dx(p))^2 + (dy(t) - dy(p))^2)`` over the 7x7 difference grid, channels
    and batch (``avgpool8x8`` = ``nn.AdaptiveAvgPool2d((8, 8))``).

    Source: the exposure-fusion note, LumaGradLoss. Difference: the source pools its target from the
    first four channels of the fusion *input* stack (``input[:, 0:4]``); an enhancement benchmark
    has a ground truth, so the target here is the ground truth (all its channels). As in the source,
    the clamp passes no gradient where a pooled prediction lies outside [0, 1]. Inputs must be at
    least 8x8 (smaller ones would be upsampled by the pooling).
    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (one value per image, shape ``(N,)``).
    """

    references = ("exposurefusion_losses",)
    paper = "exposure-fusion LumaGradLoss (technical note, no paper)"
    reduces = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("luma_grad", reduction)

    def min_input_size(self) -> int:
        return 8

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("luma_grad", pred, target)
        _check_size("luma_grad", pred, 8)
        px, py = forward_diffs(F.adaptive_avg_pool2d(pred, (8, 8)).clamp(0.0, 1.0))
        tx, ty = forward_diffs(F.adaptive_avg_pool2d(target, (8, 8)).clamp(0.0, 1.0))
        squared = (tx - px) ** 2 + (ty - py) ** 2
        if self.reduction != "mean":
            return reduce_images(image_means(squared), self.reduction)
        return squared.mean()


class TVLoss(Loss):
    """SRGAN's total-variation regulariser, as SRGAN arXiv v1 writes it.

    ``L = R_{n,c,i<H-1,j<W-1} ((x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2) ^ 1.25``
    on ``x = pred`` (``target`` is only shape-checked), where ``R`` is the reduction.

    ``reduction='sum'`` (the default, the source's form) sums over batch, channels and pixels:
    the value then scales with the batch size and the image area (about 4x for a 2x larger
    patch), so a weight is tied to the protocol's shapes. ``reduction='mean'`` divides that sum
    by the number of terms ``N * C * (H-1) * (W-1)``, which makes a weight hold at any shape
    (the ``srgan_tv`` recipe uses it; its description derives the weight).

    Source: SRGAN arXiv v1's regulariser (dropped in later SRGAN versions). Paper: Ledig et
    al., "Photo-Realistic Single Image Super-Resolution Using a GAN", arXiv 1609.04802v1.

    Args:
        reduction: ``'sum'`` or ``'mean'``.
    """

    references = ("ledig2016srganv1",)
    paper = "Ledig et al., SRGAN, CVPR 2017 (TV regulariser of arXiv v1)"

    def __init__(self, reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"tv: reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def min_input_size(self) -> int:
        return 2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("tv", pred, target)
        _check_size("tv", pred, 2)
        dx, dy = forward_diffs(pred)
        terms = (dx.pow(2) + dy.pow(2)).pow(1.25)
        return terms.sum() if self.reduction == "sum" else terms.mean()
