"""An example of a user's own loss for lossbench (see docs/TOOLS.md).

A recipe names it as ``my_losses.py:AmplitudeLoss`` (the path is relative to the recipe's folder).
Like every loss it is an ``nn.Module`` whose ``forward(pred, target, *, low=None)`` returns a
scalar tensor; its weight lives in the recipe.
"""

from __future__ import annotations

import torch
from torch import nn


class AmplitudeLoss(nn.Module):
    """Mean absolute difference of the orthonormal 2-D Fourier amplitudes, per channel.

    Args:
        power: compare ``|F|**power`` (1 = amplitudes, 2 = power spectra).
    """

    def __init__(self, power: float = 1.0) -> None:
        super().__init__()
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power}")
        self.power = float(power)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        amp_pred = torch.fft.rfft2(pred, norm="ortho").abs() ** self.power
        amp_target = torch.fft.rfft2(target, norm="ortho").abs() ** self.power
        return (amp_pred - amp_target).abs().mean()
