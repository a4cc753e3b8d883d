"""The statistics of ``compare --reference``: equivalence within absolute margins, the SD
ratio, and one verdict per recipe whose error rate under exact reproduction is bounded.

Per metric, on the per-seed means (``m`` reference seeds, ``n`` of the user's):

* **Equivalence** (two one-sided t-tests, Schuirmann 1987; Wellek 2010, sec. 6.1): the rerun
  *reproduces* the metric when the 90% Student t interval of ``u - r`` (pooled run-to-run SD,
  ``m + n - 2`` df; with one user seed the reference's SD, ``m - 1`` df) lies inside
  ``±MARGINS[metric]``. The margins are absolute, in the metric's units, declared here as part
  of the comparison protocol: they do not grow with the noise, so a noisy rerun cannot be
  "reproduced" by its own noise. Each one-sided test is at ``ALPHA``: a rerun whose expected
  score sits at the margin is called reproduced at most 5% of the time.
* **SD ratio**: with two or more user seeds, the one-sided F-test of ``sd_user > sd_ref``; a
  rerun much noisier than the reference is a finding of its own (a different protocol in
  effect), reported as *differs (noisier)*.
* **Differs**: the ``1 - ALPHA / (2 k)`` t interval of ``u - r`` excludes zero, or the SD
  ratio test rejects at ``ALPHA / (2 k)``, with ``k`` the number of metrics compared for the
  recipe (Bonferroni over the ``2 k`` tests), so that under exact reproduction the recipe is
  called *differs* at most 5% of the time however many metrics are compared.

The recipe is *reproduced* when every metric is (an intersection-union test: each at 5%, no
correction needed, Berger 1982), *differs* when any metric differs, and otherwise *too few
seeds to tell*, with the user seeds that give an 80% chance of "reproduced" if the rerun
matches the reference exactly at the reference's SD. docs/STATISTICS.md has the simulated
error rates (``benchmarks/equivalence.py``).

MARGINS come from the seed-to-seed spread of the reference (results/reference/LOL-v1/lite, 12
recipes that did not collapse): the SD over 3 seeds of a recipe's mean PSNR is 0.13-0.35 dB
(median about 0.22), of SSIM 0.003-0.015 (median about 0.009), of GT-mean PSNR 0.15-0.72 dB
(median about 0.31). A margin of about twice the median SD, rounded up (0.5 dB, 0.02, 0.75 dB)
is a shift that one run of the protocol rarely shows by chance yet well under the differences
between losses the benchmark reports; LPIPS (not in the reference) gets 0.02 by the same
reasoning applied to SSIM's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate
from scipy import stats as sps

__all__ = ["ALPHA", "MARGINS", "Equivalence", "equivalence", "paired_equivalence", "pairs_needed",
           "power_exact", "power_paired", "seeds_needed"]

#: metric -> absolute equivalence margin in the metric's units. Kept here, keyed by the
#: registry's names (benchmark.metrics.METRICS), not in the registry: a margin is a choice of
#: this test, calibrated on the reference's seed spread (benchmarks/equivalence.py), not a
#: property of the metric. A summarised metric without one is not checked.
MARGINS = {"psnr": 0.5, "ssim": 0.02, "lpips": 0.02, "psnr_gtmean": 0.75}
ALPHA = 0.05  # each one-sided test of the equivalence test; the recipe's "differs" in all
POWER = 0.8
MAX_SEEDS = 100
CI_LEVEL = 0.95  # the interval shown


@dataclass(frozen=True)
class Equivalence:
    """One metric of one recipe: the user's runs against the reference's."""

    n_ref: int
    n_user: int
    diff: float  # user mean - reference mean
    ci_low: float  # 95% t interval of diff
    ci_high: float
    sd: float  # run-to-run SD the test uses (pooled; the reference's with one user seed)
    margin: float  # absolute, MARGINS[metric]
    sd_ref: float
    sd_user: float
    sd_p: float  # one-sided F-test of sd_user > sd_ref (NaN with one user seed)
    verdict: str  # reproduced | differs | differs (noisier) | too few seeds
    power: float  # chance of "reproduced" under exact reproduction at the reference's SD
    seeds_needed: int | None  # user seeds for POWER under exact reproduction (None: > MAX)


def _df(m: int, n: int) -> int:
    return m + n - 2 if n > 1 else m - 1


@lru_cache(maxsize=4096)
def power_exact(m: int, n: int, margin_sds: float, alpha: float = ALPHA) -> float:
    """P("reproduced") when the rerun's expectation equals the reference's, the run SD is
    ``1 / margin_sds`` of the margin (integrated over the SD estimate's chi-square law)."""
    df = _df(m, n)
    if m < 1 or n < 1 or df < 1 or not math.isfinite(margin_sds):
        return 0.0
    return _tost_power(math.sqrt(1 / m + 1 / n), df, margin_sds, alpha)


@lru_cache(maxsize=4096)
def power_paired(n: int, margin_sds: float, alpha: float = ALPHA) -> float:
    """P("reproduced") of the paired test with ``n`` seed pairs when the expected difference
    is zero and the SD of a pair's difference is ``1 / margin_sds`` of the margin."""
    if n < 2 or not math.isfinite(margin_sds):
        return 0.0
    return _tost_power(math.sqrt(1 / n), n - 1, margin_sds, alpha)


def _tost_power(c: float, df: int, margin_sds: float, alpha: float) -> float:
    """P(|d| + t * s * c < margin) for d ~ N(0, c^2), s^2 ~ chi2(df) / df, in SD units."""
    t = float(sps.t.ppf(1 - alpha, df))

    def given(x: float) -> float:  # x = s^2 / sigma^2 ~ chi2(df) / df
        room = margin_sds - t * math.sqrt(x) * c  # in run SDs
        return (2 * sps.norm.cdf(room / c) - 1) * sps.chi2.pdf(x * df, df) * df if room > 0 else 0

    top = (margin_sds / (t * c)) ** 2
    return float(integrate.quad(given, 0, top, limit=200)[0])


@lru_cache(maxsize=1024)
def seeds_needed(m: int, margin_sds: float, power: float = POWER) -> int | None:
    """Fewest user seeds giving ``power`` under exact reproduction (None: more than MAX)."""
    for n in range(1, MAX_SEEDS + 1):
        if power_exact(m, n, round(margin_sds, 3)) >= power:
            return n
    return None


def equivalence(ref: np.ndarray, user: np.ndarray, margin: float, *, k: int = 1,
                alpha: float = ALPHA, with_power: bool = True) -> Equivalence:
    """Equivalence within ``±margin``, SD ratio and verdict of one metric (module doc); ``k``:
    the number of metrics compared for the recipe (the Bonferroni split of "differs");
    ``with_power=False`` skips the power and seeds-needed integrals (simulations)."""
    r, u = np.asarray(ref, dtype=np.float64), np.asarray(user, dtype=np.float64)
    m, n = r.size, u.size
    nan = math.nan
    diff = float(u.mean() - r.mean()) if m and n else nan
    sd_ref = float(r.std(ddof=1)) if m > 1 else nan
    sd_user = float(u.std(ddof=1)) if n > 1 else nan
    df = _df(m, n)
    if m == 0 or n == 0 or df < 1:
        return Equivalence(m, n, diff, nan, nan, nan, margin, sd_ref, sd_user, nan,
                           "too few seeds", 0.0, seeds_needed(max(m, 1), nan))
    ss = ((r - r.mean()) ** 2).sum() + (((u - u.mean()) ** 2).sum() if n > 1 else 0.0)
    sd = math.sqrt(ss / df)
    c = math.sqrt(1 / m + 1 / n)
    half = sps.t.ppf((1 + CI_LEVEL) / 2, df) * sd * c
    sd_p = (float(sps.f.sf(sd_user**2 / sd_ref**2, n - 1, m - 1))
            if n > 1 and sd_ref > 0 else nan)
    margin_sds = round(margin / sd_ref, 3) if sd_ref > 0 else math.inf
    power = power_exact(m, n, margin_sds, alpha) if with_power else nan
    needed = seeds_needed(m, margin_sds) if with_power else None
    verdict = _verdict(diff, sd * c, df, margin, alpha, k, sd_p)
    return Equivalence(m, n, diff, diff - half, diff + half, sd, margin, sd_ref, sd_user, sd_p,
                       verdict, power, needed)


def _verdict(diff: float, se: float, df: int, margin: float, alpha: float, k: int,
             sd_p: float = math.nan) -> str:
    """One metric's verdict from the difference, its standard error and df (both tests).

    ``se == 0``: every run (or pair) identical, so equal or not, nothing in between; ``sd_p``:
    the SD-ratio test's p (NaN: none), "differs (noisier)" below ``alpha / (2 k)``."""
    split = alpha / (2 * k)
    if se == 0.0:
        return "reproduced" if abs(diff) < margin else "differs"
    if np.isfinite(sd_p) and sd_p < split:
        return "differs (noisier)"
    if abs(diff) + sps.t.ppf(1 - alpha, df) * se < margin:
        return "reproduced"
    if abs(diff) > sps.t.ppf(1 - split / 2, df) * se:
        return "differs"
    return "too few seeds"


@lru_cache(maxsize=1024)
def pairs_needed(margin_sds: float, power: float = POWER) -> int | None:
    """Fewest seed pairs giving ``power`` to the paired test (None: more than MAX)."""
    for n in range(2, MAX_SEEDS + 1):
        if power_paired(n, round(margin_sds, 3)) >= power:
            return n
    return None


def paired_equivalence(ref: np.ndarray, user: np.ndarray, margin: float, *, k: int = 1,
                       alpha: float = ALPHA, with_power: bool = True) -> Equivalence:
    """Equivalence within ``±margin`` of seed-paired runs (``ref[i]`` and ``user[i]`` share
    the seed): the same two one-sided t-tests on the ``n`` differences (``n - 1`` df).

    For a rerun of the reference's own seeds that differs only in arithmetic (another device,
    library or thread count): the seed fixes the initial weights and the crop stream on every
    device, so the run-to-run spread that the unpaired test must beat cancels and only what
    the arithmetic changes is left. ``sd`` is the SD of the differences; ``power`` and
    ``seeds_needed`` (pairs) are plug-in values at that observed SD. No SD-ratio test (the two
    sides are correlated); ``sd_p`` is NaN.
    """
    r, u = np.asarray(ref, dtype=np.float64), np.asarray(user, dtype=np.float64)
    if r.shape != u.shape:
        raise ValueError(f"paired_equivalence: {r.size} reference and {u.size} user values")
    n, nan = r.size, math.nan
    d = u - r
    diff = float(d.mean()) if n else nan
    sd_ref = float(r.std(ddof=1)) if n > 1 else nan
    sd_user = float(u.std(ddof=1)) if n > 1 else nan
    if n < 2:
        return Equivalence(n, n, diff, nan, nan, nan, margin, sd_ref, sd_user, nan,
                           "too few seeds", 0.0, None)
    sd, c, df = float(d.std(ddof=1)), math.sqrt(1 / n), n - 1
    half = sps.t.ppf((1 + CI_LEVEL) / 2, df) * sd * c
    margin_sds = round(margin / sd, 3) if sd > 0 else math.inf
    power = (1.0 if sd == 0 else power_paired(n, margin_sds, alpha)) if with_power else nan
    needed = (2 if sd == 0 else pairs_needed(margin_sds)) if with_power else None
    verdict = _verdict(diff, sd * c, df, margin, alpha, k)  # no SD-ratio test when paired
    return Equivalence(n, n, diff, diff - half, diff + half, sd, margin, sd_ref, sd_user, nan,
                       verdict, power, needed)


def recipe_verdict(verdicts: list[str]) -> str:
    """Reproduced when every metric is, differs when any does, else too few seeds."""
    if any(v.startswith("differs") for v in verdicts):
        return "differs"
    return "reproduced" if verdicts and all(v == "reproduced" for v in verdicts) else \
        "too few seeds"
