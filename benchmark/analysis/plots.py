"""Figures: one pure function per figure, tidy DataFrame in, matplotlib Figure out.

No pyplot: figures are ``matplotlib.figure.Figure`` objects (Agg canvas when saved), so no
global figure registry fills up and nothing needs closing. Sizes, fonts, the per-recipe
palette and the axis limits follow :mod:`.figstyle` (one or two columns wide, TrueType fonts,
colour-blind-safe colours with markers, limits from the bulk of the data with outliers drawn
at the edge). Every function takes the frames of one (profile, dataset) group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark import metrics as metrics_mod
from benchmark.analysis.cells import metric_weights, not_comparable
from benchmark.analysis.curves import training_curves_figure, validation_curves_figure
from benchmark.analysis.diffplots import (
    _arrow,
    _heading,
    per_image_difference_figure,
    rank_frequency_frame,
    rank_stability_figure,
)
from benchmark.analysis.figstyle import (
    COLUMN,
    STYLE,
    WIDTH,
    bulk_limits,
    clamp_height,
    edge_position,
    legend_columns,
    recipe_styles,
    save,
    styles_for,
)
from benchmark.analysis.frames import load_train_logs
from benchmark.analysis.instruments import instrument_figures, load_grad_shares
from benchmark.analysis.logs import load_val_logs
from benchmark.analysis.samples import (  # noqa: F401 - re-exported
    _empty,
    crop_box,
    sample_grid_figure,
    sample_table,
)
from benchmark.analysis.stats import FEW_SEEDS

__all__ = ["FIGURES", "STYLE", "WIDTH", "metrics_figure", "per_image_difference_figure",
           "perception_distortion_figure", "rank_frequency_frame", "rank_stability_figure",
           "recipe_colors", "recipe_label", "recipe_styles", "save", "training_curves_figure",
           "validation_curves_figure", "write_figures"]


def recipe_colors(recipes: Sequence[str]) -> dict[str, str]:
    """Each recipe's colour in :func:`.figstyle.recipe_styles` (stable per recipe)."""
    return {r: s["color"] for r, s in recipe_styles(recipes).items()}


def _dagger(row: object) -> bool:
    return bool(set(getattr(row, "unofficial_weights", ())) - metric_weights())


def recipe_label(row: object) -> str:
    """A recipe's name as the summary table writes it: † unofficial backbone weights in
    training (any but AlexNet), ‡ fewer than FEW_SEEDS finished seeds; then n (seeds)."""
    n = int(getattr(row, "n_ok", 0))
    return (f"{row.recipe}{'†' if _dagger(row) else ''}"
            f"{'‡' if n < FEW_SEEDS else ''} (n={n})")


def _one_group(frame: pd.DataFrame) -> None:
    if {"profile", "dataset"} <= set(frame.columns) and len(
        frame[["profile", "dataset"]].drop_duplicates()
    ) > 1:
        raise ValueError("frame holds several (profile, dataset) groups; plot them one by one")


def _seed_values(runs: pd.DataFrame | None, summary: pd.DataFrame, metric: str
                 ) -> pd.DataFrame:
    """Finished runs of ``summary``'s group and recipes: recipe, seed, value of ``metric``."""
    if runs is None or metric not in runs.columns or summary.empty:
        return pd.DataFrame(columns=["recipe", "seed", "value"])
    ok = runs[(runs["status"] == "ok") & runs["recipe"].isin(summary["recipe"])]
    for key in ("profile", "dataset"):
        if key in ok.columns and key in summary.columns:
            ok = ok[ok[key] == summary[key].iloc[0]]
    out = ok[["recipe", "seed", metric]].rename(columns={metric: "value"})
    return out.assign(value=pd.to_numeric(out["value"], errors="coerce")).dropna()


