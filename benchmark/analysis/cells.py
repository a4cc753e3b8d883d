"""Table cells that carry statistics: tested ranks, the Holm family, collapses, the
probability of improvement, the named difference of ``compare --mdd``.

Shared by :mod:`.tables` (Markdown and LaTeX) and :mod:`.report`; formatting constants only,
nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis.inference import MAX_SEEDS
from benchmark.analysis.stats import seeds_text


def collapse_text(row: pd.Series) -> str:
    """`` (collapsed k/n [a, b])`` when any finished run collapsed (Clopper-Pearson 95% CI of
    the rate; the collapsed runs are left out of means, intervals and tests)."""
    k = row.get("n_collapsed", 0)
    if not k or not math.isfinite(k):
        return ""
    n = int(k + row["n_ok"])
    return (f" (collapsed {int(k)}/{n} [{row['collapse_low']:.2f}, "
            f"{row['collapse_high']:.2f}]: seeds {seeds_text(row['collapsed_seeds'])})")


def unofficial(row: pd.Series) -> set[str]:
    """The pretrained files a summary row's runs used unofficial copies of."""
    return set(row["unofficial_weights"])


def metric_weights() -> set[str]:
    """Every pretrained file a metric needs (AlexNet for LPIPS); the others are training's."""
    return {w for m in metrics_mod.METRICS.values() for w in m.needs_weights}


def not_comparable(row: pd.Series, metric: str) -> bool:
    """Whether ``metric``'s value in ``row`` was made with unofficial pretrained weights."""
    return bool(set(metrics_mod.METRICS[metric].needs_weights) & unofficial(row))


def rank_cell(row: pd.Series, metrics: Sequence[str] | None = None) -> str:
    """Tested ranks of ``metrics`` (default: the headline ones; ``compare --all-pairs``: 1 +
    recipes significantly better), else -."""
    metrics = metrics_mod.headline() if metrics is None else metrics
    ranks = [row.get(f"{m}_rank_tested", math.nan) for m in metrics]
    return "/".join(f"{r:.0f}" if math.isfinite(r) else "-" for r in ranks)


def family_text(group: pd.DataFrame) -> str:
    """Which Holm family the p-values of a table are adjusted over, in words."""
    n = group["holm_family"].dropna() if "holm_family" in group else pd.Series([], dtype=float)
    if len(n) and int(n.iloc[0]) == 0:
        return "Holm-adjusted over the tests of this table (none: too few shared seeds)"
    size = f"the {int(n.iloc[0])} tests" if len(n) else "the tests"
    if "family" in group and (group["family"] == "all-pairs").any():
        return f"Holm-adjusted over {size} of every pair of recipes on every metric"
    return f"Holm-adjusted over {size} of this table (every recipe on every metric)"


def bold_text(group: pd.DataFrame) -> str:
    """What bold means in a table of ``group``, in words (bold exists only with the all-pairs
    tests of ``compare --all-pairs``)."""
    if "family" in group and (group["family"] == "all-pairs").any():
        return ("bold: the recipe significantly better than every other one on that metric "
                "(all-pairs tests, Holm over every pair and metric); none where no recipe is")
    return ("no bold and no ranks: only the all-pairs tests (compare -{}-all-pairs) could "
            "claim a best recipe, and they were not run")


def unit_text(metric: str) -> str:
    """`` dB`` or nothing: the metric's unit after a number."""
    unit = metrics_mod.METRICS[metric].unit
    return f" {unit}" if unit else ""


def mdd_targets(group: pd.DataFrame) -> dict[str, float]:
    """metric -> the difference named with ``compare --mdd`` (none: no such column)."""
    out = {}
    for metric in metrics_mod.headline():
        col = group.get(f"{metric}_mdd_target")
        if col is not None and col.notna().any():
            out[metric] = float(col.dropna().iloc[0])
    return out


def improve_cell(pi: float, lo: float, hi: float) -> str:
    if not math.isfinite(pi):
        return "-"
    return f"{pi:.2f} [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else f"{pi:.2f} (no CI)"


def power_notes(group: pd.DataFrame, s: dict[str, str], baseline: str) -> list[str]:
    """The comparisons table's footnotes on Detectable, the named difference, P(better) and
    Rank held (``s``: the Markdown or LaTeX symbols of :mod:`.tables`)."""
    return [
        "Detectable: the smallest true difference the default test finds with 80" + s["pct"]
        + " probability with this many seeds and images, simulated from the variance "
        "components fitted to the paired differences (the uncertainty of the estimated "
        "variances included; the components themselves are estimates from few seeds)."
        + (" Seeds to detect the named difference (--mdd): training seeds (with these test "
           f"images) at which the default test finds it with 80{s['pct']} probability; "
           f"{s['gt']} {MAX_SEEDS} when more seeds cannot do it (the test images limit it)."
           if mdd_targets(group) else ""),
        f"P(better than {baseline}): probability that a run of the recipe scores better than "
        f"the run of {baseline} with the same seed, on these test images (per-seed mean "
        "scores), assuming normal per-seed differences; median-unbiased estimate and exact "
        "95" + s["pct"] + " CI (noncentral t). No CI with fewer than 3 shared seeds. Rank "
        "held: share of 2000 draws of a parametric bootstrap of the crossed seed "
        f"{s['times']} image design in which the recipe keeps the rank of its mean (ranks of "
        "means, untested); only recipes that finished every seed are ranked.",
    ]
