"""PLACEHOLDER: being written (scaffold only, replaced by the real implementation)."""

from benchmark.losses.base import Loss


class WaveletSSIMLoss(Loss):
    def __init__(self) -> None:
        super().__init__()
        raise NotImplementedError("WaveletSSIMLoss is not written yet")