def _marker_legend(fig: Figure, data: pd.DataFrame, baseline: str | None, hollow: bool,
                   seeds: bool, edge: bool, width: float) -> None:
    """The legend under a summary figure: what the marks and lines mean; an entry only for
    what the figure shows (no † entry when no recipe has †)."""
    mark = dict(color="0.2", ms=3.5)
    handles = [Line2D([], [], marker="o", ls="-", lw=1, label="mean over seeds, 95% CI", **mark)]
    if seeds:
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", ms=3, color="0.2",
                              label="one training run (seed)"))
    if edge:
        handles.append(Line2D([], [], marker=">", ls="", label="beyond the axis (value given)",
                              **mark))
    if baseline:
        handles.append(Line2D([], [], ls="--", lw=0.8, color="0.5", label=f"{baseline} mean"))
    if hollow:
        handles.append(Line2D([], [], marker="o", ls="", mfc="white", label="LPIPS from "
                              "unofficial AlexNet weights (not comparable)", **mark))
    marks = ["n = finished seeds"]
    if any(_dagger(r) for r in data.itertuples()):
        marks.append("† trained with unofficial backbone weights")
    if (data["n_ok"] < FEW_SEEDS).any():
        marks.append(f"‡ fewer than {FEW_SEEDS} seeds")
    handles.append(Line2D([], [], ls="", label="; ".join(marks)))
    fig.legend(handles=handles, loc="outside lower center", frameon=False,
               ncols=legend_columns([h.get_label() for h in handles], width))


def _interval(ax, pos: float, mean: float, low: float, high: float, lims: tuple[float, float],
              style: dict, hollow: bool, vertical: bool = False) -> bool:
    """Mean and CI at ``pos`` on the other axis, clipped to ``lims`` (a clipped end gets an
    outward triangle at the edge, a mean beyond the edge its value); True when clipped."""
    at, side = edge_position(mean, lims)
    lo = min(max(low, lims[0]), at) if math.isfinite(low) else at
    hi = max(min(high, lims[1]), at) if math.isfinite(high) else at
    color = style["color"]
    err = [[at - lo], [hi - at]]
    kw = dict(fmt=style["marker"] if side is None else ("v^" if vertical else "<>")[
        side == "high"], ms=4, capsize=2, lw=1, color=color, mfc="white" if hollow else color)
    ax.errorbar(*(([pos], [at]) if vertical else ([at], [pos])),
                **({"yerr": err} if vertical else {"xerr": err}), **kw)
    clipped = side is not None
    for end, beyond, marker in ((lims[0], low < lims[0], "v<"), (lims[1], high > lims[1], "^>")):
        if beyond:
            xy = (pos, end) if vertical else (end, pos)
            ax.plot(*xy, marker=marker[0 if vertical else 1], ms=3, color=color,
                    clip_on=False, ls="")
            clipped = True
    return clipped


