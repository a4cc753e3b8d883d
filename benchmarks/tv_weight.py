"""The ``srgan_tv`` recipe's TV weight: what 2e-8 means at lossbench's shapes.

The weight 2e-8 that SRGAN's TV regulariser is usually given comes from the reimplementation
leftthomas/SRGAN (``loss.py``), whose TV term is ``2 * (mean(dy^2) + mean(dx^2))``: a per-element
mean of squared differences. lossbench's ``tv`` loss is arXiv v1's ``((dx^2 + dy^2))^1.25``,
summed (``reduction='sum'``) or averaged over its terms (``reduction='mean'``). This script takes
random crops of a dataset at each profile's patch and batch size and prints, for prediction
stand-ins (the ground truth, which a trained network approaches, and the low-light input, which
lossbench's residual UNet outputs at initialisation):

* ``sum/ref``: how much larger the summed term is than the reference's (the factor by which
  2e-8 on the sum over-weights the term), and
* ``ref/mean``: the factor that carries 2e-8 over to ``reduction='mean'``:
  ``w = 2e-8 * ref / mean`` gives the weighted term the reference's magnitude at any shape.

    python benchmarks/tv_weight.py --data /path/to/LOL-v1 --crops 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.data.pairs import discover, load_pairs  # noqa: E402
from benchmark.losses import build_loss  # noqa: E402
from benchmark.protocol import PROFILES  # noqa: E402

REFERENCE_WEIGHT = 2e-8


def reference_tv(x: torch.Tensor) -> torch.Tensor:
    """leftthomas/SRGAN's TV term (tv_loss_weight 1), re-implemented from its formula."""
    n = x.shape[0]
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).sum() / x[0, :, 1:, :].numel()
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).sum() / x[0, :, :, 1:].numel()
    return 2 * (dh + dw) / n


def crops(images: list[np.ndarray], patch: int, batch: int, count: int, seed: int):
    """``count`` batches of random ``patch`` crops (NCHW float tensors in [0, 1])."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        out = []
        for _ in range(batch):
            img = images[rng.integers(len(images))]
            h, w = img.shape[:2]
            i, j = rng.integers(h - patch + 1), rng.integers(w - patch + 1)
            out.append(img[i : i + patch, j : j + patch])
        yield torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()  # already in [0, 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="LOL-style dataset folder")
    parser.add_argument("--crops", type=int, default=100, help="batches per profile")
    parser.add_argument("--profiles", nargs="+", default=["quick", "lite", "paper"])
    args = parser.parse_args(argv)
    ds = discover(args.data)
    low, high = load_pairs(ds.train)
    tv_sum, tv_mean = build_loss("tv"), build_loss("tv", reduction="mean")
    print(f"dataset {args.data}: {len(ds.train)} training pairs; {args.crops} batches per profile")
    print("profile  patch  batch  stand-in       sum/ref    ref/mean   2e-8*ref/mean")
    for name in args.profiles:
        if name not in PROFILES:
            print(f"{name}: no such profile in this checkout, skipped")
            continue
        proto = PROFILES[name]
        for label, images in (("ground truth", high), ("low input", low)):
            s, m, r = [], [], []
            for x in crops(images, proto.patch, proto.batch, args.crops, seed=0):
                ref = reference_tv(x).item()
                s.append(tv_sum(x, x).item() / ref)
                m.append(tv_mean(x, x).item())
                r.append(ref)
            factor = float(np.mean(r) / np.mean(m))
            print(f"{name:<8} {proto.patch:>5}  {proto.batch:>5}  {label:<13} "
                  f"{np.mean(s):>9.3g}  {factor:>9.3g}  {REFERENCE_WEIGHT * factor:>12.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
