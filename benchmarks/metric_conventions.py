"""lossbench's PSNR / SSIM / GT-mean against the conventions of other libraries and LLIE papers.

Every convention below is re-implemented here from the public code it is named after (read, not
copied), or called from the library itself when it is installed (torchmetrics, piq: install them
in a separate environment, never in lossbench's). The images are a LOL-style test split; as
outputs it uses two transparent stand-ins for an enhancement network, in float (unquantised),
as a network's output would be:

* ``gain``: ``clip(8.3 * low, 0, 1)``, a weak enhancer (about 15 dB; 8.3, not an integer, so
  the output is off the 8-bit grid as a network's is);
* ``near``: the reference blurred (Gaussian, sigma 1), times 0.9, plus Gaussian noise of sigma
  0.02 (seed 0), a good output with an exposure error (about 25 dB).

For each convention it prints the mean over images and the largest per-image difference from
lossbench's own value. docs/METRICS.md is written from this output.

    python benchmarks/metric_conventions.py --data /path/to/LOL-v1
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage import img_as_ubyte
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark import metrics  # noqa: E402
from benchmark.data.pairs import discover, load_pairs  # noqa: E402

Image = np.ndarray  # HxWx3 float64 RGB in [0, 1]


def _t(x: Image) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].double()


def lossbench_psnr(p: Image, r: Image) -> float:
    return float(metrics.psnr(_t(p), _t(r)))


def lossbench_ssim(p: Image, r: Image) -> float:
    return float(metrics.ssim(_t(p), _t(r)))


def lossbench_gtmean(p: Image, r: Image) -> Image:
    return metrics.gt_mean(_t(p), _t(r))[0].permute(1, 2, 0).numpy()


def matlab_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The 'same as MATLAB' SSIM of BasicSR, Retinexformer and HVI-CIDNet: [0, 255] images,
    11x11 Gaussian (sigma 1.5) by cv2.filter2D, the valid region ([5:-5]), per channel."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    w = k @ k.T
    out = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda z: cv2.filter2D(z, -1, w)[5:-5, 5:-5]  # noqa: E731
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        out.append(s.mean())
    return float(np.mean(out))


def psnr255(a: np.ndarray, b: np.ndarray, eps: float = 0.0, dtype=np.float64) -> float:
    d = a.astype(dtype) - b.astype(dtype)
    return float(10 * np.log10(255.0**2 / (np.mean(np.square(d)) + eps)))


def u8_round(x: Image) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def u8_trunc(x: Image) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def basicsr(p: Image, r: Image) -> tuple[float, float]:
    """tensor2img (round to uint8), then calculate_psnr / calculate_ssim on [0, 255]."""
    a, b = u8_round(p), u8_round(r)
    return psnr255(a, b), matlab_ssim(a, b)


def retinexformer(p: Image, r: Image, gt_mean: bool) -> tuple[float, float]:
    """test_from_dataset.py: float32 output; GT-mean with BGR2GRAY on RGB arrays; PSNR on the
    float [0, 1] images; SSIM on img_as_ubyte of both."""
    p32, r32 = np.clip(p, 0, 1).astype(np.float32), r.astype(np.float32)
    if gt_mean:
        mp = cv2.cvtColor(p32, cv2.COLOR_BGR2GRAY).mean()
        mr = cv2.cvtColor(r32, cv2.COLOR_BGR2GRAY).mean()
        p32 = np.clip(p32 * (mr / mp), 0, 1)
    psnr = float(10 * np.log10(1 / np.mean((r32 - p32) ** 2)))
    return psnr, matlab_ssim(img_as_ubyte(r32), img_as_ubyte(p32))


def hvi_cidnet(p: Image, r: Image, gt_mean: bool) -> tuple[float, float]:
    """eval.py saves the clamped output through ToPILImage (x * 255, truncated to uint8);
    measure.py: GT-mean with RGB2GRAY of the uint8 images, not re-quantised; PSNR in float32
    on [0, 255] with +1e-8; MATLAB-style SSIM."""
    a, b = u8_trunc(p), u8_round(r)
    a_f = a.astype(np.float64)
    if gt_mean:
        mp = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).mean()
        mr = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).mean()
        a_f = np.clip(a_f * (mr / mp), 0, 255)
    return psnr255(a_f, b, eps=1e-8, dtype=np.float32), matlab_ssim(a_f, b)


def llflow(p: Image, r: Image) -> tuple[float, float]:
    """test.py: always rescales, by the plain mean of the unclamped output against the GT's
    BGR2GRAY mean; clamps; uint8 by truncation; Measure.py: skimage PSNR on uint8 and skimage
    SSIM (defaults: 7x7 uniform window, sample covariance) on RGB2GRAY grey images."""
    b = u8_round(r)
    mean_gt = cv2.cvtColor(b.astype(np.float32), cv2.COLOR_BGR2GRAY).mean() / 255
    a = u8_trunc(p * (mean_gt / p.mean()))
    grey = lambda z: cv2.cvtColor(z, cv2.COLOR_RGB2GRAY)  # noqa: E731
    return (float(peak_signal_noise_ratio(a, b)),
            float(structural_similarity(grey(a), grey(b), data_range=255)))


def skimage_same(p: Image, r: Image) -> tuple[float, float]:
    return (float(peak_signal_noise_ratio(r, p, data_range=1)),
            float(structural_similarity(r, p, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1)))


def skimage_defaults(p: Image, r: Image) -> tuple[float, float]:
    return (float(peak_signal_noise_ratio(r, p, data_range=1)),
            float(structural_similarity(r, p, channel_axis=-1, data_range=1)))


def _libraries() -> dict[str, Callable[[Image, Image], tuple[float, float]]]:
    out = {}
    if importlib.util.find_spec("torchmetrics"):
        from torchmetrics.functional.image import (
            peak_signal_noise_ratio as tm_psnr,
        )
        from torchmetrics.functional.image import (
            structural_similarity_index_measure as tm_ssim,
        )

        out["torchmetrics (data_range=1)"] = lambda p, r: (
            float(tm_psnr(_t(p), _t(r), data_range=1.0)),
            float(tm_ssim(_t(p), _t(r), data_range=1.0)))
    if importlib.util.find_spec("piq"):
        import piq

        out["piq (data_range=1, downsample on)"] = lambda p, r: (
            float(piq.psnr(_t(p), _t(r), data_range=1.0)),
            float(piq.ssim(_t(p), _t(r), data_range=1.0)))
        out["piq (downsample off)"] = lambda p, r: (
            float(piq.psnr(_t(p), _t(r), data_range=1.0)),
            float(piq.ssim(_t(p), _t(r), data_range=1.0, downsample=False)))
    return out


def stand_ins(low: Image, ref: Image, rng: np.random.Generator) -> dict[str, Image]:
    blurred = np.stack([gaussian_filter(ref[..., c], 1.0) for c in range(3)], axis=-1)
    return {"gain": np.clip(8.3 * low, 0, 1),
            "near": 0.9 * blurred + rng.normal(0, 0.02, ref.shape)}


def torchmetrics_batch_psnr(preds: list[Image], refs: list[Image]) -> float | None:
    """torchmetrics' PSNR over a batch with the default dim=None: one MSE over every image."""
    if not importlib.util.find_spec("torchmetrics"):
        return None
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    p = torch.cat([_t(x) for x in preds]).clamp(0, 1)
    r = torch.cat([_t(x) for x in refs])
    return float(tm_psnr(p, r, data_range=1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="LOL-style dataset folder (test split)")
    args = parser.parse_args(argv)
    ds = discover(args.data)
    lows, highs = load_pairs(ds.test)
    rng = np.random.default_rng(0)
    pairs = [(lo.astype(np.float64), hi.astype(np.float64))  # read_image: [0, 1] already
             for lo, hi in zip(lows, highs, strict=True)]
    conventions = {"skimage (lossbench's settings)": skimage_same,
                   "skimage defaults (7x7 uniform)": skimage_defaults, "BasicSR": basicsr,
                   "Retinexformer": lambda p, r: retinexformer(p, r, False),
                   "HVI-CIDNet": lambda p, r: hvi_cidnet(p, r, False), **_libraries()}
    gt_conventions = {"Retinexformer --GT_mean": lambda p, r: retinexformer(p, r, True),
                      "HVI-CIDNet --use_GT_mean": lambda p, r: hvi_cidnet(p, r, True),
                      "LLFlow (always rescales)": llflow}
    print(f"dataset {args.data}: {len(pairs)} test pairs")
    for kind in ("gain", "near"):
        outs = [(stand_ins(lo, hi, rng)[kind], hi) for lo, hi in pairs]
        outs = [(np.clip(p, 0, 1), r) for p, r in outs]
        base = np.array([(lossbench_psnr(p, r), lossbench_ssim(p, r)) for p, r in outs])
        gt = np.array([(lossbench_psnr(lossbench_gtmean(p, r), r),
                        lossbench_ssim(lossbench_gtmean(p, r), r)) for p, r in outs])
        print(f"\n## stand-in '{kind}': lossbench PSNR {base[:, 0].mean():.3f} dB, SSIM "
              f"{base[:, 1].mean():.4f}; GT-mean PSNR {gt[:, 0].mean():.3f} dB, SSIM "
              f"{gt[:, 1].mean():.4f}")
        print("| convention | PSNR (dB) | ΔPSNR mean | max abs ΔPSNR | SSIM | ΔSSIM mean | "
              "max abs ΔSSIM |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, table in (("", conventions), ("GT-mean: ", gt_conventions)):
            ref = gt if label else base
            for name, fn in table.items():
                vals = np.array([fn(p, r) for p, r in outs])
                d = vals - ref
                print(f"| {label}{name} | {vals[:, 0].mean():.3f} | {d[:, 0].mean():+.3f} | "
                      f"{np.abs(d[:, 0]).max():.3f} | {vals[:, 1].mean():.4f} | "
                      f"{d[:, 1].mean():+.5f} | {np.abs(d[:, 1]).max():.5f} |")
        batch = torchmetrics_batch_psnr([p for p, _ in outs], [r for _, r in outs])
        if batch is not None:
            print(f"| torchmetrics PSNR of the whole batch (dim=None) | {batch:.3f} | "
                  f"{batch - base[:, 0].mean():+.3f} | - | - | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
