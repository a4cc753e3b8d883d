"""Tests, intervals and power for recipe comparisons, with the training run as the unit.

All images of one seed come from one trained network, so they share that run's deviation; and
the test images are themselves a sample. A recipe's scores and the paired differences between
two recipes are therefore a seeds x images matrix with *crossed* random effects::

    d[i, j] = mu + a_i + b_j + e_ij,   a ~ (0, s_a^2) seed,  b ~ (0, s_b^2) image,  e residual

The grand mean of an S x n matrix has variance ``s_a^2/S + s_b^2/n + s_e^2/(S n)``. The
two-way random-effects ANOVA estimates it from the seed, image and residual mean squares
(``E[MS_A] = s_e^2 + n s_a^2``, ``E[MS_B] = s_e^2 + S s_b^2``, ``E[MS_E] = s_e^2``) as
``(MS_A + MS_B - MS_E) / (S n)``, each variance component truncated at zero, with
Satterthwaite's degrees of freedom for the linear combination (Satterthwaite, Biometrics
Bulletin 2, 1946; Searle, Casella & McCulloch, *Variance Components*, 1992, ch. 4). The
fixed-test-set variant treats the images as fixed: the t-test on the per-seed means (variance
``MS_A / (S n)``, ``S - 1`` degrees of freedom). Every function here works on the last two axes
so the calibration simulations run thousands of matrices at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

POWER = 0.8
ALPHA = 0.05
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and degrees of freedom (arrays broadcast together)."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray

    def exact(self) -> np.ndarray:
        """Where the data do not vary at all (se 0 up to rounding of the mean)."""
        return self.se <= 1e-12 * np.abs(self.mean)

    def pvalue(self) -> np.ndarray:
        """Two-sided p-value of mean = 0 (1 when mean and se are both 0, 0 when only se is)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(self.mean) / self.se
        p = 2.0 * sps.t.sf(t, self.df)
        p = np.where(self.se == 0, np.where(self.mean == 0, 1.0, 0.0), p)
        p = np.where(self.exact() & (self.mean != 0), 0.0, p)
        return np.where(np.isfinite(self.mean) & ~np.isnan(self.df), p, np.nan)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Student-t interval ``mean -/+ t_{df} se``."""
        half = sps.t.ppf(0.5 + level / 2.0, self.df) * self.se
        half = np.where(self.exact(), 0.0, half)
        return self.mean - half, self.mean + half


@dataclass(frozen=True)
class MeanSquares:
    """Two-way ANOVA (one value per cell) of the last two axes: seeds x images."""

    grand: np.ndarray
    ms_a: np.ndarray
    ms_b: np.ndarray
    ms_e: np.ndarray
    seeds: int
    images: int


def mean_squares(d: np.ndarray) -> MeanSquares:
    """Seed, image and residual mean squares of complete ``(..., S, n)`` matrices."""
    d = np.asarray(d, dtype=np.float64)
    s, n = d.shape[-2:]
    grand = d.mean(axis=(-2, -1))
    rows = d.mean(axis=-1)
    cols = d.mean(axis=-2)
    nan = np.full(grand.shape, np.nan)
    ms_a = n * ((rows - grand[..., None]) ** 2).sum(-1) / (s - 1) if s > 1 else nan
    ms_b = s * ((cols - grand[..., None]) ** 2).sum(-1) / (n - 1) if n > 1 else nan
    if s > 1 and n > 1:
        resid = d - rows[..., None] - cols[..., None, :] + grand[..., None, None]
        ms_e = (resid**2).sum(axis=(-2, -1)) / ((s - 1) * (n - 1))
    else:
        ms_e = nan
    return MeanSquares(grand, ms_a, ms_b, ms_e, s, n)


def _satterthwaite(terms: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``V = sum c_k MS_k`` and its Satterthwaite df from ``(c_k MS_k, df_k)`` pairs."""
    total = sum(t for t, _ in terms)
    den = sum(t**2 / df for t, df in terms)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, total**2 / den, np.inf)
    return total, np.maximum(df, 1.0)