def metrics_figure(summary: pd.DataFrame, metrics: Sequence[str] | None = None,
                   styles: dict[str, dict] | None = None, runs: pd.DataFrame | None = None
                   ) -> Figure:
    """Mean and 95% CI per recipe, one panel per metric, recipes on the y axis; with ``runs``
    each finished run's (seed's) value as a small hollow point over the interval.

    Axis limits come from the bulk of the values; a point or interval end beyond them is drawn
    at the edge as an outward triangle with its value written beside it (a collapsed run does
    not squeeze the others). Recipe labels carry the table's marks (†, ‡) and n. A dashed line
    marks the baseline's mean; a hollow marker a metric from unofficial weights (LPIPS). A
    metric no run computed gets no panel; ``metrics``: default every summarised one.
    """
    metrics = metrics_mod.summarized() if metrics is None else metrics
    _one_group(summary)
    metrics = [m for m in metrics if summary[f"{m}_mean"].notna().any()] or list(metrics)
    data = summary.sort_values("recipe", ascending=False).reset_index(drop=True)
    styles = styles_for(list(data["recipe"]), styles)
    rows = {r: i for i, r in enumerate(data["recipe"])}
    baseline = data.loc[data["is_baseline"], "recipe"]
    edge_any = seeds_any = False
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, clamp_height(1.5 + 0.22 * len(data))), layout="constrained")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            decimals = metrics_mod.METRICS[metric].decimals
            seeds = _seed_values(runs, data, metric)
            lims = bulk_limits([*seeds["value"], *data[f"{metric}_mean"]],
                               also=[*data[f"{metric}_ci_low"], *data[f"{metric}_ci_high"]])
            beyond: dict[tuple[int, str], list[str]] = {}
            for i, row in data.iterrows():
                hollow = not_comparable(row, metric)
                mean = float(row[f"{metric}_mean"])
                if not math.isfinite(mean):
                    continue
                edge_any |= _interval(ax, i, mean, row[f"{metric}_ci_low"],
                                      row[f"{metric}_ci_high"], lims, styles[row["recipe"]],
                                      hollow)
                if edge_position(mean, lims)[1]:
                    side = edge_position(mean, lims)[1]
                    beyond.setdefault((i, side), []).append(
                        f"mean {mean:.{decimals}f}")
            sub = seeds.sort_values(["recipe", "seed"])
            for recipe, rsub in sub.groupby("recipe", sort=True):
                i, n = rows[recipe], len(rsub)
                offsets = np.linspace(-0.25, 0.25, n) if n > 1 else np.zeros(1)
                for off, value in zip(offsets, rsub["value"], strict=True):
                    at, side = edge_position(float(value), lims)
                    marker = styles[recipe]["marker"] if side is None else "<>"[side == "high"]
                    ax.plot(at, i + off, marker=marker, ms=2.8, ls="", mfc="none", mew=0.6,
                            color=styles[recipe]["color"], alpha=0.8)
                    if side:
                        beyond.setdefault((i, side), []).append(
                            f"seed {value:.{decimals}f}")
                seeds_any = True
            for (i, side), texts in beyond.items():
                at = edge_position(lims[0] - 1 if side == "low" else lims[1] + 1, lims)[0]
                ax.annotate("; ".join(texts), (at, i), xytext=(3 if side == "low" else -3, 4),
                            textcoords="offset points", fontsize=5.5, va="bottom",
                            ha="left" if side == "low" else "right")
                edge_any = True
            ax.set_xlim(*lims)
            base = data.loc[data["is_baseline"], f"{metric}_mean"]
            if len(base) and math.isfinite(base.iloc[0]):
                ax.axvline(edge_position(base.iloc[0], lims)[0], ls="--", lw=0.8, color="0.5")
            ax.set_xlabel(f"{_heading(metric)} {_arrow(metric)}")
            ax.grid(axis="x", lw=0.3, alpha=0.5)
        axes[0].set_yticks(range(len(data)), [recipe_label(r) for r in data.itertuples()])
        axes[0].set_ylim(-0.6, len(data) - 0.4)
        hollow = any(not_comparable(r, m) for m in metrics for _, r in data.iterrows())
        _marker_legend(fig, data, baseline.iloc[0] if len(baseline) else None, bool(hollow),
                       seeds_any, edge_any, WIDTH)
        fig.suptitle("Test metrics: mean over seeds with 95% CI (Student t over the per-seed "
                     "means)" + ("; points: each seed" if seeds_any else ""))
    return fig


