"""The analysis commands: ``compare``, ``plots`` and ``report`` (called by :mod:`benchmark.cli`).

Each reads the results tree only (run folders -> frames -> statistics -> tables/figures).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmark.analysis import plots
from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.frames import DEFAULT_BASELINE, compare_frames
from benchmark.analysis.instruments import sensitivity_figure, sensitivity_frame
from benchmark.analysis.output import is_shipped_reference, refuse_shipped, write_text_atomic
from benchmark.analysis.pairs import all_pairs as all_pairs_frame
from benchmark.analysis.pairs import apply_pairs, pairs_markdown
from benchmark.analysis.reference import write_reference_check
from benchmark.analysis.report import compact_markdown, write_report
from benchmark.analysis.selection import write_selection
from benchmark.analysis.summary_files import write_tables
from benchmark.analysis.transfer_report import write_transfer
from benchmark.errors import UserError
from benchmark.metrics import summarized


def _test(args: argparse.Namespace) -> str:
    """``--test``; a namespace without it (a caller's own) gets the default."""
    return getattr(args, "test", "crossed")


def parse_mdd(text: str | None) -> dict[str, float] | None:
    """``--mdd``: ``0.5`` (PSNR, dB) or ``psnr=0.5,ssim=0.01`` -> {metric: difference}."""
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        metric, _, value = part.rpartition("=")
        metric = metric.strip() or "psnr"
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if metric not in summarized() or not math.isfinite(number) or number <= 0:
            raise UserError(
                f"--mdd {text!r}: expected a positive difference (PSNR, dB) or metric=value "
                f"pairs with metrics from {', '.join(summarized())} (e.g. psnr=0.5,ssim=0.01); "
                f"{part!r} is not one")
        out[metric] = number
    return out


#: ``(runs, per_image, summary)`` as :func:`compare_frames` returns them
Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def command_compare(args: argparse.Namespace, frames: Frames | None = None) -> int:
    """``python -m benchmark compare``: :func:`compare` with the command's flags."""
    return compare(
        Path(args.results), baseline=args.baseline, test=_test(args),
        mdd=parse_mdd(getattr(args, "mdd", None)), reference=getattr(args, "reference", None),
        paired=getattr(args, "paired", False),
        all_pairs=getattr(args, "all_pairs", False), captions=getattr(args, "caption", None),
        wide=getattr(args, "wide", False), selection=getattr(args, "selection", False),
        transfer=getattr(args, "transfer", None),
        transfer_profiles=getattr(args, "transfer_profiles", None), frames=frames)


def compare(
    results: str | Path,
    *,
    baseline: str | None = None,
    test: str = "crossed",
    mdd: dict[str, float] | None = None,
    reference: str | Path | None = None,
    paired: bool = False,
    all_pairs: bool = False,
    captions: list[str] | None = None,
    wide: bool = False,
    selection: bool = False,
    transfer: str | Path | None = None,
    transfer_profiles: Sequence[str] | None = None,
    frames: Frames | None = None,
) -> int:
    """Write tables/summary.{csv,md,tex} of ``results`` and print the Markdown (the compact
    table, at most seven columns; ``wide``: every column and the comparisons); return 0.

    With ``reference`` (a folder) also one verdict per recipe found in both (exit 0 whatever
    they say), written to tables/reference_check.{md,csv}; ``paired``: seed s against the
    reference's seed s (a rerun of its seeds on other hardware). With ``all_pairs`` every pair of
    recipes is tested (tables/pairs.{md,csv}) and the tables' claims come from that family.
    Reading the reference shipped with lossbench writes nothing into it.
    ``frames``: the frames of ``results`` already computed (a caller that has them, e.g.
    tests, skips the summary's recomputation).
    With ``transfer`` (a folder) and/or ``transfer_profiles`` (two names) also the rank-transfer
    study between two profiles (:mod:`.transfer_report`), written to tables/ and
    plots/transfer_<a>_<b>.*.
    With ``selection`` also the selection-bias table (the three views of every run),
    written to tables/selection.{md,csv}. ``captions``: ``--caption`` values.
    """
    results = Path(results)
    if paired and not reference:
        raise UserError("--paired: compares your seeds with the reference's same seeds; give "
                        "the reference folder with --reference DIR")
    runs, per_image, summary = frames or compare_frames(results, baseline, test, mdd)
    shipped = is_shipped_reference(results)
    if reference and shipped:
        refuse_shipped(results, "compare --reference")
    check = write_reference_check(results, reference, paired) if reference else None
    pair_text = None
    if all_pairs:
        pair_frame = all_pairs_frame(runs, per_image, summary)
        summary = apply_pairs(summary, pair_frame)
        pair_text = pairs_markdown(pair_frame)
    paths = ([] if shipped else
             write_tables(summary, results / "tables", captions, runs))
    print(markdown_tables(summary) if wide else compact_markdown(summary))
    if pair_text is not None:
        if not shipped:
            paths += [write_text_atomic(results / "tables" / "pairs.md", pair_text),
                      write_text_atomic(results / "tables" / "pairs.csv",
                                        pair_frame.to_csv(index=False))]
        print("\n" + pair_text)
    if selection:
        text, written = write_selection(results, runs, write=not shipped)
        print("\n## What checkpoint selection is worth\n\n" + text)
        paths += written
    if check is not None:
        print("\n## Checking against the reference\n\n" + check[0])
        paths += check[1]
    if transfer or transfer_profiles:
        text, written = write_transfer(results, transfer, transfer_profiles)
        print("\n## Does the cheaper profile rank recipes like the longer one?\n\n" + text)
        paths += written
    print(f"\nwrote {', '.join(str(p) for p in paths)}" if paths else
          "\n(the shipped reference is read-only: no tables written)")
    return 0


def command_plots(args: argparse.Namespace) -> int:
    """``python -m benchmark plots``: regenerate every figure (PNG + PDF) into plots/."""
    results = Path(args.results)
    refuse_shipped(results, "plots")
    runs, per_image, summary = compare_frames(results, args.baseline, _test(args))
    baseline = args.baseline or DEFAULT_BASELINE
    for fig in plots.write_figures(results, runs, per_image, summary, baseline):
        print(f"wrote {fig['png']} and {fig['pdf'].name}")
    return 0


def command_report(args: argparse.Namespace, frames: Frames | None = None) -> int:
    """``python -m benchmark report``: tables, figures and results/report.md (``frames``: as
    for :func:`command_compare`)."""
    path = write_report(Path(args.results), args.baseline, _test(args),
                        getattr(args, "caption", None), getattr(args, "reference", None),
                        frames=frames)
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
