r"""The summary tables as LaTeX (booktabs), sized for papers (text only: :mod:`.summary_files`
writes the files).

Per (profile, dataset): the compact summary (mean ± SD over seeds, starred differences), the
intervals table, the seeds/GT-mean/time/ranks table and the comparisons in two parts. A table
narrow enough for one column of a two-column article is a ``table``, a wider one a ``table*``;
each fits a one-column article's text width too. Each has a
``\label{tab:lossbench-<profile>-<dataset>[-part]}`` and a caption that stands alone (the
network, profile, iterations, seeds, test set, what ± and the intervals are, what * and bold
mean), whose first sentence ``--caption`` can replace, table by table. Only ASCII (math minus,
``\dag``, ``$<$``), so it prints right under any font encoding. tests/test_paper_tables.py
compiles it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from benchmark.analysis.cells import bold_text, family_text
from benchmark.analysis.comparisons import (
    details_footnotes,
    details_table,
    has_details,
)
from benchmark.analysis.frames import read_config
from benchmark.analysis.stats import seeds_text
from benchmark.analysis.tables import (
    LATEX,
    compact_footnotes,
    compact_table,
    dataset_words,
    extras_words,
    groups,
    intervals_table,
    runs_footnote,
    runs_table,
    short_headers,
    tex_escape,
    tex_label,
)

__all__ = ["CAPTION_KINDS", "latex_tables", "parse_captions"]

_TEX_SIZE = r"\footnotesize"
_COLSEP = 4.0  # pt: \tabcolsep
_COLUMN_PT = 236.0  # a two-column article's \columnwidth (10pt: 241 pt), less a margin
_TEXT_PT = 338.0  # a one-column article's \textwidth (10pt: 345 pt), less a margin
#: the tables whose first caption sentence ``--caption KIND=TEXT`` sets (plain TEXT: summary)
CAPTION_KINDS = ("summary", "intervals", "runs", "tests1", "tests2")


def parse_captions(values: str | Iterable[str] | dict | None) -> dict[str, str]:
    """``--caption`` values -> ``{kind: first sentence}``: ``KIND=TEXT`` for a kind of
    :data:`CAPTION_KINDS`, anything else is the summary table's."""
    if values is None:
        return {}
    if isinstance(values, dict):
        return dict(values)
    out = {}
    for value in [values] if isinstance(values, str) else values:
        kind, sep, text = value.partition("=")
        if sep and kind.strip() in CAPTION_KINDS:
            out[kind.strip()] = text.strip()
        else:
            out["summary"] = value.strip()
    return out


def _tex_text(text: str) -> str:
    """Plain text for LaTeX: minus signs as math minus, < and > in math, nothing non-ASCII."""
    text = re.sub(r"(?<![\w\\$-])-(?=[\d.])", r"$-$", text)  # a minus, not an en dash
    text = re.sub(r"(?<=\de)-(?=\d)", r"$-$", text)  # an exponent's sign
    text = re.sub(r"(?<![-{])--(?=[A-Za-z])", "-{}-", text)  # an option, not an en dash
    return re.sub(r"(?<!\$)([<>])(?!\$)", r"$\1$", text)


def _split(cell: str) -> list[str]:
    words = cell.split(" ")
    if len(cell) <= 10 or len(words) < 2:
        return [cell]
    cut = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(cell) / 2))
    return [" ".join(words[:cut]), " ".join(words[cut:])]


def _tex_header(cell: str) -> str:
    """A header cell over two lines when long (a nested tabular: no package needed)."""
    parts = _split(cell)
    if len(parts) == 1:
        return cell
    return r"\begin{tabular}[b]{@{}c@{}}" + r"\\{}".join(parts) + r"\end{tabular}"


def _visible(cell: str) -> int:
    """Characters a cell prints (macros and math shifts removed, roughly)."""
    cell = re.sub(r"\\textsuperscript\{[^}]*\}", "x", cell)
    cell = re.sub(r"\\text(?:bf|tt)\{", "", cell)
    cell = re.sub(r"\$\\(?:pm|Delta|uparrow|downarrow|times)\$", "x", cell)
    return len(re.sub(r"[${}\\]", "", cell))


