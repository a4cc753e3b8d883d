"""Does a cheap profile rank recipes the way a long one does? (``compare --transfer``.)

The study takes the same recipes trained at two profiles (``lite`` and ``long``, say) and
evaluated on the same test images, and asks per metric how well the ranking of the recipe
means at one profile predicts the ranking at the other:

- **Kendall's tau-b and Spearman's rho** of the recipe means (each recipe's mean over its
  seeds and the test images), with 95% percentile bootstrap intervals. A replicate resamples
  the two random factors of the crossed design: the *test images* (one draw shared by every
  recipe and both profiles, since they are the same images) and, separately at each profile,
  the *seeds* (one draw shared by the recipes that finished the same seeds, so recipes stay
  paired by seed where their seeds match; a recipe with another set of seeds is resampled on
  its own). The simulation in ``tests/test_transfer.py`` measures the interval's coverage of
  the tau of the expected recipe means.
- **Pairwise order agreement**: for every pair of recipes, whether the order of their means is
  the same at both profiles, and at each profile whether that order is significant by the
  crossed seed x image test of :func:`benchmark.analysis.inference.paired_test` (the
  comparison tables' test), Holm-adjusted over the pairs of that profile and metric.

Everything here is a function of plain score arrays ``{recipe: array(seeds x images)}`` per
profile (a row of NaN is a seed that recipe did not finish; every array of a profile has the
same rows, every array of both profiles the same image columns); :func:`.scores.score_table`
builds them from the frames of :func:`benchmark.analysis.frames.load_runs`, and the formatting
comes last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.analysis import inference
from benchmark.analysis.stats import holm

__all__ = ["ALPHA", "Agreement", "Transfer", "agreement", "coverage", "kendall_tau",
           "pair_orders", "spearman_rho", "transfer"]

ALPHA = 0.05
N_BOOT = 2000
LEVEL = 0.95


def kendall_tau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the rows of ``x`` and ``y`` (``(..., R)``; NaN when one side
    is constant): equal to :func:`scipy.stats.kendalltau`'s default, on many rows at once."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(x.shape[-1], k=1)
    dx, dy = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
    den = np.sqrt((dx != 0).sum(-1) * (dy != 0).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (dx * dy).sum(-1) / den, np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho (Pearson correlation of average ranks) between the rows of ``x`` and
    ``y``; NaN when one side is constant."""
    rx = sps.rankdata(np.asarray(x, dtype=np.float64), axis=-1)
    ry = sps.rankdata(np.asarray(y, dtype=np.float64), axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / den, np.nan)


@dataclass(frozen=True)
class Transfer:
    """The transfer study of one metric between profiles ``a`` and ``b``.

    ``recipes`` order every per-recipe array; ``pairs`` has one row per recipe pair: the two
    recipes (``first`` < ``second`` by name), the mean difference first - second at each
    profile (``diff_a``, ``diff_b``), ``agree`` (same order at both; False for a tie), and at
    each profile the crossed test's p (``p_a``, ``p_b``), its Holm-adjusted value
    (``p_a_holm``, ``p_b_holm``) and whether that is below ``ALPHA`` (``sig_a``, ``sig_b``).
    """

    recipes: tuple[str, ...]
    mean_a: np.ndarray
    mean_b: np.ndarray
    seeds_a: tuple[int, ...]  # finished seeds (rows) per recipe at a
    seeds_b: tuple[int, ...]
    n_images: int
    tau: float
    tau_low: float
    tau_high: float
    rho: float
    rho_low: float
    rho_high: float
    pairs: pd.DataFrame

    @property
    def n_agree(self) -> int:
        """Recipe pairs ordered the same way at both profiles."""
        return int(self.pairs["agree"].sum())

    def flips(self) -> pd.DataFrame:
        """The pairs whose order differs between the profiles (ties included)."""
        return self.pairs[~self.pairs["agree"]]


