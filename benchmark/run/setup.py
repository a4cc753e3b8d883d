"""Everything a run checks and builds before it writes anything; the run folder's state.

:func:`prepare` resolves the device, profile and precision, loads and checks the recipe, validates
the dataset, carves the validation split, seeds Python/NumPy/torch and builds the UNet (first, so
its initial weights depend only on the seed and the protocol) and then the loss mix (discriminator
initialisation), and assembles the resolved configuration and its hash. Every problem is a
:class:`UserError`. :func:`check_folder` compares the request with what a run folder holds.

The config hash covers what changes numbers (:func:`benchmark.record.hashed_part`): the recipe's
name and losses (not its description or source), the protocol less its operational fields, the
model, the data's layout, manifest sha256 and validation names, and the seed. Not hashed, but
recorded: dataset root, device, compile. The CUDA determinism policy is
:mod:`benchmark.run.determinism`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmark import metrics as metrics_mod
from benchmark import record
from benchmark import weights as weights_mod
from benchmark.data import known as known_mod
from benchmark.data import pairs as data_mod
from benchmark.errors import UserError, did_you_mean
from benchmark.losses import LOSSES
from benchmark.model import UNet, count_parameters
from benchmark.protocol import (
    PROFILES,
    Protocol,
    resolve_precision,
    resolve_profile,
)
from benchmark.recipes import mix as recipes_mod
from benchmark.run.rng import seed_everything
from benchmark.run.spec import RunSpec


def resolve_device(device: str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; ``cuda`` without CUDA is a UserError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device: expected cpu or cuda, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    return torch.device(device)


@dataclass
class Setup:
    """Everything validated and built before the run folder is touched."""

    recipe: Any
    protocol: Protocol
    seed: int
    device: torch.device
    dataset: Any
    train_pairs: tuple
    val_pairs: tuple
    model: UNet
    mix: Any
    config: dict[str, Any]
    hashed: dict[str, Any]
    config_hash: str
    folder: Path
    backbones: list[str]


#: every test metric, in table order (``--metrics`` chooses; psnr and ssim are always there)
ALL_METRICS = metrics_mod.choices()


def prepare(spec: RunSpec, quiet: bool = False) -> Setup:
    """Validate every input of ``spec`` and build the model and losses; write nothing but the
    dataset cache.

    ``spec.options.tf32`` overrides the profile's TF32 policy (CUDA only; hashed when on);
    ``cuda_graphs`` is recorded, not hashed, like ``compile``; ``ckpt_minutes`` and
    ``grad_shares`` are operational (recorded, not hashed).

    Raises:
        UserError: unknown recipe/profile, bad dataset, missing weights, CUDA unavailable, ...
    """
    opts = spec.options
    seed = spec.seed
    metrics = check_metrics(opts.metrics)
    dev = resolve_device(opts.device)
    if isinstance(spec.profile, Protocol):
        protocol, message = spec.profile, f"profile {spec.profile.name} (custom)"
    else:
        protocol, message = resolve_profile(spec.profile, dev)
    if opts.deterministic is not None:
        protocol = replace(protocol, deterministic=opts.deterministic)
    if opts.grad_shares is not None:  # operational: recorded, not hashed
        protocol = replace(protocol, grad_shares=opts.grad_shares)
    if opts.ckpt_minutes is not None:  # operational: recorded, not hashed
        protocol = replace(protocol, ckpt_minutes=opts.ckpt_minutes)
    protocol, precision_line = resolve_precision(protocol, dev, opts.precision)
    if opts.tf32 is not None:
        protocol = replace(protocol, tf32=opts.tf32)
    if protocol.tf32 and dev.type != "cuda":
        raise UserError(f"--tf32 on: TF32 is a format of NVIDIA tensor cores and this run is on "
                        f"{dev.type}; leave it off (float32 is IEEE float32 there anyway)")
    if protocol.tf32:
        precision_line += "; TF32 on for float32 convolutions and matmuls (--tf32)"
    if not quiet:
        print(f"lossbench: {message}; {precision_line}")
    rec = spec.load_recipe()
    data_dir = spec.data
    if data_dir is None:
        from benchmark.data import synth  # noqa: PLC0415 - only needed for the default data

        data_dir = synth.ensure_default()
    dataset = data_mod.discover(data_dir)
    identity = known_mod.identify(dataset)
    if not quiet:
        print(f"lossbench: dataset {dataset.root}: {identity.note}")
    train_pairs, val_pairs = data_mod.split_train_val(dataset.train, protocol.n_val)
    # every pretrained file the run needs, checked at once: a message names all missing ones
    needed = {b for s in rec.losses if s.custom is None
              for b in getattr(LOSSES[s.name], "backbones", ())}
    weights_mod.ensure_all(sorted(needed | metrics_mod.backbones(metrics)))
    seed_everything(seed)
    model = UNet(protocol.width, protocol.depth)
    mix = recipes_mod.build_mix(rec)
    recipes_mod.check_recipe_for_protocol(rec, mix, protocol.patch)
    backbones = sorted({b for m in mix.modules() for b in getattr(m, "backbones", ())}
                       | metrics_mod.backbones(metrics))
    for name in backbones:  # LPIPS needs AlexNet at the end: refuse now, not after training
        weights_mod.ensure(name)
    folder = record.run_dir(spec.results, rec.name, protocol.name, seed)
    check_writable(folder)
    recipe_dict = rec.to_dict()
    config = {
        "recipe": recipe_dict,
        "protocol": protocol.to_dict(),
        "model": {
            "name": "UNet",
            "width": protocol.width,
            "depth": protocol.depth,
            "parameters": count_parameters(model),
        },
        "data": {
            "root": str(dataset.root),
            "layout": dataset.layout,
            "manifest_sha256": data_mod.manifest_hash(dataset),
            "name": identity.name,
            "identity": identity.status,
            "n_train": len(train_pairs),
            "n_val": len(val_pairs),
            "n_test": len(dataset.test),
            "val_images": [p.name for p in val_pairs],
        },
        "seed": seed,
        "crop_seed": crop_seed(seed),
        "device": str(dev),
        "compile": bool(opts.compile),
        "cuda_graphs": bool(opts.cuda_graphs),
        "backbones": backbones,
        "metrics": metrics,
    }
    hashed = record.hashed_part(config)
    digest = record.config_hash(hashed)
    config = {"config_hash": digest, **config}
    return Setup(
        rec,
        protocol,
        seed,
        dev,
        dataset,
        train_pairs,
        val_pairs,
        model,
        mix,
        config,
        hashed,
        digest,
        folder,
        backbones,
    )


def check_metrics(metrics: Sequence[str] | None) -> list[str]:
    """The test metrics in table order (None: all of them).

    Raises:
        UserError: an unknown metric, or psnr/ssim left out (they are always computed).
    """
    if metrics is None:
        return list(ALL_METRICS)
    names = [str(m).strip().lower() for m in metrics]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise UserError(f"metrics: unknown metric {unknown[0]!r}"
                        f"{did_you_mean(unknown[0], ALL_METRICS)} (choose from "
                        f"{', '.join(ALL_METRICS)})")
    if not set(metrics_mod.always()) <= set(names):
        raise UserError(f"metrics: {', '.join(names) or 'none'}: psnr and ssim are always "
                        f"computed; use psnr,ssim (no pretrained weights needed) or "
                        f"psnr,ssim,lpips")
    return [m for m in ALL_METRICS if m in names]


def check_writable(folder: Path) -> None:
    """Refuse a run folder that cannot be created: its nearest existing ancestor must be a
    writable folder (checked before anything is loaded or written).

    Raises:
        UserError: naming the ancestor that is a file or not writable.
    """
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists() or parent.is_symlink():
            break
    if not parent.is_dir():
        raise UserError(
            f"--results: cannot create the run folder {folder}: {parent} is a file, not a "
            f"folder; choose another --results folder"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(
            f"--results: cannot create the run folder {folder}: {parent} is not writable; "
            f"choose another --results folder or fix its permissions"
        )


def check_sizes(setup: Setup, images: list) -> None:
    """Refuse training images smaller than the profile's patches (loaded, not yet written)."""
    patch = setup.protocol.patch
    small = [
        (p.name, img.shape)
        for p, img in zip(setup.train_pairs, images, strict=True)
        if min(img.shape[:2]) < patch
    ]
    if small:
        listed = ", ".join(f"{n} ({s[1]}x{s[0]})" for n, s in small[:5])
        raise UserError(
            f"dataset {setup.dataset.root}: {len(small)} training image(s) are smaller than the "
            f"profile's {patch}x{patch} patches: {listed}"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU/MPS allocators' RuntimeError."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "MPS backend out of memory" in text
    )


