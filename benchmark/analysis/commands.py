"""The analysis commands: ``compare``, ``plots`` and ``report`` (called by :mod:`benchmark.cli`).

Each reads the results tree only (run folders -> frames -> statistics -> tables/figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.analysis import plots
from benchmark.analysis.frames import DEFAULT_BASELINE, compare_frames
from benchmark.analysis.instruments import sensitivity_figure, sensitivity_frame
from benchmark.analysis.reference import write_reference_check
from benchmark.analysis.report import compact_markdown, write_report
from benchmark.analysis.selection import write_selection
from benchmark.analysis.tables import markdown_tables
from benchmark.analysis.tex import write_tables


def _test(args: argparse.Namespace) -> str:
    """``--test``; callers that build their own namespace (``sweep``) get the default."""
    return getattr(args, "test", "crossed")


def command_compare(args: argparse.Namespace) -> int:
    """``python -m benchmark compare``: write tables/summary.{csv,md,tex}, print the Markdown.

    With ``--reference DIR`` also one verdict per recipe found in both (exit 0 whatever they
    say), written to tables/reference_check.{md,csv}. With ``--selection`` also the
    selection-bias table (the three views of every run), written to tables/selection.{md,csv}.
    """
    results = Path(args.results)
    runs, _, summary = compare_frames(results, args.baseline, _test(args))
    reference = getattr(args, "reference", None)
    check = write_reference_check(results, reference) if reference else None
    paths = write_tables(summary, results / "tables", getattr(args, "caption", None))
    print(compact_markdown(summary) if getattr(args, "compact", False)
          else markdown_tables(summary))
    if getattr(args, "selection", False):
        text, written = write_selection(results, runs)
        print("\n## What checkpoint selection is worth\n\n" + text)
        paths += written
    if check is not None:
        print("\n## Checking against the reference\n\n" + check[0])
        paths += check[1]
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def command_plots(args: argparse.Namespace) -> int:
    """``python -m benchmark plots``: regenerate every figure (PNG + PDF) into plots/."""
    results = Path(args.results)
    runs, per_image, summary = compare_frames(results, args.baseline, _test(args))
    baseline = args.baseline or DEFAULT_BASELINE
    for fig in plots.write_figures(results, runs, per_image, summary, baseline):
        print(f"wrote {fig['png']} and {fig['pdf'].name}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    """``python -m benchmark report``: tables, figures and results/report.md."""
    path = write_report(Path(args.results), args.baseline, _test(args),
                        getattr(args, "caption", None), getattr(args, "reference", None))
    print(f"wrote {path}")
    return 0


def write_sensitivity(results: Path) -> list[Path]:
    """``plots/sensitivity_<profile>_<dataset>.{png,pdf}`` for every group with grid-derived
    recipes (what ``sweep --grid`` writes when it ends); the paths written."""
    _, _, summary = compare_frames(results, None)
    written = []
    for (profile, dataset), group in summary.groupby(["profile", "dataset"], sort=True):
        frame = sensitivity_frame(group)
        if len(frame):
            stem = results / "plots" / f"sensitivity_{profile}_{str(dataset)[:8]}"
            written += plots.save(sensitivity_figure(frame), stem)
    return written
