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
from scipy import optimize
from scipy import stats as sps

from benchmark.analysis import inference, power


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


# ---------------------------------------------------------------- probability of improvement


def improvement_coverage(seeds: int, p_true: float, reps: int, seed: int = 0, *,
                         heavy_tails: bool = False, level: float = 0.95) -> dict[str, float]:
    """Coverage and width of :func:`inference.prob_improvement`'s interval at ``p_true``.

    The per-seed differences ``D`` are normal (or Student t with 3 df, ``heavy_tails``) with
    SD 1 and mean set so that ``P(D > 0) = p_true``; the interval is judged against it.
    """
    rng = np.random.default_rng(seed)
    if heavy_tails:
        scale = 1.0 / np.sqrt(3.0)  # t3 has variance 3
        mu = -sps.t.ppf(1.0 - p_true, 3) * scale
        d = mu + rng.standard_t(3, (reps, seeds)) * scale
    else:
        d = sps.norm.ppf(p_true) + rng.standard_normal((reps, seeds))
    t = np.sqrt(seeds) * d.mean(1) / d.std(1, ddof=1)
    est, low, high = inference.improvement_from_t(t, seeds, level)
    return {"cover": _covers(low, high, p_true), "width": float(np.median(high - low)),
            "bias": float(np.mean(est) - p_true)}


def old_improvement_coverage(seeds: int, p_true: float, reps: int, seed: int = 0,
                             n_boot: int = 1000) -> dict[str, float]:
    """The previous interval: rliable's stratified percentile bootstrap of the Mann-Whitney
    probability ``P(X_A > X_B)`` over independent runs (normal, SD 1 each), judged against
    that probability; also how often the interval has zero width."""
    rng = np.random.default_rng(seed)
    mu = sps.norm.ppf(p_true) * np.sqrt(2.0)
    a = mu + rng.standard_normal((reps, seeds))
    b = rng.standard_normal((reps, seeds))
    rows = np.arange(reps)[:, None, None]
    ra = a[rows, rng.integers(0, seeds, (reps, n_boot, seeds))]
    rb = b[rows, rng.integers(0, seeds, (reps, n_boot, seeds))]
    wins = (ra[..., :, None] > rb[..., None, :]).mean(axis=(-2, -1))
    low, high = np.quantile(wins, [0.025, 0.975], axis=1)
    return {"cover": _covers(low, high, p_true), "zero_width": float(np.mean(high == low))}


# ---------------------------------------------------------------- detectable difference


def scenario_components(sc: Scenario) -> power.Components:
    """The variance components of the paired difference A - B under scenario ``sc``."""
    return power.Components(2 * sc.run_sd**2, 2 * sc.interaction_sd**2, 2 * sc.noise_sd**2)


def _old_detectable(se: np.ndarray, df: np.ndarray) -> np.ndarray:
    """The previous "Detectable": the observed se and df taken as known (noncentral t)."""
    out = np.empty(np.shape(se))
    for i, (s, f) in enumerate(zip(np.ravel(se), np.ravel(df), strict=True)):
        crit = sps.t.ppf(0.975, f)

        def gap(x: float, s: float = s, f: float = f, crit: float = crit) -> float:
            got = float(sps.nct.sf(crit, f, x) + sps.nct.cdf(-crit, f, x))
            return (1.0 if np.isnan(got) else got) - 0.8  # NaN far in the tail

        out.flat[i] = s * optimize.brentq(gap, 0.0, 40.0)
    return out


def detectable_check(comp: power.Components, seeds: int, images: int, reps: int,
                     seed: int = 0) -> dict[str, float]:
    """The detectable difference against the empirical 80%-power difference.

    ``empirical``: the difference at which the crossed test rejects in 80% of ``reps``
    simulated matrices (bisection with the same noise at every step); ``mdd``: what
    :func:`power.detectable` computes from the true components; ``old``: the median over the
    replicates of the previous plug-in value, and ``old_power`` the simulated power at it.
    """
    rng = np.random.default_rng(seed)
    noise = (rng.normal(0, np.sqrt(comp.seed), (reps, seeds, 1))
             + rng.normal(0, np.sqrt(comp.image), (reps, 1, images))
             + rng.normal(0, np.sqrt(comp.resid), (reps, seeds, images)))
    est0 = inference.crossed(noise)

    def hit(delta: float) -> float:
        shifted = inference.Estimate(est0.mean + delta, est0.se, est0.df)
        return float(np.mean(shifted.pvalue() < inference.ALPHA))

    lo, hi = 0.0, float(np.sqrt(comp.seed + comp.image + comp.resid)) * 10
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if hit(mid) < 0.8 else (lo, mid)
    pick = rng.choice(reps, size=min(reps, 400), replace=False)
    old = float(np.median(_old_detectable(est0.se[pick], est0.df[pick])))
    return {"mdd": power.detectable(comp, seeds, images), "empirical": (lo + hi) / 2,
            "old": old, "old_power": hit(old)}
