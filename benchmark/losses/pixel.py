"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class CharbonnierLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("CharbonnierLoss is not written yet")


class GaussianL1Loss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("GaussianL1Loss is not written yet")


class L1Loss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("L1Loss is not written yet")


class MSELoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("MSELoss is not written yet")