def crossed(d: np.ndarray) -> Estimate:
    """Grand mean of complete ``(..., S, n)`` matrices, seeds and images both random.

    One image: the image and residual terms cannot be separated from the mean, so this is
    the seed-level t-test. One seed: no estimate of run-to-run variance (se and df NaN).
    """
    m = mean_squares(d)
    s, n = m.seeds, m.images
    if s < 2:
        nan = np.full(m.grand.shape, np.nan)
        return Estimate(m.grand, nan, nan)
    if n < 2:
        return fixed_images(d)
    # variance components truncated at zero: which mean squares enter, with which sign
    use_a = m.ms_a > m.ms_e
    use_b = m.ms_b > m.ms_e
    c_e = 1.0 - use_a - use_b
    total, df = _satterthwaite([(use_a * m.ms_a, s - 1.0), (use_b * m.ms_b, n - 1.0),
                                (c_e * m.ms_e, (s - 1.0) * (n - 1.0))])
    se = np.sqrt(np.maximum(total, 0.0) / (s * n))
    return Estimate(m.grand, se, df)


def fixed_images(d: np.ndarray) -> Estimate:
    """Grand mean of complete ``(..., S, n)`` matrices for this test set (images fixed).

    The one-sample t on the per-seed means: it covers the expected score on these images
    over training runs, not over other test images.
    """
    d = np.asarray(d, dtype=np.float64)
    s = d.shape[-2]
    if s == 0 or d.shape[-1] == 0:
        nan = np.full(d.shape[:-2], np.nan)
        return Estimate(nan, nan, nan)
    rows = d.mean(axis=-1)
    mean = rows.mean(axis=-1)
    if s < 2:
        nan = np.full(mean.shape, np.nan)
        return Estimate(mean, nan, nan)
    se = rows.std(axis=-1, ddof=1) / np.sqrt(s)
    return Estimate(mean, se, np.full(mean.shape, s - 1.0))


def complete_block(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the largest complete block found by greedy deletion.

    Empty rows and columns go first; then, while a cell is missing, the row or column with
    the largest missing fraction is dropped (a column on a tie: seeds are the scarce unit).
    """
    ok = np.isfinite(np.asarray(d, dtype=np.float64))
    rows = np.flatnonzero(ok.any(axis=1))
    cols = np.flatnonzero(ok.any(axis=0))
    while rows.size and cols.size:
        sub = ok[np.ix_(rows, cols)]
        if sub.all():
            break
        row_miss = 1.0 - sub.mean(axis=1)
        col_miss = 1.0 - sub.mean(axis=0)
        if row_miss.max() > col_miss.max():
            rows = np.delete(rows, row_miss.argmax())
        else:
            cols = np.delete(cols, col_miss.argmax())
    return rows, cols


def complete(d: np.ndarray) -> np.ndarray:
    """The largest complete block of a seeds x images matrix with NaN for missing cells."""
    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    rows, cols = complete_block(d)
    return d[np.ix_(rows, cols)]


def paired_test(diffs: np.ndarray, *, images: str = "random") -> float:
    """Two-sided p-value that the mean paired difference (recipe - baseline) is zero.

    Args:
        diffs: seeds x images matrix of paired differences; NaN marks a missing cell (the
            largest complete block is used).
        images: ``"random"`` (default: crossed seed and image effects, calibrated when the
            test images are a sample) or ``"fixed"`` (t on per-seed means: this test set).

    Returns:
        The p-value; NaN with fewer than 2 seeds or no data.
    """
    block = complete(diffs)
    if block.size == 0:
        return float("nan")
    est = crossed(block) if images == "random" else fixed_images(block)
    return float(est.pvalue())


def _power(shift: np.ndarray | float, df: float, level: float = ALPHA) -> np.ndarray:
    """Power of the two-sided t-test when the true mean is ``shift`` standard errors."""
    crit = sps.t.ppf(1.0 - level / 2.0, df)
    power = sps.nct.sf(crit, df, shift) + sps.nct.cdf(-crit, df, shift)
    return np.where(np.isnan(power), 1.0, power)  # scipy's nct gives NaN far in the tail


def detectable(se: float, df: float, power: float = POWER) -> float:
    """Smallest true difference the two-sided t-test detects with probability ``power``."""
    if np.isnan(se) or np.isnan(df):
        return float("nan")
    if se == 0:
        return 0.0
    shift = optimize.brentq(lambda x: float(_power(x, df)) - power, 0.0, 40.0)
    return float(shift * se)


def seeds_needed(
    block: np.ndarray, delta: float, power: float = POWER, min_seeds: int = 3
) -> float:
    """Seeds (with this many test images) for the crossed test to detect ``delta`` at ``power``.

    The search starts at ``min_seeds`` (fewer are never tested).

    From the estimated variance components; ``inf`` when even unlimited seeds would not do
    (the image term alone is too large) or more than ``MAX_SEEDS`` would be needed.
    """
    m = mean_squares(block)
    if m.seeds < 2 or not np.isfinite(delta) or delta == 0:
        return float("nan") if m.seeds < 2 else float("inf")
    n = m.images
    if n < 2:
        var_a, var_b, var_e = float(m.ms_a), 0.0, 0.0
    else:
        var_e = float(m.ms_e)
        var_a = max(float(m.ms_a) - var_e, 0.0) / n
        var_b = max(float(m.ms_b) - var_e, 0.0) / m.seeds
    for s in range(min_seeds, MAX_SEEDS + 1):
        # expected mean squares with s seeds, combined as the test combines them
        terms = [(var_e + n * var_a, s - 1.0)]
        if n > 1:
            terms += [(var_e + s * var_b, n - 1.0), (-var_e, (s - 1.0) * (n - 1.0))]
        total, df = _satterthwaite([(np.float64(t), d) for t, d in terms])
        if total <= 0:
            return float(s)
        if _power(abs(delta) / np.sqrt(total / (s * n)), float(df)) >= power:
            return float(s)
        if var_a == 0 and var_e == 0:
            break  # only the image term: more seeds do not help
    return float("inf")


def prob_improvement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(X_a > X_b) over all pairs of runs (ties count half), on the last axis.

    The probability of improvement of Agarwal et al. (NeurIPS 2021, rliable): the
    Mann-Whitney statistic of the per-run scores divided by the number of pairs.
    """
    a = np.asarray(a, dtype=np.float64)[..., :, None]
    b = np.asarray(b, dtype=np.float64)[..., None, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1))


