"""What every loss shares: the module contract, input checks and the batch reduction."""

from __future__ import annotations

import torch
from torch import nn

#: how a loss that takes ``reduction`` reduces its per-image values L_n over the batch
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(name: str, reduction: str) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else a ``ValueError`` naming the loss."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def image_means(t: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first: ``(N, ...) -> (N,)``."""
    return t.mean(dim=tuple(range(1, t.dim())))


def reduce_images(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-image values (shape ``(N,)``) reduced as ``reduction`` says (``none``: as they are)."""
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()


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
    #: whether the constructor takes ``reduction`` (:data:`REDUCTIONS`): a keyword for library
    #: use (``build_loss("l1", reduction="none")``), never a recipe parameter, so never hashed.
    #: ``"mean"`` (the default, what recipes train with) is the batch mean, computed as before
    #: the keyword existed; ``"none"`` gives each image's value L_n (the loss of that image
    #: alone, shape ``(N,)``), ``"sum"`` their sum (not torch's sum over every element)
    reduces: bool = False

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
