"""Figures of differences and ranks against the baseline (re-exported by :mod:`.plots`).

Same conventions as :mod:`.plots`: pure functions, ``Figure`` objects, :mod:`.figstyle`'s
sizes, fonts, per-recipe styles and limits from the bulk of the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark import metrics as metrics_mod
from benchmark.analysis.figstyle import (
    STYLE,
    WIDTH,
    bulk_limits,
    clamp_height,
    edge_position,
    legend_columns,
    styles_for,
)
from benchmark.analysis.samples import _empty
from benchmark.analysis.stats import N_BOOT, rank_frequencies


def _heading(metric: str) -> str:
    """The axis label: ``PSNR (dB)`` (:attr:`benchmark.metrics.Metric.heading`)."""
    return metrics_mod.METRICS[metric].heading


def _arrow(metric: str) -> str:
    return metrics_mod.METRICS[metric].arrow


def _one_group(frame: pd.DataFrame) -> None:
    if {"profile", "dataset"} <= set(frame.columns) and len(
        frame[["profile", "dataset"]].drop_duplicates()
    ) > 1:
        raise ValueError("frame holds several (profile, dataset) groups; plot them one by one")


def per_image_difference_figure(
    per_image: pd.DataFrame, baseline: str, metrics: Sequence[str] | None = None,
    styles: dict[str, dict] | None = None,
) -> Figure:
    """Per (seed, image) difference from the baseline, one box per recipe, one panel per metric
    some run computed; each seed's mean difference as a point over its box.

    Differences are ``recipe - baseline`` on the same seed and test image. Limits come from
    the bulk of the differences; the number of points beyond an edge is written there.
    ``metrics``: default the headline ones.
    """
    metrics = metrics_mod.headline() if metrics is None else metrics
    _one_group(per_image)
    recipes = sorted(r for r in per_image["recipe"].unique() if r != baseline)
    styles = styles_for(list(per_image["recipe"].unique()), styles)
    computed = set(per_image.dropna(subset=["value"])["metric"]) if len(per_image) else set()
    metrics = [m for m in metrics if m in computed] or list(metrics)[:1]
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, clamp_height(1.3 + 0.25 * max(1, len(recipes)))),
                     layout="constrained")
        base = per_image[per_image["recipe"] == baseline]
        if base.empty or not recipes:
            return _empty(fig, f"need runs of the baseline '{baseline}' and another recipe")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            b = base[base["metric"] == metric].set_index(["seed", "image"])["value"]
            diffs = {}
            for recipe in recipes:
                r = per_image[(per_image["recipe"] == recipe) & (per_image["metric"] == metric)]
                diffs[recipe] = (r.set_index(["seed", "image"])["value"] - b).dropna()
            lims = bulk_limits(np.concatenate([d.to_numpy() for d in diffs.values()] or [[0]]))
            data = [d.to_numpy() if len(d) else np.array([np.nan]) for d in diffs.values()]
            boxes = ax.boxplot([np.clip(v, *lims) for v in data], orientation="horizontal",
                               patch_artist=True, widths=0.6, showfliers=False,
                               medianprops={"color": "black", "lw": 1.2},
                               boxprops={"linewidth": 0.7}, whiskerprops={"linewidth": 0.7})
            for k, (box, recipe) in enumerate(zip(boxes["boxes"], recipes, strict=True)):
                st = styles[recipe]
                box.set_facecolor((*mpl.colors.to_rgb(st["color"]), 0.3))
                values = data[k]
                inside = values[(values >= lims[0]) & (values <= lims[1])]
                ax.plot(inside, np.full(inside.size, k + 1.0), ls="", marker=".", ms=1.5,
                        color=st["color"], alpha=0.5)
                means = diffs[recipe].groupby(level="seed").mean()
                for m in means:
                    at, _side = edge_position(float(m), lims)
                    ax.plot(at, k + 1, marker=st["marker"], ms=3.5, ls="", color=st["color"],
                            mec="black", mew=0.5)
                for side, count in (("low", int((values < lims[0]).sum())),
                                    ("high", int((values > lims[1]).sum()))):
                    if count:
                        at = edge_position(lims[0] - 1 if side == "low" else lims[1] + 1,
                                           lims)[0]
                        ax.plot(at, k + 1, marker="<>"[side == "high"], ms=3, ls="",
                                color=st["color"])
                        ax.annotate(f"{count}", (at, k + 1), xytext=(0, 3.5),
                                    textcoords="offset points", fontsize=5.5, ha="center",
                                    va="bottom")
            ax.set_xlim(*lims)
            ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
            ax.set_xlabel(f"Δ {_heading(metric)} vs {baseline} {_arrow(metric)}")
            ax.grid(axis="x", lw=0.3, alpha=0.5)
        axes[0].set_yticks(np.arange(1, len(recipes) + 1), recipes)
        handles = [
            Line2D([], [], color="0.3", lw=0.8, ls="--", label=f"no difference from {baseline}"),
            Line2D([], [], color="black", lw=1.2, label="box: median and quartiles of (seed, "
                   "image) pairs; whiskers 1.5 IQR"),
            Line2D([], [], marker="o", ls="", ms=3.5, color="0.5", mec="black", mew=0.5,
                   label="one seed's mean difference"),
            Line2D([], [], marker=">", ls="", ms=3, color="0.3",
                   label="pairs beyond the axis (count)"),
        ]
        fig.legend(handles=handles, loc="outside lower center", frameon=False,
                   ncols=legend_columns([h.get_label() for h in handles], WIDTH))
        fig.suptitle(f"Per-image difference from {baseline} over (seed, image) pairs")
    return fig


def rank_frequency_frame(
    per_image: pd.DataFrame, summary: pd.DataFrame,
    metrics: Sequence[str] | None = None, n_boot: int = N_BOOT,
) -> pd.DataFrame:
    """Long frame (metric, recipe, rank, fraction) of :func:`.stats.rank_frequencies`
    (``metrics``: default the headline ones)."""
    metrics = metrics_mod.headline() if metrics is None else metrics
    _one_group(summary)
    rows = []
    for metric in metrics:
        freq = rank_frequencies(per_image, summary, metric, n_boot)
        if freq is None:
            continue
        for recipe, ranks in freq.iterrows():
            rows += [{"metric": metric, "recipe": recipe, "rank": int(k), "fraction": float(v)}
                     for k, v in ranks.items()]
    return pd.DataFrame(rows, columns=["metric", "recipe", "rank", "fraction"])


def rank_stability_figure(freqs: pd.DataFrame) -> Figure:
    """Percentage of bootstrap draws in which each recipe takes each rank, a panel per metric
    (a rank has no unit). ``freqs`` is :func:`rank_frequency_frame`'s long frame: a parametric
    bootstrap of the crossed seed x image design (:func:`.inference.rank_stability`), so a
    recipe that keeps its rank in most draws is robustly placed."""
    metrics = list(dict.fromkeys(freqs["metric"]))
    with mpl.rc_context(STYLE):
        n_rec = freqs["recipe"].nunique() if len(freqs) else 0
        fig = Figure(figsize=(WIDTH, clamp_height(1.2 + 0.28 * max(2, n_rec))),
                     layout="constrained")
        if not metrics:
            return _empty(fig, "ranks need two recipes that finished the same 2+ seeds")
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        # a cell's width in points, for a font size at which "100" fits in it
        cell = (WIDTH - 1.6) * 72 / len(metrics) / max(1, freqs["rank"].nunique())
        size = max(4.0, min(6.0, cell / 2.2))
        for ax, metric in zip(axes, metrics, strict=True):
            table = freqs[freqs["metric"] == metric].pivot(index="recipe", columns="rank",
                                                           values="fraction")
            ax.imshow(table.to_numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
            for (i, j), value in np.ndenumerate(table.to_numpy()):
                if value >= 0.005:
                    ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center",
                            color="white" if value > 0.6 else "black", fontsize=size)
            ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
            ax.set_yticks(range(table.shape[0]), list(table.index))
            if ax is not axes[0]:
                ax.tick_params(labelleft=False)
            ax.set_xlabel("rank")
            ax.set_title(f"{metrics_mod.METRICS[metric].label} {_arrow(metric)}")
        fig.suptitle("Rank stability: % of parametric bootstrap draws (seeds and images "
                     "random) in which each recipe takes each rank")
    return fig


__all__ = ["per_image_difference_figure", "rank_frequency_frame",
           "rank_stability_figure"]
