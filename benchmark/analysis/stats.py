"""Summary statistics over run folders: intervals, paired tests, Holm, power, ranks.

The unit of replication is the training run (seed); the test images are a sample too. Every
number here is computed on the tidy frames of :func:`benchmark.analysis.frames.load_runs`;
the tests and intervals are in :mod:`.inference`, their calibration in :mod:`.calibration`
(docs/STATISTICS.md has the method and the simulation results).

Metric cells: the mean over seeds of each run's mean over the test images, the SD of those
per-seed means, and a Student-t 95% interval from them (``<metric>_ci_low/high``): it covers
the expected score *on this test set* over training runs. ``<metric>_ci_crossed_low/high``
also treats the test images as a sample (crossed seed x image random effects): the expected
score over training runs and test images like these.

Common seeds: within a (profile, dataset) group the seeds are those any recipe finished.
A recipe that finished all of them (``full_seeds``) is ranked; one that did not is shown on
its own seeds, never ranked or bolded against the others. A difference to the baseline pairs
the two recipes by seed (same initialisation and crop order: common random numbers) and by
image, over the seeds both finished, giving a seeds x images matrix of differences.

Differences (``<metric>_diff`` ...): the grand mean of that matrix; p (``_p``) and the 95%
interval (``_diff_ci_low/high``) from the crossed random-effects ANOVA with Satterthwaite
degrees of freedom (calibrated when both the runs and the test images are random);
``_p_fixed`` and ``_diff_fixed_ci_low/high`` are the fixed-test-set variant (t on the
per-seed mean differences). ``_test_used`` is ``seed means`` where no per-image values are
shared and the crossed test could not be made. With fewer than ``FEW_SEEDS`` shared seeds no
test is made. ``_mde``: the smallest true difference the test detects with 80% power,
simulated from the fitted variance components (:mod:`.power`); ``_seeds_for_mdd``: seeds
needed for a difference the user names (``_mdd_target``, ``compare --mdd``). ``_p_improve``
(with ``_low/_high``): the probability that a run of the recipe beats the run of the
baseline with the same seed, with its exact interval (:func:`.inference.prob_improvement`).

Holm (``_p_holm``): step-down family-wise correction (Holm, Scand. J. Statist. 6, 1979) over
every (recipe, metric) test of a (profile, dataset) table, the family every claim of the
table and its reading is drawn from (``holm_family``: its size). Ranks (``_rank``) order the
means of the recipes that finished every seed; they are not tested (``compare --all-pairs``
tests them, :mod:`.pairs`). Collapsed runs (``outcome: collapsed`` in metrics.json) are left
out of every mean, interval and test and counted in ``n_collapsed`` with a Clopper-Pearson
interval of the rate (``collapse_low/high``); ``<metric>_median_all`` is the median over
every finished seed, collapsed ones included.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark import metrics as metrics_mod
from benchmark.analysis import inference
from benchmark.analysis.inference import holm, paired_test
from benchmark.analysis.scores import (  # noqa: F401 - DIFF_COLUMNS, FEW_SEEDS re-exported
    DIFF_COLUMNS,
    FEW_SEEDS,
    compare_pair,
    higher_is_better,
    score_table,
)

__all__ = ["FEW_SEEDS", "SEED_LISTS", "clopper_pearson", "collect", "holm", "holm_family",
           "compare_pair", "higher_is_better", "paired_test", "rank_frequencies", "seeds_text",
           "summarize"]

#: the summary's seed-list columns: each cell a sorted tuple of ints (``summary.csv`` writes
#: ``0,1,2``: :func:`seeds_text`); ``unofficial_weights`` is a sorted tuple of names too
SEED_LISTS = ("seeds_expected", "ok_seeds", "failed_seeds", "incomplete_seeds", "missing_seeds",
              "collapsed_seeds", "group_seeds")
N_BOOT = 2000
RNG_SEED = 0
TESTS = ("crossed", "fixed-images")


def stable_rng(*key: object, seed: int = RNG_SEED) -> np.random.Generator:
    """A generator seeded from ``seed`` and a key (stable across processes, unlike hash())."""
    text = "\x1f".join(str(k) for k in key)
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a rate ``k / n``; NaN when ``n`` is 0."""
    if n == 0:
        return np.nan, np.nan
    a = (1 - level) / 2
    low = sps.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    high = sps.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def _seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(int(s) for s in seeds))


