"""Calibration of ``compare --reference`` (the equivalence test) by simulation.

For each number of reference seeds ``m`` and user seeds ``n``, per-seed means are drawn from a
normal with one run-to-run SD on both sides and the user's expectation shifted by 0, 1, 3 (the
margin) and 6 run SDs; the table gives how often each verdict comes out. docs/STATISTICS.md
quotes it:

    python benchmarks/equivalence.py --reps 4000 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.analysis.reference import K_MARGIN, equivalence, power_exact  # noqa: E402

DESIGNS = ((3, 1), (3, 2), (3, 3), (5, 1), (5, 3), (5, 5), (3, 10))
SHIFTS = (0.0, 1.0, K_MARGIN, 2 * K_MARGIN)  # in run SDs


def rates(m: int, n: int, shift: float, reps: int, rng: np.random.Generator) -> dict[str, float]:
    """Share of each verdict over ``reps`` simulated comparisons."""
    counts = {"reproduced": 0, "differs": 0, "too few seeds": 0}
    for _ in range(reps):
        counts[equivalence(rng.normal(0.0, 1.0, m), rng.normal(shift, 1.0, n)).verdict] += 1
    return {k: v / reps for k, v in counts.items()}


def naive_tost(m: int, n: int, reps: int, rng: np.random.Generator) -> float:
    """"Reproduced" rate at the margin of TOST with the margin fixed at K x the reference's SD
    (pooled-SD 90% interval inside it): the simpler test the module does not use."""
    hits = 0
    for _ in range(reps):
        r, u = rng.normal(0.0, 1.0, m), rng.normal(K_MARGIN, 1.0, n)
        df = m + n - 2
        sd = np.sqrt((((r - r.mean()) ** 2).sum() + ((u - u.mean()) ** 2).sum()) / df)
        half = sps.t.ppf(0.95, df) * sd * np.sqrt(1 / m + 1 / n)
        hits += abs(u.mean() - r.mean()) + half < K_MARGIN * r.std(ddof=1)
    return hits / reps


def table(reps: int, seed: int) -> str:
    """One Markdown row per (m, n): 'reproduced' / 'differs' rates at each shift."""
    head = ["ref seeds m", "user seeds n", "P(reproduced) exact, formula"]
    head += [f"shift {s:g} SD: reproduced / differs" for s in SHIFTS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    rng = np.random.default_rng(seed)
    for m, n in DESIGNS:
        cells = [str(m), str(n), f"{power_exact(m, n):.3f}"]
        for shift in SHIFTS:
            got = rates(m, n, shift, reps, rng)
            cells.append(f"{got['reproduced']:.3f} / {got['differs']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="replicates per cell")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"Verdict rates, {args.reps} replicates per cell, seed {args.seed}, margin "
          f"{K_MARGIN:g} run SDs (a shift of {K_MARGIN:g} SD is the margin: 'reproduced' "
          "should be at most 0.05 there).\n")
    print(table(args.reps, args.seed))
    rate = naive_tost(3, 5, args.reps, np.random.default_rng(args.seed))
    print(f"\nNot used: TOST with the margin fixed at {K_MARGIN:g} x the reference's SD says "
          f"'reproduced' at the margin in {rate:.3f} of replicates (m = 3, n = 5).")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