def _check(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> list[str]:
    recipes = sorted(set(a) & set(b))
    if len(recipes) < 2:
        raise ValueError(f"need 2 or more recipes at both profiles, got {recipes}")
    n = {np.asarray(a[r]).shape[-1] for r in recipes} | {np.asarray(b[r]).shape[-1]
                                                         for r in recipes}
    if len(n) != 1:
        raise ValueError(f"every array needs the same image columns, got widths {sorted(n)}")
    for side in (a, b):
        if len({np.asarray(side[r]).shape[0] for r in recipes}) != 1:
            raise ValueError("every array of one profile needs the same seed rows")
    return recipes


def _groups(cube: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(recipe indices, finished seed rows)`` for each set of recipes with the same seeds."""
    done = np.isfinite(cube).all(axis=-1)  # recipes x seeds
    out: dict[tuple[int, ...], list[int]] = {}
    for r, row in enumerate(done):
        key = tuple(np.flatnonzero(row))
        if not key:
            raise ValueError("a recipe has no complete seed row")
        out.setdefault(key, []).append(r)
    return [(np.array(rs), np.array(rows)) for rows, rs in out.items()]


def _boot_means(cube: np.ndarray, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(B, R)`` recipe means over resampled seeds (per seed group) and the drawn images."""
    b = images.shape[0]
    means = np.empty((b, cube.shape[0]))
    for recipes, rows in _groups(cube):
        seeds = rows[rng.integers(0, rows.size, size=(b, rows.size))]
        for r in recipes:
            means[:, r] = cube[r][seeds[:, :, None], images[:, None, :]].mean(axis=(-2, -1))
    return means


def _means(cube: np.ndarray) -> np.ndarray:
    """Each recipe's mean over its complete seed rows."""
    return np.array([c[np.isfinite(c).all(-1)].mean() for c in cube])


def _pair_tests(cube: np.ndarray) -> np.ndarray:
    """Crossed seed x image p-value of every recipe pair (``triu_indices`` order); NaN, without
    a test, for a pair with fewer than ``inference.MIN_SEEDS`` complete seeds (a study with 2
    seeds at a profile says once that its orders there are untested: :func:`untested`)."""
    i, j = np.triu_indices(cube.shape[0], k=1)
    out = np.full(i.size, np.nan)
    for k, (a, b) in enumerate(zip(i, j, strict=True)):
        diffs = cube[a] - cube[b]
        if inference.complete(diffs).shape[0] >= inference.MIN_SEEDS:
            out[k] = inference.paired_test(diffs)
    return out


@dataclass(frozen=True)
class Agreement:
    """Rank correlations of the recipe means at two profiles, with bootstrap intervals."""

    tau: float
    tau_low: float
    tau_high: float
    rho: float
    rho_low: float
    rho_high: float


def _cubes(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]
           ) -> tuple[list[str], np.ndarray, np.ndarray]:
    recipes = _check(a, b)
    cube_a = np.stack([np.asarray(a[r], dtype=np.float64) for r in recipes])
    cube_b = np.stack([np.asarray(b[r], dtype=np.float64) for r in recipes])
    return recipes, cube_a, cube_b


def agreement(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], rng: np.random.Generator, *,
    n_boot: int = N_BOOT, level: float = LEVEL,
) -> Agreement:
    """Kendall's tau-b and Spearman's rho of the recipe means found in both ``a`` and ``b``,
    with crossed seed x image percentile bootstrap intervals (module docstring).

    Args:
        a: the first profile's scores, recipe -> seeds x images (a NaN row: seed not finished).
        b: the second profile's, the same images in the same columns.
        rng: random generator of the bootstrap.
        n_boot: bootstrap replicates.
        level: the intervals' coverage.

    Raises:
        ValueError: fewer than 2 recipes in both, arrays of different widths or seed rows, a
            recipe without a complete seed row.
    """
    _, cube_a, cube_b = _cubes(a, b)
    mean_a, mean_b = _means(cube_a), _means(cube_b)
    n = cube_a.shape[-1]
    images = rng.integers(0, n, size=(n_boot, n))  # the same images at both profiles
    boot_a, boot_b = _boot_means(cube_a, images, rng), _boot_means(cube_b, images, rng)
    q = [0.5 - level / 2.0, 0.5 + level / 2.0]
    out = []
    for fn in (kendall_tau, spearman_rho):
        reps = fn(boot_a, boot_b)
        low, high = np.nanquantile(reps, q) if np.isfinite(reps).any() else (np.nan, np.nan)
        out += [float(fn(mean_a, mean_b)), float(low), float(high)]
    return Agreement(*out)


