"""Calibration of ``compare --reference`` by simulation, and its margins from the reference.

Prints (and with ``--docs`` writes into docs/STATISTICS.md's ``reference-margins`` and
``reference-calibration`` blocks):

* the seed-to-seed SD of each recipe's mean score in results/reference/LOL-v1/lite, the basis
  of the declared margins (:data:`benchmark.analysis.equivalence.MARGINS`);
* how often each recipe verdict comes out for ``k`` compared metrics, per-seed means normal
  with one run SD on both sides (or a user side 3 times noisier), the user's expectation
  shifted by 0 (exact reproduction) or by the margin;
* how many pairs of *different* reference recipes would be called "reproduced" if the
  configuration check let them be compared.

    python benchmarks/equivalence.py --reps 4000 --seed 0 --docs
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.analysis.equivalence import (  # noqa: E402
    MARGINS,
    equivalence,
    power_exact,
    recipe_verdict,
)
from benchmark.metrics import METRICS as REGISTRY  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import emit  # noqa: E402  (the docs-block writer of the sibling script)

REFERENCE = ROOT / "results" / "reference" / "LOL-v1" / "lite"
DOC = ROOT / "docs" / "STATISTICS.md"
#: the checked metrics the reference has (backbone-free: no metric that needs weights)
METRICS = tuple(m for m in MARGINS if not REGISTRY[m].needs_weights)
DESIGNS = ((3, 1), (3, 3), (3, 5), (3, 10), (5, 5))
SDS = (0.1, 0.22, 0.35)  # PSNR run SDs (dB): the reference's range


def reference_means() -> dict[str, dict[str, np.ndarray]]:
    """recipe -> metric -> per-seed means of the shipped reference runs (a collapsed run is an
    outcome, not a score: left out)."""
    out: dict[str, dict[str, list[float]]] = {}
    for path in sorted(REFERENCE.glob("runs/*/lite/seed*/metrics.json")):
        data = json.loads(path.read_text())
        if data.get("outcome") == "collapsed":
            continue
        for metric in METRICS:
            out.setdefault(data["recipe"], {}).setdefault(metric, []).append(
                data["test"][metric])
    return {r: {m: np.array(v) for m, v in d.items()} for r, d in out.items()}


def _seeds(means: dict) -> str:
    """The reference's seed counts per recipe, e.g. "5" or "3/5"."""
    return "/".join(map(str, sorted({len(d[METRICS[0]]) for d in means.values()})))


def margins_table(means: dict) -> str:
    """Per metric: the run SDs over the reference's recipes and the declared margin."""
    lines = [f"| metric | run SD over {_seeds(means)} seeds: min / median / max "
             f"({len(means)} recipes) | declared margin | margin / median SD |",
             "|---|---:|---:|---:|"]
    for metric in METRICS:
        sds = np.array([d[metric].std(ddof=1) for d in means.values()])
        med = float(np.median(sds))
        lines.append(f"| {metric} | {sds.min():.3g} / {med:.3g} / {sds.max():.3g} | "
                     f"{MARGINS[metric]:g} | {MARGINS[metric] / med:.1f} |")
    return "\n".join(lines)


def rates(m: int, n: int, sd: float, shift: float, reps: int, rng: np.random.Generator,
          k: int = 3, noisier: float = 1.0) -> dict[str, float]:
    """Share of each recipe verdict, ``k`` independent PSNR-like metrics (margin 0.5)."""
    counts = {"reproduced": 0, "differs": 0, "too few seeds": 0}
    for _ in range(reps):
        verdicts = [equivalence(rng.normal(0.0, sd, m), rng.normal(shift, sd * noisier, n),
                                MARGINS["psnr"], k=k, with_power=False).verdict
                    for _ in range(k)]
        counts[recipe_verdict(verdicts)] += 1
    return {key: v / reps for key, v in counts.items()}


def calibration_table(reps: int, seed: int) -> str:
    """Verdict rates for 3 metrics, margin 0.5 dB, by design and run SD."""
    rng = np.random.default_rng(seed)
    head = ["ref seeds m", "user seeds n", "run SD (dB)",
            "exact: P(reproduced) one metric, formula", "exact: reproduced / differs",
            "at the margin: reproduced", "user 3x noisier, no shift: reproduced / differs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for (m, n), sd in itertools.product(DESIGNS, SDS):
        exact = rates(m, n, sd, 0.0, reps, rng)
        edge = rates(m, n, sd, MARGINS["psnr"], reps, rng, k=1)
        noisy = rates(m, n, sd, 0.0, reps, rng, noisier=3.0) if n > 1 else None
        lines.append(
            f"| {m} | {n} | {sd:g} | {power_exact(m, n, round(0.5 / sd, 3)):.3f} | "
            f"{exact['reproduced']:.3f} / {exact['differs']:.3f} | {edge['reproduced']:.3f} | "
            + (f"{noisy['reproduced']:.3f} / {noisy['differs']:.3f} |" if noisy else "- |"))
    return "\n".join(lines)


def cross_recipe(means: dict) -> str:
    """The reference's recipes checked against each other (all their seeds, all three
    metrics)."""
    names = sorted(means)
    called = []
    for a, b in itertools.permutations(names, 2):
        verdicts = [equivalence(means[b][m], means[a][m], MARGINS[m], k=len(METRICS)).verdict
                    for m in METRICS]
        if recipe_verdict(verdicts) == "reproduced":
            called.append(f"{a} as {b}")
    pairs = len(names) * (len(names) - 1)
    return (f"Of the {pairs} ordered pairs of different recipes in the reference "
            f"({_seeds(means)} seeds each; PSNR, SSIM and GT-mean PSNR), {len(called)} would be "
            "called \"reproduced\" if the configuration check did not refuse them"
            + (f": {', '.join(called)}." if called else "."))


def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--docs`` write) the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="replicates per cell")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed")
    parser.add_argument("--docs", action="store_true", help="fill docs/STATISTICS.md's blocks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    means = reference_means()
    blocks = {"reference-margins": margins_table(means)}
    table = calibration_table(args.reps, args.seed)
    cpu = platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line)
    blocks["reference-calibration"] = (
        f"Output of `python benchmarks/equivalence.py --reps {args.reps} --seed {args.seed}` "
        f"({cpu}, {time.perf_counter() - start:.0f} s on a shared machine): recipe verdicts "
        "with three metrics compared (independent, each with the PSNR margin 0.5 dB; at the "
        "margin: one metric). "
        f"{args.reps} replicates a cell.\n\n{table}\n\n{cross_recipe(means)}")
    emit(blocks, DOC, args.docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
