"""``results/report.md``: tables, figures, protocol, dataset, environment and provenance.

Regenerated from the run folders alone; it links the tables and figures it (re)writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import yaml

from benchmark.analysis.comparisons import details_footnotes, details_table, has_details
from benchmark.analysis.frames import DEFAULT_BASELINE, compare_frames, read_config
from benchmark.analysis.instruments import grad_share_sentences, load_grad_shares
from benchmark.analysis.output import refuse_shipped, write_text_atomic
from benchmark.analysis.plots import write_figures
from benchmark.analysis.reference import write_reference_check
from benchmark.analysis.stats import FEW_SEEDS, seeds_text
from benchmark.analysis.summary_files import write_tables
from benchmark.analysis.tables import (
    MARKDOWN,
    compact_footnotes,
    compact_table,
    dataset_words,
    extras_words,
    groups,
    intervals_table,
    runs_footnote,
    runs_table,
    short_headers,
)
from benchmark.references import bibliography, common_keys, field, short_citation


def _md_table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in header) + " |",
           "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"]
    return out + ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in rows] + [""]


#: where the compact table's readers find the intervals and tests
MORE_COMPARE = "`compare --wide` and tables/summary.md"
MORE_REPORT = "the tables below"


def _compact_section(group: pd.DataFrame, title: str, more: str = MORE_COMPARE) -> list[str]:
    out = [f"**Summary, {title}**\n"] + _md_table(*compact_table(group, MARKDOWN))
    return out + [f"{n}  " for n in compact_footnotes(group, MARKDOWN, more)] + [""]


def compact_markdown(summary: pd.DataFrame, more: str = MORE_COMPARE) -> str:
    """The narrow summary table (at most seven columns) and its footnotes per (profile,
    dataset): the report's first table, what ``compare`` prints."""
    out = []
    for (profile, _), group in groups(summary):
        out += _compact_section(group, f"profile {MARKDOWN['code'].format(profile)} on "
                                       f"{dataset_words(group)}", more)
    return "\n".join(out).rstrip() + "\n"


def details_markdown(summary: pd.DataFrame) -> str:
    """Per (profile, dataset): seeds, GT-mean PSNR, time and tested ranks, then the comparisons with
    their footnotes (the report's last two tables)."""
    out = []
    for (profile, _), group in groups(summary):
        title = f"profile {MARKDOWN['code'].format(profile)} on {dataset_words(group)}"
        out += _details_section(group, title)
    return "\n".join(out).rstrip() + "\n"


def _details_section(group: pd.DataFrame, title: str) -> list[str]:
    out = [f"Seeds, {extras_words()}, training time and tested ranks, {title}:\n"]
    out += _md_table(*runs_table(group, MARKDOWN)) + [runs_footnote(MARKDOWN), ""]
    if has_details(group):
        header, rows = details_table(group, MARKDOWN)
        out.append(f"Comparisons and ranks, {title}:\n")
        rows = [[re.sub(r" \(no test: \d+ shared seeds?\)", " (no test)", c) for c in r]
                for r in rows]
        out += _md_table(short_headers(header), rows, left=2)
        out += [f"{n}  " for n in details_footnotes(group, MARKDOWN)] + [""]
    return out


def report_markdown_tables(summary: pd.DataFrame) -> str:
    """The report's Markdown, per (profile, dataset): the compact summary, then intervals, then
    the comparisons in full, each narrow enough to read unwrapped at 1280 px (the single wide
    table of :func:`markdown_tables` is in ``tables/summary.md``)."""
    out = []
    for (profile, _), group in groups(summary):
        title = f"profile {MARKDOWN['code'].format(profile)} on {dataset_words(group)}"
        out += _compact_section(group, title, MORE_REPORT)
        out.append(f"95% confidence intervals of the means (Student t over the per-seed "
                   f"means), {title}:\n")
        out += _md_table(*intervals_table(group, MARKDOWN, "[{}, {}]"))
        out += _details_section(group, title)
    return "\n".join(out).rstrip() + "\n"


def _short(value: object) -> str:
    """Hashes and commits cut to 12 characters (the full values are in each metrics.json)."""
    return str(value)[:12] if isinstance(value, str) else str(value)