def oom_message(setup: Setup, where: str) -> str:
    """The out-of-memory message: the profile's sizes and what to lower."""
    p = setup.protocol
    smaller = [
        f"{name} (batch {q.batch} of {q.patch}x{q.patch} px, evaluation {q.eval_resolution})"
        for name, q in sorted(PROFILES.items(), key=lambda kv: -kv[1].batch * kv[1].patch ** 2)
        if q.batch * q.patch**2 < p.batch * p.patch**2
    ]
    lower = (
        f", or lower them with a smaller profile: {', '.join(smaller)}; numbers of different "
        f"profiles are not comparable"
        if smaller
        else ""
    )
    return (
        f"out of memory on {setup.device} {where} with profile {p.name}: batch {p.batch} of "
        f"{p.patch}x{p.patch} px patches, UNet width {p.width}, evaluation resolution "
        f"{p.eval_resolution}. The profile fixes these sizes so that runs stay comparable: "
        f"free memory on the device (other processes; fewer --jobs in a sweep){lower}"
    )


def crop_seed(seed: int) -> int:
    """Seed of the crop/flip generator, derived from the run seed."""
    return (seed * 1_000_003 + 17) % 2**63


def check_folder(setup: Setup) -> dict[str, Any] | None:
    """Refuse a folder of another configuration; return the stored metrics of a finished run."""
    folder = setup.folder
    digest, stored = record.peek_config(folder)
    if digest is not None and digest != setup.config_hash:
        what = record.diff_configs(record.hashed_part(stored), setup.hashed) if stored else []
        differs = "; ".join(what) if what else f"{record.CONFIG_FILE} is unreadable"
        hint = ""
        stored_precision = ((stored or {}).get("protocol") or {}).get("precision")
        if stored_precision in ("bf16", "fp32") and stored_precision != setup.protocol.precision:
            hint = f" To use or resume that run, pass --precision {stored_precision}."
        raise UserError(
            f"{folder} holds a run of a different configuration (config hash {str(digest)[:12]} "
            f"there, {setup.config_hash[:12]} requested): {differs}. Refusing to reuse or "
            f"overwrite it: use another --results folder, or delete {folder} to redo it.{hint}"
        )
    done = record.peek_metrics(folder)
    if done and done.get("status") == "ok" and done.get("config_hash") == setup.config_hash:
        return done
    return None


__all__ = [
    "ALL_METRICS",
    "Setup",
    "check_folder",
    "check_metrics",
    "check_sizes",
    "check_writable",
    "crop_seed",
    "is_out_of_memory",
    "oom_message",
    "prepare",
    "resolve_device",
]
