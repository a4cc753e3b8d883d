"""The three views of a run's test score, and its outcome (called by :mod:`benchmark.run.execute`).

During training every validation point's scored weights (the moving average when the protocol
has EMA) are written once to ``points/iter_<N>.pt`` in the run folder. After training the test
split is read once and every point is scored on it (:func:`score_points`); the views are then
rows of that one table (:func:`select_views`):

``final``         the weights at the last iteration: the headline (``metrics.json``'s ``test``,
                  ``per_image.csv``). The rule is the protocol's, fixed before the test split is
                  read.
``val_selected``  the point with the best validation PSNR (the earliest on a tie): what a run
                  kept before, and what papers that select on a held-out split report.
``test_selected`` the point with the best mean test PSNR (the earliest on a tie): what a paper
                  that picks its checkpoint on the test split reports. Always optimistic: the
                  test split chose it; never a headline.

The ``points/`` folder is removed once ``metrics.json`` is written (a lite run's points are about
8 MB each, a paper run's 31 MB); ``best.pt`` keeps the validation-selected weights and
``checkpoint.pt`` the final ones.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import record
from benchmark.record import POINTS_DIR
from benchmark.run.files import METRIC_KEYS, atomic_torch_save

VIEWS = ("final", "val_selected", "test_selected")
#: views chosen with the test split (labelled so wherever they are shown)
OPTIMISTIC = ("test_selected",)


def point_path(folder: Path, iteration: int) -> Path:
    """Where the weights of the validation point at ``iteration`` are kept during a run."""
    return folder / POINTS_DIR / f"iter_{iteration:07d}.pt"


def save_point(folder: Path, config_hash: str, iteration: int,
               weights: dict[str, torch.Tensor]) -> None:
    """Write one validation point's weights (atomically; rewritten identically on a resume)."""
    path = point_path(folder, iteration)
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise record.WriteError(f"cannot create {path.parent}: {exc.strerror}") from None
    atomic_torch_save({"config_hash": config_hash, "iteration": iteration, "model": weights},
                      path)


def load_point(folder: Path, iteration: int, config_hash: str) -> dict[str, torch.Tensor]:
    """The weights saved at ``iteration``; a missing or foreign file is a ``RuntimeError``."""
    path = point_path(folder, iteration)
    if not path.is_file():
        raise RuntimeError(f"{path}: the weights of validation point {iteration} are missing")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved.get("config_hash") != config_hash or saved.get("iteration") != iteration:
        raise RuntimeError(f"{path} belongs to another configuration or iteration")
    return saved["model"]


def remove_points(folder: Path) -> None:
    """Delete ``points/`` (after ``metrics.json`` is written)."""
    shutil.rmtree(folder / POINTS_DIR, ignore_errors=True)


def score_points(
    model: nn.Module,
    folder: Path,
    config_hash: str,
    iterations: Sequence[int],
    score: Callable[[nn.Module], tuple[list[dict[str, Any]], list]],
) -> dict[int, tuple[list[dict[str, Any]], list]]:
    """Load each point's weights into ``model`` and ``score`` it: ``{iteration: score(model)}``.

    ``model`` ends holding the last point's weights (the final ones).
    """
    out = {}
    for it in iterations:
        model.load_state_dict(load_point(folder, it, config_hash))
        out[it] = score(model)
    return out


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values):
        return None
    value = float(sum(values) / len(values))
    return value if math.isfinite(value) else None


def select_views(
    scored: dict[int, list[dict[str, Any]]],
    val_psnr: dict[int, float],
    keys: Sequence[str],
) -> tuple[dict[str, dict[str, float | None]], dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The three views from every point's per-image test rows and validation PSNR.

    Args:
        scored: ``{iteration: per-image rows}`` of every validation point.
        val_psnr: ``{iteration: validation PSNR}`` of the same points.
        keys: the metric keys of a row.

    Returns:
        ``(views, rows, meta)``: per view the mean of each metric (the ``metrics.json`` form),
        per view the per-image rows, and per view ``{"iteration", "val_psnr"}`` plus
        ``optimistic`` for the test-selected one.
    """
    its = sorted(scored)
    if not its or set(its) != set(val_psnr):
        raise ValueError("select_views: every validation point needs test rows and a val PSNR")

    def test_psnr(it: int) -> float:
        value = _mean(scored[it], "psnr")
        return -math.inf if value is None else value

    chosen = {
        "final": its[-1],
        "val_selected": max(its, key=lambda it: (_finite(val_psnr[it]), -it)),
        "test_selected": max(its, key=lambda it: (test_psnr(it), -it)),
    }
    views = {v: {k: _mean(scored[it], k) for k in keys} for v, it in chosen.items()}
    rows = {v: scored[it] for v, it in chosen.items()}
    meta: dict[str, Any] = {
        v: {"iteration": it, "val_psnr": _finite_or_none(val_psnr[it]),
            **({"optimistic": True} if v in OPTIMISTIC else {})}
        for v, it in chosen.items()
    }
    return views, rows, meta


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def view_rows(rows: dict[str, list[dict[str, Any]]], meta: dict[str, Any]
              ) -> list[dict[str, Any]]:
    """``per_image_views.csv`` rows: view, iteration, image, then the metrics (every view)."""
    return [{"view": v, "iteration": meta[v]["iteration"], **row}
            for v in VIEWS for row in rows[v]]


def write_views(
    folder: Path,
    scored: dict[int, tuple[list[dict[str, Any]], list]],
    val_psnr: dict[int, float],
) -> tuple[dict[str, dict[str, float | None]], dict[str, Any], list]:
    """Select the views (:func:`select_views`) from :func:`score_points`' output and write
    ``per_image.csv`` (the final view, the file the analysis reads) and
    ``per_image_views.csv`` (every view). Returns ``(views, meta, final samples)``."""
    views, rows, meta = select_views({it: r for it, (r, _) in scored.items()}, val_psnr,
                                     METRIC_KEYS)
    record.write_per_image(folder, rows["final"], METRIC_KEYS)
    record.write_per_image_views(folder, view_rows(rows, meta), METRIC_KEYS)
    return views, meta, scored[meta["final"]["iteration"]][1]


__all__ = ["OPTIMISTIC", "VIEWS", "load_point", "point_path",
           "remove_points", "save_point", "score_points", "select_views", "view_rows",
           "write_views"]
