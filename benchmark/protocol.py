"""The fixed training and evaluation protocol: profiles ``smoke``, ``quick``, ``lite``, ``long``,
``paper``.

Everything except the loss is fixed here: network width and depth, patch size, batch size,
iterations, optimiser (Adam, betas 0.9/0.999, no weight decay), learning-rate schedule, the
validation subset and how often it is scored, evaluation resolution, checkpoint cadence,
precision and determinism. A profile is a frozen :class:`Protocol`; ``to_dict()`` is what a run
writes into its ``config.yaml`` and hashes.

Schedule (every profile): linear warm-up from ``lr / warmup`` to ``lr`` over ``warmup``
iterations, then cosine decay to ``min_lr`` at the last iteration. Discriminators (adversarial
recipes) use their own Adam at the loss's ``d_lr``, constant.

Weights scored (every profile, protocol version 2): an exponential moving average of the network
weights (``ema_decay``, BasicSR-style, with a warm-up so the first steps' average is not the
initial weights) is what validation scores, and the headline test score is that of the average
at the last iteration: the *final* weights, a rule fixed before the test split is read. The
validation-selected and test-selected weights are recorded beside it as other views
(:mod:`benchmark.run.views`). A run whose final validation PSNR is below the identity mapping's
(or whose gradient stays at zero) is ``collapsed`` (:func:`collapse_outcome`): scored, counted,
never averaged in.

Profiles (times are on 2 CPU cores unless said):

``smoke``  width 8, 64 px patches, batch 4, 20 iterations, evaluation with the longer side
           scaled down to 128 px. Tests and CI: <= 60 s per recipe including data load and
           LPIPS evaluation, VGG recipes included (measured 5-10 s per recipe end to end, Python
           start-up included, on 2 shared cores). Admits every recipe whose losses accept
           64 px inputs: ``ms_ssim`` and ``zhao_mix`` (MS-SSIM needs >= 161 px) are refused by
           the recipe check.
``quick``  width 16, 176 px patches, batch 4, 160 iterations, full-resolution evaluation. The
           CPU default, sized for <= 5 minutes per recipe on 2 cores with the costliest shipped
           recipe. Measured end to end (``python -m benchmark run``, 2 idle cores of an AMD EPYC
           with native bf16, docs/PERFORMANCE.md): l1 28 s, flw 32 s, s3net 128 s, srgan 178 s
           (l1 90 s, s3net 259 s, srgan 350 s in fp32 on one thread). Admits every recipe,
           ``ms_ssim`` and ``zhao_mix`` included (176 >= 161). A perceptual term reaching
           relu5_1 costs several times more per step than s3net's relu3_1 and would exceed 5
           minutes.
``lite``   quick's network and crops (width 16, 176 px, batch 4) trained 2 000 iterations with a
           50-iteration warm-up at lr 3e-4 (version 1: 1e-3, whose validation PSNR swung by
           several dB between validations), weight average with decay 0.999, validated every
           200 on 30 held-out training pairs. The CPU protocol for real data: a backbone-free
           recipe on the full LOL-v1 takes at most about 15 minutes on 2 cores
           (docs/PROTOCOL.md has the curves of both versions and the reasoning;
           results/reference/LOL-v1/lite holds its reference results).
``long``   lite scaled by ``LONG_FACTOR`` = 10: lite's network, crops, lr and every other
           setting (defined from ``PROFILES["lite"]``, so it follows lite), 20 000 iterations
           with the warm-up, validation, checkpoint and logging cadences multiplied by 10. It
           answers one question: does lite rank the losses the way longer training does
           (``compare --transfer``; docs/PROTOCOL.md, "The long profile")? About 10 times
           lite's cost: docs/PROTOCOL.md has the measured figures.
``paper``  width 32 (7.8 M parameters), 256 px patches, batch 8, 100 000 iterations (about
           1 700 epochs of LOL-v1's 470 training pairs left after holding out 15 for
           validation), lr 2e-4 with 1 000 warm-up iterations and cosine decay to 1e-6,
           validation every 2 000 iterations, full-resolution evaluation, deterministic CUDA
           algorithms (``--deterministic off`` trades that for cuDNN autotuning; recorded in the
           run). The GPU protocol; admits every recipe. Time: not measured here (no GPU in this
           environment); from the step cost of a 7.8 M-parameter UNet and VGG19 to relu3 at
           this size, roughly 0.3-1 h per recipe on one H100-class GPU. docs/PERFORMANCE.md
           holds measured figures.

``auto`` resolves to ``paper`` when CUDA is available and to ``quick`` otherwise.

Precision (every profile): the network runs channels_last, its forward pass under bf16 autocast
where the device computes bf16 natively (Ampere or later GPUs; x86 CPUs with AVX512-BF16 or AMX)
and in fp32 elsewhere (``precision: auto``, overridden by ``--precision bf16|fp32``). The losses
always get a float32 prediction and compute in float32, whatever the precision. The resolved
precision is recorded and hashed with the rest of the protocol.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.errors import UserError, did_you_mean
from benchmark.precision import tf32_settings

#: values of ``Protocol.precision`` (and of ``--precision``)
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class Protocol:
    """One training + evaluation protocol (see the module docstring for the profiles)."""

    name: str
    width: int
    depth: int
    patch: int
    batch: int
    iterations: int
    lr: float
    min_lr: float
    warmup: int
    val_every: int
    n_val: int
    ckpt_every: int
    log_every: int
    #: "full", or the longest side (pixels) test/validation images are scaled down to
    eval_resolution: str | int = "full"
    #: CUDA only: deterministic algorithms, no cuDNN benchmark (CPU runs are deterministic anyway)
    deterministic: bool = True
    #: the network's forward precision: "bf16" (autocast; the losses still get float32),
    #: "fp32", or "auto" (bf16 where the hardware computes it natively, see
    #: :func:`resolve_precision`). A run records the resolved value, never "auto".
    precision: str = "auto"
    #: channels_last memory format for the network and its input (every device)
    channels_last: bool = True
    #: CUDA only: let cuDNN convolutions and cuBLAS matmuls of float32 tensors (the losses, the
    #: VGG trunk, an fp32 network) round their inputs to TF32 (10-bit mantissa). Off: they
    #: compute in IEEE float32, as on the CPU (``--tf32 on|off``; :func:`tf32_settings`).
    #: Hashed only when on, so runs from before the field existed keep their hash.
    tf32: bool = False
    #: seeds a sweep runs when none are given
    seeds: tuple[int, ...] = (0, 1, 2)
    #: test images saved as low | output | reference PNGs
    n_samples: int = 3
    #: also checkpoint when this many minutes passed since the last checkpoint (0: off), so a
    #: preempted or timed-out job loses little work whatever ``ckpt_every`` is
    ckpt_minutes: float = 10.0
    #: every ``log_every`` iterations, log each weighted term's gradient norm with respect to
    #: the network output and its share (multi-term recipes; never changes the numbers)
    grad_shares: bool = True
    schedule: str = field(default="cosine")
    #: exponential moving average of the network weights (0: off). After every optimiser step
    #: ``ema <- ema + (1 - d_t) (w - ema)`` with ``d_t = min(ema_decay, (1 + t) / (10 + t))`` at
    #: iteration t, so the average of the first steps is not dominated by the initial weights.
    #: When on, validation, the checkpoint choice and the test split score the average.
    ema_decay: float = 0.0
    #: collapse (fixed before any run): a run is ``collapsed`` when the validation PSNR of its
    #: final (headline) weights is below the identity mapping's (output = low-light input) plus
    #: ``collapse_margin_db``, or when the gradient norm of the network is below
    #: ``collapse_grad_tol`` at ``collapse_flat_logs`` consecutive logged rows (0: not checked)
    collapse_margin_db: float = 0.0
    collapse_grad_tol: float = 1e-4
    collapse_flat_logs: int = 5
    #: the protocol's version (hashed, so runs of two versions never mix in one table): 2 adds
    #: the moving average of the weights, the final weights as the headline score, the three
    #: views and the collapse criterion (and lite's new learning rate, docs/PROTOCOL.md)
    version: int = 2

    def __post_init__(self) -> None:
        for name in (
            "width",
            "depth",
            "patch",
            "batch",
            "iterations",
            "val_every",
            "ckpt_every",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Protocol {self.name}: {name} must be >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"Protocol {self.name}: precision must be one of {', '.join(PRECISIONS)}"
            )
        if not self.ckpt_minutes >= 0:
            raise ValueError(f"Protocol {self.name}: ckpt_minutes must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"Protocol {self.name}: ema_decay must be in [0, 1)")
        if self.collapse_flat_logs < 0:
            raise ValueError(f"Protocol {self.name}: collapse_flat_logs must be >= 0")
        if self.schedule != "cosine":
            raise ValueError(f"Protocol {self.name}: only the 'cosine' schedule exists")
        if self.eval_resolution != "full" and not (
            isinstance(self.eval_resolution, int) and self.eval_resolution >= 16
        ):
            raise ValueError(
                f"Protocol {self.name}: eval_resolution must be 'full' or an int >= 16"
            )

    def lr_at(self, iteration: int) -> float:
        """Learning rate for (1-based) ``iteration``: linear warm-up, then cosine to ``min_lr``."""
        if self.warmup > 0 and iteration <= self.warmup:
            return self.lr * iteration / self.warmup
        span = max(1, self.iterations - self.warmup)
        progress = min(1.0, (iteration - self.warmup) / span)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def ema_decay_at(self, iteration: int) -> float:
        """The averaging decay applied after (1-based) ``iteration``'s step (0 when EMA is off)."""
        if self.ema_decay <= 0.0:
            return 0.0
        return min(self.ema_decay, (1.0 + iteration) / (10.0 + iteration))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-ready dict of every field (what ``config.yaml`` records and hashes)."""
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        return out


PROFILES: dict[str, Protocol] = {
    "smoke": Protocol(
        name="smoke",
        width=8,
        depth=4,
        patch=64,
        batch=4,
        iterations=20,
        lr=1e-3,
        min_lr=1e-4,
        warmup=2,
        val_every=10,
        n_val=2,
        ckpt_every=10,
        log_every=5,
        eval_resolution=128,
        seeds=(0, 1),
        ema_decay=0.999,
    ),
    "quick": Protocol(
        name="quick",
        width=16,
        depth=4,
        patch=176,
        batch=4,
        iterations=160,
        lr=1e-3,
        min_lr=1e-5,
        warmup=10,
        val_every=40,
        n_val=3,
        ckpt_every=40,
        log_every=10,
        eval_resolution="full",
        seeds=(0, 1, 2),
        ema_decay=0.999,
    ),
    "lite": Protocol(
        name="lite",
        width=16,
        depth=4,
        patch=176,
        batch=4,
        iterations=2_000,
        lr=3e-4,
        min_lr=1e-5,
        warmup=50,
        val_every=200,
        n_val=30,
        ckpt_every=200,
        log_every=50,
        eval_resolution="full",
        seeds=(0, 1, 2, 3, 4),
        ema_decay=0.999,
    ),
    "paper": Protocol(
        name="paper",
        width=32,
        depth=4,
        patch=256,
        batch=8,
        iterations=100_000,
        lr=2e-4,
        min_lr=1e-6,
        warmup=1_000,
        val_every=2_000,
        n_val=15,
        ckpt_every=1_000,
        log_every=100,
        eval_resolution="full",
        seeds=(0, 1, 2, 3, 4),
        ema_decay=0.999,
    ),
}


def collapse_outcome(
    protocol: Protocol,
    final_val_psnr: float | None,
    identity_val_psnr: float,
    grad_norms: Sequence[float],
) -> tuple[str, str | None]:
    """The outcome of a finished run under ``protocol``'s collapse criterion.

    ``collapsed`` when the validation PSNR of the final (headline) weights is below the identity
    mapping's (the untrained network: output = low-light input) plus ``collapse_margin_db``, or
    is not finite; or when the logged gradient norm of the network (``grad_norms``, one value per
    logged row) stayed below ``collapse_grad_tol`` for ``collapse_flat_logs`` consecutive rows.
    Otherwise ``ok``.

    Returns:
        ``(outcome, reason)``: ``("ok", None)`` or ``("collapsed", a sentence with the numbers)``.
    """
    floor = identity_val_psnr + protocol.collapse_margin_db
    if final_val_psnr is None or not math.isfinite(final_val_psnr):
        return "collapsed", "the final validation PSNR is not finite"
    if final_val_psnr < floor:
        margin = (f" + {protocol.collapse_margin_db:g} dB" if protocol.collapse_margin_db
                  else "")
        return "collapsed", (
            f"final validation PSNR {final_val_psnr:.2f} dB is below the identity mapping's "
            f"{identity_val_psnr:.2f} dB{margin} (output = low-light input)"
        )
    need, run, start = protocol.collapse_flat_logs, 0, None
    for k, value in enumerate(grad_norms):
        flat = math.isfinite(value) and abs(value) < protocol.collapse_grad_tol
        run = run + 1 if flat else 0
        if flat and run == 1:
            start = k
        if need > 0 and run >= need:
            return "collapsed", (
                f"the gradient norm stayed below {protocol.collapse_grad_tol:g} for {run} "
                f"consecutive logged rows (from logged row {start + 1})"
            )
    return "ok", None


#: how many times lite's iterations (and schedule cadences) the ``long`` profile trains
LONG_FACTOR = 10


def scaled(base: Protocol, name: str, factor: int) -> Protocol:
    """``base`` trained ``factor`` times longer: iterations, warm-up and the validation,
    checkpoint and logging cadences multiplied, every other field (network, crops, lr,
    precision, seeds) kept."""
    return dataclasses.replace(
        base, name=name, iterations=base.iterations * factor, warmup=base.warmup * factor,
        val_every=base.val_every * factor, ckpt_every=base.ckpt_every * factor,
        log_every=base.log_every * factor)


PROFILES["long"] = scaled(PROFILES["lite"], "long", LONG_FACTOR)

#: what each profile is for (``python -m benchmark profiles`` prints it with the settings)
PURPOSE = {
    "smoke": "tests and CI: seconds per recipe, numbers meaningless",
    "quick": "a first look on a CPU: minutes per recipe, far from converged",
    "lite": "real data on a CPU: <= ~15 min per backbone-free recipe on LOL-v1, final "
            "weight-averaged weights scored (docs/PROTOCOL.md)",
    "paper": "the GPU protocol: ~1 700 epochs of LOL-v1",
    "long": "lite trained 10x longer: does lite's ranking hold? (docs/PROTOCOL.md)",
}


def resolve_profile(name: str, device: str | torch.device | None = None) -> tuple[Protocol, str]:
    """Turn a profile name (or ``auto``) into a :class:`Protocol` and a line to show the user.

    ``auto`` picks ``paper`` when the run's device is CUDA (or, with no device given, when CUDA
    is available) and ``quick`` otherwise.

    Raises:
        UserError: unknown profile name.
    """
    if name == "auto":
        cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
        chosen = "paper" if cuda else "quick"
        why = "CUDA is available" if cuda else "no CUDA device: CPU run"
        proto = PROFILES[chosen]
        return proto, (
            f"profile auto -> {chosen} ({why}; {proto.iterations} iterations, batch {proto.batch}, "
            f"patch {proto.patch}). Pass --profile to choose."
        )
    if name not in PROFILES:
        raise UserError(
            f"--profile: unknown profile '{name}'{did_you_mean(name, PROFILES)} "
            f"(choose from {', '.join([*PROFILES, 'auto'])})"
        )
    proto = PROFILES[name]
    return proto, (
        f"profile {name}: {proto.iterations} iterations, batch {proto.batch}, patch {proto.patch}"
    )


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 convolutions natively (not emulated through fp32).

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (Ampere and later). CPU:
    x86 with AVX512-BF16 or AMX tiles (oneDNN's bf16 kernels); any other CPU is treated as
    without, because oneDNN emulates bf16 there (slower than fp32, or far slower without
    AVX-512).
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(protocol: Protocol, device: torch.device, requested: str | None = None
                      ) -> tuple[Protocol, str]:
    """The protocol with its precision resolved for ``device``, and a line for the user.

    ``requested`` (``--precision``) overrides the profile's value. ``auto`` becomes ``bf16`` where
    :func:`native_bf16` holds and ``fp32`` elsewhere, so the same command may resolve
    differently on two machines; the resolved value is part of the run's configuration (and
    hash), and ``compare`` refuses to put runs of different precision in one table.

    Raises:
        UserError: an unknown value, or ``bf16`` on a CUDA device without bf16 support.
    """
    wanted = protocol.precision if requested is None else requested
    if wanted not in PRECISIONS:
        raise UserError(
            f"--precision: unknown precision '{wanted}'{did_you_mean(wanted, PRECISIONS)} "
            f"(choose from {', '.join(PRECISIONS)})"
        )
    native = native_bf16(device)
    if wanted == "auto":
        chosen = "bf16" if native else "fp32"
        why = (f"{device.type} computes bf16 natively" if native
               else f"no native bf16 on this {device.type}")
        line = f"precision auto -> {chosen} ({why}; --precision to choose)"
    else:
        if wanted == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError(
                "--precision bf16: this CUDA device does not support bfloat16; use "
                "--precision fp32"
            )
        chosen = wanted
        line = f"precision {chosen}"
        if chosen == "bf16" and not native:
            line += f" (emulated on this {device.type}: slower than fp32)"
    return dataclasses.replace(protocol, precision=chosen), line


__all__ = ["LONG_FACTOR", "PRECISIONS", "PROFILES", "Protocol", "collapse_outcome", "native_bf16",
           "resolve_precision", "resolve_profile", "scaled", "tf32_settings"]
