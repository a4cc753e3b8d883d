"""The training set on the device and the random crops a step trains on.

Images are stored as decoded (uint8 for 8-bit files; float32 for 16-bit ones) until a crop is
taken; :func:`sample_batch` draws aligned crops and flips from a CPU generator and converts each
side of the batch to float once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from benchmark.run.evaluate import as_float


def to_storage(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """HxWx3 images -> 3xHxW tensors on ``device``: uint8 where that is exact, float32 otherwise.

    8-bit arrays (``load_pairs(..., native=True)``) are kept as they are: on the CPU the tensor
    is a channel-first *view* of the decoded array (no copy), so a resident training set costs
    its uint8 size. 16-bit arrays become float32 (/ 65535). Float arrays in [0, 1] are stored as
    uint8 when that is exact (8-bit sources), else as float32.
    """
    out = []
    for img in images:
        if img.dtype == np.uint8:
            arr = img
        elif img.dtype == np.uint16:
            arr = img.astype(np.float32) / np.float32(65535.0)
        else:
            q = np.round(img * 255.0)
            exact = np.array_equal((q.astype(np.float32) / np.float32(255.0)), img)
            arr = q.astype(np.uint8) if exact else np.ascontiguousarray(img, dtype=np.float32)
        out.append(torch.from_numpy(arr).permute(2, 0, 1).to(device))
    return out


def sample_batch(
    lows: list[torch.Tensor],
    highs: list[torch.Tensor],
    patch: int,
    batch: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned random ``patch``-px crops, randomly flipped/transposed: float32 N x 3 x P x P.

    Crops are sliced and flipped in the stored dtype and each side of the batch is converted to
    float once (a handful of device kernels per step rather than several per image; conversion
    is elementwise, so the values are those of converting each crop).
    """
    index = torch.randint(len(lows), (batch,), generator=gen).tolist()
    uv = torch.rand(batch, 2, generator=gen, dtype=torch.float64).tolist()
    flips = torch.randint(8, (batch,), generator=gen).tolist()
    low_crops, high_crops = [], []
    for i, (u, v), f in zip(index, uv, flips, strict=True):
        h, w = lows[i].shape[-2:]
        y, x = int(u * (h - patch + 1)), int(v * (w - patch + 1))
        for stored, crops in ((lows[i], low_crops), (highs[i], high_crops)):
            crop = stored[:, y : y + patch, x : x + patch]
            if f & 1:
                crop = crop.flip(-1)
            if f & 2:
                crop = crop.flip(-2)
            if f & 4:
                crop = crop.transpose(-1, -2)
            crops.append(crop)
    return _stack_float(low_crops), _stack_float(high_crops)


def _stack_float(crops: list[torch.Tensor]) -> torch.Tensor:
    # images of one side may be stored differently (8-bit and 16-bit files): convert each then
    if len({c.dtype for c in crops}) > 1:
        crops = [as_float(c) for c in crops]
    return as_float(torch.stack(crops))


__all__ = ["sample_batch", "to_storage"]
