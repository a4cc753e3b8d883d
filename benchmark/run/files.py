"""What a run writes into its folder beyond the record's typed files: checkpoints (atomic
``torch.save``), samples, the ``metrics.json`` skeleton, the end-of-run table and the
reproducibility comparison. File names and the typed writers are :mod:`benchmark.record`'s.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmark import metrics as metrics_mod
from benchmark import record
from benchmark.errors import UserError
from benchmark.run.environment import environment

METRIC_KEYS = metrics_mod.recorded()  # per_image.csv's columns after "image", in order


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then :func:`benchmark.record.atomic_write_bytes`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    record.atomic_write_bytes(path, buf.getvalue())


def mean_or_none(values: list[float | None]) -> float | None:
    """Mean of the values, or None when one is missing (or there are none)."""
    if any(v is None for v in values) or not values:
        return None
    return float(sum(values) / len(values))


def write_samples(folder: Path, samples: list) -> None:
    """``samples/<image>_{low,output,reference}.png`` from ``(name, low, out, ref)`` arrays."""
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc.strerror}") from None
    for name, low, out, ref in samples:
        stem = Path(name).stem
        for kind, arr in (("low", low), ("output", out), ("reference", ref)):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            record.atomic_write_bytes(folder / f"{stem}_{kind}.png", buf.getvalue())


def base_metrics(
    setup: Any, started: str | None, determinism: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``metrics.json`` fields known before training (a :class:`~benchmark.run.setup.Setup`)."""
    d = setup.config["data"]
    return {
        "status": None,
        "error": None,
        "recipe": setup.recipe.name,
        "profile": setup.protocol.name,
        "seed": setup.seed,
        "crop_seed": setup.config["crop_seed"],
        "config_hash": setup.config_hash,
        "test": dict.fromkeys(METRIC_KEYS),
        "train_seconds": None,
        "eval_seconds": None,
        "iterations": None,
        "dataset": {
            k: d.get(k) for k in ("name", "identity", "root", "layout", "manifest_sha256",
                                  "n_train", "n_val", "n_test")
        },
        "metrics": setup.config.get("metrics"),
        "env": environment(setup.device),
        "determinism": determinism,
        "weights": None,
        "started_at": started,
        "finished_at": None,
    }


def _by_image(text: str) -> dict[str, dict[str, str]]:
    return {row["image"]: row for row in csv.DictReader(io.StringIO(text))}


def _delta(old: Any, new: Any) -> str:
    try:
        return f"{float(new) - float(old):+.3g}"
    except (TypeError, ValueError):
        return f"{old!r} -> {new!r}"


def repro_differences(
    stored: dict[str, Any], rerun: dict[str, Any], stored_csv: str, rerun_csv: str, limit: int = 5
) -> list[str]:
    """What differs between a finished run and its rerun (``--check-repro``); [] when identical.

    Compares the ``test`` metrics of both ``metrics.json`` and every value of both
    ``per_image.csv`` exactly; each line names the metric and the difference, or the images.
    """
    if rerun.get("status") != "ok":
        return [f"the rerun failed: {rerun.get('error')}"]
    lines = []
    old_test, new_test = stored.get("test") or {}, rerun.get("test") or {}
    for key in METRIC_KEYS:
        a, b = old_test.get(key), new_test.get(key)
        if a != b:
            lines.append(f"test {key}: stored {a!r}, rerun {b!r} (difference {_delta(a, b)})")
    old, new = _by_image(stored_csv), _by_image(rerun_csv)
    if set(old) != set(new):
        gone, extra = sorted(set(old) - set(new)), sorted(set(new) - set(old))
        lines.append(f"per-image rows: only in the stored run {gone}, only in the rerun {extra}")
    changed = []
    for image in (i for i in old if i in new):
        deltas = [
            f"{k} {_delta(old[image].get(k), new[image].get(k))}"
            for k in METRIC_KEYS
            if old[image].get(k) != new[image].get(k)
        ]
        if deltas:
            changed.append(f"{image} ({', '.join(deltas)})")
    if changed:
        shown = "; ".join(changed[:limit]) + (
            f"; ... and {len(changed) - limit} more" if len(changed) > limit else ""
        )
        lines.append(f"per-image values: {len(changed)} of {len(old)} image(s) differ: {shown}")
    return lines


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def dataset_label(data: dict[str, Any]) -> str:
    """A dataset as tables show it: its name when known (LOL-v1), else its manifest hash."""
    if data.get("name"):
        return str(data["name"])
    digest = str(data.get("manifest_sha256") or "?")[:12]
    return f"{digest} (subset of a known set)" if data.get("identity") == "subset" else digest


def print_table(metrics: dict[str, Any], folder: Path, cached: bool = False) -> None:
    """The short end-of-run table: recipe, profile, seed, metrics, train time, folder."""
    t = metrics.get("test") or {}
    shown = [metrics_mod.METRICS[n] for n in metrics_mod.summarized()]
    head = ("recipe", "profile", "seed", "dataset", *(m.label for m in shown), "train time")
    data = metrics.get("dataset") or {}
    chosen = metrics_mod.chosen(metrics.get("metrics") or metrics_mod.choices())
    cells = (
        metrics["recipe"],
        metrics["profile"],
        str(metrics["seed"]),
        dataset_label(data),
        *(_fmt(t.get(m.name), f".{m.fine_decimals}f") if m.name in chosen else "not computed"
          for m in shown),
        _fmt(metrics.get("train_seconds"), ".1f") + " s",
    )
    widths = [max(len(h), len(c)) for h, c in zip(head, cells, strict=True)]
    if cached:
        print(
            f"lossbench: already finished (config hash {metrics['config_hash'][:12]}, "
            f"{metrics.get('finished_at')}); not redone (--force redoes it)"
        )
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    unofficial = sorted(k for k, v in (metrics.get("weights") or {}).items()
                        if isinstance(v, dict) and v.get("official") is False)
    if unofficial:
        print(f"note: made with UNOFFICIAL pretrained weights ({', '.join(unofficial)}): LPIPS"
              " and perceptual-loss figures are not comparable with published numbers")
    if metrics.get("outcome") == "collapsed":
        print(f"outcome: COLLAPSED ({metrics.get('outcome_reason')}); the run is scored, and "
              "tables count it as collapsed instead of averaging it in")
    views = metrics.get("views") or {}
    if "val_selected" in views and "test_selected" in views:
        meta = metrics.get("views_meta") or {}
        print("other views (PSNR): best validation point "
              f"{_fmt(views['val_selected'].get('psnr'), '.2f')} (iteration "
              f"{(meta.get('val_selected') or {}).get('iteration')}); best test point "
              f"{_fmt(views['test_selected'].get('psnr'), '.2f')} (iteration "
              f"{(meta.get('test_selected') or {}).get('iteration')}; optimistic: chosen on the "
              "test split)")
    print(f"run folder: {folder}")


__all__ = [
    "dataset_label",
    "METRIC_KEYS",
    "atomic_torch_save",
    "base_metrics",
    "mean_or_none",
    "print_table",
    "repro_differences",
    "write_samples",
]
