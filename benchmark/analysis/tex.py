r"""The summary tables as LaTeX (booktabs), sized for papers.

Per (profile, dataset): the compact summary (mean ± SD over seeds, starred differences), the
intervals table and the comparisons in two parts, each fitting a one-column article's text
width (345 pt) and a two-column article's ``table*`` at ``\footnotesize``, with a
``\label{tab:lossbench-<profile>-<dataset>}`` and only ASCII (math minus, ``\dag``,
``$<$``), so it prints right under any font encoding. tests/test_paper_tables.py compiles it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.analysis.tables import (
    _TEX,
    _compact_footnotes,
    _compact_table,
    _details_footnotes,
    _details_table,
    _groups,
    _has_details,
    _intervals_table,
    _label,
    _runs_table,
    _tex_escape,
    dataset_words,
    markdown_tables,
    short_headers,
)

__all__ = ["latex_tables", "write_tables"]

_TEX_SIZE = r"\footnotesize"


def _tex_text(text: str) -> str:
    """Plain text for LaTeX: minus signs as math minus, < and > in math, nothing non-ASCII."""
    text = re.sub(r"(?<![\w\\$-])-(?=[\d.])", r"$-$", text)  # a minus, not an en dash
    text = re.sub(r"(?<=\de)-(?=\d)", r"$-$", text)  # an exponent's sign
    return re.sub(r"(?<!\$)([<>])(?!\$)", r"$\1$", text)


def _tex_header(cell: str) -> str:
    """A header cell over two lines when long (a nested tabular: no package needed)."""
    words = cell.split(" ")
    if len(cell) <= 10 or len(words) < 2:
        return cell
    cut = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(cell) / 2))
    return (r"\begin{tabular}[b]{@{}c@{}}" + " ".join(words[:cut]) + r"\\{}"
            + " ".join(words[cut:]) + r"\end{tabular}")


def _compact(table: tuple[list[str], list[list[str]]]) -> tuple[list[str], list[list[str]]]:
    """``mean $\\pm$ half`` cells without the spaces (narrower; math spacing is enough)."""
    header, rows = table
    return header, [[c.replace(" $\\pm$ ", "$\\pm$") for c in r] for r in rows]


def _tex_table(header: list[str], rows: list[list[str]], caption: str, label: str,
               notes: list[str], left: int = 1) -> list[str]:
    spec = "l" * left + "r" * (len(header) - left)
    out = [r"\begin{table*}[t]", r"\centering", _TEX_SIZE, r"\setlength{\tabcolsep}{2pt}",
           rf"\caption{{{caption}}}", rf"\label{{{label}}}",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(_tex_header(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_text(c) for c in cells) + r" \\" for cells in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\smallskip\parbox{\linewidth}{\raggedright\scriptsize "
            + r" \\ ".join(_tex_text(n) for n in notes) + "}"] if notes else []
    return out + [r"\end{table*}", ""]


def latex_tables(summary: pd.DataFrame, caption: str | None = None) -> str:
    """booktabs tables (``\\usepackage{booktabs}``) per (profile, dataset), each fitting a
    one-column article's text width and a two-column article's ``table*``: the compact
    summary, then intervals, then the comparisons in two parts. ``caption`` replaces the
    default first sentence of the summary's caption."""
    out = []
    several = summary[["profile", "dataset"]].drop_duplicates().shape[0] > 1
    for (profile, _), group in _groups(summary):
        label = _label(profile, group)
        words = dataset_words(group)
        group = group.assign(recipe=group["recipe"].map(_tex_escape),
                             baseline=group["baseline"].map(_tex_escape),
                             errors=group["errors"].map(
                                 lambda e: _tex_escape(e) if isinstance(e, str) else e))
        title = f"the {_tex_escape(profile)} profile of lossbench on {_tex_escape(words)}"
        baseline = group["baseline"].iloc[0]
        first = (_tex_escape(caption) + (f" ({title})" if several else "") if caption
                 else f"Low-light enhancement losses compared with {title}")
        out += _tex_table(*_compact(_compact_table(group, _TEX)),
                          f"{first}. Mean $\\pm$ SD over training seeds; "
                          f"$\\Delta$: difference to {baseline}.",
                          label, _compact_footnotes(group, _TEX))
        out += _tex_table(*_intervals_table(group, _TEX, "{}--{}"),
                          f"95\\% confidence intervals of the means, {title}.",
                          f"{label}-intervals", [])
        header, rows = _compact(_runs_table(group, _TEX))
        out += _tex_table(header, [[r[0], r[1].replace(" of ", "/"), *r[2:]] for r in rows],
                          f"Seeds, GT-mean PSNR (mean $\\pm$ SD over seeds), training time and "
                          f"tested ranks (PSNR/SSIM/LPIPS), {title}.", f"{label}-runs", [])
        if _has_details(group):
            header, rows = _details_table(group, _TEX)
            header = short_headers(header)
            notes = _details_footnotes(group, _TEX)
            for part, (cols, text) in enumerate(
                    (([0, 1, 2, 3, 4], f"comparisons with {baseline}"),
                     ([0, 1, *range(5, len(header))],
                      "power, probability of improvement and ranks"))):
                out += _tex_table([header[c] for c in cols], [[r[c] for c in cols] for r in rows],
                                  f"lossbench {text}, {title}.", f"{label}-tests{part + 1}",
                                  [notes[part]] if part == 0 else notes[1:], left=2)
    return "\n".join(out)


def write_tables(summary: pd.DataFrame, out_dir: Path, caption: str | None = None) -> list[Path]:
    """Write ``summary.csv`` (every column), ``summary.md`` and ``summary.tex``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "summary.csv", out_dir / "summary.md", out_dir / "summary.tex"]
    summary.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(markdown_tables(summary), encoding="utf-8")
    paths[2].write_text(latex_tables(summary, caption), encoding="utf-8")
    return paths
