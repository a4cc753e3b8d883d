"""The comparisons with the baseline in full, and the wide Markdown summary.

Split from :mod:`.tables` (same conventions: pure formatting of the summary frame). The wide
summary (:func:`markdown_tables`, every column) is what ``compare --wide`` prints and
``tables/summary.md`` holds; the comparisons table (p, power, probability of improvement,
ranks) follows it there and in the report.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis.cells import family_text, improve_cell, mdd_targets, power_notes, unit_text
from benchmark.analysis.inference import MAX_SEEDS
from benchmark.analysis.tables import (
    ALPHA,
    MARKDOWN,
    computed,
    diff_cell,
    fixed_text,
    group_title,
    groups,
    number_text,
    p_text,
    wide_footnotes,
    wide_table,
)


def details_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """The comparisons table: one row per (recipe, headline metric), the comparison with the
    baseline in full (p of both tests, detectable difference, seeds for ``--mdd``, probability
    of improvement) and how often the rank held. ``s``: :data:`.tables.MARKDOWN` or
    :data:`.tables.LATEX`."""
    baseline = group["baseline"].iloc[0]
    targets = mdd_targets(group)
    header = ["Recipe", "Metric", f"{s['delta']} [95% CI]", "p", "p, this test set",
              "Detectable (80% power)"]
    header += ["Seeds to detect the named difference"] if targets else []
    header += [f"P(better than {baseline}) [95% CI]", "Rank held"]
    header = [h.replace("%", s["pct"]) for h in header]
    rows = []
    recorded = computed(group, metrics_mod.headline())  # LPIPS may not be
    for _, row in group.iterrows():
        for metric in recorded:
            d = metrics_mod.METRICS[metric].decimals
            rank_held = number_text(100 * row[f"{metric}_rank_stability"], ".0f")
            rank_held += s["pct"] if rank_held != "-" else ""
            cells = [row["recipe"], metrics_mod.METRICS[metric].label]
            if row["is_baseline"] or not math.isfinite(row[f"{metric}_diff"]):
                rows.append(cells + ["baseline" if row["is_baseline"] else "n/a"]
                            + ["-"] * (5 if targets else 4) + [rank_held])
                continue
            shown_diff = diff_cell(row, metric, s).split(" (p ")[0]
            p, pf = row[f"{metric}_p_holm"], row[f"{metric}_p_fixed_holm"]
            need = row[f"{metric}_seeds_for_mdd"]
            need_text = (f"{s['gt']} {MAX_SEEDS}" if need == math.inf
                         else number_text(need, ".0f"))
            if metric in targets and need_text != "-":
                need_text += f" (for {targets[metric]:g}{unit_text(metric)})"
            mde = row[f"{metric}_mde"]
            pi, lo, hi = (row[f"{metric}_p_improve{x}"] for x in ("", "_low", "_high"))
            cells += [shown_diff,
                      p_text(p) + ("*" if math.isfinite(p) and p < ALPHA else ""),
                      p_text(pf) + ("*" if math.isfinite(pf) and pf < ALPHA else ""),
                      fixed_text(mde, d) if math.isfinite(mde) else "-"]
            cells += [need_text] if targets else []
            cells += [improve_cell(pi, lo, hi), rank_held]
            rows.append(cells)
    return header, rows


def has_details(group: pd.DataFrame) -> bool:
    """Whether any comparison was tested or any rank was bootstrapped (else the group has no
    comparisons table)."""
    cols = [f"{m}_{c}" for m in metrics_mod.headline() for c in ("p", "rank_stability")]
    return bool(group[cols].notna().to_numpy().any())


def details_footnotes(group: pd.DataFrame, s: dict[str, str]) -> list[str]:
    """The comparisons table's notes: the two tests, then :func:`.cells.power_notes`."""
    baseline = group["baseline"].iloc[0]
    return [
        f"p: the default test of the {s['delta']} column (runs and test images both random), "
        f"{family_text(group)}. p, this test set: treats the test images as fixed (t-test on "
        "the per-seed mean differences, Holm-adjusted the same way); it asks only whether the "
        "difference on these images would persist over more training runs, and is too small "
        "when other images could order the losses differently.",
        *power_notes(group, s, baseline),
    ]


def markdown_tables(summary: pd.DataFrame) -> str:
    """GitHub Markdown: one table per (profile, dataset), every column, footnotes (bold only
    where the all-pairs tests found a best recipe)."""
    out = []
    for (profile, _dataset), group in groups(summary):
        header, rows = wide_table(group, MARKDOWN)
        out.append(f"**{group_title(profile, group, MARKDOWN)}**\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(cells) + " |" for cells in rows]
        out.append("")
        out += [f"{n}  " for n in wide_footnotes(group, MARKDOWN)]
        out.append("")
        if has_details(group):
            header, rows = details_table(group, MARKDOWN)
            out.append(f"Comparisons and ranks, {group_title(profile, group, MARKDOWN)}:\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
            out += ["| " + " | ".join(cells) + " |" for cells in rows]
            out.append("")
            out += [f"{n}  " for n in details_footnotes(group, MARKDOWN)]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


__all__ = ["details_footnotes", "details_table", "has_details", "markdown_tables"]
