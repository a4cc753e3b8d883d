"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class ColorConstancyLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("ColorConstancyLoss is not written yet")
