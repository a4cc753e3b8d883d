"""Reading the runs' ``train_log.csv`` files (losses, and gradient shares where recorded) and
``val_log.csv`` files (validation PSNR at each validation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import record
from benchmark.errors import UserError


def train_logs(runs: pd.DataFrame) -> Iterator[tuple[Any, pd.DataFrame]]:
    """``(run row, its train_log.csv as a frame)`` for every run that has one.

    Raises:
        UserError: naming a train_log.csv that is not a readable CSV or lacks a column.
    """
    for run in runs.itertuples():
        log = record.read_train_log(run.run_dir)
        if log is not None:
            yield run, log


def load_val_logs(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame of every ``val_log.csv``: recipe, profile, dataset, seed, iteration, val_psnr.

    Raises:
        UserError: naming a val_log.csv that is not a readable CSV or lacks a column.
    """
    frames = []
    for run in runs.itertuples():
        log = record.read_val_log(run.run_dir)
        if log is None:
            continue
        frames.append(log[["iteration", "val_psnr"]].assign(
            recipe=run.recipe, profile=run.profile, dataset=run.dataset, seed=run.seed))
    cols = ["recipe", "profile", "dataset", "seed", "iteration", "val_psnr"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


#: train_log.csv columns that are not loss terms
LOG_SKIP = {"iteration", "lr", "seconds", "grad_norm"}


def load_train_logs(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame of every ``train_log.csv``: run_id, recipe, profile, dataset, seed,
    iteration, term, value. ``lr`` and ``seconds`` are not loss terms and are left out."""
    frames = []
    for run, log in train_logs(runs):
        path = Path(run.run_dir) / record.TRAIN_LOG_FILE
        terms = [c for c in log.columns
                 if c not in LOG_SKIP and not c.startswith(("gradnorm_", "gradshare_"))]
        for col in ["iteration", *terms]:
            if not pd.api.types.is_numeric_dtype(log[col]):
                raise UserError(f"{path}: {col}: column holds values that are not numbers")
        long = log.melt(id_vars="iteration", value_vars=terms, var_name="term")
        long = long.assign(run_id=run.run_id, recipe=run.recipe, profile=run.profile,
                           dataset=run.dataset, seed=run.seed)
        frames.append(long)
    cols = ["run_id", "recipe", "profile", "dataset", "seed", "iteration", "term", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


__all__ = ["load_train_logs", "load_val_logs", "train_logs"]