def content_width(header: list[str], rows: list[list[str]]) -> float:
    """Points the table's cells need at \\footnotesize without column gaps (about 4.3 pt a
    character, bold a little wider), from the widest cell of each column."""
    width = 0.0
    for j, head in enumerate(header):
        cells = [max((_visible(p) for p in _split(head)), default=0)]
        cells += [_visible(r[j]) * (1.1 if "textbf" in r[j] else 1.0) for r in rows]
        width += 4.3 * max(cells)
    return width


def _layout(header: list[str], rows: list[list[str]]) -> tuple[str, float]:
    """``("table", 4)`` when the table fits one column of a two-column article with 4 pt gaps;
    else ``("table*", gap)`` with the widest gap (at most 5 pt, at least 1.5 pt) that keeps it
    within a one-column article's text width (345 pt at 10pt)."""
    content, gaps = content_width(header, rows), 2 * len(header)
    if content + gaps * _COLSEP <= _COLUMN_PT:
        return "table", _COLSEP
    return "table*", max(1.5, min(5.0, (_TEXT_PT - content) / gaps))


def _compact(table: tuple[list[str], list[list[str]]]) -> tuple[list[str], list[list[str]]]:
    """``mean $\\pm$ sd`` cells without the spaces (narrower; math spacing is enough)."""
    header, rows = table
    return header, [[c.replace(" $\\pm$ ", "$\\pm$") for c in r] for r in rows]


