"""Everything a run checks and builds before it writes anything; the run folder's state.

:func:`prepare` resolves the device and profile, loads and checks the recipe, validates the
dataset, carves the validation split, seeds Python/NumPy/torch and builds the UNet (first, so its
initial weights depend only on the seed and the protocol) and then the loss mix (discriminator
initialisation), and assembles the resolved configuration and its hash. Every problem is a
:class:`UserError`. :func:`check_folder` compares the request with what a run folder holds.

The config hash covers what changes numbers (:func:`hashed_part`): the recipe's name and losses
(not its description or source), the protocol, the model, the data's layout, manifest sha256
and validation names, and the seed. Not hashed, but recorded: dataset root, device, compile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmark import data as data_mod
from benchmark import recipes as recipes_mod
from benchmark import runstate as rs
from benchmark.errors import UserError
from benchmark.model import UNet, count_parameters
from benchmark.protocol import Protocol, resolve_profile


def run_dir(results_dir: str | Path, recipe: str, profile: str, seed: int) -> Path:
    """``<results>/runs/<recipe>/<profile>/seed<N>``."""
    return Path(results_dir) / "runs" / recipe / profile / f"seed{seed}"


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


def hashed_part(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a ``config.yaml`` that change numbers (what the config hash covers)."""
    recipe = config.get("recipe") or {}
    data = config.get("data") or {}
    return {
        "recipe": {"name": recipe.get("name"), "losses": recipe.get("losses")},
        "protocol": config.get("protocol"),
        "model": config.get("model"),
        "data": {k: data.get(k) for k in ("layout", "manifest_sha256", "val_images")},
        "seed": config.get("seed"),
    }


def prepare(
    recipe: str,
    profile: str | Protocol,
    seed: int,
    data_dir: str | Path | None,
    results_dir: str | Path,
    device: str | None = None,
    deterministic: bool | None = None,
    compile: bool = False,
    quiet: bool = False,
) -> Setup:
    """Validate every input and build the model and losses; write nothing but the dataset cache.

    Raises:
        UserError: unknown recipe/profile, bad dataset, missing weights, CUDA unavailable, ...
    """
    dev = resolve_device(device)
    if isinstance(profile, Protocol):
        protocol, message = profile, f"profile {profile.name} (custom)"
    else:
        protocol, message = resolve_profile(profile, dev)
    if deterministic is not None:
        protocol = replace(protocol, deterministic=deterministic)
    if not quiet:
        print(f"lossbench: {message}")
    rec = recipes_mod.load_recipe(recipe)
    if data_dir is None:
        from benchmark import synth  # noqa: PLC0415 - only needed for the default data

        data_dir = synth.ensure_default()
    dataset = data_mod.discover(data_dir)
    train_pairs, val_pairs = data_mod.split_train_val(dataset.train, protocol.n_val)
    rs.seed_everything(seed)
    model = UNet(protocol.width, protocol.depth)
    mix = recipes_mod.build_mix(rec)
    recipes_mod.check_recipe_for_protocol(rec, mix, protocol.patch)
    backbones = sorted(
        {b for m in mix.modules() for b in getattr(m, "backbones", ())} | {"alexnet"}
    )
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
            "n_train": len(train_pairs),
            "n_val": len(val_pairs),
            "n_test": len(dataset.test),
            "val_images": [p.name for p in val_pairs],
        },
        "seed": seed,
        "crop_seed": crop_seed(seed),
        "device": str(dev),
        "compile": bool(compile),
        "backbones": backbones,
    }
    hashed = hashed_part(config)
    digest = rs.config_hash(hashed)
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
        run_dir(results_dir, rec.name, protocol.name, seed),
        backbones,
    )


def crop_seed(seed: int) -> int:
    """Seed of the crop/flip generator, derived from the run seed."""
    return (seed * 1_000_003 + 17) % 2**63


def _stored_hash(folder: Path) -> tuple[str | None, dict[str, Any] | None]:
    path = folder / "config.yaml"
    if not path.is_file():
        return None, None
    try:
        stored = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "unreadable", None
    if not isinstance(stored, dict):
        return "unreadable", None
    return stored.get("config_hash"), stored


def check_folder(setup: Setup) -> dict[str, Any] | None:
    """Refuse a folder of another configuration; return the stored metrics of a finished run."""
    folder = setup.folder
    digest, stored = _stored_hash(folder)
    if digest is not None and digest != setup.config_hash:
        what = rs.diff_configs(hashed_part(stored), setup.hashed) if stored else []
        differs = "; ".join(what) if what else "config.yaml is unreadable"
        raise UserError(
            f"{folder} holds a run of a different configuration (config hash {str(digest)[:12]} "
            f"there, {setup.config_hash[:12]} requested): {differs}. Refusing to reuse or "
            f"overwrite it: use another --results folder, or delete {folder} to redo it."
        )
    done = rs.read_json(folder / "metrics.json")
    if done and done.get("status") == "ok" and done.get("config_hash") == setup.config_hash:
        return done
    return None


__all__ = [
    "Setup",
    "check_folder",
    "crop_seed",
    "hashed_part",
    "prepare",
    "resolve_device",
    "run_dir",
]
