"""Writing the analysis outputs: atomically, and never into the shipped reference results.

Tables, the report and the reference check are replaced atomically (a temporary file in the
same folder, flushed and renamed), so a reader sees the old version or the new one, never half
a file. The results folders shipped under the repository's ``results/reference/`` are read,
never written: :func:`is_shipped_reference` tells the commands which they are.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmark.errors import UserError
from benchmark.references import BIB_PATH

SHIPPED_REFERENCE = BIB_PATH.parents[1] / "results" / "reference"


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; ``path`` is returned.

    Raises:
        UserError: the folder cannot be written (names the file).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def is_shipped_reference(results: Path) -> bool:
    """Whether ``results`` is (inside) the reference results shipped with lossbench."""
    try:
        return Path(results).resolve().is_relative_to(SHIPPED_REFERENCE.resolve())
    except OSError:
        return False


def refuse_shipped(results: Path, command: str) -> None:
    """Stop ``command`` before it writes into the shipped reference results.

    Raises:
        UserError: ``results`` is the shipped reference.
    """
    if is_shipped_reference(results):
        raise UserError(
            f"{results}: the reference results shipped with lossbench are read-only, and "
            f"`{command}` writes into its --results folder; copy the folder first (e.g. `cp -r "
            f"{results} my-reference`) and pass the copy as --results")


__all__ = ["SHIPPED_REFERENCE", "is_shipped_reference", "refuse_shipped", "write_text_atomic"]
