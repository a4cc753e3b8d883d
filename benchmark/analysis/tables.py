"""Summary tables as Markdown, LaTeX and CSV, from the summary frame of :mod:`.stats`.

Pure formatting: nothing here reads run folders or computes a statistic.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.analysis.inference import MAX_SEEDS
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
       "ddagger": "‡", "section": "§", "bold": "**{}**", "code": "`{}`", "times": "×",
       "gt": ">"}
_TEX = {"pct": r"\%", "pm": r"$\pm$", "up": r"$\uparrow$", "down": r"$\downarrow$",
        "delta": r"$\Delta$", "dagger": r"$^\dagger$", "ddagger": r"$^\ddagger$",
        "section": r"$^\S$", "bold": r"\textbf{{{}}}", "code": r"\texttt{{{}}}",
        "times": r"$\times$", "gt": r"$>$"}


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
    if row["n_ok"] and not row["full_seeds"]:
        text += s["section"]
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
    if math.isfinite(low):
        text += f" [{low:.{d}f}, {high:.{d}f}]"
    return text


def _signed(value: float, d: int) -> str:
    return f"{value:+.{d}f}" if abs(value) >= 10**-d or value == 0 else f"{value:+.1e}"


def _diff_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    if row["is_baseline"]:
        return "baseline"
    diff, p = row[f"{metric}_diff"], row[f"{metric}_p_holm"]
    if not math.isfinite(diff):
        return "n/a"
    d = METRIC_TEXT[metric][2]
    text = _signed(diff, d)
    fixed = row.get("test") == "fixed-images"
    if fixed:
        p = row[f"{metric}_p_fixed_holm"]
    if not math.isfinite(p):
        shared = int(row[f"{metric}_n_shared_seeds"])
        return f"{text} (no test: {shared} shared seed{'s' if shared != 1 else ''})"
    star = "*" if p < ALPHA else ""
    ci = "diff_fixed_ci" if fixed else "diff_ci"
    low, high = row[f"{metric}_{ci}_low"], row[f"{metric}_{ci}_high"]
    return f"{text} [{_signed(low, d)}, {_signed(high, d)}] (p={p:.2g}{star})"


def _is_best(group: pd.DataFrame, column: str, higher: bool, decimals: int) -> pd.Series:
    """The best value at the precision shown among recipes that finished every seed (ties at
    that precision are all bold)."""
    values = group[column].round(decimals).where(group["full_seeds"])
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
        f"Metric cells: mean {s['pm']} SD over seeds of each run's mean over the test images "
        f"[95{s['pct']} CI of the expected score on this test set over training runs: Student "
        "t over the per-seed means]; best mean per column in bold among the recipes that "
        "finished every seed.",
        f"{s['delta']}: mean paired difference to {baseline} (same seed = same initialisation "
        "and crops; same image), over the seeds both finished [95" + s["pct"] + " CI]; p: "
        + ("FIXED TEST SET (--test fixed-images): t-test on the per-seed mean differences, "
           "treating these test images as fixed; it says whether the difference on these images "
           "would persist over more training runs, not over other test images"
           if group["test"].iloc[0] == "fixed-images" else
           "two-sided test treating both the training runs and the test images as samples "
           f"(crossed seed {s['times']} image random effects, Satterthwaite df)")
        + "; Holm-adjusted across recipes; * p < 0.05. p is the chance of a difference at least "
        "this large if both losses had the same expected score.",
    ]
    if group["unofficial_weights"].str.len().gt(0).any():
        notes.append(f"{s['dagger']} made with unofficial pretrained weights (alexnet: LPIPS; "
                     "vgg19: perceptual loss in training): not comparable with published "
                     "numbers.")
    if (group["n_ok"] < FEW_SEEDS).any():
        notes.append(f"{s['ddagger']} fewer than {FEW_SEEDS} finished seeds: the SD and CI rest "
                     "on too few runs to say much.")
    if ((group["n_ok"] > 0) & ~group["full_seeds"]).any():
        notes.append(f"{s['section']} did not finish every seed of this table "
                     f"({group['group_seeds'].iloc[0]}): shown on its own seeds, not bolded or "
                     f"ranked; its {s['delta']} uses the seeds it shares with {baseline}.")
    if (group["is_baseline"].any() and (~group["is_baseline"] & group["n_ok"].gt(0)
                                        & group["psnr_p"].isna()).any()):
        notes.append(f"no p-value with fewer than {FEW_SEEDS} seeds shared with {baseline}: "
                     "run-to-run variation cannot be estimated well enough for a test.")
    if not group["is_baseline"].any():
        notes.append(f"No runs of the baseline {baseline} in this group: no differences.")
    for recipe, errors in zip(group["recipe"], group["errors"], strict=True):
        if isinstance(errors, str) and errors:
            notes.append(f"Failed: {recipe} {errors}")
    return notes


def _fmt(value: float, spec: str, missing: str = "-") -> str:
    return format(value, spec) if math.isfinite(value) else missing


def _details_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """One row per (recipe, metric): the comparison with the baseline in full, and ranks."""
    baseline = group["baseline"].iloc[0]
    header = ["Recipe", "Metric", f"{s['delta']} [95% CI]", "p", "p, this test set",
              "Detectable (80% power)", "Seeds for 80% power",
              f"P(better than {baseline}) [95% CI]", "Rank held"]
    header = [h.replace("%", s["pct"]) for h in header]
    rows = []
    for _, row in group.iterrows():
        for metric in DIFF_METRICS:
            d = METRIC_TEXT[metric][2]
            rank_held = _fmt(100 * row[f"{metric}_rank_stability"], ".0f")
            rank_held += s["pct"] if rank_held != "-" else ""
            cells = [row["recipe"], METRIC_TEXT[metric][0]]
            if row["is_baseline"] or not math.isfinite(row[f"{metric}_diff"]):
                rows.append(cells + ["baseline" if row["is_baseline"] else "n/a"] + ["-"] * 5
                            + [rank_held])
                continue
            diff_cell = _diff_cell(row, metric, s).split(" (p=")[0]
            p, pf = row[f"{metric}_p_holm"], row[f"{metric}_p_fixed_holm"]
            need = row[f"{metric}_seeds_needed"]
            need_text = (f"{s['gt']} {MAX_SEEDS}" if need == math.inf
                         else _fmt(need, ".0f"))
            mde = row[f"{metric}_mde"]
            pi, lo, hi = (row[f"{metric}_p_improve{x}"] for x in ("", "_low", "_high"))
            cells += [diff_cell,
                      _fmt(p, ".2g") + ("*" if math.isfinite(p) and p < ALPHA else ""),
                      _fmt(pf, ".2g") + ("*" if math.isfinite(pf) and pf < ALPHA else ""),
                      _fmt(mde, f".{d}f") if not 0 < mde < 10**-d else f"{mde:.1e}",
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
        if _has_details(group):
            header, rows = _details_table(group, _MD)
            out.append(f"Comparisons and ranks, {_group_title(profile, dataset, _MD)}:\n")
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
            out += ["| " + " | ".join(cells) + " |" for cells in rows]
            out.append("")
            out += [f"{n}  " for n in _details_footnotes(group, _MD)]
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
        if _has_details(group):
            header, rows = _details_table(group, _TEX)
            out += [r"\begin{table*}[t]", r"\centering", r"\scriptsize",
                    rf"\caption{{lossbench comparisons and ranks: {title}.}}",
                    r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
                    " & ".join(header) + r" \\", r"\midrule"]
            out += [" & ".join(cells) + r" \\" for cells in rows]
            out += [r"\bottomrule", r"\end{tabular}"]
            out += [r"\par\smallskip\footnotesize " + n
                    for n in _details_footnotes(group, _TEX)]
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
