"""Writing the analysis outputs: atomically, and never into the shipped reference results.

Tables, the report, the reference check and the transfer study are replaced atomically (a
temporary file in the same folder, flushed, fsynced and renamed: :mod:`benchmark.record.atomic`),
so a reader sees the old version or the new one, never half a file. The results folders shipped
under the repository's ``results/reference/`` are read, never written:
:func:`is_shipped_reference` tells the commands which they are.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError
from benchmark.record import atomic_write_text
from benchmark.references import BIB_PATH

SHIPPED_REFERENCE = BIB_PATH.parents[1] / "results" / "reference"


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically, creating its folder; ``path`` is
    returned (:func:`benchmark.record.atomic_write_text`, the run folders' writer too).

    Raises:
        UserError: the folder cannot be written (names the file).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    atomic_write_text(path, text)
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
