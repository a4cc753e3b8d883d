"""Summary table cells, from the summary frame of :mod:`.stats`.

Pure formatting: nothing here reads run folders or computes a statistic. The cells are shared:
the compact table (what ``compare`` prints, at most seven columns), the wide table and the
comparisons (:mod:`.comparisons`), the report's narrow tables (:mod:`.report`) and the LaTeX
tables for papers (:mod:`.tex`). A metric no run computed has no column; "±" is always the SD
over seeds of the per-seed mean scores, and every interval a 95% confidence interval written
``[a, b]``. Labels, units, decimals and directions come from :data:`benchmark.metrics.METRICS`.

The interface the writers use (Markdown in :mod:`.comparisons` and :mod:`.report`, LaTeX in
:mod:`.tex`):

- :data:`MARKDOWN`, :data:`LATEX`: the symbol sets (``s`` below) a table is written with.
- :func:`groups`: the summary's (profile, dataset) groups, in table order; one table each.
- ``*_table(group, s) -> (header, rows)``: :func:`compact_table`, :func:`intervals_table`,
  :func:`runs_table`, :func:`wide_table` (cells are text, already in ``s``'s symbols).
- Their notes: :func:`compact_footnotes`, :func:`runs_footnote`, :func:`wide_footnotes`.
- Titles and words: :func:`group_title`, :func:`dataset_words`, :func:`extras_words`,
  :func:`tex_label`, :func:`short_headers`; cells: :func:`diff_cell`, :func:`p_text`,
  :func:`fixed_text`, :func:`number_text`; :func:`tex_escape` for LaTeX text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence

import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis.cells import (
    collapse_text,
    family_text,
    metric_weights,
    not_comparable,
    rank_cell,
    unofficial,
)
from benchmark.analysis.stats import FEW_SEEDS, seeds_text

ALPHA = 0.05

#: Markdown symbols (GitHub): ``s[...]`` in every table function
MARKDOWN = {"pct": "%", "pm": "±", "lt": "<", "up": "↑", "down": "↓", "delta": "Δ",
            "dagger": "†", "ddagger": "‡", "section": "§", "bold": "**{}**", "code": "`{}`",
            "times": "×", "gt": ">"}
#: LaTeX symbols (ASCII only, any font encoding)
LATEX = {"pct": r"\%", "pm": r"$\pm$", "lt": "$<$", "up": r"$\uparrow$", "down": r"$\downarrow$",
         "delta": r"$\Delta$", "dagger": r"\textsuperscript{\dag}",
         "ddagger": r"\textsuperscript{\ddag}", "section": r"\textsuperscript{\S}",
         "bold": r"\textbf{{{}}}", "code": r"\texttt{{{}}}", "times": r"$\times$", "gt": r"$>$"}


def tex_escape(text: str) -> str:
    """Plain text for LaTeX: every special character printed as itself (``~`` and ``^``
    too), and ``--`` kept as two hyphens (not an en dash)."""
    text = text.replace("\\", "\x00").replace("~", "\x01").replace("^", "\x02")
    for ch in "_%&#${}":
        text = text.replace(ch, "\\" + ch)
    text = text.replace("--", "-{}-").replace("--", "-{}-")
    return (text.replace("\x00", r"\textbackslash{}").replace("\x01", r"\textasciitilde{}")
            .replace("\x02", r"\textasciicircum{}"))


def _metric(name: str) -> metrics_mod.Metric:
    return metrics_mod.METRICS[name]


def _heading(metric: str) -> str:
    """``label (unit)``: ``PSNR (dB)``, ``SSIM``."""
    return _metric(metric).heading


def computed(group: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[str]:
    """The metrics of ``metrics`` (default: every summarised one) some run of ``group``
    computed (a table shows only these)."""
    metrics = metrics_mod.summarized() if metrics is None else metrics
    return [m for m in metrics if group[f"{m}_mean"].notna().any()]


def extras() -> list[str]:
    """The summarised metrics that are not headline ones (GT-mean PSNR): the runs table's."""
    return [m for m in metrics_mod.summarized() if not _metric(m).headline]


