"""Summary tables as Markdown, LaTeX and CSV, from the summary frame of :mod:`.stats`.

Pure formatting: nothing here reads run folders or computes a statistic.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.analysis.stats import FEW_SEEDS, METRICS

# metric -> (label, unit, decimals)
METRIC_TEXT = {
    "psnr": ("PSNR", "dB", 2),
    "ssim": ("SSIM", "", 3),
    "lpips": ("LPIPS", "", 3),
    "psnr_gtmean": ("GT-mean PSNR", "dB", 2),
}
DIFF_METRICS = ("psnr", "ssim", "lpips")
ALPHA = 0.05

_MD = {"pct": "%", "pm": "±", "up": "↑", "down": "↓", "delta": "Δ", "dagger": "†",
       "ddagger": "‡", "bold": "**{}**", "code": "`{}`"}
_TEX = {"pct": r"\%", "pm": r"$\pm$", "up": r"$\uparrow$", "down": r"$\downarrow$",
        "delta": r"$\Delta$", "dagger": r"$^\dagger$", "ddagger": r"$^\ddagger$",
        "bold": r"\textbf{{{}}}", "code": r"\texttt{{{}}}"}


def _tex_escape(text: str) -> str:
    text = text.replace("\\", "\x00")
    for ch in "_%&#${}":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\x00", r"\textbackslash{}")


def _seeds_cell(row: pd.Series, s: dict[str, str]) -> str:
    total = row["n_ok"] + row["n_failed"] + row["n_incomplete"] + row["n_missing"]
    text = f"{row['n_ok']}" if row["n_ok"] == total else f"{row['n_ok']} of {total}"
    notes = [f"{what}: {row[f'{what}_seeds']}" for what in ("failed", "incomplete", "missing")
             if row[f"n_{what}"]]
    if notes:
        text += f" ({'; '.join(notes)})"
    if row["n_ok"] < FEW_SEEDS:
        text += s["ddagger"]
    return text


def _metric_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    mean = row[f"{metric}_mean"]
    if not math.isfinite(mean):
        return "n/a"
    d = METRIC_TEXT[metric][2]
    text = f"{mean:.{d}f}"
    std, low, high = row[f"{metric}_std"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if math.isfinite(std):
        text += f" {s['pm']} {std:.{d}f}"
    text += f" [{low:.{d}f}, {high:.{d}f}]"
    return text


def _diff_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    if row["is_baseline"]:
        return "baseline"
    diff, p = row[f"{metric}_diff"], row[f"{metric}_p_holm"]
    if not math.isfinite(diff):
        return "n/a"
    d = METRIC_TEXT[metric][2]
    star = "*" if math.isfinite(p) and p < ALPHA else ""
    text = f"{diff:+.{d}f}" if abs(diff) >= 10**-d or diff == 0 else f"{diff:+.1e}"
    return f"{text} (p={p:.2g}{star})"


def _is_best(group: pd.DataFrame, column: str, higher: bool, decimals: int) -> pd.Series:
    """The best value at the precision shown (ties at that precision are all bold)."""
    values = group[column].round(decimals)
    if values.notna().sum() < 2:
        return pd.Series(False, index=group.index)
    best = values.max() if higher else values.min()
    return values == best


def _group_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    baseline = group["baseline"].iloc[0]
    header = ["Recipe", "Seeds"]
    for metric, higher in METRICS.items():
        label, unit, _ = METRIC_TEXT[metric]
        header.append(f"{label}{f' ({unit})' if unit else ''} {s['up' if higher else 'down']}")
    for metric in DIFF_METRICS:
        label, unit, _ = METRIC_TEXT[metric]
        header.append(f"{s['delta']}{label} vs {baseline}{f' ({unit})' if unit else ''}")
    header += [f"Train time (s) {s['down']}", "Rank PSNR/SSIM/LPIPS"]
    best = {m: _is_best(group, f"{m}_mean", h, METRIC_TEXT[m][2]) for m, h in METRICS.items()}
    best["time"] = _is_best(group, "train_seconds_mean", False, 0)
    rows = []
    for i, row in group.iterrows():
        unofficial = [w for w in row["unofficial_weights"].split(",") if w]
        name = row["recipe"] + (s["dagger"] if set(unofficial) - {"alexnet"} else "")
        cells = [name, _seeds_cell(row, s)]
        for metric in METRICS:
            cell = _metric_cell(row, metric, s)
            cell = s["bold"].format(cell) if best[metric][i] else cell
            if metric == "lpips" and not row["lpips_comparable"] and cell != "n/a":
                cell += s["dagger"]
            cells.append(cell)
        cells += [_diff_cell(row, m, s) for m in DIFF_METRICS]
        t = row["train_seconds_mean"]
        tcell = f"{t:.0f}" if math.isfinite(t) else "n/a"
        cells.append(s["bold"].format(tcell) if best["time"][i] else tcell)
        ranks = [row[f"{m}_rank"] for m in ("psnr", "ssim", "lpips")]
        cells.append("/".join(f"{r:.0f}" if math.isfinite(r) else "-" for r in ranks))
        rows.append(cells)
    return header, rows


def _footnotes(group: pd.DataFrame, s: dict[str, str]) -> list[str]:
    baseline = group["baseline"].iloc[0]
    notes = [
        f"Metric cells: mean {s['pm']} std over seeds [95{s['pct']} CI: hierarchical bootstrap, "
        "seeds then test images, 2000 resamples]; best mean per column in bold.",
        f"{s['delta']}: mean paired difference to {baseline} over (seed, image) pairs; p: "
        "Wilcoxon signed-rank, Holm-adjusted across recipes; * p < 0.05.",
    ]
    if group["unofficial_weights"].str.len().gt(0).any():
        notes.append(f"{s['dagger']} made with unofficial pretrained weights (alexnet: LPIPS; "
                     "vgg19: perceptual loss in training): not comparable with published "
                     "numbers.")
    if (group["n_ok"] < FEW_SEEDS).any():
        notes.append(f"{s['ddagger']} fewer than {FEW_SEEDS} finished seeds: the CI barely "
                     "samples seed-to-seed variation.")
    if not group["is_baseline"].any():
        notes.append(f"No runs of the baseline {baseline} in this group: no differences.")
    for recipe, errors in zip(group["recipe"], group["errors"], strict=True):
        if isinstance(errors, str) and errors:
            notes.append(f"Failed: {recipe} {errors}")
    return notes


def _group_title(profile: str, dataset: str, s: dict[str, str]) -> str:
    return f"profile {s['code'].format(profile)}, dataset {s['code'].format(dataset[:12])}"


def _groups(summary: pd.DataFrame):
    return summary.groupby(["profile", "dataset"], sort=True)


def markdown_tables(summary: pd.DataFrame) -> str:
    """GitHub Markdown: one table per (profile, dataset), best per column bold, footnotes."""
    out = []
    for (profile, dataset), group in _groups(summary):
        header, rows = _group_table(group, _MD)
        out.append(f"**{_group_title(profile, dataset, _MD)}**\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(cells) + " |" for cells in rows]
        out.append("")
        out += [f"{n}  " for n in _footnotes(group, _MD)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def latex_tables(summary: pd.DataFrame) -> str:
    """booktabs tables (``\\usepackage{booktabs}``), one per (profile, dataset)."""
    out = []
    for (profile, dataset), group in _groups(summary):
        group = group.assign(recipe=group["recipe"].map(_tex_escape),
                             baseline=group["baseline"].map(_tex_escape),
                             errors=group["errors"].map(
                                 lambda e: _tex_escape(e) if isinstance(e, str) else e))
        header, rows = _group_table(group, _TEX)
        title = _group_title(_tex_escape(profile), _tex_escape(dataset), _TEX)
        out += [r"\begin{table*}[t]", r"\centering", r"\scriptsize",
                rf"\caption{{lossbench summary: {title}.}}",
                r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
                " & ".join(header) + r" \\", r"\midrule"]
        out += [" & ".join(cells) + r" \\" for cells in rows]
        out += [r"\bottomrule", r"\end{tabular}"]
        out += [r"\par\smallskip\footnotesize " + n for n in _footnotes(group, _TEX)]
        out += [r"\end{table*}", ""]
    return "\n".join(out)


def write_tables(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``summary.csv`` (every column), ``summary.md`` and ``summary.tex``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "summary.csv", out_dir / "summary.md", out_dir / "summary.tex"]
    summary.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(markdown_tables(summary), encoding="utf-8")
    paths[2].write_text(latex_tables(summary), encoding="utf-8")
    return paths