def perception_distortion_figure(summary: pd.DataFrame, styles: dict[str, dict] | None = None,
                                 runs: pd.DataFrame | None = None) -> Figure:
    """PSNR (x) against LPIPS (y), one point per recipe with 95% CI bars on both axes, each
    seed as a small hollow point; a one-column figure with the recipes in the legend (no label
    can overprint another).

    When no recipe has an LPIPS (runs made with ``--metrics psnr,ssim``), SSIM takes its place
    and the title says so. Limits from the bulk of the data, outliers at the edge.
    """
    _one_group(summary)
    has_lpips = summary["lpips_mean"].notna().any()
    y = "lpips" if has_lpips else "ssim"
    data = summary.dropna(subset=["psnr_mean", f"{y}_mean"]).sort_values("recipe")
    styles = styles_for(list(summary["recipe"].unique()), styles)
    with mpl.rc_context(STYLE):
        ncols = legend_columns([recipe_label(r) for r in data.itertuples()] or [""], COLUMN)
        rows = math.ceil((len(data) + 4) / ncols)
        fig = Figure(figsize=(COLUMN, clamp_height(2.9 + 0.17 * rows)), layout="constrained")
        if data.empty:
            return _empty(fig, "no recipe has both PSNR and LPIPS or SSIM")
        ax = fig.add_subplot()
        sx, sy = _seed_values(runs, data, "psnr"), _seed_values(runs, data, y)
        xl = bulk_limits([*sx["value"], *data["psnr_mean"]],
                         also=[*data["psnr_ci_low"], *data["psnr_ci_high"]])
        yl = bulk_limits([*sy["value"], *data[f"{y}_mean"]],
                         also=[*data[f"{y}_ci_low"], *data[f"{y}_ci_high"]])
        edge = False
        seeds = sx.merge(sy, on=["recipe", "seed"], suffixes=("_x", "_y"))
        for s in seeds.itertuples():
            (px, hx), (py, hy) = edge_position(s.value_x, xl), edge_position(s.value_y, yl)
            st = styles[s.recipe]
            marker = st["marker"] if not (hx or hy) else (
                "<>"[hx == "high"] if hx else "v^"[hy == "high"])
            ax.plot(px, py, marker=marker, ms=2.8, mfc="none", mew=0.6, ls="",
                    color=st["color"], alpha=0.8)
            edge |= bool(hx or hy)
        handles = []
        for row in data.itertuples():
            st = styles[row.recipe]
            hollow = has_lpips and not row.lpips_comparable
            mean_y = getattr(row, f"{y}_mean")
            px, hx = edge_position(row.psnr_mean, xl)
            py, hy = edge_position(mean_y, yl)
            clip = lambda v, lims, at: min(max(v, lims[0]), lims[1]) if math.isfinite(v) else at  # noqa: E731
            xerr = [[px - min(clip(row.psnr_ci_low, xl, px), px)],
                    [max(clip(row.psnr_ci_high, xl, px), px) - px]]
            lo_y, hi_y = getattr(row, f"{y}_ci_low"), getattr(row, f"{y}_ci_high")
            yerr = [[py - min(clip(lo_y, yl, py), py)], [max(clip(hi_y, yl, py), py) - py]]
            marker = st["marker"] if not (hx or hy) else (
                "<>"[hx == "high"] if hx else "v^"[hy == "high"])
            ax.errorbar(px, py, xerr=xerr, yerr=yerr, fmt=marker, ms=4, capsize=2, lw=1,
                        color=st["color"], label=row.recipe,
                        mfc="white" if hollow else st["color"])
            edge |= bool(hx or hy) or row.psnr_ci_low < xl[0] or row.psnr_ci_high > xl[1] or (
                lo_y < yl[0] or hi_y > yl[1])
            handles.append(Line2D([], [], marker=st["marker"], ls="", ms=4, color=st["color"],
                                  label=recipe_label(row)))
        ax.set_xlim(*xl)
        ax.set_ylim(*yl)
        ax.set_xlabel("PSNR (dB) ↑ (less distortion)")
        if has_lpips:
            ax.set_ylabel("LPIPS ↓ (perceptual distance)")
            ax.set_title("Perception-distortion plane")
        else:
            ax.set_ylabel("SSIM ↑ (structural similarity)")
            ax.set_title("PSNR vs SSIM (no run computed LPIPS)")
        ax.grid(lw=0.3, alpha=0.5)
        handles.append(Line2D([], [], marker="o", ls="-", lw=1, ms=3.5, color="0.2",
                              label="mean, 95% CI"))
        if len(seeds):
            handles.append(Line2D([], [], marker="o", ls="", ms=3, mfc="none", color="0.2",
                                  label="one seed"))
        if edge:
            handles.append(Line2D([], [], marker=">", ls="", ms=3.5, color="0.2",
                                  label="beyond the axis, at its edge"))
        if has_lpips and not data["lpips_comparable"].all():
            handles.append(Line2D([], [], marker="o", ls="", ms=3.5, mfc="white", color="0.2",
                                  label="LPIPS: unofficial AlexNet weights"))
        marks = (["† unofficial backbone weights"] if any(_dagger(r) for r in data.itertuples())
                 else []) + ([f"‡ fewer than {FEW_SEEDS} seeds"]
                             if (data["n_ok"] < FEW_SEEDS).any() else [])
        handles.append(Line2D([], [], ls="", label="; ".join(["n = seeds", *marks])))
        fig.legend(handles=handles, loc="outside lower center", frameon=False,
                   ncols=legend_columns([h.get_label() for h in handles], COLUMN))
    return fig


