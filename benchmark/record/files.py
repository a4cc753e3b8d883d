"""The typed reader and writer of a run's data files: ``metrics.json``, the per-image CSVs and
the logs.

Writers are atomic (:mod:`benchmark.record.atomic`); floats in CSVs are written with ``repr`` so
they read back bit-exactly (reruns and resumed runs are compared byte for byte). Readers are
strict about what is there: a malformed file is a :class:`UserError` naming the file and the
field (exit code 2). Which metrics a file holds is the metric registry's business, so readers
and writers take the metric names as arguments. pandas is imported by the readers only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from benchmark.errors import UserError
from benchmark.record.atomic import atomic_write_json, atomic_write_text, csv_text, read_json
from benchmark.record.layout import (
    METRICS_FILE,
    PER_IMAGE_FILE,
    PER_IMAGE_VIEWS_FILE,
    TRAIN_LOG_FILE,
    VAL_LOG_FILE,
)

if TYPE_CHECKING:
    import pandas as pd

#: ``val_log.csv``'s columns
VAL_COLUMNS = ["iteration", "val_psnr", "best_val_psnr"]
#: ``train_log.csv``'s columns every run has (the loss terms and gradient shares follow)
TRAIN_REQUIRED = ("iteration", "total")
#: a run's ``status`` (a run in flight has none yet: ``null``)
STATUSES = ("ok", "failed")
#: a finished run's ``outcome``
OUTCOMES = ("ok", "collapsed", "failed")


class Metrics(TypedDict, total=False):
    """``metrics.json`` (the fields readers rely on; a run records more, see ARCHITECTURE.md)."""

    status: str | None            # ok | failed (None while the run is in flight)
    outcome: str                  # ok | collapsed | failed
    error: str | None
    recipe: str
    profile: str
    seed: int
    crop_seed: int
    config_hash: str
    test: dict[str, float | None]   # the headline (final) view's mean of each metric
    views: dict[str, dict[str, float | None]]
    views_meta: dict[str, dict[str, Any]]
    train_seconds: float | None
    eval_seconds: float | None
    iterations: int | None
    dataset: dict[str, Any]
    env: dict[str, Any]
    weights: dict[str, dict[str, Any]] | None
    started_at: str | None
    finished_at: str | None


def _fail(path: Path, field: str, problem: str) -> UserError:
    return UserError(f"{path}: {field}: {problem}")


def _number(value: Any, path: Path, field: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _fail(path, field, f"expected a number, got {value!r}")


def write_metrics(folder: str | Path, metrics: Metrics | dict[str, Any]) -> None:
    """``metrics.json``, written atomically (NaN and infinity refused: store None)."""
    atomic_write_json(Path(folder) / METRICS_FILE, metrics)


def peek_metrics(folder: str | Path) -> dict[str, Any] | None:
    """A folder's ``metrics.json`` as it is now, or None when absent or unreadable (a run in
    flight, a killed one); not validated: use :func:`read_metrics` for results."""
    return read_json(Path(folder) / METRICS_FILE)


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` as stored: a JSON object, its fields not checked (for a file
    :func:`read_metrics` already validated, or to read fields it does not check).

    Raises:
        UserError: the file is unreadable or not a JSON object (naming the file).
    """
    path = Path(folder) / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_metrics(folder: str | Path, metrics: Sequence[str],
                 required: Sequence[str]) -> Metrics:
    """A run's ``metrics.json``, validated.

    Args:
        folder: the run folder.
        metrics: the metric names ``test`` may hold (numbers or null).
        required: those ``test`` must hold when the run finished.

    Raises:
        UserError: the file is unreadable, not a JSON object, or a field is missing or of the
            wrong type (naming the file and the field).
    """
    path = Path(folder) / METRICS_FILE
    data = load_metrics(folder)
    for key in ("status", "recipe", "profile", "seed", "config_hash"):
        if key not in data:
            raise _fail(path, key, "missing")
    if data["status"] not in STATUSES:
        raise _fail(path, "status", f"expected 'ok' or 'failed', got {data['status']!r}")
    for key in ("recipe", "profile", "config_hash"):
        if not isinstance(data[key], str):
            raise _fail(path, key, f"expected a string, got {data[key]!r}")
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
        raise _fail(path, "seed", f"expected a whole number, got {data['seed']!r}")
    test = data.get("test")
    if data["status"] == "ok" or test is not None:  # null values: not finite, or not reached
        if not isinstance(test, dict):
            raise _fail(path, "test", f"expected an object with {', '.join(metrics)}")
        for key in required:
            if key not in test:
                raise _fail(path, f"test.{key}", "missing")
        for key in metrics:
            _number(test.get(key), path, f"test.{key}")
    for key in ("train_seconds", "eval_seconds", "iterations"):
        _number(data.get(key), path, key)
    if data.get("outcome") not in (None, *OUTCOMES):
        raise _fail(path, "outcome", f"expected ok, collapsed or failed: {data['outcome']!r}")
    for key in ("dataset", "env", "weights"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise _fail(path, key, f"expected an object, got {data[key]!r}")
    for name, entry in sorted((data.get("weights") or {}).items()):
        if not isinstance(entry, dict) or not isinstance(entry.get("official", True), bool):
            raise _fail(path, f"weights.{name}", "expected an object with official: true|false")
    return data


def write_per_image(folder: str | Path, rows: list[dict[str, Any]],
                    metrics: Sequence[str]) -> None:
    """``per_image.csv``: image, then each metric (floats written with repr: exact)."""
    atomic_write_text(Path(folder) / PER_IMAGE_FILE, csv_text(rows, ["image", *metrics]))


def write_per_image_views(folder: str | Path, rows: list[dict[str, Any]],
                          metrics: Sequence[str]) -> None:
    """``per_image_views.csv``: view, iteration, image, then each metric."""
    atomic_write_text(Path(folder) / PER_IMAGE_VIEWS_FILE,
                      csv_text(rows, ["view", "iteration", "image", *metrics]))


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV file as a frame (``image`` read as text: "001" stays "001").

    Raises:
        UserError: naming a file that is not a readable CSV.
    """
    import pandas as pd  # noqa: PLC0415 - the run writer never needs pandas

    try:
        return pd.read_csv(path, dtype={"image": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV: {str(exc).strip()}") from None


def read_per_image(folder: str | Path, metrics: Sequence[str],
                   required: Sequence[str]) -> pd.DataFrame:
    """A run's ``per_image.csv``: one row per image, column ``image`` (text) then ``metrics``
    as floats (NaN where empty; a metric that is not ``required`` and absent is all NaN).

    Raises:
        UserError: unreadable, a required column missing, no rows, an image twice, or a value
            that is not a number (naming the file, the column and the row).
    """
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    path = Path(folder) / PER_IMAGE_FILE
    frame = read_csv(path)
    missing = [c for c in ("image", *required) if c not in frame.columns]
    if missing:
        raise _fail(path, "columns", f"missing {', '.join(missing)} (has {list(frame.columns)})")
    if frame.empty:
        raise UserError(f"{path}: no rows (expected one row per test image)")
    if frame["image"].duplicated().any():
        dup = frame.loc[frame["image"].duplicated(), "image"].iloc[0]
        raise _fail(path, "image", f"{dup!r} appears more than once")
    for col in metrics:
        if col not in frame.columns:
            frame[col] = np.nan
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(path, col, f"row {row + 2}: not a number: {frame[col].iloc[row]!r}")
        frame[col] = values.astype(float)
    frame["image"] = frame["image"].astype(str)
    return frame[["image", *metrics]]


def write_logs(folder: str | Path, train_log: list[dict[str, Any]], columns: list[str],
               val_log: list[dict[str, Any]]) -> None:
    """Rewrite ``train_log.csv`` (``columns``) and ``val_log.csv`` atomically from the rows."""
    atomic_write_text(Path(folder) / TRAIN_LOG_FILE, csv_text(train_log, columns))
    atomic_write_text(Path(folder) / VAL_LOG_FILE, csv_text(val_log, VAL_COLUMNS))


def _read_log(folder: str | Path, name: str, required: Sequence[str]) -> pd.DataFrame | None:
    """The log ``name`` of a run (None when absent), its ``required`` columns present and
    numeric."""
    import pandas as pd  # noqa: PLC0415

    path = Path(folder) / name
    if not path.is_file():
        return None
    log = read_csv(path)
    for col in required:
        if col not in log.columns:
            raise UserError(f"{path}: {col}: missing column (has {list(log.columns)})")
        if not pd.api.types.is_numeric_dtype(log[col]):
            raise UserError(f"{path}: {col}: column holds values that are not numbers")
    return log


def read_train_log(folder: str | Path) -> pd.DataFrame | None:
    """A run's ``train_log.csv`` (None when absent); ``iteration`` and ``total`` are checked.

    Raises:
        UserError: naming the file and the column that is missing or not numeric.
    """
    return _read_log(folder, TRAIN_LOG_FILE, TRAIN_REQUIRED)


def read_val_log(folder: str | Path) -> pd.DataFrame | None:
    """A run's ``val_log.csv`` (None when absent); ``iteration`` and ``val_psnr`` numeric.

    Raises:
        UserError: naming the file and the column that is missing or not numeric.
    """
    return _read_log(folder, VAL_LOG_FILE, VAL_COLUMNS[:2])


def nan_if_none(value: Any) -> float:
    """A value :func:`read_metrics` checked as a number or null, as a float (null -> NaN)."""
    return math.nan if value is None else float(value)


__all__ = [
    "Metrics",
    "OUTCOMES",
    "STATUSES",
    "TRAIN_REQUIRED",
    "VAL_COLUMNS",
    "load_metrics",
    "nan_if_none",
    "peek_metrics",
    "read_csv",
    "read_metrics",
    "read_per_image",
    "read_train_log",
    "read_val_log",
    "write_logs",
    "write_metrics",
    "write_per_image",
    "write_per_image_views",
]
