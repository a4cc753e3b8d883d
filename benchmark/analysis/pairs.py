"""``compare --all-pairs``: every pair of recipes, the crossed test, Holm over all of them.

"Which loss is best" is a question about every pair, not about each recipe against one
baseline. Within a (profile, dataset) table every pair of recipes with at least
``FEW_SEEDS`` shared seeds is compared exactly as a recipe is compared with the baseline
(:func:`benchmark.analysis.stats.compare_pair`: paired by seed and image, crossed seed x image
test), and Holm's correction runs over every (pair, metric) test of the table: one family for
every claim the table then prints. The baseline comparisons are pairs of that family, so
their adjusted p-values replace the narrower family's in the summary.

Only then are ranks and bold claims: a recipe's tested rank is 1 + the number of recipes that
are significantly better than it (Holm-adjusted p < 0.05, recipes that finished every seed),
and a mean is bold only when that recipe is significantly better than every other one.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis.stats import FEW_SEEDS, collect, compare_pair, higher_is_better, holm
from benchmark.analysis.tables import p_text

__all__ = ["ALPHA", "all_pairs", "apply_pairs", "pairs_markdown"]

ALPHA = 0.05


def all_pairs(runs: pd.DataFrame, per_image: pd.DataFrame, summary: pd.DataFrame
              ) -> pd.DataFrame:
    """One row per (profile, dataset, metric, recipe a, recipe b) with ``a < b`` by name:
    ``diff`` (a - b), its 95% interval, p of the test the summary shows (``test`` column) and
    ``p_holm`` over every (pair, metric) test of the (profile, dataset) table; ``p_other`` and
    ``p_other_holm`` the same for the other test (crossed or fixed-images)."""
    _, data = collect(runs, per_image)
    fixed = bool(len(summary)) and summary["test"].iloc[0] == "fixed-images"
    rows = []
    for (profile, dataset), group in summary.groupby(["profile", "dataset"], sort=True):
        recipes = sorted(group.loc[group["n_ok"] > 0, "recipe"])
        for metric in metrics_mod.summarized():
            higher = higher_is_better(metric)
            for a, b in itertools.combinations(recipes, 2):
                got = compare_pair(data[(profile, dataset, a)][metric],
                               data[(profile, dataset, b)][metric], higher)
                if not math.isfinite(got["diff"]):
                    continue
                rows.append({
                    "profile": profile, "dataset": dataset, "metric": metric, "a": a, "b": b,
                    "diff": got["diff"], "n_shared_seeds": got["n_shared_seeds"],
                    "ci_low": got["diff_fixed_ci_low" if fixed else "diff_ci_low"],
                    "ci_high": got["diff_fixed_ci_high" if fixed else "diff_ci_high"],
                    "p": got["p_fixed" if fixed else "p"], "test_used": got["test_used"],
                    "p_other": got["p" if fixed else "p_fixed"],
                    "a_better": (got["diff"] > 0) == higher})
    frame = pd.DataFrame(rows, columns=["profile", "dataset", "metric", "a", "b", "diff",
                                        "n_shared_seeds", "ci_low", "ci_high", "p",
                                        "test_used", "p_other", "a_better"])
    frame["p_holm"] = frame["p_other_holm"] = np.nan
    for _, idx in frame.groupby(["profile", "dataset"]).groups.items():
        frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p"])
        frame.loc[idx, "p_other_holm"] = holm(frame.loc[idx, "p_other"])
    frame["family"] = frame.groupby(["profile", "dataset"])["p"].transform(
        lambda p: int(p.notna().sum()))
    return frame


def apply_pairs(summary: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``summary`` whose claims come from the all-pairs family: the baseline
    comparisons' Holm p-values (``<metric>_p_holm``, or ``_p_fixed_holm`` under the
    fixed-images test), ``holm_family``, and the tested ``<metric>_rank_tested`` and
    ``<metric>_best``."""
    out = summary.copy()
    fixed = bool(len(out)) and out["test"].iloc[0] == "fixed-images"
    out["family"] = "all-pairs"
    for metric in metrics_mod.summarized():
        out[f"{metric}_rank_tested"] = np.nan
        out[f"{metric}_best"] = False
    for (profile, dataset), idx in out.groupby(["profile", "dataset"]).groups.items():
        sub = pairs[(pairs["profile"] == profile) & (pairs["dataset"] == dataset)]
        out.loc[idx, "holm_family"] = int(sub["p"].notna().sum())
        sig = sub[sub["p_holm"] < ALPHA]
        winners = {(m, a if better else b, b if better else a)
                   for m, a, b, better in zip(sig["metric"], sig["a"], sig["b"],
                                              sig["a_better"], strict=True)}
        baseline = out.loc[idx, "baseline"].iloc[0]
        full = [i for i in idx if out.at[i, "full_seeds"]]
        for i in idx:
            recipe = out.at[i, "recipe"]
            for metric in metrics_mod.summarized():
                if recipe != baseline:
                    hit = sub[(sub["metric"] == metric)
                              & (((sub["a"] == recipe) & (sub["b"] == baseline))
                                 | ((sub["a"] == baseline) & (sub["b"] == recipe)))]
                    cols = (f"{metric}_p_fixed_holm", f"{metric}_p_holm")
                    for col, src in zip(cols if fixed else cols[::-1], ("p_holm", "p_other_holm"),
                                        strict=True):
                        out.at[i, col] = float(hit[src].iloc[0]) if len(hit) else np.nan
                if i not in full or not np.isfinite(out.at[i, f"{metric}_mean"]):
                    continue
                rivals = [out.at[j, "recipe"] for j in full if j != i
                          and np.isfinite(out.at[j, f"{metric}_mean"])]
                above = sum((metric, r, recipe) in winners for r in rivals)
                out.at[i, f"{metric}_rank_tested"] = 1 + above
                out.at[i, f"{metric}_best"] = bool(rivals) and all(
                    (metric, recipe, r) in winners for r in rivals)
    return out


