"""``config.yaml``: the resolved configuration, what of it is hashed, and how runs are grouped.

- The **config hash** is the sha256 of the canonical JSON (sorted keys, no spaces) of the part of
  the configuration that changes numbers (:func:`hashed_part`): the recipe's name and losses (not
  its description or source), the protocol less its operational fields
  (:data:`OPERATIONAL_FIELDS`), the model, the data's layout, manifest sha256 and validation
  names, the seed, and the metrics when some are left out. Paths, the device, ``compile``,
  ``cuda_graphs`` and the recipe's description are recorded but not hashed. A run is reused
  only when the hash it stored equals the one requested; so this function fixes which finished
  runs stay valid and must not change for existing runs.
- The **config key** (:func:`config_key`) groups the seeds of one configuration: the config
  hash covers the seed, so it differs between seeds by design; the key is the sha256 of the
  configuration without the fields that differ between seeds or machines
  (:data:`RUN_SPECIFIC`) nor the operational ones. Analysis refuses to average runs of one
  recipe with two keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UserError
from benchmark.record.atomic import atomic_write_text
from benchmark.record.layout import CONFIG_FILE

#: protocol fields that never change a run's numbers (how often it logs or checkpoints, which
#: seeds a sweep runs by default, how many samples it saves, whether it logs gradient shares):
#: recorded in config.yaml, left out of the config hash, so changing one never invalidates
#: finished runs. A new operational field (not one that changes training or evaluation) belongs
#: here too.
OPERATIONAL_FIELDS = ("ckpt_every", "ckpt_minutes", "log_every", "seeds", "n_samples",
                      "grad_shares")
#: the data fields that change numbers (hashed); root, name and counts are recorded only
DATA_FIELDS = ("layout", "manifest_sha256", "val_images")
#: the metrics list a configuration leaves out of its hash: every metric a run computed before
#: ``--metrics`` existed. Fixed here, apart from the metric registry, so that a new metric
#: never changes the hash of a finished run.
UNHASHED_METRICS = ("psnr", "ssim", "lpips")
#: config.yaml fields that legitimately differ between the seeds of one configuration
#: (``""``: top level), left out of :func:`config_key`
RUN_SPECIFIC = {"": ("config_hash", "seed", "crop_seed", "device", "compile", "cuda_graphs"),
                "data": ("root",),
                "recipe": ("description", "source", "references", "loss_references",
                           "resolved_params")}


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: the bytes the config hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(hashed: dict[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_json` of ``hashed`` (a :func:`hashed_part`)."""
    return hashlib.sha256(canonical_json(hashed).encode("utf-8")).hexdigest()


