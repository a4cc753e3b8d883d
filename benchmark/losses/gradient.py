"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class EdgeLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("EdgeLoss is not written yet")


class GradientLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("GradientLoss is not written yet")


class GradSignLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("GradSignLoss is not written yet")


class HighSmoothLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("HighSmoothLoss is not written yet")


class LumaGradLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("LumaGradLoss is not written yet")


class TVLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("TVLoss is not written yet")
