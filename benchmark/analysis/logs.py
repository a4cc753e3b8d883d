"""Reading the runs' ``train_log.csv`` files (losses, and gradient shares where recorded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import UserError


def train_logs(runs: pd.DataFrame) -> Iterator[tuple[Any, pd.DataFrame]]:
    """``(run row, its train_log.csv as a frame)`` for every run that has one.

    Raises:
        UserError: naming a train_log.csv that is not a readable CSV.
    """
    for run in runs.itertuples():
        path = Path(run.run_dir) / "train_log.csv"
        if not path.is_file():
            continue
        try:
            yield run, pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not a readable CSV: {str(exc).strip()}") from None


__all__ = ["train_logs"]