def seeds_text(seeds: Iterable[int], sep: str = ",") -> str:
    """A seed list as text: ``0,1,2`` (how ``summary.csv`` and the tables write it)."""
    return sep.join(str(s) for s in sorted(seeds))


def _matrix(per_image: pd.DataFrame, run_ids: Sequence[str], metric: str) -> pd.DataFrame:
    """Seeds x images table of one recipe's per-image values (NaN where a cell is missing)."""
    sub = per_image[per_image["run_id"].isin(run_ids) & (per_image["metric"] == metric)]
    return sub.pivot_table(index="seed", columns="image", values="value", aggfunc="mean")


def _seed_means(ok: pd.DataFrame, table: pd.DataFrame, metric: str) -> pd.Series:
    """Per-seed mean over the test images; a run without per_image.csv gives its
    metrics.json value."""
    means = table.mean(axis=1, skipna=True)
    fallback = ok.set_index("seed")[metric].astype(float)
    return means.reindex(fallback.index).fillna(fallback).dropna().sort_index()


def _one_recipe(
    key: tuple[str, str, str], runs: pd.DataFrame, per_image: pd.DataFrame, expected: set[int]
) -> tuple[dict, dict[str, tuple[pd.Series, pd.DataFrame]]]:
    """Seed accounting, mean/std/CIs per metric and train time for one (profile, dataset,
    recipe); also each metric's per-seed means and seeds x images table."""
    outcome = runs["outcome"].fillna("ok") if "outcome" in runs else pd.Series("ok", runs.index)
    finished = runs[runs["status"] == "ok"]
    collapsed = finished[outcome[finished.index] == "collapsed"]
    ok = finished[outcome[finished.index] != "collapsed"]  # collapsed runs: rate, median only
    seen = set(runs["seed"])
    row: dict = {
        "profile": key[0],
        "dataset": key[1],
        # the dataset's name when lossbench knows it by checksum (LOL-v1), else empty
        "dataset_name": next(iter(runs["dataset_name"].dropna()), None)
        if "dataset_name" in runs else None,
        "recipe": key[2],
        "config": ",".join(sorted(set(runs["config_key"].dropna()))),
        "seeds_expected": _seeds(expected),
        "n_ok": len(ok),
        "n_failed": int((runs["status"] == "failed").sum()),
        "n_incomplete": int((runs["status"] == "incomplete").sum()),
        "n_missing": len(expected - seen),
        "ok_seeds": _seeds(ok["seed"]),
        "failed_seeds": _seeds(runs.loc[runs["status"] == "failed", "seed"]),
        "incomplete_seeds": _seeds(runs.loc[runs["status"] == "incomplete", "seed"]),
        "missing_seeds": _seeds(expected - seen),
        "n_collapsed": len(collapsed),
        "collapsed_seeds": _seeds(collapsed["seed"]),
        **dict(zip(("collapse_low", "collapse_high"),
                   clopper_pearson(len(collapsed), len(finished)), strict=True)),
        "errors": " | ".join(
            f"seed{s}: {e}"
            for s, e in zip(runs["seed"], runs["error"], strict=True)
            if isinstance(e, str) and e
        ),
    }
    data = {}
    for metric in metrics_mod.summarized():
        table = _matrix(per_image, list(ok["run_id"]), metric)
        means = _seed_means(ok, table, metric)
        data[metric] = (means, table)
        seed_level = inference.fixed_images(means.to_numpy()[:, None])
        low, high = seed_level.interval()
        block = inference.complete(table.to_numpy()) if len(table) else np.empty((0, 0))
        c_low, c_high = (inference.crossed(block).interval() if block.size
                         else (np.nan, np.nan))
        row[f"{metric}_mean"] = float(means.mean()) if len(means) else np.nan
        row[f"{metric}_std"] = float(means.std(ddof=1)) if len(means) > 1 else np.nan
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = float(low), float(high)
        row[f"{metric}_ci_crossed_low"] = float(c_low)
        row[f"{metric}_ci_crossed_high"] = float(c_high)
        row[f"{metric}_n_seeds"] = len(means)
        every = finished[metric].astype(float).dropna()  # collapsed runs included
        row[f"{metric}_median_all"] = float(every.median()) if len(every) else np.nan
    t = ok["train_seconds"].astype(float)
    row["train_seconds_mean"] = float(t.mean()) if t.notna().any() else np.nan
    row["train_seconds_std"] = float(t.std(ddof=1)) if t.notna().sum() > 1 else np.nan
    unofficial = sorted({w for text in runs["unofficial_weights"] for w in text.split(",") if w})
    row["unofficial_weights"] = tuple(unofficial)
    row["lpips_comparable"] = "alexnet" not in unofficial
    return row, data