def pair_orders(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per pair of the recipes in both: the ``pairs`` frame of :class:`Transfer`."""
    recipes, cube_a, cube_b = _cubes(a, b)
    mean_a, mean_b = _means(cube_a), _means(cube_b)
    i, j = np.triu_indices(len(recipes), k=1)
    diff_a, diff_b = mean_a[i] - mean_a[j], mean_b[i] - mean_b[j]
    p_a, p_b = _pair_tests(cube_a), _pair_tests(cube_b)
    pairs = pd.DataFrame({
        "first": [recipes[k] for k in i], "second": [recipes[k] for k in j],
        "diff_a": diff_a, "diff_b": diff_b, "agree": np.sign(diff_a) * np.sign(diff_b) > 0,
        "p_a": p_a, "p_a_holm": holm(p_a), "p_b": p_b, "p_b_holm": holm(p_b)})
    pairs["sig_a"] = pairs["p_a_holm"] < alpha
    pairs["sig_b"] = pairs["p_b_holm"] < alpha
    return pairs


def transfer(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], rng: np.random.Generator, *,
    n_boot: int = N_BOOT, level: float = LEVEL, alpha: float = ALPHA,
) -> Transfer:
    """The whole study of one metric: :func:`agreement` and :func:`pair_orders` together.

    The direction of the metric does not matter (both profiles use the same one). Raises
    ``ValueError`` as :func:`agreement` does.
    """
    recipes, cube_a, cube_b = _cubes(a, b)
    agree = agreement(a, b, rng, n_boot=n_boot, level=level)
    return Transfer(
        tuple(recipes), _means(cube_a), _means(cube_b),
        tuple(int(np.isfinite(c).all(-1).sum()) for c in cube_a),
        tuple(int(np.isfinite(c).all(-1).sum()) for c in cube_b), cube_a.shape[-1],
        agree.tau, agree.tau_low, agree.tau_high, agree.rho, agree.rho_low, agree.rho_high,
        pair_orders(a, b, alpha))


def coverage(gap: float, rng: np.random.Generator, *, recipes: int = 6, seeds: int = 3,
             images: int = 15, sd_seed: float = 0.3, sd_cell: float = 0.5,
             sd_image: float = 3.0, reps: int = 200, n_boot: int = 300) -> float:
    """Simulated coverage of :func:`agreement`'s tau interval for the tau of the expected means.

    ``recipes`` recipes ``gap`` apart at the first profile; at the second, 1.5 times the means
    with two pairs of neighbours swapped (true tau ``1 - 4 / (R (R - 1) / 2)`` for 6 recipes:
    0.73). Scores: recipe mean + image effect (SD ``sd_image``, shared by recipes and
    profiles) + seed effect (``sd_seed``) + residual (``sd_cell``).
    """
    mu_a = np.arange(recipes) * gap
    order = np.arange(recipes)
    order[[1, 2]], order[[recipes - 3, recipes - 1]] = order[[2, 1]], order[[recipes - 1,
                                                                              recipes - 3]]
    mu_b = 1.5 * mu_a[order]
    true = float(kendall_tau(mu_a, mu_b))
    hits = 0
    for _ in range(reps):
        shared = rng.normal(0.0, sd_image, images)
        draw = [{f"r{k}": m + shared + rng.normal(0, sd_seed, (seeds, 1))
                 + rng.normal(0, sd_cell, (seeds, images)) for k, m in enumerate(mu)}
                for mu in (mu_a, mu_b)]
        got = agreement(*draw, rng, n_boot=n_boot)
        hits += got.tau_low <= true <= got.tau_high
    return hits / reps
