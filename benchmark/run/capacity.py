"""How many runs one machine trains at once: ``sweep --jobs auto``.

On one GPU, runs of the small profiles (``lite``: width 16, 4 x 176 px) leave most of the device
idle: a step is a few hundred small kernels, bound by their launches, so several runs sharing the
GPU (one process each) add up to more steps per second than one (docs/PERFORMANCE.md has the
measured curve). How many fit is bounded by:

- device memory: :func:`run_memory_bytes` estimates one run's from its profile (the tensors its
  step keeps for the backward, counted on the meta device; the UNet's weights, gradients and
  Adam moments; the training set resident as uint8; a VGG19 trunk for perceptual recipes; and a
  fixed allowance for the CUDA context, cuDNN/cuBLAS workspaces and the allocator's slack),
  against the free memory ``torch.cuda.mem_get_info`` reports, keeping :data:`HEADROOM` free;
- CPU cores: each run's process needs a core to launch its kernels (on the CPU each run gets one
  thread), so never more runs than cores;
- :data:`MAX_JOBS`, and the number of runs to do.

The choice and its reasons are printed by the sweep. Tests mock the device.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from benchmark.protocol import Protocol

#: per-process device memory outside torch's tensors: CUDA context, cuDNN and cuBLAS
#: workspaces, allocator rounding (the context alone is 300-600 MiB on recent drivers)
CONTEXT_BYTES = 1024 * 2**20
#: share of the free device (or host) memory left unused
HEADROOM = 0.15
#: never more concurrent runs than this
MAX_JOBS = 32
#: bytes per training pixel pair held on the device (uint8 low + high, 3 channels each)
PAIR_BYTES_PER_PIXEL = 6


def _saved_bytes(build: Callable[[], torch.nn.Module], shape: tuple[int, ...],
                 dtype: torch.dtype) -> int:
    """Bytes of the tensors autograd keeps for the backward of one forward (meta device)."""
    model = build().to("meta").to(dtype)
    x = torch.empty(shape, device="meta", dtype=dtype, requires_grad=True)
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return total[0]


def run_memory_bytes(protocol: Protocol, train_pixels: int, backbone: bool = False) -> int:
    """Estimated device memory of one training run of ``protocol`` (see the module docstring).

    ``train_pixels``: height x width summed over the training pairs (one side).
    """
    from benchmark.model import UNet, count_parameters

    shape = (protocol.batch, 3, protocol.patch, protocol.patch)
    dtype = torch.bfloat16 if protocol.precision == "bf16" else torch.float32
    unet = _saved_bytes(lambda: UNet(protocol.width, protocol.depth), shape, dtype)
    params = count_parameters(UNet(protocol.width, protocol.depth))
    total = unet + 16 * params + PAIR_BYTES_PER_PIXEL * train_pixels + CONTEXT_BYTES
    if backbone:  # VGG19's features in float32, prediction and target sides, plus its weights
        from torchvision.models import vgg19

        total += 2 * _saved_bytes(lambda: vgg19().features, shape, torch.float32) + 80 * 2**20
    return int(total)


def auto_jobs(runs: int, per_run: int, free: int, cores: int, where: str) -> tuple[int, str]:
    """The number of concurrent runs, and a line saying what bounded it."""
    by_memory = max(1, int(free * (1 - HEADROOM)) // max(per_run, 1))
    bounds = {"runs to do": runs, f"{where} memory ({free / 2**30:.1f} GiB free, "
              f"~{per_run / 2**30:.2f} GiB a run)": by_memory, "CPU cores": cores,
              "the cap": MAX_JOBS}
    jobs = max(1, min(bounds.values()))
    limit = min(bounds, key=lambda k: bounds[k])
    return jobs, f"--jobs auto -> {jobs} (bounded by the {limit}; " + ", ".join(
        f"{k}: {v}" for k, v in bounds.items()) + ")"


def _host_free_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 * 2**30


def choose_jobs(protocol: Protocol, runs: int, train_pixels: int, backbone: bool,
                cuda: bool | None = None) -> tuple[int, str]:
    """``--jobs auto`` for this machine: one GPU's free memory when CUDA is there (the sweep
    shares GPUs out round-robin, so several GPUs multiply it), the host's otherwise."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    per_run = run_memory_bytes(protocol, train_pixels, backbone)
    cores = os.cpu_count() or 1
    if cuda:
        gpus = max(1, torch.cuda.device_count())
        free = sum(torch.cuda.mem_get_info(i)[0] for i in range(gpus))
        return auto_jobs(runs, per_run, free, cores, f"{gpus} GPU" + ("s" if gpus > 1 else ""))
    host = per_run - CONTEXT_BYTES + 300 * 2**20  # a CPU process: no CUDA context, the runtime
    return auto_jobs(runs, host, _host_free_bytes(), cores, "host")


def train_pixels(data_dir: str | None, n_val: int) -> int:
    """Pixels of one side of the training pairs a run of ``data_dir`` keeps resident (the
    validation pairs included, a run holds those too): image headers only, nothing decoded."""
    from PIL import Image

    from benchmark.data import pairs as data_mod

    if data_dir is None:
        from benchmark.data import synth

        data_dir = str(synth.ensure_default())
    total = 0
    for pair in data_mod.discover(data_dir).train:
        with Image.open(pair.low) as img:
            total += img.width * img.height
    return total


def sweep_jobs(todo: list, data: str | None = None, precision: str | None = None,
               cuda: bool | None = None) -> tuple[int, str]:
    """``sweep --jobs auto``: :func:`choose_jobs` for the sweep's runs (``RunKey``s), profile,
    data and precision; a perceptual recipe among them sizes every run with a VGG19 trunk."""
    from benchmark.protocol import resolve_precision, resolve_profile
    from benchmark.recipes.mix import load_recipe

    cuda = torch.cuda.is_available() if cuda is None else cuda
    device = torch.device("cuda" if cuda else "cpu")
    protocol = resolve_precision(resolve_profile(todo[0].profile, device)[0], device,
                                 precision)[0]
    recipes = sorted({key.named or key.recipe for key in todo})
    backbone = any(term.get("name") == "perceptual"
                   for r in recipes for term in load_recipe(r).to_dict().get("losses", []))
    pixels = train_pixels(data, protocol.n_val)
    return choose_jobs(protocol, len(todo), pixels, backbone, cuda)


__all__ = ["CONTEXT_BYTES", "HEADROOM", "MAX_JOBS", "auto_jobs", "choose_jobs",
           "run_memory_bytes", "sweep_jobs", "train_pixels"]
