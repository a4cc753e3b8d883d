"""Scores: one metric's per-image values as ``{recipe: array(seeds x images)}``, and the
statistics of those arrays alone.

The step between the record and the statistics (record -> scores -> statistics -> tables):
:func:`scores` is the shape rliable's tools take (runs x tasks per algorithm; here training
seeds x test images per recipe). Every array of one call has the same rows (the seeds any of
the recipes finished; a row of NaN: a seed that recipe did not finish) and the same columns
(the test images every run has), so recipes are paired by position: same seed, same image.

:func:`summarize_scores` is the statistics of :mod:`.stats` on arrays alone (means, intervals,
the crossed seed x image test against a baseline, Holm, the probability of improvement), for a
library user with scores from anywhere. ``compare`` uses :func:`.stats.summarize`, which adds
what only the run folders know (failed and collapsed runs, the metrics.json value of a run
without ``per_image.csv``, each recipe's own test images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis import inference, power
from benchmark.analysis.inference import holm

__all__ = ["DIFF_COLUMNS", "FEW_SEEDS", "ScoreTable", "compare_pair", "higher_is_better",
           "score_table", "scores", "summarize_scores"]

#: fewer shared seeds than this: no test (the run-to-run variance cannot be estimated)
FEW_SEEDS = 3


def higher_is_better(metric: str) -> bool:
    """The registry's direction of ``metric`` (:data:`benchmark.metrics.METRICS`)."""
    return metrics_mod.METRICS[metric].higher_is_better


class ScoreTable(NamedTuple):
    """The arrays of :func:`score_table` with their row and column labels."""

    scores: dict[str, np.ndarray]  #: recipe -> seeds x images
    seeds: list[int]  #: the rows
    images: list[str]  #: the columns


def score_table(
    per_image: pd.DataFrame, metric: str, runs: pd.DataFrame | None = None, *,
    profile: str | None = None, dataset: str | None = None,
    recipes: Sequence[str] | None = None, images: Sequence[str] | None = None,
) -> ScoreTable:
    """``{recipe: seeds x images}`` of ``metric`` from the frames of :func:`.frames.load_runs`.

    Args:
        per_image: the long per-image frame (one row per run, image and metric).
        metric: a metric of :data:`benchmark.metrics.METRICS`.
        runs: the runs frame: with it only finished runs count (``status`` ok and, where
            recorded, ``outcome`` ok: a collapsed run is not averaged in).
        profile, dataset: keep one profile / dataset (manifest sha256); a call should hold
            one (profile, dataset) group, the unit every table is made for.
        recipes: keep these recipes (default: every one with values).
        images: the columns (default: the images every kept run has a value for).

    Returns:
        The arrays, their seeds (rows, sorted) and images (columns). A seed a recipe has a
        value missing for (an image it lacks) is a row of NaN: not finished.
    """
    sub = per_image[per_image["metric"] == metric]
    for key, value in (("profile", profile), ("dataset", dataset)):
        if value is not None:
            sub = sub[sub[key] == value]
    if runs is not None:
        ok = runs[runs["status"] == "ok"]
        if "outcome" in ok.columns:
            ok = ok[ok["outcome"].fillna("ok") == "ok"]
        sub = sub[sub["run_id"].isin(ok["run_id"])]
    if recipes is not None:
        sub = sub[sub["recipe"].isin(recipes)]
    sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float))]  # NaN, inf: no value
    seeds = sorted(int(s) for s in sub["seed"].unique())
    if images is None:
        per_run = sub.groupby("run_id")["image"].agg(set)
        images = sorted(set.intersection(*per_run)) if len(per_run) else []
    out = {}
    for recipe, part in sub.groupby("recipe", sort=True):
        table = part.pivot_table(index="seed", columns="image", values="value")
        arr = table.reindex(index=seeds, columns=list(images)).to_numpy(dtype=float, copy=True)
        arr[~np.isfinite(arr).all(axis=1)] = np.nan  # a seed missing an image: not finished
        out[str(recipe)] = arr
    return ScoreTable(out, seeds, list(images))


def scores(per_image: pd.DataFrame, metric: str, runs: pd.DataFrame | None = None,
           **where: object) -> dict[str, np.ndarray]:
    """``{recipe: array(seeds x images)}`` of ``metric``: :func:`score_table`'s arrays
    (``where``: its ``profile``, ``dataset``, ``recipes``, ``images``)."""
    return score_table(per_image, metric, runs, **where).scores  # type: ignore[arg-type]


DIFF_COLUMNS = ("diff", "n_shared_seeds", "n_images", "n_pairs", "diff_ci_low", "diff_ci_high",
                "df", "p", "p_holm", "p_fixed", "p_fixed_holm", "diff_fixed_ci_low",
                "diff_fixed_ci_high", "mde", "mdd_target", "seeds_for_mdd", "p_improve",
                "p_improve_low", "p_improve_high")


