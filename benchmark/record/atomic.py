"""Atomic file writes and lenient reads: what every readable file of a results tree goes through.

Every file a reader may look at while a run (or an analysis) is in flight is written to a
temporary file in the same folder, flushed, fsynced and renamed over the target
(:func:`atomic_write_bytes`), so readers see the old or the new file, never a partial one. A
failed write (disk full, read-only folder) is a :class:`WriteError` (a :class:`UserError`)
naming the file; the previous version of the file stays intact.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from benchmark.errors import UserError


class WriteError(UserError):
    """A results file could not be written (disk full, unwritable folder); names the file."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling + fsync + ``os.replace``.

    Raises:
        WriteError: the write, fsync or rename failed; ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteError(
            f"cannot write {path}: {exc.strerror or exc}; check the free space and permissions "
            f"of {path.parent}"
        ) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Pretty JSON (keys in insertion order), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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


__all__ = [
    "WriteError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "csv_text",
    "read_json",
]