def extras_words() -> str:
    """The extras' labels in words: ``GT-mean PSNR``."""
    return ", ".join(_metric(m).label for m in extras())


def p_text(p: float) -> str:
    """A p-value without e-notation: ``< 0.001`` below 0.001, else two significant digits."""
    if not math.isfinite(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def fixed_text(value: float, d: int, sign: str = "") -> str:
    """``value`` with ``d`` decimals, or with as many as its first two significant digits need
    when it is smaller than that (never e-notation)."""
    if value != 0 and abs(value) < 10**-d:
        d = min(8, 1 - math.floor(math.log10(abs(value))))
    return format(value, f"{sign}.{d}f")


def _seeds_cell(row: pd.Series, s: dict[str, str]) -> str:
    total = row["n_ok"] + row["n_failed"] + row["n_incomplete"] + row["n_missing"]
    text = f"{row['n_ok']}" if row["n_ok"] == total else f"{row['n_ok']} of {total}"
    notes = [f"{what}: {seeds_text(row[f'{what}_seeds'])}"
             for what in ("failed", "incomplete", "missing") if row[f"n_{what}"]]
    if notes:
        text += f" ({'; '.join(notes)})"
    text += collapse_text(row)
    if row["n_ok"] < FEW_SEEDS:
        text += s["ddagger"]
    if row["n_ok"] and not row["full_seeds"]:
        text += s["section"]
    return text


def _metric_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    mean = row[f"{metric}_mean"]
    if not math.isfinite(mean):
        return "n/a"
    d = _metric(metric).decimals
    text = f"{mean:.{d}f}"
    std, low, high = row[f"{metric}_std"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if math.isfinite(std):
        text += f" {s['pm']} {std:.{d}f}"
    if math.isfinite(low):
        text += f" [{low:.{d}f}, {high:.{d}f}]"
    return text


def _signed(value: float, d: int) -> str:
    return fixed_text(value, d, "+")


def diff_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    """The difference to the baseline in full: ``+0.12 [-0.05, +0.29] (p = 0.21)``, starred
    when the Holm-adjusted p < :data:`ALPHA`; ``baseline`` or ``n/a`` otherwise."""
    if row["is_baseline"]:
        return "baseline"
    diff, p = row[f"{metric}_diff"], row[f"{metric}_p_holm"]
    if not math.isfinite(diff):
        return "n/a"
    d = _metric(metric).decimals
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
    shown = p_text(p)
    shown = shown if shown.startswith("<") else f"= {shown}"
    used = row.get(f"{metric}_test_used")
    note = ("; t on seed means: no per-image values" if isinstance(used, str)
            and used != "crossed" and not fixed else "")
    return f"{text} [{_signed(low, d)}, {_signed(high, d)}] (p {shown}{star}{note})"


def _is_best(group: pd.DataFrame, column: str) -> pd.Series:
    """Bold only where tested: the recipe significantly better than every other one in the
    all-pairs family (``<metric>_best``, ``compare --all-pairs``); nothing otherwise."""
    tested = column.removesuffix("_mean") + "_best"
    if tested not in group:
        return pd.Series(False, index=group.index)
    return group[tested].fillna(False).astype(bool)


def wide_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """The wide table (``compare --wide``, ``tables/summary.md``): seeds, every computed metric
    with its SD and interval, the differences to the baseline and the tested ranks."""
    baseline = group["baseline"].iloc[0]
    shown, diffs = computed(group), computed(group, metrics_mod.headline())
    header = ["Recipe", "Seeds"]
    for metric in shown:
        header.append(f"{_heading(metric)} {_arrow(metric, s)}")
    for metric in diffs:
        m = _metric(metric)
        header.append(f"{s['delta']}{m.label} vs {baseline}{f' ({m.unit})' if m.unit else ''}")
    header.append("Rank " + "/".join(_metric(m).label for m in diffs))
    best = {m: _is_best(group, f"{m}_mean") for m in shown}
    rows = []
    for i, row in group.iterrows():
        cells = [_recipe_name(row, s), _seeds_cell(row, s)]
        for metric in shown:
            cell = _metric_cell(row, metric, s)
            cell = s["bold"].format(cell) if best[metric][i] else cell
            if not_comparable(row, metric) and cell != "n/a":
                cell += s["dagger"]
            cells.append(cell)
        cells += [diff_cell(row, m, s) for m in diffs]
        cells.append(rank_cell(row, diffs))
        rows.append(cells)
    return header, rows


def wide_footnotes(group: pd.DataFrame, s: dict[str, str]) -> list[str]:
    """The wide table's notes (the compact table's reuse all but the first two)."""
    baseline = group["baseline"].iloc[0]
    notes = [
        f"Metric cells: mean {s['pm']} SD over seeds of each run's mean over the test images "
        f"[95{s['pct']} CI of the expected score on this test set over training runs: Student "
        "t over the per-seed means]; bold only for a recipe significantly better than every "
        "other (--all-pairs), ranks only from those tests (1 + recipes significantly "
        "better; - untested).",
        f"{s['delta']}: mean paired difference to {baseline} (same seed = same initialisation "
        "and crops; same image), over the seeds both finished [95" + s["pct"] + " CI]; p: "
        + ("FIXED TEST SET (--test fixed-images): t-test on the per-seed mean differences, "
           "treating these test images as fixed; it says whether the difference on these images "
           "would persist over more training runs, not over other test images"
           if group["test"].iloc[0] == "fixed-images" else
           "two-sided test treating both the training runs and the test images as samples "
           f"(crossed seed {s['times']} image random effects, Satterthwaite df)")
        + f"; p {family_text(group)}; * adjusted p {s['lt']} 0.05. Unadjusted, p would be the "
        "chance of a difference at least this large if both losses had the same expected "
        "score; the adjusted p bounds the chance of any false claim among all those tests.",
    ]
    if group["unofficial_weights"].map(len).gt(0).any():
        notes.append(f"{s['dagger']} made with unofficial pretrained weights (alexnet: LPIPS; "
                     "vgg19: perceptual loss in training): not comparable with published "
                     "numbers.")
    if (group["lpips_mean"].notna().any()
            and (group["n_ok"].gt(0) & group["lpips_mean"].isna()).any()):
        notes.append("LPIPS n/a: not computed by some runs (--metrics without lpips, which "
                     "needs no pretrained AlexNet): absent, not zero.")
    if (group["n_ok"] < FEW_SEEDS).any():
        notes.append(f"{s['ddagger']} fewer than {FEW_SEEDS} finished seeds: the SD and CI rest "
                     "on too few runs to say much.")
    if ((group["n_ok"] > 0) & ~group["full_seeds"]).any():
        notes.append(f"{s['section']} did not finish every seed of this table "
                     f"({seeds_text(group['group_seeds'].iloc[0])}): shown on its own seeds, "
                     f"not bolded or ranked; its {s['delta']} uses the seeds it shares with "
                     f"{baseline}.")
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


def number_text(value: float, spec: str, missing: str = "-") -> str:
    """``format(value, spec)``, or ``missing`` for NaN and inf."""
    return format(value, spec) if math.isfinite(value) else missing


def group_title(profile: str, group: pd.DataFrame, s: dict[str, str]) -> str:
    """``profile `lite`, dataset `LOL-v1``` (the manifest hash when the dataset is unknown)."""
    name = group["dataset_name"].dropna() if "dataset_name" in group else pd.Series([], dtype=str)
    shown = str(name.iloc[0]) if len(name) and str(name.iloc[0]) else str(
        group["dataset"].iloc[0])[:12]
    return f"profile {s['code'].format(profile)}, dataset {s['code'].format(shown)}"


def groups(summary: pd.DataFrame) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """``((profile, dataset), group)`` per table, sorted: every writer makes one table each."""
    return iter(summary.groupby(["profile", "dataset"], sort=True))


def _arrow(metric: str, s: dict[str, str]) -> str:
    return s["up" if _metric(metric).higher_is_better else "down"]


def _compact_cell(row: pd.Series, metric: str, s: dict[str, str]) -> str:
    """``mean ± SD over seeds`` (the mean alone when there is one seed)."""
    mean = row[f"{metric}_mean"]
    if not math.isfinite(mean):
        return "n/a"
    d = _metric(metric).decimals
    sd = row[f"{metric}_std"]
    return f"{mean:.{d}f} {s['pm']} {sd:.{d}f}" if math.isfinite(sd) else f"{mean:.{d}f}"


def _compact_diff(row: pd.Series, metric: str) -> str:
    """The paired difference to the baseline, starred when the Holm-adjusted p < 0.05."""
    if row["is_baseline"]:
        return "base"
    fixed = row.get("test") == "fixed-images"
    diff = row[f"{metric}_diff"]
    p = row[f"{metric}_p_fixed_holm" if fixed else f"{metric}_p_holm"]
    if not math.isfinite(diff):
        return "n/a"
    used = row.get(f"{metric}_test_used")
    note = " (t on seed means)" if isinstance(used, str) and used != "crossed" else ""
    return (_signed(diff, _metric(metric).decimals)
            + ("*" if math.isfinite(p) and p < ALPHA else "") + note)


def _recipe_name(row: pd.Series, s: dict[str, str]) -> str:
    """The recipe, with † when it trained with unofficial backbone weights (a metric's own
    weights mark only that metric's cells)."""
    return row["recipe"] + (s["dagger"] if unofficial(row) - metric_weights() else "")


def _n_cell(row: pd.Series, s: dict[str, str]) -> str:
    text = str(row["n_ok"]) + (s["ddagger"] if row["n_ok"] < FEW_SEEDS else "")
    return text + (s["section"] if row["n_ok"] and not row["full_seeds"] else "")


MAX_COLUMNS = 7  # the compact table's most columns: what GitHub shows without scrolling


def compact_table(group: pd.DataFrame, s: dict[str, str], fit: bool = True
                   ) -> tuple[list[str], list[list[str]]]:
    """The paper table: n, mean ± SD per headline metric some run computed, starred
    differences; with ``fit``, at most :data:`MAX_COLUMNS` columns (n joins the recipe's
    cell when three metrics would need eight)."""
    shown = computed(group, metrics_mod.headline())
    apart = not fit or 2 + 2 * len(shown) <= MAX_COLUMNS
    header = ["Recipe", "n"] if apart else ["Recipe (n)"]
    header += [f"{_heading(m)} {_arrow(m, s)}" for m in shown]
    header += [f"{s['delta']} {_metric(m).label}" for m in shown]
    best = {m: _is_best(group, f"{m}_mean") for m in shown}
    rows = []
    for i, row in group.iterrows():
        cells = ([_recipe_name(row, s), _n_cell(row, s)] if apart
                 else [f"{_recipe_name(row, s)} ({_n_cell(row, s)})"])
        for metric in shown:
            cell = _compact_cell(row, metric, s)
            cell = s["bold"].format(cell) if best[metric][i] else cell
            if not_comparable(row, metric) and cell != "n/a":
                cell += s["dagger"]
            cells.append(cell)
        rows.append(cells + [_compact_diff(row, m) for m in shown])
    return header, rows


def compact_footnotes(group: pd.DataFrame, s: dict[str, str], more: str | None = None
                       ) -> list[str]:
    """The compact table's notes; ``more`` says where the intervals and tests are."""
    baseline = group["baseline"].iloc[0]
    test = ("t-test on the per-seed mean differences, these test images held fixed"
            if group["test"].iloc[0] == "fixed-images" else
            f"crossed seed {s['times']} image test")
    notes = [
        f"n: finished training seeds. Metric cells: mean {s['pm']} SD over seeds (each seed's "
        "score is that run's mean over the test images); bold only for a recipe significantly "
        "better than every other (--all-pairs).",
        f"{s['delta']}: mean paired difference to {baseline} over the seeds both finished; "
        f"* p {s['lt']} 0.05 ({test}), {family_text(group)}."
        + (f" 95{s['pct']} intervals, p-values, power and ranks: {more}." if more else ""),
    ]
    return notes + [n for n in wide_footnotes(group, s)[2:] if not n.startswith("no p-value")]


def intervals_table(group: pd.DataFrame, s: dict[str, str], interval: str = "[{}, {}]"
                     ) -> tuple[list[str], list[list[str]]]:
    """The 95% CI of every computed metric's mean (``interval`` formats the two bounds)."""
    shown = computed(group)
    header = ["Recipe"] + [f"{_metric(m).label} 95{s['pct']} CI" for m in shown]
    rows = []
    for _, row in group.iterrows():
        cells = [_recipe_name(row, s)]
        for metric in shown:
            d = _metric(metric).decimals
            low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
            cells.append(interval.format(f"{low:.{d}f}", f"{high:.{d}f}")
                         if math.isfinite(low) else "n/a")
        rows.append(cells)
    return header, rows


def runs_table(group: pd.DataFrame, s: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """Seeds in full, the extra metrics (GT-mean PSNR, mean ± SD), training time
    (machine-dependent, never bold) and tested ranks."""
    ranked = computed(group, metrics_mod.headline())
    header = ["Recipe", "Seeds", *(f"{_heading(m)} {_arrow(m, s)}" for m in extras()),
              "Train time (s)", "Rank " + "/".join(_metric(m).label[0] for m in ranked)]
    rows = []
    for _, row in group.iterrows():
        t = row["train_seconds_mean"]
        rows.append([_recipe_name(row, s), _seeds_cell(row, s),
                     *(_compact_cell(row, m, s) for m in extras()),
                     f"{t:.0f}" if math.isfinite(t) else "n/a",
                     rank_cell(row, ranked)])
    return header, rows


def runs_footnote(s: dict[str, str]) -> str:
    """The runs table's note."""
    return (f"{extras_words()}: mean {s['pm']} SD over seeds. Train time: mean seconds per run, "
            "measured on whatever machine made the runs (machine-dependent: not a property "
            "of the loss, never compared or bolded). Ranks only from the all-pairs tests "
            "(--all-pairs: 1 + recipes significantly better), - untested.")


def dataset_words(group: pd.DataFrame) -> str:
    """The dataset in words: its name when known, else its manifest hash."""
    name = group["dataset_name"].dropna() if "dataset_name" in group else pd.Series([], dtype=str)
    if len(name) and str(name.iloc[0]):
        return str(name.iloc[0])
    return f"a dataset with manifest {str(group['dataset'].iloc[0])[:12]}"


def tex_label(profile: str, group: pd.DataFrame) -> str:
    """``tab:lossbench-<profile>-<dataset name, or the manifest hash's first 12 characters>``."""
    name = group["dataset_name"].dropna() if "dataset_name" in group else pd.Series([], dtype=str)
    known = len(name) and str(name.iloc[0])
    slug = str(name.iloc[0]) if known else str(group["dataset"].iloc[0])[:12]
    slug = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")
    return f"tab:lossbench-{re.sub(r'[^a-z0-9]+', '-', profile.lower())}-{slug}"


def short_headers(header: list[str]) -> list[str]:
    """The comparisons table's headers, short enough for a page (the footnotes explain)."""
    short = {"p, this test set": "p (fixed)", "Detectable (80% power)": "Detectable",
             "Detectable (80\\% power)": "Detectable", "Seeds for 80% power": "Seeds for 80%",
             "Seeds for 80\\% power": "Seeds for 80\\%",
             "Seeds to detect the named difference": "Seeds (named diff.)"}
    return [short.get(h, h.split(" than ")[0] + ") [95" + h.split("[95")[1]
                      if h.startswith("P(better than") else h) for h in header]
