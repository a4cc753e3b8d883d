"""The comparisons with the baseline in full, and the wide Markdown summary.

Split from :mod:`.tables` (same conventions: pure formatting of the summary frame). The wide
summary (:func:`markdown_tables`, every column) is what ``compare --wide`` prints and
``tables/summary.md`` holds; the comparisons table (p, power, probability of improvement,
ranks) follows it there and in the report.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.analysis.inference import MAX_SEEDS
from benchmark.analysis.tables import (
    _MD,
    ALPHA,
    DIFF_METRICS,
    METRIC_TEXT,
    _diff_cell,
    _fixed,
    _fmt,
    _footnotes,
    _group_table,
    _group_title,
    _groups,
    computed,
    p_text,
)


def _details_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """One row per (recipe, metric): the comparison with the baseline in full, and ranks."""
    baseline = group["baseline"].iloc[0]
    header = ["Recipe", "Metric", f"{s['delta']} [95% CI]", "p", "p, this test set",
              "Detectable (80% power)", "Seeds for 80% power",
              f"P(better than {baseline}) [95% CI]", "Rank held"]
    header = [h.replace("%", s["pct"]) for h in header]
    rows = []
    recorded = computed(group, DIFF_METRICS)  # LPIPS may not be
    for _, row in group.iterrows():
        for metric in recorded:
            d = METRIC_TEXT[metric][2]
            rank_held = _fmt(100 * row[f"{metric}_rank_stability"], ".0f")
            rank_held += s["pct"] if rank_held != "-" else ""
            cells = [row["recipe"], METRIC_TEXT[metric][0]]
            if row["is_baseline"] or not math.isfinite(row[f"{metric}_diff"]):
                rows.append(cells + ["baseline" if row["is_baseline"] else "n/a"] + ["-"] * 5
                            + [rank_held])
                continue
            diff_cell = _diff_cell(row, metric, s).split(" (p ")[0]
            p, pf = row[f"{metric}_p_holm"], row[f"{metric}_p_fixed_holm"]
            need = row[f"{metric}_seeds_needed"]
            need_text = (f"{s['gt']} {MAX_SEEDS}" if need == math.inf
                         else _fmt(need, ".0f"))
            mde = row[f"{metric}_mde"]
            pi, lo, hi = (row[f"{metric}_p_improve{x}"] for x in ("", "_low", "_high"))
            cells += [diff_cell,
                      p_text(p) + ("*" if math.isfinite(p) and p < ALPHA else ""),
                      p_text(pf) + ("*" if math.isfinite(pf) and pf < ALPHA else ""),
                      _fixed(mde, d) if math.isfinite(mde) else "-",
                      need_text,
                      f"{pi:.2f} [{lo:.2f}, {hi:.2f}]" if math.isfinite(pi) else "-",
                      rank_held]
            rows.append(cells)
    return header, rows


def _has_details(group: pd.DataFrame) -> bool:
    """Whether any comparison was tested or any rank was bootstrapped."""
    cols = [f"{m}_{c}" for m in DIFF_METRICS for c in ("p", "rank_stability")]
    return bool(group[cols].notna().to_numpy().any())


def _details_footnotes(group: pd.DataFrame, s: dict[str, str]) -> list[str]:
    baseline = group["baseline"].iloc[0]
    return [
        f"p: the default test of the {s['delta']} column (runs and test images both random), "
        "Holm-adjusted. p, this test set: treats the test images as fixed (t-test on the "
        "per-seed mean differences, Holm-adjusted); it asks only whether the difference on "
        "these images would persist over more training runs, and is too small when other "
        "images could order the losses differently.",
        "Detectable: the smallest true difference the default test finds with 80" + s["pct"]
        + " probability with these seeds and images, from the observed variances. Seeds for "
        "80" + s["pct"] + " power: training seeds (with these test images) needed to detect "
        f"the observed {s['delta']}; {s['gt']} {MAX_SEEDS} when more seeds cannot do it "
        "(the test images limit it, or the difference is negligible).",
        f"P(better than {baseline}): probability that a run of the recipe scores better than "
        f"a run of {baseline} (all pairs of their shared seeds; Agarwal et al. 2021), with a "
        "stratified bootstrap CI. Rank held: share of 2000 bootstrap replicates (seeds and "
        "test images resampled together for all recipes) in which the recipe keeps its rank; "
        "only recipes that finished every seed are ranked.",
    ]


def markdown_tables(summary: pd.DataFrame) -> str:
    """GitHub Markdown: one table per (profile, dataset), best per column bold, footnotes."""
    out = []
    for (profile, _dataset), group in _groups(summary):
        header, rows = _group_table(group, _MD)
        out.append(f"**{_group_title(profile, group, _MD)}**\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(cells) + " |" for cells in rows]
        out.append("")
        out += [f"{n}  " for n in _footnotes(group, _MD)]
        out.append("")
        if _has_details(group):
            header, rows = _details_table(group, _MD)
            out.append(f"Comparisons and ranks, {_group_title(profile, group, _MD)}:\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
            out += ["| " + " | ".join(cells) + " |" for cells in rows]
            out.append("")
            out += [f"{n}  " for n in _details_footnotes(group, _MD)]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


__all__ = ["markdown_tables"]
