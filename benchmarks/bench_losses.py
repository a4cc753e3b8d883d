"""Forward+backward time of every registered loss, as ms and as ratios to ``l1`` and the UNet.

Usage::

    .venv/bin/python benchmarks/bench_losses.py [--device cpu|cuda] [--batch 8] [--size 256]
        [--repeats N] [--warmup N] [--only l1 ssim ...]

Each loss is built with its default params (``build_loss(name)``) and timed on random
``batch x 3 x size x size`` inputs: the median over ``--repeats`` runs (after ``--warmup``) of
``loss(pred, target, low=low).backward()``. The reference is one forward+backward of the fixed
UNet (``benchmark.model.UNet`` at the width and depth of ``benchmark.protocol.PROFILES["paper"]``)
on the same batch. ``adversarial`` is timed for the generator term
only (the discriminator step the training loop adds is not included).

VGG19: when the official file is not in the torch hub cache, random-init weights are planted in a
temporary ``TORCH_HOME`` (same shapes, so the same time; the values are meaningless) and that is
printed. Timings on a shared machine are noisy: repeat and compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark import weights  # noqa: E402
from benchmark.errors import UserError  # noqa: E402
from benchmark.losses import LOSSES, build_loss  # noqa: E402


def prepare_vgg_weights() -> str:
    """Use the official VGG19 file if cached; else plant random-init weights. Returns a note."""
    try:
        info = weights.ensure("vgg19", download=False)
        return f"VGG19: {info.path} ({'official' if info.official else 'NOT official'})"
    except UserError:
        pass
    from torchvision.models import vgg19

    home = Path(tempfile.mkdtemp(prefix="bench_torch_home_"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["TORCH_HOME"] = str(home)
    os.environ[weights.ALLOW_ENV] = "1"
    weights.clear_cache()
    torch.manual_seed(0)
    features = {f"features.{k}": v for k, v in vgg19(weights=None).features.state_dict().items()}
    path = weights.weight_path("vgg19")
    path.parent.mkdir(parents=True)
    torch.save(features, path)
    return (
        "VGG19: official weights NOT found in the torch hub cache; timing perceptual losses with "
        "RANDOM-INIT weights planted in a temporary TORCH_HOME (same shapes and cost, meaningless "
        "values)"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``step`` in milliseconds."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def unet_ms(batch: torch.Tensor, device: torch.device, warmup: int, repeats: int) -> tuple:
    """(ms, description) of one UNet forward+backward, or (None, reason)."""
    try:
        from benchmark.model import UNet
    except ImportError as exc:
        return None, f"benchmark.model.UNet not available ({exc})"
    note, kwargs = "default width/depth", {}
    try:
        from benchmark.protocol import PROFILES

        paper = PROFILES["paper"]
        kwargs = {"width": paper.width, "depth": paper.depth}
        note = f"width {paper.width}, depth {paper.depth} (profile 'paper')"
    except (ImportError, KeyError, AttributeError):
        pass
    model = UNet(**kwargs).to(device)
    x = batch.clone()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).mean().backward()

    return time_step(step, device, warmup, repeats), f"UNet {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=None, help="default: 20 cuda, 5 cpu")
    parser.add_argument("--warmup", type=int, default=None, help="default: 3 cuda, 1 cpu")
    parser.add_argument("--only", nargs="+", default=None, choices=sorted(LOSSES))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    repeats = args.repeats or (20 if device.type == "cuda" else 5)
    warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)

    note = prepare_vgg_weights()
    torch.manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    target = torch.rand(shape, device=device)
    low = target * 0.2
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {dev_name} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"input: {tuple(shape)} float32 | median of {repeats} after {warmup} warm-up")
    print(note)

    ref_ms, ref_note = unet_ms(low, device, warmup, repeats)
    rows: list[tuple[str, float | None, str]] = []
    for name in args.only or list(LOSSES):
        try:
            loss = build_loss(name).to(device)
        except Exception as exc:  # a loss that cannot be built here is reported, not fatal
            rows.append((name, None, f"{type(exc).__name__}: {exc}"))
            continue

        def step(loss=loss) -> None:
            pred.grad = None
            loss(pred, target, low=low).backward()

        try:
            rows.append((name, time_step(step, device, warmup, repeats), ""))
        except Exception as exc:
            rows.append((name, None, f"{type(exc).__name__}: {exc}"))

    l1_ms = next((ms for name, ms, _ in rows if name == "l1" and ms), None)
    print(f"reference: {ref_note}: " + (f"{ref_ms:.2f} ms" if ref_ms else "n/a"))
    print()
    print(f"| {'loss':<16} | {'fwd+bwd ms':>10} | {'x l1':>8} | {'x UNet':>7} |")
    print(f"|{'-' * 18}|{'-' * 11}:|{'-' * 9}:|{'-' * 8}:|")
    for name, ms, err in rows:
        if ms is None:
            print(f"| {name:<16} | {'error':>10} | {'':>8} | {'':>7} |  {err[:80]}")
            continue
        x_l1 = f"{ms / l1_ms:.1f}" if l1_ms else "n/a"
        x_unet = f"{ms / ref_ms:.3f}" if ref_ms else "n/a"
        print(f"| {name:<16} | {ms:>10.2f} | {x_l1:>8} | {x_unet:>7} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
