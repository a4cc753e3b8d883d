"""Summary statistics over run folders: bootstrap CIs, paired tests, Holm, ranks.

The unit of replication is the seed (one training run); the test images are a second,
nested level. Every number here is computed on the tidy frames of
:func:`benchmark.analysis.frames.load_runs` and nothing else.

Bootstrap (``hierarchical_bootstrap``): a two-stage (seeds, then images within each seed)
percentile bootstrap of the grand mean, the scheme of Davison & Hinkley, *Bootstrap Methods
and their Application* (1997), sec. 3.8 ("resample clusters, then units within clusters").
Each replicate draws ``S`` seeds with replacement from the ``S`` finished runs, then for
every drawn seed draws that run's ``n`` test images with replacement, and takes the mean
over seeds of the per-seed image means (so each seed weighs the same however many images it
has). The 95% interval is the 2.5 and 97.5 percentiles of 2000 replicates. The generator is
seeded from the (profile, dataset, recipe, metric) key, so a recipe's interval does not move
when another recipe is added. With fewer than 3 seeds the seed level is barely sampled and
the interval is too narrow: the tables say so.

Paired test (``paired_test``): Wilcoxon signed-rank (scipy) over (seed, image) pairs of a
recipe and the baseline. Chosen over the paired t-test because per-image metric differences
are skewed and heavy-tailed (a few dark images dominate PSNR gaps) and the signed-rank test
does not assume normality. scipy's default method: exact null distribution up to 50
distinct non-zero differences, exhaustive permutations up to 13 with ties, else the normal
approximation with tie correction; zero differences are dropped (``zero_method="wilcox"``).
Caveat: the same image under different seeds is not an
independent pair, so p-values are optimistic; read them together with the seed-level CI.

Holm (``holm``): step-down family-wise correction across the recipes compared with the
baseline (Holm, Scand. J. Statist. 6, 1979), one family per (profile, dataset, metric).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

# metric -> higher is better?
METRICS: dict[str, bool] = {"psnr": True, "ssim": True, "lpips": False, "psnr_gtmean": True}
N_BOOT = 2000
RNG_SEED = 0
FEW_SEEDS = 3


def stable_rng(*key: object, seed: int = RNG_SEED) -> np.random.Generator:
    """A generator seeded from ``seed`` and a key (stable across processes, unlike hash())."""
    text = "\x1f".join(str(k) for k in key)
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])


def hierarchical_bootstrap(
    groups: Sequence[np.ndarray],
    *,
    n_boot: int = N_BOOT,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, np.ndarray]:
    """Percentile CI of the mean of per-seed means, resampling seeds then images.

    Args:
        groups: one 1-D array of per-image values per seed (NaNs are dropped; empty seeds
            are ignored).
        n_boot: number of bootstrap replicates.
        level: coverage of the two-sided interval.
        rng: random generator (default: seeded with ``RNG_SEED``).

    Returns:
        ``(low, high, replicates)``; ``(nan, nan, empty)`` when there is no data.
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    arrays = [a[np.isfinite(a)] for a in arrays]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return float("nan"), float("nan"), np.empty(0)
    rng = rng if rng is not None else np.random.default_rng(RNG_SEED)
    n_seeds = len(arrays)
    sizes = np.array([a.size for a in arrays])
    width = int(sizes.max())
    table = np.zeros((n_seeds, width))
    for i, a in enumerate(arrays):
        table[i, : a.size] = a
    reps = np.empty(n_boot)
    chunk = max(1, 2_000_000 // (n_seeds * width))  # bound memory for large test splits
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        seed_idx = rng.integers(0, n_seeds, size=(b, n_seeds))
        n_of = sizes[seed_idx]  # (b, S): image count of each drawn seed
        # draw `width` positions per seed and keep the first n_of: exactly n draws from n
        u = rng.random((b, n_seeds, width))
        img_idx = np.minimum((u * n_of[..., None]).astype(np.int64), n_of[..., None] - 1)
        keep = np.arange(width)[None, None, :] < n_of[..., None]
        values = table[seed_idx[..., None], img_idx]
        per_seed = np.where(keep, values, 0.0).sum(axis=2) / n_of
        reps[start : start + b] = per_seed.mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    # a constant input must give a degenerate interval, not one a rounding error wide
    if np.ptp(np.concatenate(arrays)) == 0.0:
        low = high = float(arrays[0][0])
    return float(low), float(high), reps


def paired_test(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (recipe - baseline).

    Returns 1.0 when every difference is zero and NaN when there are no pairs.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.wilcoxon(d, alternative="two-sided").pvalue)


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


def _seed_text(seeds: Sequence[int]) -> str:
    return ",".join(str(s) for s in sorted(seeds))


def _one_recipe(
    key: tuple[str, str, str],
    runs: pd.DataFrame,
    values: dict[tuple[str, str], np.ndarray],
    expected: set[int],
    n_boot: int,
) -> dict:
    """Seed accounting, mean/std/CI per metric and train time for one (profile, dataset, recipe)."""
    ok = runs[runs["status"] == "ok"]
    seen = set(runs["seed"])
    row: dict = {
        "profile": key[0],
        "dataset": key[1],
        "recipe": key[2],
        "config": ",".join(sorted(set(runs["config_key"].dropna()))),
        "seeds_expected": _seed_text(expected),
        "n_ok": len(ok),
        "n_failed": int((runs["status"] == "failed").sum()),
        "n_incomplete": int((runs["status"] == "incomplete").sum()),
        "n_missing": len(expected - seen),
        "ok_seeds": _seed_text(ok["seed"]),
        "failed_seeds": _seed_text(runs.loc[runs["status"] == "failed", "seed"]),
        "incomplete_seeds": _seed_text(runs.loc[runs["status"] == "incomplete", "seed"]),
        "missing_seeds": _seed_text(expected - seen),
        "errors": " | ".join(
            f"seed{s}: {e}"
            for s, e in zip(runs["seed"], runs["error"], strict=True)
            if isinstance(e, str) and e
        ),
    }
    for metric in METRICS:
        # one array of per-image values per ok seed; a run without per_image.csv contributes
        # its metrics.json value as a single "image"
        arrays = []
        for _, run in ok.iterrows():
            v = values.get((run["run_id"], metric), np.empty(0))
            if v.size == 0 and np.isfinite(run[metric]):
                v = np.array([run[metric]])
            v = v[np.isfinite(v)]
            if v.size:
                arrays.append(v)
        seed_means = np.array([a.mean() for a in arrays])
        low, high, _ = hierarchical_bootstrap(
            arrays, n_boot=n_boot, rng=stable_rng(*key, metric)
        )
        row[f"{metric}_mean"] = float(seed_means.mean()) if seed_means.size else np.nan
        row[f"{metric}_std"] = float(seed_means.std(ddof=1)) if seed_means.size > 1 else np.nan
        row[f"{metric}_ci_low"] = low
        row[f"{metric}_ci_high"] = high
        row[f"{metric}_n_seeds"] = len(arrays)
    t = ok["train_seconds"].astype(float)
    row["train_seconds_mean"] = float(t.mean()) if t.notna().any() else np.nan
    row["train_seconds_std"] = float(t.std(ddof=1)) if t.notna().sum() > 1 else np.nan
    unofficial = sorted({w for text in runs["unofficial_weights"] for w in text.split(",") if w})
    row["unofficial_weights"] = ",".join(unofficial)
    row["lpips_comparable"] = "alexnet" not in unofficial
    return row


def _paired_columns(summary: pd.DataFrame, values: pd.DataFrame, baseline: str) -> None:
    """Add ``<metric>_diff``, ``_n_pairs``, ``_p``, ``_p_holm`` against the baseline, in place."""
    for (profile, dataset), idx in summary.groupby(["profile", "dataset"]).groups.items():
        in_group = values[(values["profile"] == profile) & (values["dataset"] == dataset)]
        base = in_group[in_group["recipe"] == baseline]
        for metric in METRICS:
            b = base[base["metric"] == metric].set_index(["seed", "image"])["value"]
            for i in idx:
                recipe = summary.at[i, "recipe"]
                if recipe == baseline or b.empty:
                    continue
                r = in_group[(in_group["recipe"] == recipe) & (in_group["metric"] == metric)]
                r = r.set_index(["seed", "image"])["value"]
                pairs = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner").dropna()
                d = (pairs["r"] - pairs["b"]).to_numpy()
                summary.at[i, f"{metric}_n_pairs"] = len(d)
                summary.at[i, f"{metric}_diff"] = float(d.mean()) if len(d) else np.nan
                summary.at[i, f"{metric}_p"] = paired_test(d)
            p_idx = [i for i in idx if summary.at[i, "recipe"] != baseline]
            summary.loc[p_idx, f"{metric}_p_holm"] = holm(summary.loc[p_idx, f"{metric}_p"])


def summarize(
    runs: pd.DataFrame,
    per_image: pd.DataFrame,
    baseline: str = "l1",
    *,
    n_boot: int = N_BOOT,
) -> pd.DataFrame:
    """One row per (profile, dataset, recipe): seeds, mean/std/CI, train time, test vs baseline.

    Args:
        runs: the run frame of :func:`benchmark.analysis.frames.load_runs`.
        per_image: the long per-image frame of :func:`benchmark.analysis.frames.load_runs`.
        baseline: recipe every other recipe of the same (profile, dataset) is tested against.
        n_boot: bootstrap replicates per interval.

    Returns:
        The summary frame (see ``results/README.md`` for the columns). Seeds expected for a
        group are all the seeds any recipe of that (profile, dataset) has a folder for; a
        recipe lacking one of them reports it as missing. Ranks (``<metric>_rank``, 1 = best,
        ties share the best rank) are within the (profile, dataset) group.
    """
    by_run = {
        key: g["value"].to_numpy(dtype=np.float64)
        for key, g in per_image.groupby(["run_id", "metric"], sort=False)
    }
    rows = []
    for (profile, dataset), group in runs.groupby(["profile", "dataset"], sort=True):
        expected = set(group["seed"])
        for recipe, sub in group.groupby("recipe", sort=True):
            rows.append(_one_recipe((profile, dataset, recipe), sub, by_run, expected, n_boot))
    summary = pd.DataFrame(rows)
    # baseline first, then the other recipes by name, within each (profile, dataset)
    summary = summary.sort_values(
        ["profile", "dataset", "recipe"],
        key=lambda col: col if col.name != "recipe" else col.map(lambda r: (r != baseline, r)),
    ).reset_index(drop=True)
    summary["baseline"] = baseline
    summary["is_baseline"] = summary["recipe"] == baseline
    for metric in METRICS:
        for col in ("diff", "n_pairs", "p", "p_holm"):
            summary[f"{metric}_{col}"] = np.nan
    _paired_columns(summary, per_image, baseline)
    for metric, higher in METRICS.items():
        summary[f"{metric}_rank"] = summary.groupby(["profile", "dataset"])[
            f"{metric}_mean"
        ].rank(ascending=not higher, method="min")
    return summary
