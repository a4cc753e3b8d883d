"""One table per metric (every seed's value, the mean, its interval, the difference to the
baseline) and the prediction for one new run: what docs/RESULTS.md and docs/PROTOCOL.md show
of the reference results.

Pure formatting of the frames of :mod:`.frames` and :mod:`.stats` (``runs`` and ``summary``),
like :mod:`.tables`; the one statistic computed here is the prediction interval of
:func:`prediction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark import metrics as metrics_mod
from benchmark.analysis.cells import family_text
from benchmark.analysis.stats import FEW_SEEDS
from benchmark.analysis.tables import dataset_words

__all__ = ["Prediction", "metric_markdown", "prediction", "prediction_markdown"]

ALPHA = 0.05


def _seed_values(runs: pd.DataFrame, group: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Recipes x seeds table of each finished run's value of ``metric`` (its metrics.json)."""
    ok = runs[(runs["status"] == "ok") & (runs["profile"] == group["profile"].iloc[0])
              & (runs["dataset"] == group["dataset"].iloc[0])]
    return ok.pivot_table(index="recipe", columns="seed", values=metric, aggfunc="first")


def _num(value: float, metric: str, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    d = metrics_mod.METRICS[metric].decimals
    return f"{value:+.{d}f}" if signed else f"{value:.{d}f}"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def metric_markdown(runs: pd.DataFrame, summary: pd.DataFrame, metric: str) -> str:
    """GitHub Markdown, per (profile, dataset): one row per recipe with every seed's value,
    mean ± SD over seeds, the 95% CI of the mean (Student t over the per-seed means) and the
    paired difference to the baseline with its 95% CI and Holm-adjusted p (the test the summary
    was made with). Rows in the summary's order (the baseline first)."""
    m = metrics_mod.METRICS[metric]
    label, unit, arrow = m.label, m.unit, m.arrow
    out = []
    for (profile, _dataset), group in summary.groupby(["profile", "dataset"], sort=True):
        values = _seed_values(runs, group, metric)
        seeds = sorted(int(s) for s in values.columns)
        baseline = group["baseline"].iloc[0]
        fixed = group["test"].iloc[0] == "fixed-images"
        out.append(f"**{label}{f' ({unit})' if unit else ''} {arrow}, profile `{profile}` on "
                   f"{dataset_words(group)}**\n")
        header = (["Recipe"] + [f"seed {s}" for s in seeds]
                  + ["mean ± SD", "95% CI", f"Δ vs {baseline} [95% CI]", "p (Holm)"])
        out.append("| " + " | ".join(header) + " |")
        out.append("|---|" + "|".join(["---:"] * (len(header) - 1)) + "|")
        for _, row in group.iterrows():
            per_seed = [_num(float(values.at[row["recipe"], s]), metric)
                        if row["recipe"] in values.index and s in values.columns
                        and pd.notna(values.at[row["recipe"], s]) else "–" for s in seeds]
            mean, sd = row[f"{metric}_mean"], row[f"{metric}_std"]
            cell = _num(mean, metric) + (f" ± {_num(sd, metric)}" if math.isfinite(sd) else "")
            low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
            ci = (f"[{_num(low, metric)}, {_num(high, metric)}]" if math.isfinite(low)
                  else "n/a")
            if row["is_baseline"]:
                diff, p = "base", ""
            else:
                d = row.get(f"{metric}_diff", math.nan)
                lo_key, hi_key, p_key = (("diff_fixed_ci_low", "diff_fixed_ci_high",
                                          "p_fixed_holm") if fixed else
                                         ("diff_ci_low", "diff_ci_high", "p_holm"))
                lo, hi = row.get(f"{metric}_{lo_key}", math.nan), row.get(
                    f"{metric}_{hi_key}", math.nan)
                diff = _num(d, metric, signed=True) + (
                    f" [{_num(lo, metric, True)}, {_num(hi, metric, True)}]"
                    if math.isfinite(lo) else "")
                p = _p(row.get(f"{metric}_{p_key}", math.nan))
            out.append("| " + " | ".join([row["recipe"], *per_seed, cell, ci, diff, p]) + " |")
        out.append("")
        test = ("t-test on the per-seed mean differences, these test images held fixed "
                "(--test fixed-images)" if fixed else
                "crossed seed × image random-effects test, Satterthwaite df")
        out.append(f"Each seed's value is that run's mean over the test images. 95% CI: Student "
                   f"t over the per-seed means. Δ: mean paired difference to {baseline} over the "
                   f"seeds both finished (same seed, same image); its interval and p from the "
                   f"{test}; p {family_text(group)}. No interval or p with fewer than "
                   f"{FEW_SEEDS} seeds.\n")
    return "\n".join(out).rstrip() + "\n"


@dataclass(frozen=True)
class Prediction:
    """Where one new run of a recipe should land (a per-seed mean over the test images)."""

    recipe: str
    metric: str
    n: int
    mean: float
    sd: float
    low: float  # 95% prediction interval for one new run
    high: float


def prediction(runs: pd.DataFrame, recipe: str, metric: str = "psnr") -> Prediction:
    """The 95% prediction interval for one new run from ``n`` finished runs of ``recipe``:
    ``mean ± t(0.975, n - 1) · sd · sqrt(1 + 1/n)`` over the per-run values (metrics.json,
    each run's mean over the test images); exact for normal run-to-run variation. Needs at
    least two runs for an interval (``nan`` bounds otherwise)."""
    ok = runs[(runs["status"] == "ok") & (runs["recipe"] == recipe)]
    values = ok[metric].astype(float).dropna().to_numpy()
    n = values.size
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return Prediction(recipe, metric, n, mean, math.nan, math.nan, math.nan)
    sd = float(np.std(values, ddof=1))
    half = float(sps.t.ppf(1 - ALPHA / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)
    return Prediction(recipe, metric, n, mean, sd, mean - half, mean + half)


def prediction_markdown(pred: Prediction, what: str) -> str:
    """One sentence: ``what`` (e.g. "a lite l1 run on LOL-v1") should score within ..."""
    label, unit = metrics_mod.METRICS[pred.metric].label, metrics_mod.METRICS[pred.metric].unit
    unit = f" {unit}" if unit else ""
    what = what[:1].upper() + what[1:]
    if not math.isfinite(pred.low):
        return (f"{what}: {pred.n} reference run(s) so far, too few for a "
                f"prediction interval.\n")
    return (f"{what} should score a test-set {label} within "
            f"**[{_num(pred.low, pred.metric)}, {_num(pred.high, pred.metric)}]{unit}** (95% "
            f"prediction interval for one new run: mean {_num(pred.mean, pred.metric)}{unit} ± "
            f"t · SD · √(1 + 1/n) over the reference's n = {pred.n} runs, SD "
            f"{_num(pred.sd, pred.metric)}{unit}).\n")
