"""Figures: one pure function per figure, tidy DataFrame in, matplotlib Figure out.

No pyplot: figures are ``matplotlib.figure.Figure`` objects (Agg canvas when saved), so no
global figure registry fills up and nothing needs closing. Fonts and sizes are set inside an
``rc_context`` for a paper column (7 in wide double-column figures, 7-8 pt text). Every
function takes the frames of one (profile, dataset) group.
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

from benchmark.analysis.frames import load_train_logs
from benchmark.analysis.instruments import instrument_figures, load_grad_shares
from benchmark.analysis.logs import load_val_logs
from benchmark.analysis.samples import (  # noqa: F401 - re-exported
    STYLE,
    WIDTH,
    _empty,
    crop_box,
    sample_grid_figure,
    sample_table,
)
from benchmark.analysis.stats import FEW_SEEDS, METRICS, N_BOOT, rank_frequencies

LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS",
          "psnr_gtmean": "GT-mean PSNR (dB)", "ssim_gtmean": "GT-mean SSIM"}


def _arrow(metric: str) -> str:
    return "↑" if METRICS.get(metric, True) else "↓"


def recipe_colors(recipes: Sequence[str]) -> dict[str, tuple]:
    """One colour per recipe by its position in the sorted list of ``recipes``.

    :func:`write_figures` passes every recipe of the whole results tree, so a recipe has the
    same colour in every figure of every (profile, dataset) group, whichever recipes a group
    holds.
    """
    names = sorted(set(recipes))
    cmap = mpl.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {r: cmap(i % cmap.N) for i, r in enumerate(names)}


def _colors(recipes: Sequence[str], colors: dict[str, tuple] | None) -> dict[str, tuple]:
    return colors if colors is not None and set(recipes) <= set(colors) else recipe_colors(recipes)


def recipe_label(row: object) -> str:
    """A recipe's name as the summary table writes it: † unofficial backbone weights in
    training (any but AlexNet), ‡ fewer than FEW_SEEDS finished seeds; then n (seeds)."""
    unofficial = {w for w in str(getattr(row, "unofficial_weights", "") or "").split(",") if w}
    n = int(getattr(row, "n_ok", 0))
    return (f"{row.recipe}{'†' if unofficial - {'alexnet'} else ''}"
            f"{'‡' if n < FEW_SEEDS else ''} (n={n})")


def _one_group(frame: pd.DataFrame) -> None:
    if {"profile", "dataset"} <= set(frame.columns) and len(
        frame[["profile", "dataset"]].drop_duplicates()
    ) > 1:
        raise ValueError("frame holds several (profile, dataset) groups; plot them one by one")


def _marker_legend(fig: Figure, baseline: str | None, hollow: bool, few: bool,
                   narrow: bool = False) -> None:
    """The legend under a summary figure: what the marks, the dashed line and the signs mean
    (one entry per line under a ``narrow`` figure, so that none is cut off)."""
    handles = [Line2D([], [], marker="o", ls="-", color="0.2", ms=3.5, lw=1,
                      label="mean over seeds, 95% CI")]
    if baseline:
        handles.append(Line2D([], [], ls="--", lw=0.8, color="0.5", label=f"{baseline} mean"))
    if hollow:
        handles.append(Line2D([], [], marker="o", ls="", ms=3.5, mfc="white", color="0.2",
                              label="LPIPS from unofficial AlexNet weights (not comparable)"))
    labels = "n = finished seeds; † trained with unofficial backbone weights"
    handles.append(Line2D([], [], ls="", label=labels + (f"; ‡ fewer than {FEW_SEEDS} seeds"
                                                         if few else "")))
    fig.legend(handles=handles, loc="outside lower center",
               ncols=1 if narrow else min(4, len(handles)), frameon=False)


def metrics_figure(summary: pd.DataFrame, metrics: Sequence[str] = tuple(METRICS),
                   colors: dict[str, tuple] | None = None) -> Figure:
    """Mean and 95% CI per recipe, one panel per metric, recipes on the y axis.

    Recipe labels carry the summary table's marks (†, ‡) and n, the number of finished seeds.
    A dashed line marks the baseline's mean; a hollow marker an LPIPS from unofficial weights.
    A metric no recipe recorded (LPIPS of runs made with ``--metrics psnr,ssim``) gets no panel.
    """
    _one_group(summary)
    metrics = [m for m in metrics if summary[f"{m}_mean"].notna().any()] or list(metrics)
    data = summary.sort_values("recipe", ascending=False).reset_index(drop=True)
    colors = _colors(list(data["recipe"]), colors)
    baseline = data.loc[data["is_baseline"], "recipe"]
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 1.2 + 0.22 * len(data)), layout="constrained")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        y = np.arange(len(data))
        for ax, metric in zip(axes, metrics, strict=True):
            for i, row in data.iterrows():
                mean = float(row[f"{metric}_mean"])
                err = [[mean - row[f"{metric}_ci_low"]], [row[f"{metric}_ci_high"] - mean]]
                hollow = metric == "lpips" and not row["lpips_comparable"]
                ax.errorbar([mean], [y[i]], xerr=np.nan_to_num(err), fmt="o", ms=3.5,
                            capsize=2, lw=1, color=colors[row["recipe"]],
                            mfc="white" if hollow else colors[row["recipe"]])
            base = data.loc[data["is_baseline"], f"{metric}_mean"]
            if len(base) and math.isfinite(base.iloc[0]):
                ax.axvline(base.iloc[0], ls="--", lw=0.8, color="0.5")
            ax.set_xlabel(f"{LABELS[metric]} {_arrow(metric)}")
            ax.grid(axis="x", lw=0.3, alpha=0.5)
        axes[0].set_yticks(y, [recipe_label(r) for r in data.itertuples()])
        axes[0].set_ylim(-0.6, len(data) - 0.4)
        hollow = "lpips" in metrics and not data["lpips_comparable"].all()
        _marker_legend(fig, baseline.iloc[0] if len(baseline) else None, bool(hollow),
                       bool((data["n_ok"] < FEW_SEEDS).any()))
        fig.suptitle("Test metrics: mean over seeds, 95% CI (Student t over the per-seed means)")
    return fig


def perception_distortion_figure(summary: pd.DataFrame,
                                 colors: dict[str, tuple] | None = None) -> Figure:
    """PSNR (x) against LPIPS (y), one point per recipe with 95% CI bars on both axes.

    Labels as in :func:`metrics_figure`; a hollow marker is an LPIPS from unofficial weights.
    When no recipe has an LPIPS (runs made with ``--metrics psnr,ssim``), SSIM takes its place
    and the title says so: the plane of the two distortion measures, LPIPS absent.
    """
    _one_group(summary)
    has_lpips = summary["lpips_mean"].notna().any()
    y = "lpips" if has_lpips else "ssim"
    data = summary.dropna(subset=["psnr_mean", f"{y}_mean"]).sort_values("recipe")
    colors = _colors(list(summary["recipe"].unique()), colors)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(3.5, 3.0), layout="constrained")
        if data.empty:
            return _empty(fig, "no recipe has both PSNR and LPIPS or SSIM")
        ax = fig.add_subplot()
        for row in data.itertuples():
            mean = getattr(row, f"{y}_mean")
            xerr = [[row.psnr_mean - row.psnr_ci_low], [row.psnr_ci_high - row.psnr_mean]]
            yerr = [[mean - getattr(row, f"{y}_ci_low")], [getattr(row, f"{y}_ci_high") - mean]]
            hollow = has_lpips and not row.lpips_comparable
            ax.errorbar(row.psnr_mean, mean, xerr=xerr, yerr=yerr, fmt="o", ms=4,
                        capsize=2, lw=1, color=colors[row.recipe], label=row.recipe,
                        mfc="white" if hollow else colors[row.recipe])
            ax.annotate(recipe_label(row), (row.psnr_mean, mean), xytext=(4, 3),
                        textcoords="offset points", fontsize=7)
        ax.set_xlabel("PSNR (dB) ↑ (less distortion)")
        if has_lpips:
            ax.set_ylabel("LPIPS ↓ (better perceptual quality)")
            ax.set_title("Perception-distortion plane")
        else:
            ax.set_ylabel("SSIM ↑ (structural similarity)")
            ax.set_title("PSNR vs SSIM (LPIPS not computed by these runs)")
        ax.grid(lw=0.3, alpha=0.5)
        _marker_legend(fig, None, bool(has_lpips and not data["lpips_comparable"].all()),
                       bool((data["n_ok"] < FEW_SEEDS).any()), narrow=True)
    return fig


def _term_order(terms: Sequence[str]) -> list[str]:
    rest = sorted(t for t in terms if t not in ("total", "d_loss"))
    return [t for t in ("total",) if t in terms] + rest + [t for t in ("d_loss",) if t in terms]


def training_curves_figure(logs: pd.DataFrame, colors: dict[str, tuple] | None = None) -> Figure:
    """Loss against iteration, one panel per term: median over seeds, min-max band.

    The y axis is logarithmic for a positive term spanning more than a factor of 20.

    Args:
        logs: long frame of :func:`benchmark.analysis.frames.load_train_logs` (recipe, seed,
            iteration, term, value) for one (profile, dataset).
    """
    _one_group(logs)
    colors = _colors(list(logs["recipe"].unique()), colors) if len(logs) else {}
    terms = _term_order(list(logs["term"].unique())) if len(logs) else []
    with mpl.rc_context(STYLE):
        ncols = min(3, max(1, len(terms)))
        nrows = max(1, math.ceil(len(terms) / ncols))
        fig = Figure(figsize=(WIDTH, 0.4 + 2.0 * nrows), layout="constrained")
        if not terms:
            return _empty(fig, "no train_log.csv in these runs")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(terms):]:
            fig.delaxes(ax)
        for ax, term in zip(axes[: len(terms)], terms, strict=True):
            sub = logs[logs["term"] == term].dropna(subset=["value"])
            for recipe, rsub in sorted(sub.groupby("recipe"), key=lambda kv: kv[0]):
                agg = rsub.groupby("iteration")["value"].agg(["median", "min", "max"])
                ax.plot(agg.index, agg["median"], lw=1, color=colors[recipe], label=recipe)
                ax.fill_between(agg.index, agg["min"], agg["max"], color=colors[recipe],
                                alpha=0.2, lw=0)
            # log scale only where the loss spans more than a decade (and is positive)
            v = sub["value"]
            if len(v) and (v > 0).all() and v.max() > 20 * v.min():
                ax.set_yscale("log")
            ax.set_title("total (weighted sum)" if term == "total" else term)
            ax.set_xlabel("iteration")
            ax.set_ylabel("loss (unweighted)" if term != "total" else "loss")
            ax.grid(lw=0.3, alpha=0.5)
        handles, labels = axes[0].get_legend_handles_labels()
        handles.append(mpl.patches.Patch(color="0.5", alpha=0.2, lw=0))
        labels.append("band: min-max over seeds")
        fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)),
                   frameon=False)
        fig.suptitle("Training loss: median over seeds, band = min-max over seeds")
    return fig


def validation_curves_figure(val: pd.DataFrame, colors: dict[str, tuple] | None = None
                             ) -> Figure:
    """Validation PSNR against iteration per recipe: median over seeds, min-max band.

    Args:
        val: long frame of :func:`benchmark.analysis.logs.load_val_logs` for one
            (profile, dataset).
    """
    _one_group(val)
    colors = _colors(sorted(val["recipe"].unique()), colors) if len(val) else {}
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 3.2), layout="constrained")
        if val.empty:
            return _empty(fig, "no val_log.csv in these runs")
        ax = fig.add_subplot()
        for recipe, sub in sorted(val.groupby("recipe"), key=lambda kv: kv[0]):
            agg = sub.groupby("iteration")["val_psnr"].agg(["median", "min", "max"])
            ax.plot(agg.index, agg["median"], lw=1, color=colors[recipe], label=recipe)
            ax.fill_between(agg.index, agg["min"], agg["max"], color=colors[recipe], alpha=0.15,
                            lw=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel("validation PSNR (dB) ↑")
        ax.grid(lw=0.3, alpha=0.5)
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(7, len(labels)),
                   frameon=False)
        fig.suptitle("Validation PSNR (held-out training pairs): median over seeds, band = "
                     "min-max over seeds")
    return fig


def per_image_difference_figure(
    per_image: pd.DataFrame, baseline: str, metrics: Sequence[str] = ("psnr", "ssim", "lpips"),
    colors: dict[str, tuple] | None = None,
) -> Figure:
    """Per (seed, image) difference from the baseline, one box per recipe, one panel per metric.

    Differences are ``recipe - baseline`` on the same seed and test image.
    """
    _one_group(per_image)
    recipes = sorted(r for r in per_image["recipe"].unique() if r != baseline)
    colors = _colors(list(per_image["recipe"].unique()), colors)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 0.9 + 0.25 * max(1, len(recipes))), layout="constrained")
        base = per_image[per_image["recipe"] == baseline]
        if base.empty or not recipes:
            return _empty(fig, f"need runs of the baseline '{baseline}' and another recipe")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            b = base[base["metric"] == metric].set_index(["seed", "image"])["value"]
            data = []
            for recipe in recipes:
                r = per_image[(per_image["recipe"] == recipe) & (per_image["metric"] == metric)]
                d = (r.set_index(["seed", "image"])["value"] - b).dropna()
                data.append(d.to_numpy() if len(d) else np.array([np.nan]))
            boxes = ax.boxplot(data, orientation="horizontal", patch_artist=True, widths=0.6,
                               flierprops={"markersize": 2}, boxprops={"linewidth": 0.8})
            for box, recipe in zip(boxes["boxes"], recipes, strict=True):
                box.set_facecolor((*colors[recipe][:3], 0.45))
            ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
            ax.set_xlabel(f"Δ {LABELS[metric]} vs {baseline} {_arrow(metric)}")
            ax.grid(axis="x", lw=0.3, alpha=0.5)
        axes[0].set_yticks(np.arange(1, len(recipes) + 1), recipes)
        fig.legend(handles=[
            Line2D([], [], color="0.3", lw=0.8, ls="--", label=f"no difference from {baseline}"),
            Line2D([], [], color="C1", lw=1, label="median; box: quartiles; whiskers: 1.5 IQR"),
        ], loc="outside lower center", ncols=2, frameon=False)
        fig.suptitle(f"Per-image difference from {baseline} over (seed, image) pairs")
    return fig


def rank_frequency_frame(
    per_image: pd.DataFrame, summary: pd.DataFrame,
    metrics: Sequence[str] = ("psnr", "ssim", "lpips"), n_boot: int = N_BOOT,
) -> pd.DataFrame:
    """Long frame (metric, recipe, rank, fraction) of :func:`.stats.rank_frequencies`."""
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
    """Share of bootstrap replicates in which each recipe takes each rank, a panel per metric.

    ``freqs`` is :func:`rank_frequency_frame`'s long frame: a parametric bootstrap of the
    crossed seed x image design (:func:`.inference.rank_stability`), so a recipe that keeps its
    rank in most draws is robustly placed.
    """
    metrics = list(dict.fromkeys(freqs["metric"]))
    with mpl.rc_context(STYLE):
        n_rec = freqs["recipe"].nunique() if len(freqs) else 0
        fig = Figure(figsize=(WIDTH, 1.0 + 0.3 * max(2, n_rec)), layout="constrained")
        if not metrics:
            return _empty(fig, "ranks need two recipes that finished the same 2+ seeds")
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            table = freqs[freqs["metric"] == metric].pivot(index="recipe", columns="rank",
                                                           values="fraction")
            ax.imshow(table.to_numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
            for (i, j), value in np.ndenumerate(table.to_numpy()):
                if value >= 0.005:
                    ax.text(j, i, f"{100 * value:.0f}%", ha="center", va="center",
                            color="white" if value > 0.6 else "black", fontsize=6)
            ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
            ax.set_yticks(range(table.shape[0]), list(table.index))
            ax.set_xlabel("rank")
            ax.set_title(f"{LABELS[metric]} {_arrow(metric)}")
        fig.suptitle("How often each recipe takes each rank (parametric bootstrap, seeds and "
                     "images random)")
    return fig


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.pdf`` with no time stamp (stable bytes)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=200, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [png, pdf]


FIGURES = (  # kind, caption
    ("metrics", "Test metrics per recipe, mean and 95% CI"),
    ("perception_distortion", "Perception-distortion plane (PSNR vs LPIPS)"),
    ("training_curves", "Training loss per term, median over seeds"),
    ("validation_curves", "Validation PSNR during training, median over seeds"),
    ("samples", "Sample outputs with zoomed crops"),
    ("per_image_diff", "Per-image difference from the baseline"),
    ("rank_stability", "Rank stability (parametric bootstrap, seeds and test images random)"),
)


def write_figures(
    results: Path, runs: pd.DataFrame, per_image: pd.DataFrame, summary: pd.DataFrame,
    baseline: str,
) -> list[dict]:
    """Every figure for every (profile, dataset) into ``results/plots``; one dict per figure."""
    logs, val = load_train_logs(runs), load_val_logs(runs)
    colors = recipe_colors(list(runs["recipe"].unique()))  # the whole tree: stable colours
    shares = load_grad_shares(runs)
    written = []
    for (profile, dataset), group in summary.groupby(["profile", "dataset"], sort=True):
        def pick(frame: pd.DataFrame, key: tuple = (profile, dataset)) -> pd.DataFrame:
            return frame[(frame["profile"] == key[0]) & (frame["dataset"] == key[1])]

        figures = {
            "metrics": metrics_figure(group, colors=colors),
            "perception_distortion": perception_distortion_figure(group, colors=colors),
            "training_curves": training_curves_figure(pick(logs), colors=colors),
            "validation_curves": validation_curves_figure(pick(val), colors=colors),
            "samples": sample_grid_figure(sample_table(pick(runs), baseline)),
            "per_image_diff": per_image_difference_figure(pick(per_image), baseline,
                                                          colors=colors),
            "rank_stability": rank_stability_figure(rank_frequency_frame(pick(per_image),
                                                                         group)),
        }
        for kind, caption in FIGURES:
            stem = results / "plots" / f"{kind}_{profile}_{str(dataset)[:8]}"
            png, pdf = save(figures[kind], stem)
            written.append({"profile": profile, "dataset": dataset, "kind": kind,
                            "caption": caption, "png": png, "pdf": pdf})
        for kind, caption, figure in instrument_figures(pick(shares), group):
            png, pdf = save(figure, results / "plots" / f"{kind}_{profile}_{str(dataset)[:8]}")
            written.append({"profile": profile, "dataset": dataset, "kind": kind,
                            "caption": caption, "png": png, "pdf": pdf})
    return written
