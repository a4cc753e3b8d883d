"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class FrequencyLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("FrequencyLoss is not written yet")
