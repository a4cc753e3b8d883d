"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class MSSSIMLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("MSSSIMLoss is not written yet")


class SSIMLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("SSIMLoss is not written yet")