def _tex_table(header: list[str], rows: list[list[str]], caption: str, label: str,
               notes: list[str], left: int = 1) -> list[str]:
    spec = "l" * left + "r" * (len(header) - left)
    env, gap = _layout(header, rows)
    out = [rf"\begin{{{env}}}[t]", r"\centering", _TEX_SIZE,
           rf"\setlength{{\tabcolsep}}{{{gap:.1f}pt}}",
           rf"\caption{{{caption}}}", rf"\label{{{label}}}", r"\smallskip",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(_tex_header(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_text(c) for c in cells) + r" \\" for cells in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\smallskip\parbox{\linewidth}{\raggedright\scriptsize "
            + r" \\ ".join(_tex_text(n) for n in notes) + "}"] if notes else []
    return out + [rf"\end{{{env}}}", ""]


def _network(runs: pd.DataFrame | None, group: pd.DataFrame) -> tuple[str, str]:
    """``("a UNet (width 16, 1.94 M parameters)", "2,000")`` from the group's run folders."""
    if runs is None or runs.empty:
        return "", ""
    ok = runs[(runs["status"] == "ok") & (runs["profile"] == group["profile"].iloc[0])
              & (runs["dataset"] == group["dataset"].iloc[0])]
    iters = pd.to_numeric(ok["iterations"], errors="coerce").dropna()
    network = ""
    for d in ok["run_dir"]:
        model = (read_config(d) or {}).get("model") or {}
        if model:
            params = model.get("parameters")
            network = (f"a {model.get('name', 'UNet')} (width {model.get('width')}"
                       + (f", {params / 1e6:.2f} M parameters" if params else "") + ")")
            break
    return network, f"{int(iters.max()):,}" if len(iters) else ""


def _context(group: pd.DataFrame, runs: pd.DataFrame | None, profile: str) -> str:
    """The sentence that makes a caption stand alone: network, profile, schedule, seeds, test
    set."""
    network, iters = _network(runs, group)
    seeds = seeds_text(group["group_seeds"].iloc[0], ", ") if "group_seeds" in group else ""
    images = pd.to_numeric(group.get("psnr_n_images"), errors="coerce").max()
    trained = (f"{network or 'The lossbench network'} trained with each loss"
               + (f" for {iters} iterations" if iters else "")
               + f" (profile {tex_escape(profile)})")
    trained = trained[:1].upper() + trained[1:]
    test = (f"{int(images)} test images of {tex_escape(dataset_words(group))}"
            if images == images else tex_escape(dataset_words(group)))
    return (f"{trained}, seeds {tex_escape(seeds)}; scores on the {test}."
            if seeds else f"{trained}; scores on the {test}.")


def _first(captions: dict[str, str], kind: str, default: str, title: str,
           several: bool) -> str:
    given = captions.get(kind)
    if not given:
        return default
    text = tex_escape(given.strip()).rstrip(".")
    return text + (f" ({title})" if several else "")


def latex_tables(summary: pd.DataFrame, caption: str | Iterable[str] | dict | None = None,
                 runs: pd.DataFrame | None = None) -> str:
    """booktabs tables (``\\usepackage{booktabs}``) per (profile, dataset): the compact
    summary, then intervals, seeds/time/ranks and the comparisons in two parts.

    Args:
        summary: the summary frame of :func:`.stats.summarize`.
        caption: ``--caption`` values (:func:`parse_captions`): each replaces the default first
            sentence of one table's caption.
        runs: the runs frame, for the network and the schedule in the captions.
    """
    captions = parse_captions(caption)
    out = []
    several = summary[["profile", "dataset"]].drop_duplicates().shape[0] > 1
    for (profile, _), group in groups(summary):
        label = tex_label(profile, group)
        words = dataset_words(group)
        context = _context(group, runs, profile)
        group = group.assign(recipe=group["recipe"].map(tex_escape),
                             baseline=group["baseline"].map(tex_escape),
                             errors=group["errors"].map(
                                 lambda e: tex_escape(e) if isinstance(e, str) else e))
        title = f"the {tex_escape(profile)} profile of lossbench on {tex_escape(words)}"
        baseline = group["baseline"].iloc[0]
        test = ("t-test on the per-seed mean differences, these test images held fixed"
                if group["test"].iloc[0] == "fixed-images" else
                r"crossed seed $\times$ image test: seeds and test images both random")
        pm = (r"$\pm$ SD over seeds of the per-seed mean scores (each seed one training run, "
              "scored by its mean over the test images)")
        first = _first(captions, "summary",
                       f"Low-light enhancement losses compared with {title}", title, several)
        more = (f"Table~\\ref{{{label}-intervals}}" + (
            f" and Tables~\\ref{{{label}-tests1}}--\\ref{{{label}-tests2}}"
            if has_details(group) else ""))
        notes = compact_footnotes(group, LATEX, None)[2:]
        bold = bold_text(group)
        out += _tex_table(*_compact(compact_table(group, LATEX, fit=False)),
                          f"{first}. {context} n: finished training seeds. Mean {pm}; {bold}; "
                          f"$\\Delta$: mean paired difference to {baseline} on shared seeds and "
                          f"images, * p $<$ 0.05 ({test}), {family_text(group)}. "
                          f"95\\% confidence intervals: {more}.", label, notes)
        first = _first(captions, "intervals",
                       f"95\\% confidence intervals of the mean scores, {title}", title, several)
        out += _tex_table(*intervals_table(group, LATEX, "[{}, {}]"),
                          f"{first}. {context} Each interval [a, b]: Student t over the "
                          "per-seed mean scores (the expected score on this test set over "
                          f"training runs); the means are in Table~\\ref{{{label}}}.",
                          f"{label}-intervals", [])
        header, rows = _compact(runs_table(group, LATEX))
        first = _first(captions, "runs", f"Seeds, {extras_words()}, training time and tested "
                       f"ranks, {title}", title, several)
        out += _tex_table(header, [[r[0], r[1].replace(" of ", "/"), *r[2:]] for r in rows],
                          f"{first}. {context} {runs_footnote(LATEX)}",
                          f"{label}-runs", [])
        if has_details(group):
            header, rows = details_table(group, LATEX)
            header = short_headers(header)
            dnotes = details_footnotes(group, LATEX)
            for part, (cols, text) in enumerate(
                    (([0, 1, 2, 3, 4], f"Comparisons with {baseline}"),
                     ([0, 1, *range(5, len(header))],
                      "Power, probability of improvement and ranks"))):
                first = _first(captions, f"tests{part + 1}", f"{text}, {title}", title,
                               several)
                out += _tex_table([header[c] for c in cols], [[r[c] for c in cols] for r in rows],
                                  f"{first}. {context} $\\Delta$: mean paired difference "
                                  f"[95\\% CI]; * p $<$ 0.05, {family_text(group)}.",
                                  f"{label}-tests{part + 1}",
                                  [dnotes[part]] if part == 0 else dnotes[1:], left=2)
    return "\n".join(out)
