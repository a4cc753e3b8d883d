"""Simulated benchmarks with known truth: type-I error, coverage and power of the statistics.

Two recipes A and B are "trained" on S seeds and evaluated on n test images drawn afresh in
every replicate. A score is::

    y[r, i, j] = mu_r + g_j + c_i + u_ri + v_rj + e_rij

with ``g`` the image difficulty (shared by the recipes, cancels in a paired difference),
``c`` the part of a run's deviation two recipes share through a common seed (same
initialisation and crop order), ``u`` the recipe's own run-to-run deviation, ``v`` the
recipe x image interaction, and ``e`` per-(run, image) noise, optionally heavy-tailed
(Student t with 3 degrees of freedom, scaled to the same SD). Every method is applied to
thousands of replicates at once (arrays ``(replicates, seeds, images)``).

The docs and the tests both use this module; ``benchmarks/calibration.py`` prints the table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from benchmark.analysis import inference


@dataclass(frozen=True)
class Scenario:
    """One variance structure (SDs in dB of PSNR)."""

    name: str
    seeds: int
    images: int
    run_sd: float
    interaction_sd: float
    noise_sd: float
    heavy_tails: bool = False
    shared_run_sd: float = 0.3
    image_sd: float = 2.0


SCENARIOS = (
    Scenario("run-dominated", 3, 15, run_sd=0.3, interaction_sd=0.0, noise_sd=0.1),
    Scenario("run-dominated, similar images", 3, 15, run_sd=0.3, interaction_sd=0.0,
             noise_sd=0.1, image_sd=0.1),
    Scenario("run, 5 seeds", 5, 100, run_sd=0.1, interaction_sd=0.0, noise_sd=0.2),
    Scenario("mixed", 4, 15, run_sd=0.2, interaction_sd=0.2, noise_sd=0.15),
    Scenario("interaction-dominated", 6, 100, run_sd=0.05, interaction_sd=0.3, noise_sd=0.1),
    Scenario("interaction, 15 images", 3, 15, run_sd=0.1, interaction_sd=0.2, noise_sd=0.1),
    Scenario("heavy-tailed noise", 4, 15, run_sd=0.2, interaction_sd=0.1, noise_sd=0.2,
             heavy_tails=True),
    Scenario("noise only", 3, 50, run_sd=0.0, interaction_sd=0.0, noise_sd=0.2),
)


@dataclass(frozen=True)
class Sample:
    """Simulated scores and the quantities each interval should cover."""

    a: np.ndarray  # (R, S, n) scores of recipe A
    b: np.ndarray  # (R, S, n) scores of recipe B
    delta: float  # the population difference mu_A - mu_B (seeds and images random)
    delta_fixed: np.ndarray  # (R,) expected difference over runs on the drawn images
    a_fixed: np.ndarray  # (R,) expected score of A over runs on the drawn images
    a_population: float  # expected score of A over runs and images


def simulate(sc: Scenario, reps: int, rng: np.random.Generator, delta: float = 0.0) -> Sample:
    """``reps`` replicates of scenario ``sc`` with true difference ``delta`` (A - B)."""
    s, n = sc.seeds, sc.images
    mu_a = 20.0
    g = rng.normal(0.0, sc.image_sd, (reps, 1, n))
    c = rng.normal(0.0, sc.shared_run_sd, (reps, s, 1))
    u = rng.normal(0.0, sc.run_sd, (2, reps, s, 1))
    v = rng.normal(0.0, sc.interaction_sd, (2, reps, 1, n))
    if sc.heavy_tails:
        e = rng.standard_t(3, (2, reps, s, n)) * sc.noise_sd / np.sqrt(3.0)
    else:
        e = rng.normal(0.0, sc.noise_sd, (2, reps, s, n))
    a = mu_a + g + c + u[0] + v[0] + e[0]
    b = mu_a - delta + g + c + u[1] + v[1] + e[1]
    a_fixed = mu_a + (g + v[0]).mean(axis=(-2, -1))
    delta_fixed = delta + (v[0] - v[1]).mean(axis=(-2, -1))
    return Sample(a, b, delta, delta_fixed, a_fixed, mu_a)


def _covers(low: np.ndarray, high: np.ndarray, truth: np.ndarray | float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def old_wilcoxon_p(d: np.ndarray) -> np.ndarray:
    """The previous test: Wilcoxon signed-rank over all (seed, image) pairs as independent."""
    flat = d.reshape(d.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sps.wilcoxon(flat, axis=1, method="approx").pvalue


def old_bootstrap_ci(
    y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """The previous metric-cell interval: percentile bootstrap, seeds then images within."""
    reps_, s, n = y.shape
    out = np.empty((reps_, n_boot))
    chunk = max(1, 4_000_000 // (n_boot * s * n))
    for start in range(0, reps_, chunk):
        r = min(chunk, reps_ - start)
        block = y[start : start + r]
        si = rng.integers(0, s, size=(r, n_boot, s))
        ii = rng.integers(0, n, size=(r, n_boot, s, n))
        rows = np.arange(r)[:, None, None, None]
        out[start : start + r] = block[rows, si[..., None], ii].mean(axis=(-2, -1))
    return tuple(np.quantile(out, [0.5 - level / 2.0, 0.5 + level / 2.0], axis=1))


def evaluate(
    sc: Scenario, reps: int, seed: int = 0, *, delta: float = 0.0, old: bool = True
) -> dict[str, float]:
    """Rejection rates at 5% and interval coverages of every method on one scenario.

    Keys: ``reject_crossed`` (the default test), ``reject_fixed`` (the fixed-test-set
    t-test, judged against the population null), ``reject_old`` (the previous Wilcoxon);
    ``cover_diff`` (Δ interval, of ``delta``), ``cover_diff_fixed`` (fixed-set Δ interval, of
    the difference on the drawn images), ``cover_cell`` (metric-cell seed-level interval, of
    A's expected score on the drawn images), ``cover_cell_crossed`` (the wider metric
    interval, of A's population score), ``cover_old_cell`` (the previous bootstrap interval,
    of A's expected score on the drawn images).
    """
    rng = np.random.default_rng(seed)
    sample = simulate(sc, reps, rng, delta)
    d = sample.a - sample.b
    est, fixed = inference.crossed(d), inference.fixed_images(d)
    cell, cell_crossed = inference.fixed_images(sample.a), inference.crossed(sample.a)
    out = {
        "reject_crossed": float(np.mean(est.pvalue() < inference.ALPHA)),
        "reject_fixed": float(np.mean(fixed.pvalue() < inference.ALPHA)),
        "cover_diff": _covers(*est.interval(), sample.delta),
        "cover_diff_fixed": _covers(*fixed.interval(), sample.delta_fixed),
        "cover_cell": _covers(*cell.interval(), sample.a_fixed),
        "cover_cell_crossed": _covers(*cell_crossed.interval(), sample.a_population),
    }
    if old:
        out["reject_old"] = float(np.mean(old_wilcoxon_p(d) < inference.ALPHA))
        out["cover_old_cell"] = _covers(*old_bootstrap_ci(sample.a, rng), sample.a_fixed)
    return out
