"""Power of the crossed seed x image test, from fitted variance components, by simulation.

The detectable difference of a table ("Detectable") and the seeds needed for a difference the
user names (``compare --mdd``) are computed from the variance components fitted to the paired
difference matrix (:func:`components`), not from the observed standard error: that error is
itself estimated from a few seeds, and treating it as known overstates the power (at 3 seeds a
difference computed that way is found well under 80% of the time).

Under the model ``d[i, j] = mu + a_i + b_j + e_ij`` with normal effects and a complete S x n
matrix, the grand mean and the three mean squares are independent, the grand mean is normal
with variance ``s_a^2/S + s_b^2/n + s_e^2/(S n)`` and each mean square is its expectation
times a chi-square over its df. :func:`power` draws the mean squares (``DRAWS`` draws from a
fixed seed), applies the test exactly as :func:`benchmark.analysis.inference.crossed` does
(truncation, pooling, Satterthwaite df, t critical value), and averages the probability, given
the drawn standard error, that the normal grand mean lands beyond the critical value; this is
smooth in the difference, so :func:`detectable` solves it with a root finder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

from benchmark.analysis.inference import (
    ALPHA,
    MAX_SEEDS,
    MIN_SEEDS,
    POWER,
    crossed_se,
    mean_squares,
)

__all__ = ["Components", "components", "detectable", "power", "seeds_needed"]

DRAWS = 4000
RNG_SEED = 20240


@dataclass(frozen=True)
class Components:
    """Variance components of a paired difference matrix (squared units of the metric)."""

    seed: float
    image: float
    resid: float


def components(block: np.ndarray) -> Components:
    """Seed, image and residual variance components of a complete S x n matrix (ANOVA
    estimates; a negative one is set to zero and its mean square pooled into the residual).
    One image: the per-seed variance is all "seed"."""
    m = mean_squares(block)
    s, n = m.seeds, m.images
    if s < 2:
        return Components(math.nan, math.nan, math.nan)
    if n < 2:
        return Components(float(m.ms_a), 0.0, 0.0)
    ms_a, ms_b, ms_e = float(m.ms_a), float(m.ms_b), float(m.ms_e)
    df_a, df_b, df_e = s - 1.0, n - 1.0, (s - 1.0) * (n - 1.0)
    ss, df = ms_e * df_e, df_e
    if ms_a <= ms_e:
        ss, df = ss + ms_a * df_a, df + df_a
    if ms_b <= ms_e:
        ss, df = ss + ms_b * df_b, df + df_b
    resid = ss / df
    return Components(max(ms_a - resid, 0.0) / n if ms_a > ms_e else 0.0,
                      max(ms_b - resid, 0.0) / s if ms_b > ms_e else 0.0, resid)


def _test_draws(comp: Components, s: int, n: int) -> tuple[float, np.ndarray]:
    """SD of the grand mean, and the test's critical value for |mean| in each draw."""
    rng = np.random.default_rng([RNG_SEED, s, n])
    if n < 2:  # the t-test on the per-seed means
        e_a = comp.seed + comp.image + comp.resid
        ms_a = e_a * rng.chisquare(s - 1, DRAWS) / (s - 1)
        crit = sps.t.ppf(1 - ALPHA / 2, s - 1) * np.sqrt(ms_a / s)
        return math.sqrt(e_a / s), crit
    e_e = comp.resid
    e_a, e_b = e_e + n * comp.seed, e_e + s * comp.image
    df_a, df_b, df_e = s - 1, n - 1, (s - 1) * (n - 1)
    ms_a = e_a * rng.chisquare(df_a, DRAWS) / df_a
    ms_b = e_b * rng.chisquare(df_b, DRAWS) / df_b
    ms_e = e_e * rng.chisquare(df_e, DRAWS) / df_e
    se, df = crossed_se(ms_a, ms_b, ms_e, s, n)
    sd = math.sqrt(max(e_a + e_b - e_e, 0.0) / (s * n))
    return sd, sps.t.ppf(1 - ALPHA / 2, df) * se


def power(delta: float, comp: Components, seeds: int, images: int) -> float:
    """Probability that the crossed test (two-sided, 5%) rejects when the true mean difference
    is ``delta``, with ``seeds`` seeds and ``images`` test images."""
    sd, crit = _test_draws(comp, seeds, images)
    if sd == 0:
        return float(np.mean(abs(delta) > crit)) if delta else 0.0
    d = abs(delta)
    return float(np.mean(sps.norm.sf((crit - d) / sd) + sps.norm.cdf((-crit - d) / sd)))


def detectable(comp: Components, seeds: int, images: int, target: float = POWER) -> float:
    """Smallest true difference the crossed test detects with probability ``target``
    (NaN without a fitted run-to-run variance or with fewer than ``MIN_SEEDS`` seeds)."""
    if seeds < MIN_SEEDS or not np.isfinite(comp.seed):
        return math.nan
    sd, crit = _test_draws(comp, seeds, images)
    if sd == 0:
        return 0.0

    def gap(x: float) -> float:
        return float(np.mean(sps.norm.sf((crit - x) / sd) + sps.norm.cdf((-crit - x) / sd))
                     ) - target

    high = sd
    while gap(high) < 0:
        high *= 2.0
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-6 * sd))


def seeds_needed(delta: float, comp: Components, images: int, target: float = POWER,
                 max_seeds: int = MAX_SEEDS) -> float:
    """Fewest seeds (at least ``MIN_SEEDS``, with ``images`` test images) at which the crossed
    test detects a true difference ``delta`` with probability ``target``; ``inf`` when more
    than ``max_seeds`` are needed (the image term alone hides the difference: more test
    images would be needed), NaN without fitted components."""
    if not (np.isfinite(comp.seed) and np.isfinite(delta)) or delta == 0:
        return math.nan
    if power(delta, comp, max_seeds, images) < target:
        return math.inf
    lo, hi = MIN_SEEDS, max_seeds
    if power(delta, comp, lo, images) >= target:
        return float(lo)
    while hi - lo > 1:  # power grows with the seeds: bisection
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(delta, comp, mid, images) >= target else (mid, hi)
    return float(hi)