def prob_improvement_ci(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *, n_boot: int = 2000,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(P(a > b), low, high)``: rliable's stratified percentile bootstrap (runs of each
    recipe resampled separately). NaN when either side has no run."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    ra = a[rng.integers(0, a.size, size=(n_boot, a.size))]
    rb = b[rng.integers(0, b.size, size=(n_boot, b.size))]
    reps = prob_improvement(ra, rb)
    low, high = np.quantile(reps, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(prob_improvement(a, b)), float(low), float(high)


def rank_stability(
    cube: np.ndarray, higher: bool, rng: np.random.Generator, *, n_boot: int = 2000
) -> np.ndarray:
    """How often each recipe takes each rank over crossed seed x image bootstrap replicates.

    Args:
        cube: recipes x seeds x images scores (complete; the same seeds and images for every
            recipe, so a replicate keeps the pairing).
        higher: whether higher scores are better.
        rng: random generator.
        n_boot: replicates.

    Returns:
        ``(recipes, recipes)`` array: entry ``[r, k]`` is the fraction of replicates in which
        recipe ``r`` has rank ``k + 1`` (ties take the best rank).
    """
    cube = np.asarray(cube, dtype=np.float64)
    n_rec, s, n = cube.shape
    counts = np.zeros((n_rec, n_rec))
    chunk = max(1, 4_000_000 // max(1, n_rec * s * n))
    sign = -1.0 if higher else 1.0
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        si = rng.integers(0, s, size=(b, s))
        ii = rng.integers(0, n, size=(b, n))
        # mean over drawn seeds and drawn images of cube[r, si, ii]
        picked = cube[:, si[:, :, None], ii[:, None, :]]  # (R, b, s, n)
        means = picked.mean(axis=(-2, -1)).T  # (b, R)
        ranks = sps.rankdata(sign * means, method="min", axis=1).astype(int) - 1
        np.add.at(counts, (np.broadcast_to(np.arange(n_rec), ranks.shape), ranks), 1.0)
    return counts / n_boot
