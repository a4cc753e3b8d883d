"""The library's entry points: what ``import benchmark`` exposes (lazily, see ``__init__``).

A run is described by a :class:`~benchmark.run.spec.RunSpec` and done by :func:`train`; a
results folder is read by :func:`load_results`; :func:`scores` gives a metric's per-image
values as ``{recipe: array(seeds x images)}`` (the shape rliable and the crossed test take);
:func:`summarize` is the statistics ``compare`` prints. ``lossbench`` (the command) calls the
same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import UserError
from benchmark.run.spec import RunSpec


@dataclass(frozen=True)
class RunResult:
    """One finished (or failed) run: its folder and its ``metrics.json``.

    Attributes:
        folder: ``<results>/runs/<recipe>/<profile>/seed<N>/``.
        metrics: the ``metrics.json`` dict (``status``, ``outcome``, ``test``, ``views``, ...).
    """

    folder: Path
    metrics: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the run finished (``status: ok``; a collapsed run finished too)."""
        return self.metrics.get("status") == "ok"

    @property
    def test(self) -> dict[str, float | None]:
        """Test-split means of the final weights (the headline), e.g. ``{"psnr": 17.2, ...}``."""
        return dict(self.metrics.get("test") or {})


def train(spec: RunSpec, *, quiet: bool = True) -> RunResult:
    """Train and evaluate the run ``spec`` describes (or report it, if it already finished).

    Args:
        spec: what to run; e.g. ``RunSpec("l1", profile="smoke")``.
        quiet: print nothing but errors (the ``run`` command prints progress and the table).

    Returns:
        The run's folder and metrics. A run that failed (NaN, out of memory) is returned with
        ``ok`` False and the reason in ``metrics["error"]``.

    Raises:
        UserError: bad input (recipe, data, options), checked before anything is written.
    """
    from benchmark.run.execute import run
    from benchmark.run.setup import run_dir

    metrics = run(spec, quiet=quiet)
    folder = run_dir(spec.results, metrics["recipe"], metrics["profile"], metrics["seed"])
    return RunResult(folder, metrics)


def load_results(results: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run folders under ``results`` as ``(runs, per_image)`` frames.

    ``runs``: one row per run folder (status ``ok``, ``failed`` or ``incomplete``, config
    hash, test means, timings). ``per_image``: long, one row per (run, test image, metric):
    ``run_id, recipe, profile, dataset, seed, image, metric, value``.

    Raises:
        UserError: no run folders, or a folder that cannot be read (naming the file).
    """
    from benchmark.analysis.frames import load_runs

    return load_runs(results)


def scores(per_image: pd.DataFrame, metric: str = "psnr", *, runs: pd.DataFrame | None = None,
           profile: str | None = None, dataset: str | None = None) -> dict[str, np.ndarray]:
    """One metric's per-image values as ``{recipe: array of shape (seeds, images)}``.

    Rows are the seeds in increasing order (the same for every recipe), columns the test
    images every kept run has a value for, in name order; a seed a recipe has no finished run
    for is a row of NaN. This is the layout ``rliable`` and the crossed test take.

    Args:
        per_image: the long frame of :func:`load_results`.
        metric: ``psnr``, ``ssim``, ``lpips``, ``psnr_gtmean`` or ``ssim_gtmean``.
        runs: the run frame of :func:`load_results`; given, only finished runs count and
            collapsed ones are left out (as the summary leaves them out of its means).
        profile: which profile, when the frame holds several.
        dataset: which dataset, when the frame holds several.

    Raises:
        UserError: an unknown metric, or several profiles/datasets and none chosen.
    """
    known = sorted(per_image["metric"].unique())
    if metric not in known:
        raise UserError(f"scores: no per-image values of {metric!r} (the runs hold "
                        f"{', '.join(known) or 'none'})")
    where = {"profile": profile, "dataset": dataset}
    for column, wanted in where.items():
        values = per_image[column] if wanted is None else per_image.loc[
            per_image[column] == wanted, column]
        if len(found := sorted(values.dropna().unique())) > 1:
            raise UserError(f"scores: the results hold several {column}s ({', '.join(found)}); "
                            f"choose one with {column}=...")
    return _arrays(per_image, metric, runs, **where)


def _arrays(per_image: pd.DataFrame, metric: str, runs: pd.DataFrame | None,
            profile: str | None, dataset: str | None) -> dict[str, np.ndarray]:
    """The arrays (what ``benchmark.analysis.scores.scores`` computes where it exists)."""
    sub = per_image[per_image["metric"] == metric]
    for key, value in (("profile", profile), ("dataset", dataset)):
        if value is not None:
            sub = sub[sub[key] == value]
    if runs is not None:
        ok = runs[runs["status"] == "ok"]
        if "outcome" in ok.columns:
            ok = ok[ok["outcome"].fillna("ok") == "ok"]
        sub = sub[sub["run_id"].isin(ok["run_id"])]
    sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float))]
    seeds = sorted(int(s) for s in sub["seed"].unique())
    per_run = sub.groupby("run_id")["image"].agg(set)
    images = sorted(set.intersection(*per_run)) if len(per_run) else []
    out = {}
    for recipe, part in sub.groupby("recipe", sort=True):
        table = part.pivot_table(index="seed", columns="image", values="value")
        arr = table.reindex(index=seeds, columns=images).to_numpy(dtype=float, copy=True)
        arr[~np.isfinite(arr).all(axis=1)] = np.nan  # a seed missing an image: not finished
        out[str(recipe)] = arr
    return out


def summarize(runs: pd.DataFrame, per_image: pd.DataFrame, baseline: str = "l1",
              **kwargs: Any) -> pd.DataFrame:
    """The summary frame ``compare`` prints: per (profile, dataset, recipe) the seeds, means,
    intervals, the tests against ``baseline`` (Holm-adjusted) and ranks.

    ``kwargs``: ``n_boot``, ``test`` (``crossed`` or ``fixed-images``), ``mdd``; see
    :func:`benchmark.analysis.stats.summarize`.
    """
    from benchmark.analysis.stats import summarize as summarize_frames

    return summarize_frames(runs, per_image, baseline, **kwargs)


__all__ = ["RunResult", "load_results", "scores", "summarize", "train"]
