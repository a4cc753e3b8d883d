"""Evaluation of a network: validation PSNR during training, the test split at the end.

Images are scored at the protocol's evaluation resolution: ``"full"``, or the longer side scaled
down to N pixels with antialiased bilinear filtering (low-light input and reference alike). The
network's output is clamped to [0, 1] before any metric and before it is saved as a sample. The
forward pass runs at the protocol's precision and memory format (bf16 autocast and channels_last
where the run resolved them, on every device: the network is scored as it was trained); metrics
are computed in float32/float64.

Everything runs on the run's device, LPIPS included, and the per-image values stay there until
one host copy at the end. On CUDA, images of equal size are scored in batches
(:func:`size_batches`, at most ``EVAL_BATCH_PIXELS["cuda"]`` pixels per batch); the values agree
with one-image-at-a-time scoring to bf16 tolerance (cuDNN may pick other kernels for other batch
sizes). On the CPU the budget is one image per batch: oneDNN's convolutions are not bit-identical
across batch sizes (differences of 1e-7 measured), batching buys no speed there, and so CPU values
stay exactly those of one-image-at-a-time scoring (tests/test_fast_path.py).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import metrics as metrics_mod
from benchmark.protocol import Protocol
from benchmark.run.forward import autocast, network_input

#: pixels (N x H x W) of one evaluation batch by device type (CUDA: 8 LOL images of 600 x 400;
#: anything else: one image per batch, see the module docstring)
EVAL_BATCH_PIXELS = {"cuda": 8 * 600 * 400, "cpu": 1}


def size_batches(sizes: Sequence[Hashable], max_pixels: int) -> list[list[int]]:
    """Indices grouped by equal ``sizes[i]`` (an ``(H, W)``), in order, each batch within budget.

    Batches come in the order of their first image; a group larger than ``max_pixels`` is split
    (one image per batch at least).
    """
    groups: dict[Hashable, list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    out = []
    for size, members in groups.items():
        per = max(1, max_pixels // max(1, math.prod(size)))
        out.extend(members[k : k + per] for k in range(0, len(members), per))
    return out


def _budget(device: torch.device) -> int:
    return EVAL_BATCH_PIXELS.get(device.type, 1)


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


@torch.no_grad()
def enhance(
    model: nn.Module, low: torch.Tensor, device: torch.device, protocol: Protocol
) -> torch.Tensor:
    """The network's output for one N x 3 x H x W batch as float32 (not clamped)."""
    x = network_input(low.to(device), protocol)
    with autocast(device, protocol):
        out = model(x)
    return out.float().contiguous()


def validate(
    model: nn.Module,
    lows: list[torch.Tensor],
    highs: list[torch.Tensor],
    device: torch.device,
    protocol: Protocol,
) -> float:
    """Mean PSNR over the validation pairs (at the protocol's evaluation resolution)."""
    return float(np.mean(validate_images(model, lows, highs, device, protocol)))


def validate_images(
    model: nn.Module,
    lows: list[torch.Tensor],
    highs: list[torch.Tensor],
    device: torch.device,
    protocol: Protocol,
) -> list[float]:
    """PSNR of each validation pair, in order (at the protocol's evaluation resolution).

    Batched on CUDA (see the module docstring); one host copy of the values at the end.
    """
    model.eval()
    order, values = [], []
    for group in size_batches([tuple(low.shape[-2:]) for low in lows], _budget(device)):
        res = protocol.eval_resolution
        x = fit_resolution(torch.stack([as_float(lows[i]) for i in group]), res)
        y = fit_resolution(torch.stack([as_float(highs[i]) for i in group]), res)
        pred = enhance(model, x, device, protocol).clamp(0.0, 1.0)
        values.append(metrics_mod.psnr(pred, y.to(device)))
        order.extend(group)
    model.train()
    table = torch.cat(values).cpu().tolist() if values else []
    by_image = dict(zip(order, table, strict=True))
    return [by_image[i] for i in range(len(lows))]


