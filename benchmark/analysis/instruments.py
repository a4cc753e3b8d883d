"""Research instruments in the run folders: gradient shares per term and weight-sweep sensitivity.

Gradient shares come from the ``gradnorm_<label>`` / ``gradshare_<label>`` columns of
``train_log.csv`` (each weighted term's gradient norm with respect to the network output, and
its fraction of the sum of the terms' norms). Sensitivity comes from grid-derived recipes, whose
names are ``<recipe>@<key path>=<value>[@<key path>=<value>...]`` (``benchmark.recipes.grid``).
Pure frames in, matplotlib figures or sentences out, like :mod:`benchmark.analysis.plots`.
"""

from __future__ import annotations

import math
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark import metrics as metrics_mod
from benchmark.analysis.figstyle import LINESTYLES, MARKERS, PALETTE, STYLE, WIDTH, clamp_height
from benchmark.analysis.logs import train_logs

SHARE, NORM = "gradshare_", "gradnorm_"
_ASSIGN = re.compile(r"^(?P<key>[A-Za-z_][\w.\[\]]*)=(?P<value>[-+0-9.eE]+)$")


def load_grad_shares(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame: run_id, recipe, profile, dataset, seed, iteration, term, share, norm."""
    frames = []
    for run, log in train_logs(runs):
        terms = [c[len(SHARE):] for c in log.columns if c.startswith(SHARE)]
        if not terms or "iteration" not in log.columns:
            continue
        for term in terms:
            norm = log[NORM + term] if NORM + term in log.columns else np.nan
            frames.append(pd.DataFrame({
                "run_id": run.run_id, "recipe": run.recipe, "profile": run.profile,
                "dataset": run.dataset, "seed": run.seed, "iteration": log["iteration"],
                "term": term, "share": pd.to_numeric(log[SHARE + term], errors="coerce"),
                "norm": pd.to_numeric(norm, errors="coerce"),
            }))
    cols = ["run_id", "recipe", "profile", "dataset", "seed", "iteration", "term", "share",
            "norm"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols].dropna(subset=["share"])


def grad_share_figure(shares: pd.DataFrame) -> Figure:
    """Share of the gradient (w.r.t. the network output) per term against iteration, one panel
    per recipe: median over seeds, min-max band."""
    recipes = sorted(shares["recipe"].unique()) if len(shares) else []
    with mpl.rc_context(STYLE):
        ncols = min(3, max(1, len(recipes)))
        nrows = max(1, math.ceil(len(recipes) / ncols))
        fig = Figure(figsize=(WIDTH, clamp_height(0.6 + 2.0 * nrows)), layout="constrained")
        if not recipes:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no gradient shares in these runs (multi-term recipes log them)",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(recipes):]:
            fig.delaxes(ax)
        for ax, recipe in zip(axes, recipes, strict=False):
            sub = shares[shares["recipe"] == recipe]
            for k, (term, tsub) in enumerate(sub.groupby("term", sort=False)):
                agg = tsub.groupby("iteration")["share"].agg(["median", "min", "max"])
                color = PALETTE[k % len(PALETTE)]
                every = max(1, len(agg) // 5)
                ax.plot(agg.index, 100 * agg["median"], lw=1, color=color, label=term,
                        ls=LINESTYLES[k // len(PALETTE) % len(LINESTYLES)],
                        marker=MARKERS[k % len(MARKERS)], ms=2.5, markevery=every)
                ax.fill_between(agg.index, 100 * agg["min"], 100 * agg["max"],
                                color=color, alpha=0.2, lw=0)
            ax.set_ylim(0, 100)
            ax.set_title(recipe)
            ax.set_xlabel("iteration")
            ax.set_ylabel("% of the gradient norm")
            ax.grid(lw=0.3, alpha=0.5)
            ax.legend(frameon=False, loc="best")
        fig.suptitle("Which term drives training: each weighted term's gradient norm w.r.t. "
                     "the output,\nas % of the sum over the terms; median over seeds, band = "
                     "min-max")
    return fig


def grad_share_sentences(shares: pd.DataFrame) -> list[str]:
    """One sentence per recipe from its last logged iteration (median over seeds)."""
    out = []
    for (profile, recipe), sub in shares.groupby(["profile", "recipe"], sort=True):
        last = sub["iteration"].max()
        at = sub[sub["iteration"] == last].groupby("term")["share"].median()
        seeds = sub["seed"].nunique()
        ranked = at.sort_values(ascending=False)
        lead, rest = ranked.index[0], ranked.iloc[1:]
        others = ", ".join(f"{t} {100 * v:.0f}%" for t, v in rest.items())
        top = 100 * ranked.iloc[0]
        out.append(f"in `{recipe}` ({profile}) the `{lead}` term supplies {top:.0f}%"
                   f" of the gradient at iteration {int(last)} ({others}; median over {seeds} "
                   f"seed{'s' if seeds != 1 else ''})")
    return out


def parse_derived(recipe: str) -> tuple[str, list[tuple[str, float]]] | None:
    """``"s3net@losses[2].weight=0.1"`` -> ``("s3net", [("losses[2].weight", 0.1)])``."""
    if "@" not in recipe:
        return None
    base, *parts = recipe.split("@")
    pairs = []
    for part in parts:
        match = _ASSIGN.match(part)
        if not match:
            return None
        try:
            pairs.append((match["key"], float(match["value"])))
        except ValueError:
            return None
    return base, pairs


def sensitivity_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows of grid-derived recipes: base, key (first swept key), value, series (the other
    keys' values), and every ``<metric>_mean`` / ``_ci_low`` / ``_ci_high`` column."""
    rows = []
    for row in summary.to_dict("records"):
        parsed = parse_derived(str(row["recipe"]))
        if parsed is None:
            continue
        base, pairs = parsed
        (key, value), rest = pairs[0], pairs[1:]
        series = ", ".join(f"{k}={v:g}" for k, v in rest) or base
        rows.append({**row, "base": base, "key": key, "value": value, "series": series})
    return pd.DataFrame(rows)


def sensitivity_figure(frame: pd.DataFrame, metrics: dict[str, str] | None = None
                       ) -> Figure:
    """Each metric against the swept value (mean and 95% CI over seeds), one row of panels per
    (base recipe, swept key), one line per value of the other swept keys. ``metrics``: metric
    -> axis title (default: the headline metrics, ``PSNR (dB)``...)."""
    if metrics is None:
        metrics = {m: metrics_mod.METRICS[m].heading for m in metrics_mod.headline()}
    groups = sorted(frame.groupby(["base", "key"]).groups) if len(frame) else []
    metrics = {m: t for m, t in metrics.items() if f"{m}_mean" in frame.columns
               and frame[f"{m}_mean"].notna().any()}
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, clamp_height(0.6 + 2.2 * max(1, len(groups)))),
                     layout="constrained")
        if not groups or not metrics:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no grid-derived recipes (sweep --grid) in these runs",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        axes = fig.subplots(len(groups), len(metrics), squeeze=False)
        for r, (base, key) in enumerate(groups):
            sub = frame[(frame["base"] == base) & (frame["key"] == key)]
            for c, (metric, title) in enumerate(metrics.items()):
                ax = axes[r, c]
                for k, (series, ssub) in enumerate(sub.groupby("series", sort=True)):
                    s = ssub.sort_values("value")
                    mean = s[f"{metric}_mean"].to_numpy(float)
                    low = mean - s[f"{metric}_ci_low"].to_numpy(float)
                    high = s[f"{metric}_ci_high"].to_numpy(float) - mean
                    err = np.nan_to_num(np.vstack([low, high]))
                    ax.errorbar(s["value"], mean, yerr=err, marker=MARKERS[k % len(MARKERS)], ms=3,
                                lw=1, capsize=2, color=PALETTE[k % len(PALETTE)], label=series)
                values = sub["value"]
                if (values > 0).all() and values.max() > 10 * values.min():
                    ax.set_xscale("log")
                ax.set_xlabel(key)
                ax.set_ylabel(title)
                ax.set_title(f"{base}: {title}")
                ax.grid(lw=0.3, alpha=0.5)
                if c == 0:
                    ax.legend(frameon=False, loc="best")
        fig.suptitle("Sensitivity: test metric against the swept value, mean and 95% CI over "
                     "seeds")
    return fig


def instrument_figures(shares: pd.DataFrame, summary: pd.DataFrame
                       ) -> list[tuple[str, str, Figure]]:
    """The figures of one (profile, dataset) group that have data: ``(kind, caption, figure)``."""
    out = []
    if len(shares):
        out.append(("grad_shares", "Share of the gradient per loss term, median over seeds",
                    grad_share_figure(shares)))
    frame = sensitivity_frame(summary)
    if len(frame):
        out.append(("sensitivity", "Sensitivity of each metric to the swept recipe value",
                    sensitivity_figure(frame)))
    return out


__all__ = ["grad_share_figure", "grad_share_sentences", "instrument_figures", "load_grad_shares",
           "parse_derived", "sensitivity_figure", "sensitivity_frame"]
