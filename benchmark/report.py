"""Tables (Markdown, LaTeX, CSV), the figures command and ``results/report.md``.

Everything here is regenerated from the run folders alone: ``compare`` writes the tables,
``plots`` the figures, ``report`` both plus ``report.md`` that links them.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import pandas as pd
import yaml

from benchmark.stats import FEW_SEEDS, METRICS

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


def command_plots(args: argparse.Namespace) -> int:
    """``python -m benchmark plots``: regenerate every figure (PNG + PDF) into plots/."""
    from benchmark import plots
    from benchmark.results import DEFAULT_BASELINE, compare_frames

    results = Path(args.results)
    runs, per_image, summary = compare_frames(results, args.baseline)
    baseline = args.baseline or DEFAULT_BASELINE
    for fig in plots.write_figures(results, runs, per_image, summary, baseline):
        print(f"wrote {fig['png']} and {fig['pdf'].name}")
    return 0


# ---------------------------------------------------------------- report.md

def _short(value: object) -> str:
    """Hashes and commits cut to 12 characters (the full values are in each metrics.json)."""
    return str(value)[:12] if isinstance(value, str) else str(value)


def _rel(path: Path | str, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _first_config(runs: pd.DataFrame) -> dict | None:
    from benchmark.results import read_config

    ordered = runs.assign(_ok=runs["status"] != "ok").sort_values(["_ok", "seed"])
    for d in ordered["run_dir"]:
        config = read_config(Path(d) / "config.yaml")
        if config is not None:
            return config
    return None


def _yaml_block(value: object) -> list[str]:
    return ["```yaml", yaml.safe_dump(value, sort_keys=False).rstrip(), "```", ""]


def _warnings(runs: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    out = []
    names = sorted({w for text in runs["unofficial_weights"] for w in text.split(",") if w})
    for name in names:
        hit = runs[runs["unofficial_weights"].str.split(",").map(lambda ws, n=name: n in ws)]
        effect = "LPIPS" if name == "alexnet" else "the perceptual loss during training"
        out.append(f"unofficial `{name}` weights in {len(hit)} run(s) (recipes: "
                   f"{', '.join(sorted(hit['recipe'].unique()))}): {effect} used them, so those "
                   "figures are not comparable with published ones (marked †).")
    for r in runs[runs["status"] == "failed"].itertuples():
        out.append(f"`{r.run_id}` failed: {r.error or 'no error recorded'}")
    for r in runs[runs["status"] == "incomplete"].itertuples():
        out.append(f"`{r.run_id}` has no metrics.json (still running, or killed).")
    for r in summary[summary["n_missing"] > 0].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) has no run for seed(s) {r.missing_seeds}, "
                   "which other recipes have.")
    for r in summary[summary["n_ok"] == 0].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) has no finished run: no numbers for it.")
    for r in summary[summary["n_ok"].between(1, FEW_SEEDS - 1)].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) has {r.n_ok} finished seed(s): fewer than "
                   f"{FEW_SEEDS}, so its CI says little about seed-to-seed variation.")
    commits = runs["git_commit"].dropna().unique()
    if len(commits) > 1:
        out.append(f"the runs come from {len(commits)} different commits "
                   f"({', '.join(_short(c) for c in sorted(commits))}).")
    dirty = runs[runs["git_dirty"].eq(True)]
    if len(dirty):
        out.append(f"{len(dirty)} run(s) were made from a git tree with uncommitted changes.")
    ok_missing = runs[(runs["status"] == "ok") & (runs["missing_files"] != "")]
    for r in ok_missing.itertuples():
        out.append(f"`{r.run_id}` lacks {r.missing_files.replace(',', ', ')}.")
    return out


def _recipe_notes(runs: pd.DataFrame) -> list[str]:
    out = []
    for recipe, sub in runs.groupby("recipe", sort=True):
        config = _first_config(sub) or {}
        spec = config.get("recipe") or {}
        out.append(f"### {recipe}\n")
        if spec.get("description"):
            out.append(f"{spec['description']}  ")
        if spec.get("source"):
            out.append(f"Source: `{spec['source']}`  ")
        losses = spec.get("losses") or []
        if losses:
            out += ["", "| Loss | Weight | Params | Log label |", "|---|---:|---|---|"]
            for loss in losses:
                params = ", ".join(f"{k}={v}" for k, v in (loss.get("params") or {}).items())
                out.append(f"| {loss.get('name')} | {loss.get('weight')} | {params or '-'} | "
                           f"{loss.get('label', '-')} |")
        elif not config:
            out.append("No config.yaml in any of its runs.")
        out.append("")
    return out


def _environment(runs: pd.DataFrame) -> list[str]:
    cols = ["torch", "device", "device_name", "git_commit", "git_dirty"]
    env = runs[runs["status"] != "incomplete"][cols].astype(str)
    counts = env.value_counts(sort=False).reset_index(name="runs")
    out = ["| torch | device | device name | git commit | dirty tree | runs |",
           "|---|---|---|---|---|---:|"]
    out += [f"| {r.torch} | {r.device} | {r.device_name} | {_short(r.git_commit)} | "
            f"{r.git_dirty} | {r.runs} |" for r in counts.itertuples()]
    return out + [""]


def _provenance(runs: pd.DataFrame, results: Path) -> list[str]:
    out = ["| Run folder | Status | Config hash | Commit | Finished | Missing files |",
           "|---|---|---|---|---|---|"]
    for r in runs.sort_values(["profile", "recipe", "seed"]).itertuples():
        rel = _rel(r.run_dir, results)
        out.append(f"| [{rel}]({rel}/) | {r.status} | `{_short(r.config_hash)}` | "
                   f"`{_short(r.git_commit)}` | {r.finished_at or '-'} | "
                   f"{r.missing_files or '-'} |")
    return out + [""]


def write_report(results: Path, baseline: str | None = None) -> Path:
    """Regenerate tables and figures, then write ``results/report.md`` linking them."""
    from benchmark.plots import write_figures
    from benchmark.results import DEFAULT_BASELINE, compare_frames

    runs, per_image, summary = compare_frames(results, baseline)
    baseline = baseline or DEFAULT_BASELINE
    tables = write_tables(summary, results / "tables")
    figures = write_figures(results, runs, per_image, summary, baseline)
    lines = [
        "# lossbench report", "",
        f"Generated from {len(runs)} run folder(s) under `runs/` by "
        f"`python -m benchmark report --results {results.as_posix()} --baseline {baseline}`; "
        "every number below comes from the run folders listed under Provenance.", "",
        "## Warnings", "",
    ]
    warns = _warnings(runs, summary)
    lines += [f"- {w}" for w in warns] or ["None."]
    lines += ["", "## Summary", "", markdown_tables(summary),
              "Tables: " + ", ".join(f"[{p.name}]({_rel(p, results)})" for p in tables), "",
              "## Figures", ""]
    for fig in figures:
        png, pdf = _rel(fig["png"], results), _rel(fig["pdf"], results)
        lines += [f"**{fig['caption']}** (profile `{fig['profile']}`, dataset "
                  f"`{str(fig['dataset'])[:12]}`, [PDF]({pdf}))", "", f"![{fig['caption']}]({png})",
                  ""]
    lines += ["## Protocol", ""]
    for profile, sub in runs.groupby("profile", sort=True):
        config = _first_config(sub) or {}
        lines += [f"### {profile}", ""]
        lines += (_yaml_block(config["protocol"]) if "protocol" in config
                  else ["No config.yaml found for this profile.", ""])
    lines += ["## Dataset", ""]
    for dataset, sub in runs.groupby("dataset", sort=True):
        first = sub.iloc[0]
        lines += [f"### `{str(dataset)[:12]}`", "",
                  f"manifest sha256 `{dataset}`: root `{first['dataset_root']}`, layout "
                  f"`{first['dataset_layout']}`, {sub['n_images'].max()} test image(s), "
                  f"{len(sub)} run(s).", ""]
        config = _first_config(sub) or {}
        if "data" in config:
            lines += _yaml_block(config["data"])
    lines += ["## Environment", ""] + _environment(runs)
    lines += ["## Recipes", ""] + _recipe_notes(runs)
    lines += ["## Provenance", ""] + _provenance(runs, results)
    path = results / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def command_report(args: argparse.Namespace) -> int:
    """``python -m benchmark report``: tables, figures and results/report.md."""
    path = write_report(Path(args.results), args.baseline)
    print(f"wrote {path}")
    return 0
