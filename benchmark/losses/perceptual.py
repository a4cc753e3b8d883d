"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class PerceptualLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("PerceptualLoss is not written yet")
