"""Curves over training: loss per term and validation PSNR (re-exported by :mod:`.plots`).

Same conventions as :mod:`.plots`: pure functions, ``Figure`` objects, :mod:`.figstyle`'s
sizes, fonts and per-recipe styles (colour, line style and a marker every few points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from benchmark.analysis.figstyle import (
    STYLE,
    WIDTH,
    bulk_limits,
    clamp_height,
    legend_columns,
    legend_rows_height,
    styles_for,
)
from benchmark.analysis.samples import _empty


def _one_group(frame: pd.DataFrame) -> None:
    if {"profile", "dataset"} <= set(frame.columns) and len(
        frame[["profile", "dataset"]].drop_duplicates()
    ) > 1:
        raise ValueError("frame holds several (profile, dataset) groups; plot them one by one")


def _term_order(terms: Sequence[str]) -> list[str]:
    rest = sorted(t for t in terms if t not in ("total", "d_loss"))
    return [t for t in ("total",) if t in terms] + rest + [t for t in ("d_loss",) if t in terms]


def _line(ax, x, y, style: dict, label: str) -> None:
    every = max(1, len(x) // 5)
    ax.plot(x, y, lw=1, color=style["color"], ls=style["ls"], marker=style["marker"], ms=2.5,
            markevery=(every // 2, every), label=label)


def _legend(fig: Figure, recipes: list[str], styles: dict[str, dict], band: str) -> None:
    handles = [Line2D([], [], lw=1, color=styles[r]["color"], ls=styles[r]["ls"],
                      marker=styles[r]["marker"], ms=2.5, label=r) for r in recipes]
    handles.append(Patch(color="0.5", alpha=0.25, lw=0, label=band))
    fig.legend(handles=handles, loc="outside lower center", frameon=False,
               ncols=legend_columns([h.get_label() for h in handles], WIDTH))


def training_curves_figure(logs: pd.DataFrame, styles: dict[str, dict] | None = None) -> Figure:
    """Loss against iteration, one panel per term: median over seeds, min-max band.

    The y axis is logarithmic for a positive term spanning more than a factor of 20. Four
    panels a row from ten terms on, so that the figure stays within a page.

    Args:
        logs: long frame of :func:`benchmark.analysis.frames.load_train_logs` (recipe, seed,
            iteration, term, value) for one (profile, dataset).
    """
    _one_group(logs)
    recipes = sorted(logs["recipe"].unique()) if len(logs) else []
    styles = styles_for(recipes, styles) if recipes else {}
    terms = _term_order(list(logs["term"].unique())) if len(logs) else []
    with mpl.rc_context(STYLE):
        ncols = min(3 if len(terms) < 10 else 4, max(1, len(terms)))
        nrows = max(1, math.ceil(len(terms) / ncols))
        legend_cols = legend_columns(recipes + ["band: min-max over seeds"], WIDTH)
        legend = legend_rows_height(len(recipes) + 1, legend_cols)
        row = min(1.9, (8.6 - 0.4 - legend) / nrows)
        fig = Figure(figsize=(WIDTH, clamp_height(0.4 + legend + row * nrows)),
                     layout="constrained")
        if not terms:
            return _empty(fig, "no train_log.csv in these runs")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(terms):]:
            fig.delaxes(ax)
        for ax, term in zip(axes[: len(terms)], terms, strict=True):
            sub = logs[logs["term"] == term].dropna(subset=["value"])
            for recipe, rsub in sorted(sub.groupby("recipe"), key=lambda kv: kv[0]):
                agg = rsub.groupby("iteration")["value"].agg(["median", "min", "max"])
                _line(ax, agg.index, agg["median"], styles[recipe], recipe)
                ax.fill_between(agg.index, agg["min"], agg["max"], color=styles[recipe]["color"],
                                alpha=0.15, lw=0)
            # log scale only where the loss spans more than a decade (and is positive)
            v = sub["value"]
            if len(v) and (v > 0).all() and v.max() > 20 * v.min():
                ax.set_yscale("log")
            ax.set_title("total (weighted sum)" if term == "total" else term)
            ax.set_xlabel("iteration")
            ax.set_ylabel("loss (unweighted)" if term != "total" else "loss")
            ax.grid(lw=0.3, alpha=0.5)
        _legend(fig, recipes, styles, "band: min-max over seeds")
        fig.suptitle("Training loss: median over seeds, band = min-max over seeds")
    return fig


def validation_curves_figure(val: pd.DataFrame, styles: dict[str, dict] | None = None
                             ) -> Figure:
    """Validation PSNR against iteration per recipe: median over seeds, min-max band.

    The y range holds every median curve and the bulk of the bands; a band that runs below it
    (a collapsed seed) is cut at the axis, and the caption line under the legend says so.

    Args:
        val: long frame of :func:`benchmark.analysis.logs.load_val_logs` for one
            (profile, dataset).
    """
    _one_group(val)
    recipes = sorted(val["recipe"].unique()) if len(val) else []
    styles = styles_for(recipes, styles) if recipes else {}
    with mpl.rc_context(STYLE):
        legend_cols = legend_columns(recipes + ["band: min-max over seeds"], WIDTH)
        fig = Figure(figsize=(WIDTH, clamp_height(3.0 + legend_rows_height(
            len(recipes) + 1, legend_cols))), layout="constrained")
        if val.empty:
            return _empty(fig, "no val_log.csv in these runs")
        ax = fig.add_subplot()
        medians, bands = [], []
        for recipe, sub in sorted(val.groupby("recipe"), key=lambda kv: kv[0]):
            agg = sub.groupby("iteration")["val_psnr"].agg(["median", "min", "max"])
            _line(ax, agg.index, agg["median"], styles[recipe], recipe)
            ax.fill_between(agg.index, agg["min"], agg["max"], color=styles[recipe]["color"],
                            alpha=0.1, lw=0)
            medians += list(agg["median"])
            bands += list(agg["min"]) + list(agg["max"])
        lo, hi = bulk_limits(bands)
        lo, hi = min(lo, np.nanmin(medians)), max(hi, np.nanmax(medians))
        pad = 0.03 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
        cut = np.nanmin(bands) < lo - pad or np.nanmax(bands) > hi + pad
        ax.set_xlabel("iteration")
        ax.set_ylabel("validation PSNR (dB) ↑")
        ax.grid(lw=0.3, alpha=0.5)
        _legend(fig, recipes, styles, "band: min-max over seeds"
                + (" (cut at the axis)" if cut else ""))
        fig.suptitle("Validation PSNR (held-out training pairs): median over seeds, band = "
                     "min-max over seeds")
    return fig


__all__ = ["training_curves_figure", "validation_curves_figure"]