def pairs_markdown(pairs: pd.DataFrame) -> str:
    """Markdown: per (profile, dataset) table, the pairs whose difference survives Holm, then
    a count of the rest."""
    out = []
    for (profile, dataset), sub in pairs.groupby(["profile", "dataset"], sort=True):
        n = int(sub["p"].notna().sum())
        out.append(f"**All pairs, profile `{profile}`, dataset `{str(dataset)[:12]}`**: "
                   f"{n} tests (every pair of recipes with {FEW_SEEDS} or more shared seeds x "
                   "every metric), crossed seed × image test, Holm-adjusted over all of them.\n")
        sig = sub[sub["p_holm"] < ALPHA]
        if sig.empty:
            out.append(f"No pair differs at Holm-adjusted p < {ALPHA:g}.\n")
            continue
        out.append("| Metric | Better | Worse | Δ (better − worse) [95% CI] | p (Holm) |")
        out.append("|---|---|---|---:|---:|")
        for r in sig.sort_values(["metric", "p_holm"]).itertuples():
            m = metrics_mod.METRICS[r.metric]
            label, unit, d = m.label, m.unit, m.decimals
            sign = 1 if r.a_better else -1
            lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
            win, lose = (r.a, r.b) if r.a_better else (r.b, r.a)
            note = " (t on seed means)" if r.test_used != "crossed" else ""
            out.append(f"| {label} | {win} | {lose} | {sign * r.diff:+.{d}f} "
                       f"[{lo:+.{d}f}, {hi:+.{d}f}]{f' {unit}' if unit else ''}{note} "
                       f"| {p_text(r.p_holm)} |")
        out.append(f"\n{n - len(sig)} other test(s) do not reach Holm-adjusted p < {ALPHA:g}; "
                   "that is not evidence of equal scores.\n")
    return "\n".join(out).rstrip() + "\n"
