"""What every loss shares: the module contract and input checks."""

from __future__ import annotations

import torch
from torch import nn


def check_pair(
    name: str, pred: torch.Tensor, target: torch.Tensor, channels: int | None = None
) -> None:
    """Raise a clear ``ValueError`` unless ``pred`` and ``target`` are matching NCHW tensors."""
    if pred.dim() != 4:
        raise ValueError(f"{name}: expected NCHW tensors, got pred of shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if channels is not None and pred.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels, got {pred.shape[1]}")


class Loss(nn.Module):
    """Base class of every registered loss.

    ``forward(pred, target, *, low=None)`` returns a scalar tensor. A loss carries no weight of
    its own (weights belong to the recipe). Class attributes document provenance for
    ``python -m benchmark list`` and docs/LOSSES.md.
    """

    #: BibTeX keys of the papers behind the loss (recipes/references.bib)
    references: tuple[str, ...] = ()
    #: the paper the loss comes from
    paper: str = ""

    @classmethod
    def resolved_params(cls, params: dict) -> dict:
        """``params`` (constructor defaults filled in) as the loss will use them, for reports."""
        return dict(params)

    def min_input_size(self) -> int:
        """Smallest height/width this loss accepts (recipes are checked against the protocol)."""
        return 1

    def forward(  # pragma: no cover - abstract
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError
