"""Type-I error, coverage and power of lossbench's statistics, old and new, by simulation.

Every scenario of :data:`benchmark.analysis.calibration.SCENARIOS` is simulated under the null
(two recipes with the same expected score; test images drawn afresh in each replicate) and,
for power, with a true difference; then the probability of improvement's interval and the
detectable difference are checked. Prints Markdown; ``--docs`` also writes each table into its
generated block of docs/STATISTICS.md (``<!-- calibration-*:begin -->``):

    python benchmarks/calibration.py --reps 4000 --seed 0 --docs
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.analysis import calibration  # noqa: E402

COLUMNS = [
    ("reject_old", "old test: Wilcoxon over (seed, image) pairs"),
    ("reject_fixed", "fixed-test-set t on seed means"),
    ("reject_crossed", "new default: crossed seed x image"),
    ("cover_old_cell", "old metric CI (seeds, then images)"),
    ("cover_cell", "new metric CI (seed-level t)"),
    ("cover_cell_crossed", "new crossed metric CI"),
    ("cover_diff", "new Δ CI"),
    ("cover_diff_fixed", "fixed-test-set Δ CI"),
]
DOC = ROOT / "docs" / "STATISTICS.md"


def table(reps: int, seed: int, delta: float) -> str:
    """One Markdown row per scenario: rejection rates at 5% and coverages of 95% intervals."""
    head = ["Scenario", "S x n", "SD run / recipe x image / noise"]
    head += [f"{text} ({'reject' if key.startswith('reject') else 'cover'})"
             for key, text in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(COLUMNS)]
    for i, sc in enumerate(calibration.SCENARIOS):
        got = calibration.evaluate(sc, reps, seed + i, delta=delta)
        sds = f"{sc.run_sd} / {sc.interaction_sd} / {sc.noise_sd}"
        sds += " (t3)" if sc.heavy_tails else ""
        cells = [sc.name, f"{sc.seeds} x {sc.images}", sds]
        cells += [f"{got[key]:.3f}" for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def improvement_table(reps: int, seed: int) -> str:
    """Coverage (and median width) of the probability of improvement's 95% interval."""
    truths = (0.5, 0.7, 0.9, 0.95, 0.99)
    head = ["seeds", "per-seed differences"] + [f"P = {p:g}" for p in truths]
    lines = ["| " + " | ".join(head) + " |", "|---:|---|" + "---:|" * len(truths)]
    for s in (3, 5, 10):
        for heavy in (False, True):
            cells = [str(s), "Student t, 3 df" if heavy else "normal"]
            for k, p in enumerate(truths):
                got = calibration.improvement_coverage(s, p, reps, seed + 10 * s + k,
                                                       heavy_tails=heavy)
                cells.append(f"{got['cover']:.3f} ({got['width']:.2f})")
            lines.append("| " + " | ".join(cells) + " |")
    cells = ["5", "old: stratified bootstrap, Mann-Whitney"]
    for k, p in enumerate(truths):
        got = calibration.old_improvement_coverage(5, p, min(reps, 1000), seed + k, n_boot=500)
        cells.append(f"{got['cover']:.3f} (zero width {got['zero_width']:.2f})")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detectable_table(reps: int, seed: int) -> str:
    """Detectable difference (from the components) vs the simulated 80%-power difference."""
    head = ["Scenario", "S x n", "new: from components", "simulated 80%-power difference",
            "new / simulated", "old plug-in (median)", "power at the old value"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * 5]
    for i, sc in enumerate(calibration.SCENARIOS):
        if sc.heavy_tails or sc.image_sd != 2.0:
            continue
        got = calibration.detectable_check(calibration.scenario_components(sc), sc.seeds,
                                           sc.images, reps, seed + i)
        lines.append(f"| {sc.name} | {sc.seeds} x {sc.images} | {got['mdd']:.3f} | "
                     f"{got['empirical']:.3f} | {got['mdd'] / got['empirical']:.3f} | "
                     f"{got['old']:.3f} | {got['old_power']:.3f} |")
    return "\n".join(lines)


def fill(text: str, name: str, body: str, where: Path = DOC) -> str:
    """``text`` with the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->``
    replaced by ``body``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{where}: needs one {begin} ... {end} pair")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n\n{body.rstrip()}\n\n{end}{rest.split(end, 1)[1]}"


def emit(blocks: dict[str, str], doc: Path, write: bool) -> None:
    """Print each generated block; with ``write``, also fill them into ``doc``."""
    for name, body in blocks.items():
        print(f"<!-- {name} -->\n{body}\n")
    if write:
        text = doc.read_text(encoding="utf-8")
        for name, body in blocks.items():
            text = fill(text, name, body, doc)
        doc.write_text(text, encoding="utf-8")
        print(f"filled {', '.join(blocks)} in {doc.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--docs`` write) the calibration tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="replicates per scenario")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed")
    parser.add_argument("--delta", type=float, default=0.3, help="true difference for power")
    parser.add_argument("--docs", action="store_true", help="fill docs/STATISTICS.md's blocks")
    parser.add_argument("--only", choices=("tests", "improvement", "detectable"), default=None)
    args = parser.parse_args(argv)
    blocks = {}
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line)
    made = f"`python benchmarks/calibration.py --reps {args.reps} --seed {args.seed}`"
    if args.only in (None, "tests"):
        start = time.perf_counter()
        null, alt = table(args.reps, args.seed, 0.0), table(args.reps, args.seed + 100,
                                                             args.delta)
        blocks["calibration-tests"] = (
            f"Output of {made} ({args.reps} replicates per scenario; {cpu}; "
            f"{time.perf_counter() - start:.0f} s).\n\nNull (equal expected scores): rejection "
            "rates at alpha = 0.05 (should be 0.05) and coverage of 95% intervals (should be "
            f"0.95).\n\n{null}\n\nTrue difference {args.delta:g} dB (power: the rejection "
            f"rates; coverage as above):\n\n{alt}")
    if args.only in (None, "improvement"):
        blocks["calibration-improvement"] = (
            f"Output of {made}: coverage of the 95% interval of P(better) ({args.reps} "
            "replicates a cell; median width in brackets), by the true value P.\n\n"
            + improvement_table(args.reps, args.seed + 200))
    if args.only in (None, "detectable"):
        blocks["calibration-detectable"] = (
            f"Output of {made} ({min(args.reps, 4000)} simulated matrices a scenario; the "
            "scenarios with normal effects and image SD 2 dB).\n\n"
            + detectable_table(min(args.reps, 4000), args.seed + 300))
    emit(blocks, DOC, args.docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
