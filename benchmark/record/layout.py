"""Where a run's files are: the folder of a (recipe, profile, seed) and the names inside it.

A results tree holds one folder per run, ``<results>/runs/<recipe>/<profile>/seed<N>/``; every
name below is part of the on-disk contract that the run writer, the sweep, the analysis and the
users' scripts share (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import NamedTuple

#: the folder under a results tree that holds the run folders
RUNS_DIR = "runs"
#: the resolved configuration (recipe + protocol + data + precision policy) and its hash
CONFIG_FILE = "config.yaml"
#: status, outcome, the test metrics of each view, timings, environment, dataset, weights
METRICS_FILE = "metrics.json"
#: one row per test image: the headline (final) view's metrics
PER_IMAGE_FILE = "per_image.csv"
#: one row per (view, test image)
PER_IMAGE_VIEWS_FILE = "per_image_views.csv"
#: losses (and gradient shares) every ``log_every`` iterations
TRAIN_LOG_FILE = "train_log.csv"
#: validation PSNR at every validation
VAL_LOG_FILE = "val_log.csv"
#: the last checkpoint (resume point; after the run: the final weights)
CHECKPOINT_FILE = "checkpoint.pt"
#: the weights with the best validation PSNR
BEST_FILE = "best.pt"
#: the weights of every validation point (removed once ``metrics.json`` is written)
POINTS_DIR = "points"
#: sample outputs: ``<image>_{low,output,reference}.png``
SAMPLES_DIR = "samples"
#: the lock of the process that owns the folder (``benchmark.run.lock.RunLock``)
LOCK_FILE = "run.lock"

#: files a run writes (``--force`` removes exactly these, and the two folders)
RUN_FILES = (
    METRICS_FILE,
    PER_IMAGE_FILE,
    PER_IMAGE_VIEWS_FILE,
    TRAIN_LOG_FILE,
    VAL_LOG_FILE,
    CHECKPOINT_FILE,
    BEST_FILE,
    CONFIG_FILE,
)


class RunFolder(NamedTuple):
    """A run folder found under a results tree, with the names its path gives."""

    path: Path
    recipe: str
    profile: str
    seed: int

    @property
    def run_id(self) -> str:
        """``<recipe>/<profile>/seed<N>``: how tables and messages name the run."""
        return run_id(self.recipe, self.profile, self.seed)


def run_id(recipe: str, profile: str, seed: int) -> str:
    """``<recipe>/<profile>/seed<N>``."""
    return f"{recipe}/{profile}/seed{seed}"


def run_dir(results: str | Path, recipe: str, profile: str, seed: int) -> Path:
    """``<results>/runs/<recipe>/<profile>/seed<N>``."""
    return Path(results) / RUNS_DIR / recipe / profile / f"seed{seed}"


def runs_root(results: str | Path) -> Path:
    """``<results>/runs``: the folder that holds every run folder of a results tree."""
    return Path(results) / RUNS_DIR


def find_runs(results: str | Path, profile: str = "*") -> list[RunFolder]:
    """Every run folder under ``results`` (sorted by path), optionally of one profile.

    Folders that do not follow the layout (``seed`` not followed by a whole number, files) are
    not run folders and are left out; an absent tree gives ``[]``.
    """
    found = []
    for d in sorted(runs_root(results).glob(f"*/{profile}/seed*")):
        if d.is_dir() and d.name[4:].isdigit():
            found.append(RunFolder(d, d.parent.parent.name, d.parent.name, int(d.name[4:])))
    return found


def clear_run(folder: str | Path) -> None:
    """Delete the files a run writes (``--force``); the folder and its lock stay."""
    folder = Path(folder)
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    shutil.rmtree(folder / SAMPLES_DIR, ignore_errors=True)
    shutil.rmtree(folder / POINTS_DIR, ignore_errors=True)


__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "PER_IMAGE_FILE",
    "PER_IMAGE_VIEWS_FILE",
    "POINTS_DIR",
    "RUNS_DIR",
    "RUN_FILES",
    "RunFolder",
    "SAMPLES_DIR",
    "TRAIN_LOG_FILE",
    "VAL_LOG_FILE",
    "clear_run",
    "find_runs",
    "run_dir",
    "run_id",
    "runs_root",
]