def _rel(path: Path | str, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _first_config(runs: pd.DataFrame) -> dict | None:
    ordered = runs.assign(_ok=runs["status"] != "ok").sort_values(["_ok", "seed"])
    for d in ordered["run_dir"]:
        config = read_config(d)
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
        out.append(f"`{r.recipe}` ({r.profile}) has no run for seed(s) "
                   f"{seeds_text(r.missing_seeds)}, "
                   "which other recipes have.")
    for r in summary[summary["n_ok"] == 0].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) has no finished run: no numbers for it.")
    for r in summary[summary["n_ok"].between(1, FEW_SEEDS - 1)].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) has {r.n_ok} finished seed(s): fewer than "
                   f"{FEW_SEEDS}, so it gets no p-value against the baseline and its SD and CI "
                   "rest on too few runs to say much.")
    for r in summary[(summary["n_ok"] > 0) & ~summary["full_seeds"]].itertuples():
        out.append(f"`{r.recipe}` ({r.profile}) finished seeds {seeds_text(r.ok_seeds)} of "
                   f"{seeds_text(r.group_seeds)}: its means are over its own seeds, so it is "
                   "not ranked or bolded against the recipes that finished all of them.")
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
        if spec.get("references"):
            out.append("Papers: " + "; ".join(f"{short_citation(k)} [`{k}`]"
                                              for k in spec["references"]) + "  ")
        losses = spec.get("losses") or []
        resolved = spec.get("resolved_params") or {}
        if losses:
            out += ["", "| Loss | Weight | Params | Log label |", "|---|---:|---|---|"]
            for loss in losses:
                given = resolved.get(loss.get("label")) or {
                    k: v for k, v in (loss.get("params") or {}).items() if v is not None}
                params = ", ".join(f"{k}={v}" for k, v in given.items())
                custom = loss.get("custom") or {}
                tag = ", ".join(f"{k} `{_short(v)}`" for k, v in custom.items())
                name = f"{loss.get('name')} (custom: {tag or 'user loss'})" if custom else \
                    loss.get("name")
                out.append(f"| {name} | {loss.get('weight')} | {params or '-'} | "
                           f"{loss.get('label', '-')} |")
        elif not config:
            out.append("No config.yaml in any of its runs.")
        out.append("")
    return out


def _environment(runs: pd.DataFrame) -> list[str]:
    cols = ["torch", "device", "device_name", "cpu_model", "git_commit", "git_dirty"]
    env = runs[runs["status"] != "incomplete"][cols].astype(str)
    counts = env.value_counts(sort=False).reset_index(name="runs")
    out = ["| torch | device | device name | CPU model | git commit | dirty tree | runs |",
           "|---|---|---|---|---|---|---:|"]
    out += [f"| {r.torch} | {r.device} | {r.device_name} | {r.cpu_model} | "
            f"{_short(r.git_commit)} | {r.git_dirty} | {r.runs} |" for r in counts.itertuples()]
    return out + [""]


def _reference_keys(runs: pd.DataFrame) -> list[str]:
    """The keys the runs' recipes and losses cite (from config.yaml), then the common ones."""
    keys: list[str] = []
    for _, sub in runs.groupby("recipe", sort=True):
        spec = (_first_config(sub) or {}).get("recipe") or {}
        keys += list(spec.get("references") or [])
        for loss_keys in (spec.get("loss_references") or {}).values():
            keys += list(loss_keys)
    return [k for k in dict.fromkeys(keys + common_keys()) if k in bibliography()]


def _references(runs: pd.DataFrame) -> list[str]:
    out = []
    for key in _reference_keys(runs):
        entry = bibliography()[key]
        eprint = field(entry, "eprint")
        venue = (field(entry, "booktitle") or field(entry, "journal")
                 or field(entry, "howpublished").replace("\\url", "")
                 or (f"arXiv {eprint}" if eprint else ""))
        out.append(f"- [`{key}`] {short_citation(key)}: *{field(entry, 'title')}*"
                   + (f". {venue}" if venue else "") + ".")
    recipes = " ".join(sorted(runs["recipe"].unique()))
    return out + ["", f"BibTeX: `python -m benchmark cite {recipes}`.", ""]


