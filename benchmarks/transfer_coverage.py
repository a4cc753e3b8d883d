"""Coverage of the rank-transfer study's tau interval, by simulation (docs/STATISTICS.md).

    python benchmarks/transfer_coverage.py [--reps 400]

Prints, for recipes 0.05 to 1 dB apart and 2 or 3 seeds per profile, how often the 95%
bootstrap interval of Kendall's tau covers the tau of the expected recipe means
(:func:`benchmark.analysis.transfer.coverage` states the model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmark.analysis.transfer import coverage  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=500)
    args = parser.parse_args(argv)
    print("| recipes apart (dB) | seeds | coverage |\n|---:|---:|---:|")
    for gap in (0.05, 0.1, 0.2, 0.5, 1.0):
        for seeds in (2, 3):
            rate = coverage(gap, np.random.default_rng([seeds, int(gap * 100)]), seeds=seeds,
                            reps=args.reps, n_boot=args.n_boot)
            print(f"| {gap:g} | {seeds} | {rate:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
