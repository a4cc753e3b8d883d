"""What a run folder holds besides checkpoints: CSV logs, per-image metrics, samples, the table.

Floats in the CSV files are written with ``repr`` so they read back bit-exactly (reruns and
resumed runs are compared byte for byte).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from PIL import Image

from benchmark import runstate as rs
from benchmark.errors import UserError

METRIC_KEYS = ("psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean")
VAL_COLUMNS = ["iteration", "val_psnr", "best_val_psnr"]


def mean_or_none(values: list[float | None]) -> float | None:
    """Mean of the values, or None when one is missing (or there are none)."""
    if any(v is None for v in values) or not values:
        return None
    return float(sum(values) / len(values))


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """CSV with a header; None -> empty cell, floats by repr (round-trips exactly)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    ""
                    if row.get(k) is None
                    else repr(row[k])
                    if isinstance(row[k], float)
                    else row[k]
                )
                for k in columns
            }
        )
    return buf.getvalue()


def write_logs(
    folder: Path, train_log: list[dict[str, Any]], columns: list[str], val_log: list[dict[str, Any]]
) -> None:
    """Rewrite ``train_log.csv`` and ``val_log.csv`` (atomically) from the rows so far."""
    rs.atomic_write_text(folder / "train_log.csv", csv_text(train_log, columns))
    rs.atomic_write_text(folder / "val_log.csv", csv_text(val_log, VAL_COLUMNS))


def write_per_image(path: Path, rows: list[dict[str, Any]]) -> None:
    """``per_image.csv``: image, then every metric (floats written with repr: exact)."""
    rs.atomic_write_text(path, csv_text(rows, ["image", *METRIC_KEYS]))


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
            rs.atomic_write_bytes(folder / f"{stem}_{kind}.png", buf.getvalue())


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(metrics: dict[str, Any], folder: Path, cached: bool = False) -> None:
    """The short end-of-run table: recipe, profile, seed, metrics, train time, folder."""
    t = metrics.get("test") or {}
    head = ("recipe", "profile", "seed", "PSNR", "SSIM", "LPIPS", "GT-mean PSNR", "train time")
    cells = (
        metrics["recipe"],
        metrics["profile"],
        str(metrics["seed"]),
        _fmt(t.get("psnr"), ".2f"),
        _fmt(t.get("ssim"), ".4f"),
        _fmt(t.get("lpips"), ".4f"),
        _fmt(t.get("psnr_gtmean"), ".2f"),
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
    print(f"run folder: {folder}")


__all__ = [
    "METRIC_KEYS",
    "csv_text",
    "mean_or_none",
    "print_table",
    "write_logs",
    "write_per_image",
    "write_samples",
]