def compare_pair(
    recipe: tuple[pd.Series, pd.DataFrame], base: tuple[pd.Series, pd.DataFrame],
    higher: bool, target: float | None = None,
) -> dict[str, float | str]:
    """Every ``DIFF_COLUMNS`` value (less the Holm ones) of one recipe against ``base``, and
    ``test_used``: ``crossed``, or ``seed means`` when no per-image values are shared (the
    crossed test then cannot be made and the t-test on the per-seed mean differences is)."""
    out: dict[str, float | str] = dict.fromkeys(DIFF_COLUMNS, np.nan)
    out["test_used"] = "crossed"
    shared = sorted(set(recipe[0].index) & set(base[0].index))
    images = recipe[1].columns.intersection(base[1].columns)
    seeds = [s for s in shared if s in recipe[1].index and s in base[1].index]
    diffs = (recipe[1].reindex(index=seeds, columns=images)
             - base[1].reindex(index=seeds, columns=images)).to_numpy()
    rows, cols = inference.complete_block(diffs) if diffs.size else ([], [])
    block = diffs[np.ix_(rows, cols)] if len(rows) and len(cols) else np.empty((0, 0))
    if block.size == 0:  # no per-image values in common: the per-seed means alone
        block = (recipe[0].reindex(shared) - base[0].reindex(shared)).to_numpy()[:, None]
        block = block[np.isfinite(block[:, 0])]
        out["test_used"] = "seed means"
    s, n = block.shape
    out.update(n_shared_seeds=s, n_images=n, n_pairs=s * n)
    if block.size == 0:
        return out
    out["diff"] = float(block.mean())
    if s < FEW_SEEDS:
        return out
    est, fixed = inference.crossed(block), inference.fixed_images(block)
    out["diff_ci_low"], out["diff_ci_high"] = (float(v) for v in est.interval())
    out["diff_fixed_ci_low"], out["diff_fixed_ci_high"] = (float(v) for v in fixed.interval())
    out.update(df=float(est.df), p=float(est.pvalue()), p_fixed=float(fixed.pvalue()))
    comp = power.components(block)
    out["mde"] = 0.0 if est.exact() else power.detectable(comp, s, n)
    if target:
        out["mdd_target"] = target
        out["seeds_for_mdd"] = power.seeds_needed(target, comp, n)
    pi = inference.prob_improvement(recipe[0].reindex(shared).to_numpy(),
                                    base[0].reindex(shared).to_numpy(), higher=higher)
    out["p_improve"], out["p_improve_low"], out["p_improve_high"] = pi.estimate, pi.low, pi.high
    return out


def summarize_scores(scores: Mapping[str, np.ndarray], metric: str,
                     baseline: str | None = None) -> pd.DataFrame:
    """The statistics of score arrays: one row per recipe.

    Args:
        scores: ``{recipe: seeds x images}`` with the same rows and columns (:func:`scores`).
        metric: the metric they hold (its direction: the probability of improvement).
        baseline: the recipe the others are compared with (none: no comparisons).

    Returns:
        ``recipe, n_seeds, mean, std, ci_low, ci_high, ci_crossed_low, ci_crossed_high``
        (as the ``<metric>_*`` columns of :func:`.stats.summarize`: mean over seeds of the
        per-seed means, their SD, Student t and crossed seed x image 95% intervals) and,
        against ``baseline``, :data:`DIFF_COLUMNS` and ``test_used``, with ``p_holm``
        and ``p_fixed_holm`` adjusted over the recipes.
    """
    shapes = {np.shape(a) for a in scores.values()}
    if len(shapes) > 1:
        raise ValueError(f"scores: every array must have the same seeds x images shape, got "
                         f"{sorted(shapes)}")
    seeds = range(next(iter(shapes))[0]) if shapes else range(0)
    data, rows = {}, []
    for recipe, arr in scores.items():
        arr = np.asarray(arr, dtype=np.float64)
        table = pd.DataFrame(arr, index=list(seeds)).dropna(how="all")
        means = table.mean(axis=1)
        data[recipe] = (means, table)
        low, high = inference.fixed_images(means.to_numpy()[:, None]).interval()
        block = inference.complete(table.to_numpy()) if len(table) else np.empty((0, 0))
        c_low, c_high = (inference.crossed(block).interval() if block.size
                         else (np.nan, np.nan))
        rows.append({"recipe": recipe, "n_seeds": len(means),
                     "mean": float(means.mean()) if len(means) else np.nan,
                     "std": float(means.std(ddof=1)) if len(means) > 1 else np.nan,
                     "ci_low": float(low), "ci_high": float(high),
                     "ci_crossed_low": float(c_low), "ci_crossed_high": float(c_high)})
    out = pd.DataFrame(rows)
    if baseline is None or baseline not in data:
        return out
    diffs = [compare_pair(data[r], data[baseline], higher_is_better(metric))
             if r != baseline else {} for r in out["recipe"]]
    out = pd.concat([out, pd.DataFrame(diffs, index=out.index)], axis=1)
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float))
    out["p_fixed_holm"] = holm(out["p_fixed"].to_numpy(dtype=float))
    return out
