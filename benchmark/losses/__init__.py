"""The loss library. ``LOSSES`` below is the whole registry: one explicit dict.

``build_loss(name, **params)`` returns an ``nn.Module`` whose ``forward(pred, target, *, low=None)``
returns a scalar tensor. Weights live in recipes, never in losses. See docs/LOSSES.md.
"""

from __future__ import annotations

import inspect

from torch import nn

from benchmark.errors import did_you_mean
from benchmark.losses.adversarial import AdversarialLoss
from benchmark.losses.flw import FLWBrightnessLoss, FLWColorLoss, FLWStructureLoss
from benchmark.losses.frequency import FrequencyLoss
from benchmark.losses.gradient import (
    EdgeLoss,
    GradientLoss,
    GradSignLoss,
    HighSmoothLoss,
    LumaGradLoss,
    TVLoss,
)
from benchmark.losses.gt_mean import GTMeanLoss
from benchmark.losses.perceptual import PerceptualLoss
from benchmark.losses.pixel import CharbonnierLoss, GaussianL1Loss, L1Loss, MSELoss
from benchmark.losses.ssim import MSSSIMLoss, SSIMLoss
from benchmark.losses.wavelet import WaveletSSIMLoss
from benchmark.losses.zero_dce import ColorConstancyLoss

LOSSES: dict[str, type[nn.Module]] = {
    "l1": L1Loss,
    "mse": MSELoss,
    "charbonnier": CharbonnierLoss,
    "gaussian_l1": GaussianL1Loss,
    "ssim": SSIMLoss,
    "ms_ssim": MSSSIMLoss,
    "wssim": WaveletSSIMLoss,
    "perceptual": PerceptualLoss,
    "edge": EdgeLoss,
    "frequency": FrequencyLoss,
    "color_constancy": ColorConstancyLoss,
    "flw_color": FLWColorLoss,
    "flw_brightness": FLWBrightnessLoss,
    "flw_structure": FLWStructureLoss,
    "gradient": GradientLoss,
    "gradsign": GradSignLoss,
    "highsmooth": HighSmoothLoss,
    "luma_grad": LumaGradLoss,
    "tv": TVLoss,
    "adversarial": AdversarialLoss,
    "gt_mean": GTMeanLoss,
}
#: the GT-mean wrapper builds its base loss from this registry (no import cycle)
GTMeanLoss.registry = LOSSES


def loss_params(name: str) -> dict[str, inspect.Parameter]:
    """The parameters a recipe may give a loss (its constructor's keywords, less the library's
    batch ``reduction`` of a loss that :attr:`~benchmark.losses.base.Loss.reduces`: a recipe
    trains on the batch mean, and its params are hashed)."""
    cls = LOSSES[name]
    params = _constructor_params(cls)
    if getattr(cls, "reduces", False):
        params.pop("reduction", None)
    return params


def _constructor_params(cls: type) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {k: p for k, p in sig.parameters.items() if k != "self" and p.kind in kinds}


def build_loss(name: str, **params: object) -> nn.Module:
    """Build the loss registered under ``name`` with ``params``.

    A loss that :attr:`~benchmark.losses.base.Loss.reduces` also takes ``reduction``
    (``"mean"``, ``"sum"``, ``"none"``: one value per image), e.g.
    ``build_loss("ssim", reduction="none")(pred, target)`` has shape ``(N,)``.

    Raises:
        KeyError: unknown name (the message suggests the closest one).
        TypeError: a parameter the loss does not take.
    """
    if name not in LOSSES:
        raise KeyError(f"unknown loss '{name}'{did_you_mean(name, LOSSES)}")
    accepted = _constructor_params(LOSSES[name])
    for key in params:
        if key not in accepted:
            raise TypeError(
                f"loss '{name}' has no parameter '{key}'{did_you_mean(key, accepted)}"
                f" (it takes: {', '.join(accepted) or 'none'})"
            )
    return LOSSES[name](**params)


__all__ = ["LOSSES", "build_loss", "loss_params"]