def holm_family(summary: pd.DataFrame, metrics: Sequence[str] | None = None,
                column: str = "p") -> None:
    """``<metric>_<column>_holm``: Holm over every (recipe, metric) test of each (profile,
    dataset) table, in place, and ``holm_family`` (the number of tests in it).

    One family for every claim a table and its reading print: the recipes' differences to the
    baseline on every metric that was tested (the registry's summarised metrics: PSNR, SSIM,
    LPIPS, GT-mean PSNR).
    """
    metrics = metrics_mod.summarized() if metrics is None else metrics
    for _, idx in summary.groupby(["profile", "dataset"]).groups.items():
        cols = [f"{m}_{column}" for m in metrics]
        block = summary.loc[idx, cols].to_numpy(dtype=np.float64)
        adjusted = holm(block.ravel()).reshape(block.shape)
        for k, m in enumerate(metrics):
            summary.loc[idx, f"{m}_{column}_holm"] = adjusted[:, k]
        if column == "p":
            summary.loc[idx, "holm_family"] = int(np.isfinite(block).sum())


def _common_seeds(summary: pd.DataFrame) -> None:
    """``group_seeds`` (finished by any recipe of the group, a tuple) and ``full_seeds``, in
    place.

    ``full_seeds`` exists as a bool column before the groups fill it: pandas 3.0 refuses
    booleans set into the float column a missing one would be created as (2.x warned).
    """
    groups: dict = {}
    summary["group_seeds"] = None
    summary["full_seeds"] = False
    for _, idx in summary.groupby(["profile", "dataset"]).groups.items():
        done = [set(summary.at[i, "ok_seeds"]) for i in idx]
        union = _seeds(set().union(*done))
        groups.update(dict.fromkeys(idx, union))
        summary.loc[idx, "full_seeds"] = [bool(d) and d == set(union) for d in done]
    summary["group_seeds"] = pd.Series([groups[i] for i in summary.index], index=summary.index,
                                       dtype=object)


