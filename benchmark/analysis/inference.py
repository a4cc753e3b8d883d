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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

POWER = 0.8
ALPHA = 0.05
MAX_SEEDS = 1000
#: fewest seeds for a test (``paired_test`` refuses fewer)
MIN_SEEDS = 3


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
    if m.seeds < 2:
        nan = np.full(m.grand.shape, np.nan)
        return Estimate(m.grand, nan, nan)
    if m.images < 2:
        return fixed_images(d)
    se, df = crossed_se(m.ms_a, m.ms_b, m.ms_e, m.seeds, m.images)
    return Estimate(m.grand, se, df)


def crossed_se(ms_a: np.ndarray, ms_b: np.ndarray, ms_e: np.ndarray, s: int, n: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of the grand mean and its Satterthwaite df from the three mean squares.

    A variance component whose estimate is negative is set to zero and its mean square pooled
    into the residual (the balanced REML estimate on that boundary): with both the seed and the
    image component at zero the residual has ``S n - 1`` degrees of freedom, not
    ``(S - 1)(n - 1)``. With one at zero the estimate of the variance of the mean is the other
    mean square alone, pooled or not.
    """
    ms_a, ms_b, ms_e = (np.asarray(x, dtype=np.float64) for x in (ms_a, ms_b, ms_e))
    df_a, df_b, df_e = s - 1.0, n - 1.0, (s - 1.0) * (n - 1.0)
    use_a = ms_a > ms_e
    use_b = ms_b > ms_e
    neither = ~use_a & ~use_b
    pooled = (ms_a * df_a + ms_b * df_b + ms_e * df_e) / (df_a + df_b + df_e)
    c_e = 1.0 - use_a - use_b
    resid = np.where(neither, pooled, ms_e)
    total = use_a * ms_a + use_b * ms_b + c_e * resid
    den = ((use_a * ms_a) ** 2 / df_a + (use_b * ms_b) ** 2 / df_b
           + (c_e * resid) ** 2 / np.where(neither, df_a + df_b + df_e, df_e))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.maximum(np.where(den > 0, total**2 / den, np.inf), 1.0)
    return np.sqrt(np.maximum(total, 0.0) / (s * n)), df


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
        The p-value; NaN with no data or fewer than ``MIN_SEEDS`` seeds (with 2 seeds the
        run-to-run variance rests on one degree of freedom and the test rejects a true null
        up to twice as often as it should when runs dominate; a warning says so).
    """
    block = complete(diffs)
    if block.size == 0:
        return float("nan")
    if block.shape[0] < MIN_SEEDS:
        warnings.warn(f"paired_test: {block.shape[0]} seed(s), fewer than {MIN_SEEDS}: no "
                      "p-value (run-to-run variance cannot be estimated well enough)",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    est = crossed(block) if images == "random" else fixed_images(block)
    return float(est.pvalue())


@dataclass(frozen=True)
class Improvement:
    """Probability of improvement with its interval (``low``/``high`` NaN: no interval)."""

    estimate: float
    low: float
    high: float
    seeds: int


def _nc_for_quantile(t: np.ndarray, df: float, q: float, bound: float) -> np.ndarray:
    """The noncentrality ``lam`` in ``[-bound, bound]`` with ``nct.cdf(t, df, lam) = q``
    (decreasing in ``lam``; clipped at the bounds), by bisection, vectorised over ``t``."""
    lo = np.full(np.shape(t), -bound)
    hi = np.full(np.shape(t), bound)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        cdf = sps.nct.cdf(t, df, mid)
        cdf = np.where(np.isnan(cdf), np.where(mid > t, 0.0, 1.0), cdf)
        above = cdf > q  # the root lies above mid
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return (lo + hi) / 2.0


def _row_means(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        return x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row gives NaN
        return np.nanmean(x.reshape(x.shape[0], -1), axis=1)


def prob_improvement(
    a: np.ndarray, b: np.ndarray, *, higher: bool = True, level: float = 0.95
) -> Improvement:
    """P(a run of A beats the run of B with the same seed), from two seeds x images arrays.

    Rows are seeds, paired by position (the same seed gives both recipes the same
    initialisation and crop order); the score of a run is its mean over the test images.
    The quantity is ``P(D > 0)`` for the per-seed difference ``D = mean_A - mean_B`` of a new
    seed on these test images (``D < 0`` when lower is better). With ``D`` normal,
    ``P = Phi(delta)``, ``delta = E[D] / SD[D]``, and ``sqrt(S) mean(D) / sd(D)`` is noncentral
    t with ``S - 1`` df and noncentrality ``sqrt(S) delta``: inverting it gives an exact
    interval for ``delta`` (so for ``P``) and a median-unbiased estimate. The interval is
    mapped through ``Phi``; ``|delta|`` is capped at 6 (``P`` within 1e-9 of 0 or 1).

    Args:
        a: seeds x images (or seeds) scores of recipe A; NaN cells are averaged over.
        b: the same for recipe B, same seeds in the same order.
        higher: whether higher scores are better.
        level: interval level.

    Returns:
        :class:`Improvement`; NaN estimate with no seeds, no interval with fewer than
        ``MIN_SEEDS`` seeds or when every seed gives the same difference.
    """
    ma, mb = _row_means(a), _row_means(b)
    d = (ma - mb) if higher else (mb - ma)
    d = d[np.isfinite(d)]
    s = d.size
    nan = float("nan")
    if s == 0:
        return Improvement(nan, nan, nan, 0)
    sd = d.std(ddof=1) if s > 1 else 0.0
    if s < MIN_SEEDS or sd <= 1e-12 * max(abs(d.mean()), 1e-300):
        est = float(np.mean(d > 0) + 0.5 * np.mean(d == 0))
        return Improvement(est, nan, nan, s)
    est, low, high = improvement_from_t(np.sqrt(s) * d.mean() / sd, s, level)
    return Improvement(float(est), float(low), float(high), s)


def improvement_from_t(t_obs: np.ndarray, seeds: int, level: float = 0.95
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimate, low, high)`` of ``Phi(delta)`` from the one-sample t statistics ``t_obs``
    of per-seed differences over ``seeds`` seeds (vectorised; see :func:`prob_improvement`)."""
    t_obs = np.asarray(t_obs, dtype=np.float64)
    bound = 6.0 * np.sqrt(seeds)
    lam = [_nc_for_quantile(t_obs, seeds - 1.0, q, bound)
           for q in (0.5, 0.5 + level / 2.0, 0.5 - level / 2.0)]
    est, low, high = (sps.norm.cdf(x / np.sqrt(seeds)) for x in lam)
    return est, low, high


def rank_stability(
    cube: np.ndarray, higher: bool, rng: np.random.Generator, *, n_boot: int = 2000
) -> np.ndarray:
    """How often each recipe takes each rank, by a parametric bootstrap of the crossed design.

    The recipe means are redrawn from a normal distribution centred on the observed means
    whose covariance reproduces, for every pair of recipes, the crossed seed x image variance
    of the difference of their means (:func:`crossed` on the paired difference matrix):
    ``Sigma = -J D J / 2`` with ``D`` the matrix of those variances and ``J`` the centring
    matrix, negative eigenvalues set to zero. Ranks depend on differences only, so this is the
    sampling variability of the ranking with seeds and test images both random (a joint
    resampling of seeds and images does not reproduce it: McCullagh, Bernoulli 6, 2000).

    Args:
        cube: recipes x seeds x images scores (complete; the same seeds and images for every
            recipe).
        higher: whether higher scores are better.
        rng: random generator.
        n_boot: replicates.

    Returns:
        ``(recipes, recipes)`` array: entry ``[r, k]`` is the fraction of replicates in which
        recipe ``r`` has rank ``k + 1`` (ties take the best rank).
    """
    cube = np.asarray(cube, dtype=np.float64)
    n_rec = cube.shape[0]
    means = cube.mean(axis=(-2, -1))
    dist = np.zeros((n_rec, n_rec))
    for r in range(n_rec):
        for q in range(r + 1, n_rec):
            se = float(crossed(cube[r] - cube[q]).se)
            dist[r, q] = dist[q, r] = se**2 if np.isfinite(se) else 0.0
    j = np.eye(n_rec) - 1.0 / n_rec
    vals, vecs = np.linalg.eigh(-j @ dist @ j / 2.0)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    draws = means + rng.standard_normal((n_boot, n_rec)) @ root.T
    sign = -1.0 if higher else 1.0
    ranks = sps.rankdata(sign * draws, method="min", axis=1).astype(int) - 1
    counts = np.zeros((n_rec, n_rec))
    np.add.at(counts, (np.broadcast_to(np.arange(n_rec), ranks.shape), ranks), 1.0)
    return counts / n_boot


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaNs stay NaN and are not counted in the family.

    ``p_(i)`` sorted ascending (1-based ``i`` of ``m``) becomes
    ``min(1, max_{j<=i} (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
