"""The files ``compare`` and ``report`` write from the summary: ``tables/summary.{csv,md,tex}``.

The one place the summary becomes files: :mod:`.comparisons` makes the Markdown and
:mod:`.tex` the LaTeX (text only, neither writes), :func:`summary_csv` the CSV, and
:func:`write_tables` replaces the three files atomically (:mod:`.output`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.output import write_text_atomic
from benchmark.analysis.stats import SEED_LISTS, seeds_text
from benchmark.analysis.tex import latex_tables

__all__ = ["summary_csv", "write_tables"]


def summary_csv(summary: pd.DataFrame) -> str:
    """``summary.csv``: every column of the summary frame, floats to 6 significant digits.

    A seed list (:data:`.stats.SEED_LISTS`, tuples in the frame) is written ``0,1,2`` (empty
    when there is none), ``unofficial_weights`` as ``alexnet,vgg19``; ``lpips_comparable`` is
    left empty where no LPIPS exists.
    """
    frame = summary.copy()
    for col in SEED_LISTS:
        if col in frame:
            frame[col] = frame[col].map(seeds_text)
    if "unofficial_weights" in frame:
        frame["unofficial_weights"] = frame["unofficial_weights"].map(",".join)
    if "lpips_comparable" in frame and "lpips_mean" in frame:
        frame["lpips_comparable"] = frame["lpips_comparable"].astype(object).where(
            frame["lpips_mean"].notna(), None)
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def write_tables(summary: pd.DataFrame, out_dir: Path,
                 caption: str | Iterable[str] | dict | None = None,
                 runs: pd.DataFrame | None = None) -> list[Path]:
    """Write ``summary.csv`` (every column), ``summary.md`` and ``summary.tex`` into
    ``out_dir``, each replaced atomically; the paths, in that order.

    Args:
        summary: the summary frame of :func:`.stats.summarize`.
        out_dir: the folder (``results/tables``), created when missing.
        caption: ``--caption`` values (:func:`.tex.parse_captions`).
        runs: the runs frame, for the network and the schedule in the LaTeX captions.
    """
    paths = [out_dir / "summary.csv", out_dir / "summary.md", out_dir / "summary.tex"]
    write_text_atomic(paths[0], summary_csv(summary))
    write_text_atomic(paths[1], markdown_tables(summary))
    write_text_atomic(paths[2], latex_tables(summary, caption, runs))
    return paths
