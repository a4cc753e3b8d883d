"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class FLWBrightnessLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("FLWBrightnessLoss is not written yet")


class FLWColorLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("FLWColorLoss is not written yet")


class FLWStructureLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("FLWStructureLoss is not written yet")