FIGURES = (  # kind, caption
    ("metrics", "Test metrics per recipe: mean over seeds with 95% CI, each seed a point"),
    ("perception_distortion", "Perception-distortion plane (PSNR vs LPIPS)"),
    ("training_curves", "Training loss per term, median over seeds"),
    ("validation_curves", "Validation PSNR during training, median over seeds"),
    ("samples", "Sample outputs with zoomed crops"),
    ("per_image_diff", "Per-image difference from the baseline"),
    ("rank_stability", "Rank stability (parametric bootstrap, seeds and test images random)"),
)


def _caption(kind: str, caption: str, group: pd.DataFrame) -> str:
    if kind == "perception_distortion" and not group["lpips_mean"].notna().any():
        return "PSNR vs SSIM (no run computed LPIPS), mean over seeds with 95% CI"
    return caption


def write_figures(
    results: Path, runs: pd.DataFrame, per_image: pd.DataFrame, summary: pd.DataFrame,
    baseline: str,
) -> list[dict]:
    """Every figure for every (profile, dataset) into ``results/plots``; one dict per figure.

    A figure with nothing to show (no ``samples/`` in the runs) is left out, not drawn as a
    placeholder.
    """
    logs, val = load_train_logs(runs), load_val_logs(runs)
    styles = recipe_styles(list(runs["recipe"].unique()))  # the whole tree: stable styles
    shares = load_grad_shares(runs)
    written = []
    for (profile, dataset), group in summary.groupby(["profile", "dataset"], sort=True):
        def pick(frame: pd.DataFrame, key: tuple = (profile, dataset)) -> pd.DataFrame:
            return frame[(frame["profile"] == key[0]) & (frame["dataset"] == key[1])]

        samples = sample_table(pick(runs), baseline)
        figures = {
            "metrics": metrics_figure(group, styles=styles, runs=pick(runs)),
            "perception_distortion": perception_distortion_figure(group, styles=styles,
                                                                  runs=pick(runs)),
            "training_curves": training_curves_figure(pick(logs), styles=styles),
            "validation_curves": validation_curves_figure(pick(val), styles=styles),
            "samples": sample_grid_figure(samples) if len(samples) else None,
            "per_image_diff": per_image_difference_figure(pick(per_image), baseline,
                                                          styles=styles),
            "rank_stability": rank_stability_figure(rank_frequency_frame(pick(per_image),
                                                                         group)),
        }
        for kind, caption in FIGURES:
            if figures[kind] is None:
                continue
            stem = results / "plots" / f"{kind}_{profile}_{str(dataset)[:8]}"
            png, pdf = save(figures[kind], stem)
            written.append({"profile": profile, "dataset": dataset, "kind": kind,
                            "caption": _caption(kind, caption, group), "png": png, "pdf": pdf})
        for kind, caption, figure in instrument_figures(pick(shares), group):
            png, pdf = save(figure, results / "plots" / f"{kind}_{profile}_{str(dataset)[:8]}")
            written.append({"profile": profile, "dataset": dataset, "kind": kind,
                            "caption": caption, "png": png, "pdf": pdf})
    return written