def _provenance(runs: pd.DataFrame, results: Path) -> list[str]:
    out = ["| Run folder | Status | Config hash | Commit | Finished | Missing files |",
           "|---|---|---|---|---|---|"]
    for r in runs.sort_values(["profile", "recipe", "seed"]).itertuples():
        rel = _rel(r.run_dir, results)
        out.append(f"| [{rel}]({rel}/) | {r.status} | `{_short(r.config_hash)}` | "
                   f"`{_short(r.git_commit)}` | {r.finished_at or '-'} | "
                   f"{r.missing_files or '-'} |")
    return out + [""]


def write_report(results: Path, baseline: str | None = None, test: str = "crossed",
                 caption: str | None = None, reference: str | Path | None = None,
                 frames: tuple | None = None) -> Path:
    """Regenerate tables and figures, then write ``results/report.md`` linking them.

    ``caption``: the ``--caption`` values (first sentences of the LaTeX tables' captions). With
    ``reference`` the report also says per recipe whether the runs reproduce it. ``frames``:
    ``(runs, per_image, summary)`` of ``results`` already computed, else computed here.

    Raises:
        UserError: ``results`` is the reference shipped with lossbench (read-only).
    """
    refuse_shipped(results, "report")
    runs, per_image, summary = frames or compare_frames(results, baseline, test)
    check = write_reference_check(results, reference) if reference else None
    baseline = baseline or DEFAULT_BASELINE
    tables = write_tables(summary, results / "tables", caption, runs)
    figures = write_figures(results, runs, per_image, summary, baseline)
    lines = [
        "# lossbench report", "",
        f"Generated from {len(runs)} run folder(s) under `runs/` by "
        f"`python -m benchmark report --results {results.as_posix()} --baseline {baseline}"
        f"{'' if test == 'crossed' else ' --test ' + test}"
        f"{'' if reference is None else ' --reference ' + Path(reference).as_posix()}`; "
        "every number below comes from the run folders listed under Provenance.", "",
        "## Warnings", "",
    ]
    warns = _warnings(runs, summary)
    lines += [f"- {w}" for w in warns] or ["None."]
    lines += ["", "## Summary", "", report_markdown_tables(summary),
              "Tables: " + ", ".join(f"[{p.name}]({_rel(p, results)})" for p in tables), ""]
    if check is not None:
        lines += ["## Checking against the reference", "", check[0]]
    lines += ["## Figures", ""]
    for fig in figures:
        png, pdf = _rel(fig["png"], results), _rel(fig["pdf"], results)
        lines += [f"**{fig['caption']}** (profile `{fig['profile']}`, dataset "
                  f"`{str(fig['dataset'])[:12]}`, [PDF]({pdf}))", "", f"![{fig['caption']}]({png})",
                  ""]
    sentences = grad_share_sentences(load_grad_shares(runs))
    if sentences:
        lines += ["## Which term drives training", "",
                  "Each weighted term's gradient norm with respect to the network output, as a "
                  "share of the sum over the recipe's terms (train_log.csv `gradshare_*`):", ""]
        lines += [f"- {s[0].upper()}{s[1:]}." for s in sentences] + [""]
    lines += ["## Protocol", ""]
    for profile, sub in runs.groupby("profile", sort=True):
        config = _first_config(sub) or {}
        lines += [f"### {profile}", ""]
        lines += (_yaml_block(config["protocol"]) if "protocol" in config
                  else ["No config.yaml found for this profile.", ""])
    lines += ["## Dataset", ""]
    for dataset, sub in runs.groupby("dataset", sort=True):
        first = sub.iloc[0]
        names = sub["dataset_name"].dropna() if "dataset_name" in sub else []
        heading = str(names.iloc[0]) if len(names) else f"`{str(dataset)[:12]}`"
        lines += [f"### {heading}", "",
                  f"manifest sha256 `{dataset}`: root `{first['dataset_root']}`, layout "
                  f"`{first['dataset_layout']}`, {sub['n_images'].max()} test image(s), "
                  f"{len(sub)} run(s).", ""]
        config = _first_config(sub) or {}
        if "data" in config:
            lines += _yaml_block(config["data"])
    lines += ["## Environment", ""] + _environment(runs)
    lines += ["## Recipes", ""] + _recipe_notes(runs)
    lines += ["## Provenance", ""] + _provenance(runs, results)
    lines += ["## References", ""] + _references(runs)
    return write_text_atomic(results / "report.md", "\n".join(lines))
