"""Evaluation of a network: validation PSNR during training, the test split at the end.

Images are scored one at a time (their sizes differ) at the protocol's evaluation resolution:
``"full"``, or the longer side scaled down to N pixels with antialiased bilinear filtering
(low-light input and reference alike). The network's output is clamped to [0, 1] before any
metric and before it is saved as a sample. On CUDA the forward pass runs under the protocol's
bf16 autocast and channels_last setting; metrics are computed in float32/float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import metrics as metrics_mod
from benchmark.protocol import Protocol


def as_float(t: torch.Tensor) -> torch.Tensor:
    """A stored image tensor as float32 in [0, 1] (bit-equal to what ``read_image`` returned)."""
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def fit_resolution(img: torch.Tensor, resolution: str | int) -> torch.Tensor:
    """Scale N x 3 x H x W down so its longer side is ``resolution`` (antialiased bilinear)."""
    if resolution == "full":
        return img
    h, w = img.shape[-2:]
    if max(h, w) <= int(resolution):
        return img
    scale = int(resolution) / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)


def autocast(device: torch.device, protocol: Protocol) -> Any:
    """bf16 autocast on CUDA when the protocol asks for it, else a no-op context."""
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and protocol.amp
    )


@torch.no_grad()
def enhance(
    model: nn.Module, low: torch.Tensor, device: torch.device, protocol: Protocol
) -> torch.Tensor:
    """The network's output for one N x 3 x H x W batch as float32 (not clamped)."""
    x = low.to(device)
    if device.type == "cuda" and protocol.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, protocol):
        out = model(x)
    return out.float()


def validate(
    model: nn.Module,
    lows: list[torch.Tensor],
    highs: list[torch.Tensor],
    device: torch.device,
    protocol: Protocol,
) -> float:
    """Mean PSNR over the validation pairs (at the protocol's evaluation resolution)."""
    model.eval()
    values = []
    for low, high in zip(lows, highs, strict=True):
        x = fit_resolution(as_float(low)[None], protocol.eval_resolution)
        y = fit_resolution(as_float(high)[None], protocol.eval_resolution)
        pred = enhance(model, x, device, protocol).clamp(0.0, 1.0)
        values.append(float(metrics_mod.psnr(pred, y.to(device))[0]))
    model.train()
    return float(np.mean(values))


def evaluate_test(
    model: nn.Module,
    lows: Sequence[np.ndarray],
    highs: Sequence[np.ndarray],
    names: Sequence[str],
    device: torch.device,
    protocol: Protocol,
    lpips_metric: Any,
) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """Per-image metrics of the test split, one image at a time, and the first few samples.

    Returns ``(rows, samples)``: rows ``{"image", "psnr", "ssim", "lpips", "psnr_gtmean",
    "ssim_gtmean"}``; samples ``(name, low, output, reference)`` as HxWx3 uint8 arrays.
    """
    model.eval()
    rows, samples = [], []
    for k, (name, low, high) in enumerate(zip(names, lows, highs, strict=True)):
        x = fit_resolution(
            torch.from_numpy(np.ascontiguousarray(low)).permute(2, 0, 1)[None],
            protocol.eval_resolution,
        )
        y = fit_resolution(
            torch.from_numpy(np.ascontiguousarray(high)).permute(2, 0, 1)[None],
            protocol.eval_resolution,
        ).to(device)
        pred = enhance(model, x, device, protocol).clamp(0.0, 1.0)
        values = metrics_mod.evaluate(pred, y, lpips_metric)
        row: dict[str, Any] = {"image": name}
        for key in ("psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean"):
            row[key] = float(values[key][0]) if key in values else None
        rows.append(row)
        if k < protocol.n_samples:
            samples.append((name, *(_to_uint8(t) for t in (x, pred, y))))
    return rows, samples


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    arr = t[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(arr * 255.0).astype(np.uint8)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/Inf: such values are recorded as null."""
    return value if value is not None and math.isfinite(value) else None


__all__ = [
    "as_float",
    "autocast",
    "enhance",
    "evaluate_test",
    "finite_or_none",
    "fit_resolution",
    "validate",
]