def hashed_part(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a ``config.yaml`` that change numbers (what the config hash covers)."""
    recipe = config.get("recipe") or {}
    data = config.get("data") or {}
    protocol = config.get("protocol")
    if isinstance(protocol, dict):
        protocol = {k: v for k, v in protocol.items() if k not in OPERATIONAL_FIELDS}
        if not protocol.get("tf32", False):  # the default: runs from before the field keep
            protocol.pop("tf32", None)        # their hash (they computed IEEE float32 too)
    return {
        "recipe": {"name": recipe.get("name"), "losses": recipe.get("losses")},
        "protocol": protocol,
        "model": config.get("model"),
        "data": {k: data.get(k) for k in DATA_FIELDS},
        "seed": config.get("seed"),
        # only when LPIPS is left out (--metrics psnr,ssim), so default runs keep their hash
        **({"metrics": config["metrics"]}
           if config.get("metrics") not in (None, list(UNHASHED_METRICS)) else {}),
    }


def hash_config(config: dict[str, Any]) -> str:
    """The config hash of a whole configuration: ``config_hash(hashed_part(config))``."""
    return config_hash(hashed_part(config))


def flatten(obj: Any, prefix: str = "", *, every_list: bool = False) -> dict[str, Any]:
    """``{"a.b[0].c": leaf}`` of nested dicts and lists.

    A list of plain values is one leaf (``[1, 2]``), unless ``every_list``: then every list is
    split into its elements (an empty one vanishes), so a message can name the one element that
    differs. A list holding dicts or lists is always split.
    """
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key),
                               every_list=every_list))
        return out
    if isinstance(obj, list | tuple) and (
        (every_list and isinstance(obj, list)) or any(isinstance(v, dict | list) for v in obj)
    ):
        out = {}
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}[{i}]", every_list=every_list))
        return out
    return {prefix: list(obj) if isinstance(obj, tuple) else obj}


def diff_configs(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> list[str]:
    """Lines ``key.path: old -> new`` for the fields that differ (at most ``limit``, then '...')."""
    a, b = flatten(old), flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def shared_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the fields that differ between seeds of one configuration
    (:data:`RUN_SPECIFIC`), nor the operational protocol fields (runs differing only there are
    one configuration)."""
    body = {k: v for k, v in config.items() if k not in RUN_SPECIFIC[""]}
    if isinstance(body.get("protocol"), dict):
        body["protocol"] = {k: v for k, v in body["protocol"].items()
                            if k not in OPERATIONAL_FIELDS}
    for section in ("data", "recipe"):
        if isinstance(body.get(section), dict):
            body[section] = {k: v for k, v in body[section].items()
                             if k not in RUN_SPECIFIC[section]}
    return body


def config_key(config: dict[str, Any]) -> str:
    """12 hex digits naming the configuration the seeds of one recipe share."""
    text = json.dumps(shared_config(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def shared_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, a's value, b's value)`` where two configurations differ beyond the fields
    :func:`config_key` leaves out (every list split, so the one element that differs is named)."""
    fa = flatten(shared_config(a), every_list=True)
    fb = flatten(shared_config(b), every_list=True)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def write_config(folder: str | Path, config: dict[str, Any]) -> None:
    """``config.yaml`` (keys in the given order), written atomically."""
    atomic_write_text(Path(folder) / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))


def _config_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder if folder.name == CONFIG_FILE else folder / CONFIG_FILE


def read_config(folder: str | Path) -> dict[str, Any] | None:
    """A run's ``config.yaml`` (``folder``: the run folder, or the file itself), or None when
    the file is absent.

    Raises:
        UserError: the file is unreadable, not YAML, or not a mapping (naming the file).
    """
    path = _config_path(folder)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with recipe/protocol/data/seed")
    return data


def peek_config(folder: str | Path) -> tuple[str | None, dict[str, Any] | None]:
    """``(stored config hash, config)`` of a folder, leniently: ``(None, None)`` without a
    ``config.yaml``, ``("unreadable", None)`` when it cannot be read as a mapping."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None, None
    try:
        stored = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "unreadable", None
    if not isinstance(stored, dict):
        return "unreadable", None
    return stored.get("config_hash"), stored


def config_precision(config: dict[str, Any] | None) -> str | None:
    """The precision a run's ``config.yaml`` records (None without a readable protocol); a CUDA
    run with TF32 on (``--tf32 on``) is its own precision, ``"<precision>+tf32"``.
    Configurations written before the field existed count as fp32 on the CPU and, with ``amp``
    set, bf16 on CUDA."""
    protocol = (config or {}).get("protocol")
    if not isinstance(protocol, dict):
        return None
    if "precision" in protocol:
        return str(protocol["precision"]) + ("+tf32" if protocol.get("tf32") is True else "")
    legacy_cuda = str(config.get("device", "")).startswith("cuda")
    return "bf16" if legacy_cuda and protocol.get("amp", False) else "fp32"


__all__ = [
    "DATA_FIELDS",
    "OPERATIONAL_FIELDS",
    "RUN_SPECIFIC",
    "UNHASHED_METRICS",
    "canonical_json",
    "config_hash",
    "config_key",
    "config_precision",
    "diff_configs",
    "flatten",
    "hash_config",
    "hashed_part",
    "peek_config",
    "read_config",
    "shared_config",
    "shared_differences",
    "write_config",
]
