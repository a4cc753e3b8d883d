"""lossbench: a reproducibility benchmark for the loss functions of low-light image enhancement."""

__version__ = "0.1.0"