def identity_psnr(
    lows: list[torch.Tensor], highs: list[torch.Tensor], protocol: Protocol
) -> float:
    """Mean PSNR of the identity mapping (output = low-light input, clamped) on the pairs, at
    the protocol's evaluation resolution: the untrained network's score, the collapse floor."""
    values = []
    for low, high in zip(lows, highs, strict=True):
        x = fit_resolution(as_float(low)[None], protocol.eval_resolution).clamp(0.0, 1.0)
        y = fit_resolution(as_float(high)[None], protocol.eval_resolution)
        values.append(float(metrics_mod.psnr(x, y)[0]))
    return float(np.mean(values)) if values else float("nan")


def evaluate_test(
    model: nn.Module,
    lows: Sequence[np.ndarray],
    highs: Sequence[np.ndarray],
    names: Sequence[str],
    device: torch.device,
    protocol: Protocol,
    metrics: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """Per-image metrics of the test split (batched by size, see the module docstring).

    ``metrics``: the run's ``--metrics`` choice (None: the metrics that need no pretrained
    weights). Returns ``(rows, samples)``: rows with
    ``image`` and every metric of :data:`benchmark.metrics.METRICS` (None where not chosen) in
    the order of ``names``; samples ``(name, low, output, reference)`` of the first
    ``protocol.n_samples`` images as HxWx3 uint8 arrays.
    """
    if not len(lows) == len(highs) == len(names):
        raise ValueError("evaluate_test: lows, highs and names must have the same length")
    model.eval()
    keys = metrics_mod.chosen(metrics_mod.always() if metrics is None else metrics)
    order, stashed, samples = [], [], {}
    for group in size_batches([tuple(low.shape[:2]) for low in lows], _budget(device)):
        x = fit_resolution(_stack_chw([lows[i] for i in group]), protocol.eval_resolution)
        y = fit_resolution(_stack_chw([highs[i] for i in group]), protocol.eval_resolution)
        y = y.to(device)
        pred = enhance(model, x, device, protocol).clamp(0.0, 1.0)
        values = metrics_mod.evaluate(pred, y, metrics)
        stashed.append(torch.stack([values[k].to(torch.float64) for k in keys], dim=1))
        order.extend(group)
        for j, i in enumerate(group):
            if i < protocol.n_samples:
                samples[i] = (names[i], *(_to_uint8(t[j]) for t in (x, pred, y)))
    table = torch.cat(stashed).cpu().tolist() if stashed else []
    by_image = dict(zip(order, table, strict=True))
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"image": name, **dict.fromkeys(metrics_mod.recorded())}
        row.update(zip(keys, by_image[i], strict=True))
        rows.append(row)
    return rows, [samples[i] for i in sorted(samples)]


def _stack_chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    """HxWx3 arrays -> an N x 3 x H x W view (channels-last strides, as the arrays lie)."""
    if len(images) == 1:  # exactly the strides one-image scoring always had: same CPU kernels
        return torch.from_numpy(np.ascontiguousarray(images[0])).permute(2, 0, 1)[None]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    arr = t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(arr * 255.0).astype(np.uint8)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/Inf: such values are recorded as null."""
    return value if value is not None and math.isfinite(value) else None


def release_freed_memory() -> None:
    """Hand memory that was freed back to the operating system (glibc's ``malloc_trim``).

    glibc keeps freed blocks in its heaps (and raises its mmap threshold as large blocks are
    freed), so without this the resident size never falls after the training set is dropped and
    the test evaluation's allocations come on top of it. A no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


__all__ = [
    "EVAL_BATCH_PIXELS",
    "as_float",
    "release_freed_memory",
    "enhance",
    "evaluate_test",
    "finite_or_none",
    "fit_resolution",
    "identity_psnr",
    "size_batches",
    "validate",
    "validate_images",
]
