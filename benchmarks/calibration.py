"""Type-I error, coverage and power of lossbench's statistics, old and new, by simulation.

Every scenario of :data:`benchmark.analysis.calibration.SCENARIOS` is simulated under the null
(two recipes with the same expected score; test images drawn afresh in each replicate) and,
for power, with a true difference. Prints a Markdown table (docs/STATISTICS.md quotes it):

    python benchmarks/calibration.py --reps 4000 --seed 0
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    """Print the null table, then the power table (true difference ``--delta`` dB)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="replicates per scenario")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed")
    parser.add_argument("--delta", type=float, default=0.3, help="true difference for power")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"Null (equal expected scores), {args.reps} replicates per scenario, seed {args.seed}:")
    print("rejection rates at alpha = 0.05 (should be 0.05) and coverage of 95% intervals "
          "(should be 0.95).\n")
    print(table(args.reps, args.seed, 0.0))
    print(f"\nTrue difference {args.delta} dB (power: the rejection rates; coverage as above):\n")
    print(table(args.reps, args.seed + 100, args.delta))
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