def _ranks(summary: pd.DataFrame, per_image: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """``summary`` with the ranks and rank stability among the recipes that finished every
    seed."""
    names = [f"{m}_{c}" for m in metrics_mod.summarized() for c in ("rank", "rank_stability")]
    summary = pd.concat([summary, pd.DataFrame(np.nan, index=summary.index, columns=names)],
                        axis=1)
    for metric in metrics_mod.summarized():
        higher = higher_is_better(metric)
        for _, group in summary.groupby(["profile", "dataset"]):
            full = group[group["full_seeds"] & group[f"{metric}_mean"].notna()]
            summary.loc[full.index, f"{metric}_rank"] = full[f"{metric}_mean"].rank(
                ascending=not higher, method="min")
            freq = rank_frequencies(per_image, group, metric, n_boot)
            if freq is None:
                continue
            for i, recipe in zip(full.index, full["recipe"], strict=True):
                rank = int(summary.at[i, f"{metric}_rank"])
                summary.at[i, f"{metric}_rank_stability"] = freq.at[recipe, rank]
    return summary


def rank_frequencies(
    per_image: pd.DataFrame, group: pd.DataFrame, metric: str, n_boot: int = N_BOOT
) -> pd.DataFrame | None:
    """How often each ranked recipe of one (profile, dataset) group takes each rank.

    Parametric bootstrap of the crossed design (:func:`.inference.rank_stability`) over the
    recipes that finished every seed, on the images they all have: their :func:`.scores.scores`
    arrays stacked.

    Args:
        per_image: the long per-image frame of :func:`benchmark.analysis.frames.load_runs`.
        group: the summary rows of one (profile, dataset).
        metric: a metric the statistics summarise (:func:`benchmark.metrics.summarized`).
        n_boot: bootstrap replicates.

    Returns:
        recipes x ranks (1..R) fractions; None with fewer than 2 such recipes or 2 seeds.
    """
    full = group[group["full_seeds"] & group[f"{metric}_mean"].notna()]
    if len(full) < 2:
        return None
    profile, dataset = full["profile"].iloc[0], full["dataset"].iloc[0]
    seeds = list(full["group_seeds"].iloc[0])
    recipes = list(full["recipe"])
    sub = per_image[per_image["seed"].isin(seeds)]
    arrays = score_table(sub, metric, profile=profile, dataset=dataset, recipes=recipes).scores
    cube = np.stack([arrays[r] for r in recipes]) if len(arrays) == len(recipes) else None
    if len(seeds) < 2 or cube is None or cube.shape[2] == 0:
        return None
    freq = inference.rank_stability(cube, higher_is_better(metric),
                                    stable_rng(profile, dataset, metric, "ranks"), n_boot=n_boot)
    return pd.DataFrame(freq, index=recipes, columns=range(1, len(recipes) + 1))


def collect(runs: pd.DataFrame, per_image: pd.DataFrame) -> tuple[list[dict], dict]:
    """Per (profile, dataset, recipe): the summary row without comparisons, and per metric
    the per-seed means and the seeds x images table (collapsed runs left out)."""
    rows, data = [], {}
    for (profile, dataset), group in runs.groupby(["profile", "dataset"], sort=True):
        expected = set(group["seed"])
        for recipe, sub in group.groupby("recipe", sort=True):
            key = (profile, dataset, recipe)
            row, data[key] = _one_recipe(key, sub, per_image, expected)
            rows.append(row)
    return rows, data


def summarize(
    runs: pd.DataFrame,
    per_image: pd.DataFrame,
    baseline: str = "l1",
    *,
    n_boot: int = N_BOOT,
    test: str = "crossed",
    mdd: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per (profile, dataset, recipe): seeds, means, intervals, tests vs baseline, ranks.

    Args:
        runs: the run frame of :func:`benchmark.analysis.frames.load_runs`.
        per_image: the long per-image frame of :func:`benchmark.analysis.frames.load_runs`.
        baseline: recipe every other recipe of the same (profile, dataset) is compared with.
        n_boot: bootstrap replicates (rank stability).
        test: the test the tables show in the Δ columns (column ``test``): ``crossed``
            (default: runs and test images random) or ``fixed-images`` (this test set only).
            Both tests are computed either way.
        mdd: metric -> a difference the user names (``compare --mdd``): ``<metric>_seeds_for_mdd``
            is the number of seeds the crossed test needs to detect it with 80% power.

    Returns:
        The summary frame (the module docstring and ``results/README.md`` describe the
        columns). Seeds expected for a group are all the seeds any recipe of that (profile,
        dataset) has a folder for; a recipe lacking one of them reports it as missing.
    """
    rows, data = collect(runs, per_image)
    summary = pd.DataFrame(rows)
    # baseline first, then the other recipes by name, within each (profile, dataset)
    summary = summary.sort_values(
        ["profile", "dataset", "recipe"],
        key=lambda col: col if col.name != "recipe" else col.map(lambda r: (r != baseline, r)),
    ).reset_index(drop=True)
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, not {test!r}")
    summary["baseline"] = baseline
    summary["is_baseline"] = summary["recipe"] == baseline
    summary["test"] = test
    _common_seeds(summary)
    new: dict[str, np.ndarray] = {}  # every metric's columns, added at once (not one by one)
    for metric in metrics_mod.summarized():
        higher = higher_is_better(metric)
        cols = {f"{metric}_{col}": np.full(len(summary), np.nan) for col in DIFF_COLUMNS}
        cols[f"{metric}_test_used"] = np.full(len(summary), None, dtype=object)
        for (profile, dataset), idx in summary.groupby(["profile", "dataset"]).groups.items():
            base = data.get((profile, dataset, baseline))
            others = [i for i in idx if summary.at[i, "recipe"] != baseline]
            if base is None:
                continue
            for i in others:
                key = (profile, dataset, summary.at[i, "recipe"])
                got = compare_pair(data[key][metric], base[metric], higher,
                                   (mdd or {}).get(metric))
                for col, value in got.items():
                    cols[f"{metric}_{col}"][summary.index.get_loc(i)] = value
        new.update(cols)
    summary = pd.concat([summary, pd.DataFrame(new, index=summary.index)], axis=1)
    holm_family(summary)
    holm_family(summary, column="p_fixed")
    return _ranks(summary, per_image, n_boot)
