"""Reading run folders and the summary statistics, on hand-made run folders with known values.

References: scipy.stats (t intervals, one-sample t-tests, Mann-Whitney U) for the intervals,
tests and probability of improvement, hand-computed Holm adjustments. The calibration of the
tests and intervals by simulation is in test_statistics.py.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps

from benchmark import record
from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.frames import config_precision, load_runs, load_train_logs
from benchmark.analysis.pairs import all_pairs, apply_pairs
from benchmark.analysis.stats import holm, paired_test, summarize
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.model import UNet, count_parameters
from benchmark.protocol import PROFILES
from benchmark.recipes.mix import load_recipe
from benchmark.run.files import write_samples
from benchmark.run.setup import crop_seed

MANIFEST = "a" * 64
PER_IMAGE = ("psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean")
REQUIRED = ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean")
CPU = "Intel(R) Xeon(R) Processor"


@functools.cache
def _parameters(width: int, depth: int) -> int:
    return count_parameters(UNet(width, depth))


def run_config(recipe: str, seed: int, *, profile: str = "smoke", manifest: str = MANIFEST,
               weight: float = 1.0, precision: str = "fp32", n_test: int = 3,
               dataset_name: str | None = None,
               protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved ``config.yaml`` the run writer builds (:func:`benchmark.run.setup.prepare`)
    for ``recipe`` with one L1 term of ``weight`` (the shipped ``l1`` recipe, renamed), the
    protocol profile ``profile`` at ``precision`` on the CPU (with the ``protocol`` fields
    changed), and a LOL-v1-layout dataset of manifest ``manifest``; ``config_hash`` first,
    computed by the record."""
    shipped = load_recipe("l1").to_dict()
    losses = [{**term, "weight": weight} for term in shipped["losses"]]
    protocol = replace(PROFILES[profile], precision=precision, **(protocol or {}))
    config = {
        "recipe": {**shipped, "name": recipe, "description": f"{recipe} test recipe",
                   "losses": losses},
        "protocol": protocol.to_dict(),
        "model": {"name": "UNet", "width": protocol.width, "depth": protocol.depth,
                  "parameters": _parameters(protocol.width, protocol.depth)},
        "data": {"root": "/data/LOL-v1", "layout": "lol_v1", "manifest_sha256": manifest,
                 "name": dataset_name, "identity": "official" if dataset_name else "unknown",
                 "n_train": 20, "n_val": protocol.n_val, "n_test": n_test,
                 "val_images": [str(100 + i) for i in range(protocol.n_val)]},
        "seed": seed,
        "crop_seed": crop_seed(seed),
        "device": "cpu",
        "compile": False,
        "cuda_graphs": False,
        "backbones": ["alexnet"],
        "metrics": ["psnr", "ssim", "lpips"],
    }
    return {"config_hash": record.hash_config(config), **config}


def make_run(
    results: Path,
    recipe: str,
    seed: int,
    psnr: Sequence[float] = (20.0, 21.0, 22.0),
    *,
    profile: str = "smoke",
    status: str = "ok",
    manifest: str = MANIFEST,
    unofficial: Sequence[str] = (),
    weight: float = 1.0,
    lpips: Sequence[float] | None = None,
    per_image: bool = True,
    extra_files: bool = True,
    error: str | None = None,
    precision: str = "fp32",
    dataset_name: str | None = None,
    protocol: dict[str, Any] | None = None,
) -> Path:
    """A run folder written through the record, as ``benchmark.run.execute`` writes it, with
    the given per-image PSNR (images ``1``, ``2``, ...).

    SSIM = PSNR / 40, LPIPS = 1 - PSNR / 40 unless given, GT-mean PSNR = PSNR + 1. The config
    is :func:`run_config`'s, so the config hash covers the seed, as the trainer's does.
    """
    run = record.run_dir(results, recipe, profile, seed)
    run.mkdir(parents=True)
    p = np.asarray(psnr, dtype=float)
    images = [str(i + 1) for i in range(len(p))]
    lp = np.asarray(lpips, dtype=float) if lpips is not None else 1.0 - p / 40.0
    table = pd.DataFrame({"image": images, "psnr": p, "ssim": p / 40.0, "lpips": lp,
                          "psnr_gtmean": p + 1.0, "ssim_gtmean": p / 40.0 + 0.01})
    config = run_config(recipe, seed, profile=profile, manifest=manifest, weight=weight,
                        precision=precision, n_test=len(p), dataset_name=dataset_name,
                        protocol=protocol)
    record.write_config(run, config)
    data = config["data"]
    weights = {name: {"file": f"{name}.pth", "sha256": "0" * 64,
                      "official": name not in unofficial} for name in ("vgg19", "alexnet")}
    iterations = config["protocol"]["iterations"]
    metrics = {
        "status": status, "outcome": "ok" if status == "ok" else "failed", "error": error,
        "recipe": recipe, "profile": profile, "seed": seed, "crop_seed": config["crop_seed"],
        "config_hash": config["config_hash"],
        "test": dict.fromkeys(PER_IMAGE),  # a failed run: every value null
        "train_seconds": 10.0 + seed, "eval_seconds": 1.0,
        "iterations": iterations if status == "ok" else None,
        "dataset": {k: data[k] for k in ("name", "identity", "root", "layout",
                                         "manifest_sha256", "n_train", "n_val", "n_test")},
        "metrics": config["metrics"],
        "env": {"lossbench": "0.1.0", "torch": "2.13.0", "device": "cpu", "device_name": CPU,
                "cpu_model": CPU, "git_commit": "abc1234", "git_dirty": False},
        "weights": weights, "started_at": "2025-01-01T00:00:00+0000",
        "finished_at": "2025-01-01T01:00:00+0000",
    }
    rows = table.to_dict("records")
    if status == "ok":
        metrics["test"] = {k: float(table[k].mean()) for k in PER_IMAGE}
        if per_image:
            record.write_per_image(run, rows, PER_IMAGE)
    record.write_metrics(run, metrics)
    if extra_files:
        it = np.arange(0, iterations + 1, max(1, iterations // 10))
        train = [{"iteration": int(i), "total": float(np.exp(-i / 50) + 0.01 * seed),
                  "l1": float(np.exp(-i / 50)), "grad_norm": 0.5, "lr": 2e-4,
                  "seconds": float(i * 0.1)} for i in it]
        val, best = [], -np.inf
        for i in it[2::2]:
            best = max(best, 15 + i / 20 + 0.1 * seed)
            val.append({"iteration": int(i), "val_psnr": float(15 + i / 20 + 0.1 * seed),
                        "best_val_psnr": float(best)})
        record.write_logs(run, train, list(train[0]), val)
        rng = np.random.default_rng(seed)
        write_samples(run / record.SAMPLES_DIR, [
            (image, *((rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(3)))
            for image in images[:2]])
    return run


def edit_metrics(run: Path, **changes: object) -> None:
    """Change fields of a run's ``metrics.json`` (read and written through the record)."""
    record.write_metrics(run, {**record.load_metrics(run), **changes})


def edit_config(run: Path, **changes: Any) -> dict[str, Any]:
    """Replace top-level fields of a run's ``config.yaml`` (a dict value updates that section)
    and store the new config hash in both files, as the writer would for that configuration."""
    config = record.read_config(run)
    for key, value in changes.items():
        config[key] = ({**config.get(key, {}), **value} if isinstance(value, dict)
                       and isinstance(config.get(key), dict) else value)
    config["config_hash"] = record.hash_config(config)
    record.write_config(run, config)
    edit_metrics(run, config_hash=config["config_hash"])
    return config


def _row(summary: pd.DataFrame, recipe: str, profile: str = "smoke") -> pd.Series:
    return summary[(summary["recipe"] == recipe) & (summary["profile"] == profile)].iloc[0]


# ---------------------------------------------------------------- loading


def test_load_runs_frames(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed)
        make_run(tmp_path, "s3net", seed, unofficial=("vgg19",))
    runs, per_image = load_runs(tmp_path)
    assert len(runs) == 4
    assert set(runs["status"]) == {"ok"}
    assert list(runs["seed"]) == [0, 1, 0, 1]
    assert runs.loc[runs["recipe"] == "s3net", "unofficial_weights"].tolist() == ["vgg19"] * 2
    assert runs["dataset"].unique().tolist() == [MANIFEST]
    assert runs.loc[0, "psnr"] == pytest.approx(21.0)
    assert runs["missing_files"].eq("").all()
    # the trainer's hash covers the seed (and config.yaml holds seed-specific fields such as
    # crop_seed and data.root): seeds of one recipe still count as one configuration
    l1 = runs[runs["recipe"] == "l1"]
    assert l1["config_hash"].nunique() == 2 and l1["config_key"].nunique() == 1
    assert len(per_image) == 4 * 3 * 5
    one = per_image[(per_image["run_id"] == "l1/smoke/seed1") & (per_image["metric"] == "psnr")]
    assert one["value"].tolist() == [20.0, 21.0, 22.0]
    logs = load_train_logs(runs)
    assert set(logs["term"]) == {"total", "l1"}
    assert len(logs) == 4 * 11 * 2


def test_image_names_stay_text(tmp_path: Path) -> None:
    run = make_run(tmp_path, "l1", 0, [20.0, 22.0])
    table = pd.read_csv(run / "per_image.csv").assign(image=["001", "002"], lpips="")
    table.to_csv(run / "per_image.csv", index=False)
    _, per_image = load_runs(tmp_path)
    assert sorted(per_image["image"].unique()) == ["001", "002"]
    assert per_image.loc[per_image["metric"] == "lpips", "value"].isna().all()


def test_missing_optional_files_are_reported(tmp_path: Path) -> None:
    make_run(tmp_path, "l1", 0, per_image=False, extra_files=False)
    make_run(tmp_path, "l1", 1, status="failed", error="NaN in loss term l1 at iteration 7")
    (tmp_path / "runs" / "l1" / "smoke" / "seed2").mkdir()
    runs, per_image = load_runs(tmp_path)
    by_seed = runs.set_index("seed")
    assert by_seed.loc[0, "missing_files"] == "per_image.csv,train_log.csv,samples"
    assert by_seed.loc[1, "status"] == "failed"
    assert by_seed.loc[1, "missing_files"] == "per_image.csv"
    assert by_seed.loc[2, "status"] == "incomplete"
    assert "no metrics.json" in by_seed.loc[2, "error"]
    # the incomplete run joins the profile's only dataset instead of a group of its own
    assert by_seed.loc[2, "dataset"] == MANIFEST
    summary = summarize(runs, per_image, "l1")
    row = _row(summary, "l1")
    assert (row["n_ok"], row["n_failed"], row["n_incomplete"]) == (1, 1, 1)
    # no per_image.csv: the metrics.json value is the one observation of that seed
    assert row["psnr_mean"] == pytest.approx(21.0)
    assert np.isnan(row["psnr_ci_low"]) and np.isnan(row["psnr_ci_high"])  # one seed: no CI


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: (r / "metrics.json").write_text("{oops"), "metrics.json: not valid JSON"),
        (lambda r: (r / "metrics.json").write_text("[1, 2]"), "expected a JSON object"),
        (lambda r: edit_metrics(r, status="done"), "status: expected 'ok' or 'failed'"),
        (lambda r: edit_metrics(r, seed=3), "seed: is 3 but the folder says 0"),
        (lambda r: edit_metrics(r, seed="0"), "seed: expected a whole number"),
        (lambda r: edit_metrics(r, test={"psnr": 1.0}), "test.ssim: missing"),
        (lambda r: edit_metrics(r, weights={"vgg19": {"official": "yes"}}),
         "weights.vgg19: expected an object with official"),
        (lambda r: (r / "per_image.csv").write_text("image,psnr\na,1\n"),
         "per_image.csv: columns: missing ssim, psnr_gtmean, ssim_gtmean"),
        (lambda r: (r / "per_image.csv").write_text(
            "image,psnr,ssim,lpips,psnr_gtmean,ssim_gtmean\na,1,x,0,1,1\n"),
         "per_image.csv: ssim: row 2: not a number: 'x'"),
        (lambda r: (r / "per_image.csv").write_text(""), "per_image.csv: not a readable CSV"),
        (lambda r: (r / "config.yaml").write_text("a: [1"), "config.yaml: not valid YAML"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, mutate, message: str) -> None:
    run = make_run(tmp_path, "l1", 0)
    mutate(run)
    with pytest.raises(UserError, match="seed0") as info:
        load_runs(tmp_path)
    assert message in str(info.value)


def test_no_runs_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run folders found") as info:
        load_runs(tmp_path)
    assert str(tmp_path / "runs") in str(info.value)
    with pytest.raises(UserError, match="results folder does not exist"):
        load_runs(tmp_path / "nope")


# ---------------------------------------------------------------- statistics


def test_mean_std_and_paired_test_against_scipy(tmp_path: Path) -> None:
    base = {0: [20.0, 22.0, 24.0, 21.0], 1: [21.0, 23.0, 25.0, 20.0], 2: [19.0, 22.5, 23.0, 22.0]}
    diffs = {0: [0.5, 1.0, -0.25, 0.8], 1: [0.3, 0.9, 0.4, -0.1], 2: [1.2, 0.7, 0.6, 0.2]}
    for seed in base:
        make_run(tmp_path, "l1", seed, base[seed])
        make_run(tmp_path, "better", seed, np.add(base[seed], diffs[seed]))
    runs, per_image = load_runs(tmp_path)
    summary = summarize(runs, per_image, "l1")
    seed_means = [np.mean(v) for v in base.values()]
    row = _row(summary, "l1")
    assert row["psnr_mean"] == pytest.approx(np.mean(seed_means), abs=1e-12)
    assert row["psnr_std"] == pytest.approx(np.std(seed_means, ddof=1), abs=1e-12)
    # seed-level interval: Student t over the per-seed means
    ci = sps.t.interval(0.95, 2, loc=np.mean(seed_means), scale=sps.sem(seed_means))
    assert (row["psnr_ci_low"], row["psnr_ci_high"]) == pytest.approx(ci, abs=1e-12)
    # the wider interval also counts the spread of the test images
    assert row["psnr_ci_crossed_high"] - row["psnr_ci_crossed_low"] > ci[1] - ci[0]
    assert row["n_ok"] == 3 and row["seeds_expected"] == (0, 1, 2) and row["full_seeds"]
    better = _row(summary, "better")
    d = np.array([diffs[s] for s in (0, 1, 2)])
    assert better["psnr_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert better["psnr_diff"] > 0
    assert (better["psnr_n_pairs"], better["psnr_n_shared_seeds"], better["psnr_n_images"]) == (
        12, 3, 4)
    assert better["psnr_p"] == pytest.approx(paired_test(d), rel=1e-12)
    assert better["psnr_p_fixed"] == pytest.approx(
        sps.ttest_1samp(d.mean(axis=1), 0.0).pvalue, rel=1e-12)
    assert better["psnr_diff_ci_low"] < d.mean() < better["psnr_diff_ci_high"]
    assert better["psnr_mde"] > 0 and np.isnan(better["psnr_seeds_for_mdd"])  # no --mdd
    # probability of improvement: Phi(lambda / sqrt(3)) where the noncentral t with 2 df and
    # noncentrality lambda has the observed t as its median (scipy's nct, solved by brentq)
    per_seed = d.mean(axis=1)
    t_obs = np.sqrt(3) * per_seed.mean() / per_seed.std(ddof=1)
    lam = optimize.brentq(lambda x: sps.nct.cdf(t_obs, 2, x) - 0.5, -50, 50)
    assert better["psnr_p_improve"] == pytest.approx(sps.norm.cdf(lam / np.sqrt(3)), abs=1e-6)
    hi = optimize.brentq(lambda x: sps.nct.cdf(t_obs, 2, x) - 0.025, -50, 50)
    assert better["psnr_p_improve_high"] == pytest.approx(sps.norm.cdf(hi / np.sqrt(3)),
                                                          abs=1e-6)
    assert better["psnr_p_improve_low"] <= better["psnr_p_improve"]
    # LPIPS = 1 - PSNR/40 here, so the recipe is better on LPIPS too: a negative difference
    assert better["lpips_diff"] == pytest.approx(-d.mean() / 40.0, abs=1e-12)
    assert better["lpips_p_improve"] == pytest.approx(better["psnr_p_improve"], abs=1e-9)
    # one recipe, four metrics with the same p (SSIM, LPIPS, GT-mean PSNR are exact functions
    # of PSNR here): Holm over the family of four multiplies it by 4
    assert better["holm_family"] == 4
    assert better["psnr_p_holm"] == pytest.approx(min(1.0, 4 * better["psnr_p"]))
    assert (better["psnr_rank"], row["psnr_rank"]) == (1, 2)
    assert (better["lpips_rank"], row["lpips_rank"]) == (1, 2)
    assert np.isnan(row["psnr_p"])


def test_holm_against_hand_computed_values() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> cummax
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02], rtol=0, atol=1e-15)
    got = holm([0.2, np.nan, 0.6])  # NaN is not part of the family (m = 2)
    np.testing.assert_allclose(got, [0.4, np.nan, 0.6], rtol=0, atol=1e-15)
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_holm_in_summary_across_recipes(tmp_path: Path) -> None:
    base = np.array([20.0, 21.0, 22.0, 23.0, 24.0, 25.0])
    rng = np.random.default_rng(3)
    jitter = rng.normal(0.0, 0.2, (3, 6))  # the baseline's run-to-run deviation
    shifts = {"a": 0.4, "b": 0.05, "c": -0.3}
    matrices = {}
    for seed in range(3):
        make_run(tmp_path, "l1", seed, base + jitter[seed])
    for name, shift in shifts.items():
        own = rng.normal(shift, 0.2, (3, 6))
        matrices[name] = own - jitter
        for seed in range(3):
            make_run(tmp_path, name, seed, base + own[seed])
    summary = summarize(*load_runs(tmp_path), "l1").set_index("recipe")
    p = {n: paired_test(m) for n, m in matrices.items()}
    # the family: 3 recipes x 4 metrics, each recipe's p the same on every metric here (SSIM,
    # LPIPS and GT-mean PSNR are exact functions of PSNR), so its sorted run has 4 equal values
    order = sorted(p, key=p.get)
    expected, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (12 - 4 * i) * p[name]))
        expected[name] = running
    for name in shifts:
        assert summary.loc[name, "psnr_p"] == pytest.approx(p[name], rel=1e-9)
        assert summary.loc[name, "psnr_p_holm"] == pytest.approx(expected[name], rel=1e-9)
    assert summary.loc["c", "psnr_diff"] < 0 < summary.loc["a", "psnr_diff"]


def test_too_few_shared_seeds_gives_no_test(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed, [20.0, 21.0, 22.0])
        make_run(tmp_path, "big", seed, [25.0, 26.0, 27.5 + seed])
    summary = summarize(*load_runs(tmp_path), "l1")
    big = _row(summary, "big")
    assert big["psnr_diff"] == pytest.approx(32.0 / 6.0)
    assert big["psnr_n_shared_seeds"] == 2
    for col in ("p", "p_holm", "p_fixed", "diff_ci_low", "mde", "seeds_for_mdd"):
        assert np.isnan(big[f"psnr_{col}"]), col
    md = markdown_tables(summary)
    assert "+5.33 (no test: 2 shared seeds)" in md
    assert "no p-value with fewer than 3 seeds shared with l1" in md


def test_common_seeds_rank_and_bold_only_full_recipes(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        make_run(tmp_path, "l1", seed, [20.0, 21.0 + 0.1 * seed, 22.0])
        make_run(tmp_path, "mid", seed, [20.5, 21.5 + 0.1 * seed, 22.5])
    make_run(tmp_path, "lucky", 0, [30.0, 31.0, 32.0])  # best mean, but one seed of three
    make_run(tmp_path, "lucky", 1, status="failed", error="NaN")
    summary = summarize(*load_runs(tmp_path), "l1")
    lucky, mid = _row(summary, "lucky"), _row(summary, "mid")
    assert not lucky["full_seeds"] and mid["full_seeds"] and lucky["group_seeds"] == (0, 1, 2)
    assert np.isnan(lucky["psnr_rank"]) and (mid["psnr_rank"], _row(summary, "l1")["psnr_rank"]) \
        == (1, 2)
    assert lucky["psnr_n_shared_seeds"] == 1 and lucky["psnr_diff"] == pytest.approx(10.0)
    # a clear winner on every seed keeps its rank in every bootstrap replicate
    assert mid["psnr_rank_stability"] == 1.0
    md = markdown_tables(summary)
    assert "| **" not in md and " **" not in md.split("|", 1)[1]  # bold only where tested
    # all pairs: mid beats l1 by 0.5 dB on every image of every seed (p = 0), lucky has one
    # seed and is neither tested nor ranked
    pairs = all_pairs(*load_runs(tmp_path), summary)
    tested = apply_pairs(summary, pairs)
    md = markdown_tables(tested)
    line = next(x for x in md.splitlines() if x.startswith("| lucky"))
    assert "**" not in line and "§" in line
    assert "**21.53" in md  # mid is significantly better than every other full recipe
    assert (_row(tested, "mid")["psnr_rank_tested"], _row(tested, "l1")["psnr_rank_tested"]) \
        == (1, 2)
    assert "§ did not finish every seed of this table (0,1,2)" in md


# ---------------------------------------------------------------- stability


def test_intervals_are_stable(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        make_run(tmp_path, "l1", seed, [20.0 + seed, 23.0, 21.0 - seed])
        make_run(tmp_path, "a", seed, [20.5 + 1.1 * seed, 23.0, 21.2 - seed])
    first = summarize(*load_runs(tmp_path), "l1")
    make_run(tmp_path, "other", 0)  # adding a recipe must not move another's intervals
    second = summarize(*load_runs(tmp_path), "l1")
    for col in ("psnr_ci_low", "psnr_ci_high", "psnr_p_improve_low", "psnr_p_improve_high"):
        assert _row(second, "a")[col] == _row(first, "a")[col], col


# ---------------------------------------------------------------- grouping and marks


def test_refuses_two_configurations_of_one_recipe(tmp_path: Path) -> None:
    make_run(tmp_path, "s3net", 0, weight=1.0)
    make_run(tmp_path, "s3net", 1, weight=0.5)
    with pytest.raises(UserError) as info:
        load_runs(tmp_path)
    text = str(info.value)
    assert "runs of recipe 's3net' (profile smoke" in text
    assert "recipe.losses[0].weight: 1.0 vs 0.5" in text
    for seed, weight in ((0, 1.0), (1, 0.5)):  # each run named with its own config hash
        digest = run_config("s3net", seed, weight=weight)["config_hash"]
        assert f"seed{seed} (config_hash {digest})" in text


def test_refuses_two_precisions_in_one_table_across_recipes(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed, precision="fp32")
        make_run(tmp_path, "s3net", seed, precision="bf16")
        make_run(tmp_path, "s3net", seed, profile="quick", precision="bf16")  # its own table
    with pytest.raises(UserError) as info:
        load_runs(tmp_path)
    text = str(info.value)
    assert "runs of profile smoke (dataset " in text and "trained at 2 precisions" in text
    assert "--precision bf16 or --precision fp32" in text
    assert "  bf16: s3net/smoke/seed0, s3net/smoke/seed1" in text
    assert "  fp32: l1/smoke/seed0, l1/smoke/seed1" in text
    shutil.rmtree(tmp_path / "runs" / "l1")
    runs, _ = load_runs(tmp_path)
    assert set(runs["precision"]) == {"bf16"}


def test_precision_of_configurations_without_the_field() -> None:
    assert config_precision(None) is None
    assert config_precision({"protocol": {"precision": "bf16"}, "device": "cpu"}) == "bf16"
    assert config_precision({"protocol": {"amp": True}, "device": "cpu"}) == "fp32"  # CUDA-only
    assert config_precision({"protocol": {"amp": True}, "device": "cuda:0"}) == "bf16"
    assert config_precision({"protocol": {"amp": False}, "device": "cuda"}) == "fp32"


def test_profiles_and_datasets_are_separate_groups(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed, [20.0, 20.0])
        make_run(tmp_path, "l1", seed, [30.0, 30.0], profile="quick")
    make_run(tmp_path, "l1", 0, [25.0, 25.0], profile="paper", manifest="b" * 64)
    make_run(tmp_path, "l1", 1, [26.0, 26.0], profile="paper", manifest="c" * 64)
    summary = summarize(*load_runs(tmp_path), "l1")
    got = summary.set_index(["profile", "dataset"])
    assert list(got.index) == [("paper", "b" * 64), ("paper", "c" * 64), ("quick", MANIFEST),
                               ("smoke", MANIFEST)]
    assert got["psnr_mean"].tolist() == [25.0, 26.0, 30.0, 20.0]
    # a dataset group only expects the seeds run on that dataset
    assert got["n_missing"].tolist() == [0, 0, 0, 0]
    assert got["psnr_std"].iloc[2:].tolist() == [0.0, 0.0]
    md = markdown_tables(summary)
    assert md.count("**profile `paper`") == 2 and md.count("| l1 |") == 4


def test_failed_and_missing_seeds_are_shown(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        make_run(tmp_path, "l1", seed)
    make_run(tmp_path, "flw", 0)
    make_run(tmp_path, "flw", 1, status="failed", error="NaN in term flw at iteration 12")
    make_run(tmp_path, "gan", 0, status="failed", error="CUDA out of memory")
    summary = summarize(*load_runs(tmp_path), "l1")
    flw = _row(summary, "flw")
    assert (flw["n_ok"], flw["n_failed"], flw["n_missing"]) == (1, 1, 1)
    assert (flw["failed_seeds"], flw["missing_seeds"]) == ((1,), (2,))
    assert flw["errors"] == "seed1: NaN in term flw at iteration 12"  # ok seeds add nothing
    gan = _row(summary, "gan")
    assert gan["n_ok"] == 0 and np.isnan(gan["psnr_mean"]) and np.isnan(gan["psnr_rank"])
    md = markdown_tables(summary)
    assert "| flw | 1 of 3 (failed: 1; missing: 2)‡§ |" in md
    assert "| gan | 0 of 3 (failed: 0; missing: 1,2)‡ | n/a |" in md
    assert "‡ fewer than 3 finished seeds" in md
    assert "Failed: flw seed1: NaN in term flw at iteration 12" in md


# ---------------------------------------------------------------- CLI


def test_cli_compare_writes_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed)
        make_run(tmp_path, "s3net", seed, [21.0, 22.0, 23.0])
    assert main(["compare", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| s3net (2‡) |" in out  # the compact table: n in the recipe's cell (7 columns)
    for name in ("summary.csv", "summary.md", "summary.tex"):
        assert (tmp_path / "tables" / name).is_file()
    csv = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert list(csv["recipe"]) == ["l1", "s3net"]
    assert csv.loc[1, "psnr_mean"] == pytest.approx(22.0)
    assert main(["compare", "--results", str(tmp_path), "--wide"]) == 0
    out = capsys.readouterr().out
    assert "| s3net | 2‡ |" in out
    assert (tmp_path / "tables" / "summary.md").read_text() in out


@pytest.mark.parametrize("setup", ["empty", "malformed", "baseline"])
def test_cli_compare_bad_input_exits_2(tmp_path: Path, capsys, setup: str) -> None:
    expected = {"empty": "no run folders found", "malformed": "not valid JSON",
                "baseline": "--baseline: no runs of recipe 'l1x'; did you mean 'l1'?"}[setup]
    if setup != "empty":
        run = make_run(tmp_path, "l1", 0)
    if setup == "malformed":
        (run / "metrics.json").write_text('{"status": ')
    argv = ["compare", "--results", str(tmp_path)]
    argv += ["--baseline", "l1x"] if setup == "baseline" else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_default_baseline_is_optional_but_an_explicit_one_must_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_run(tmp_path, "flw", 0)
    make_run(tmp_path, "s3net", 0, [21.0, 22.0, 23.0])
    assert main(["compare", "--results", str(tmp_path)]) == 0  # no l1 runs: no differences
    out = capsys.readouterr().out
    assert "No runs of the baseline l1 in this group: no differences." in out
    assert main(["compare", "--results", str(tmp_path), "--baseline", "l1"]) == 2
    assert "--baseline: no runs of recipe 'l1'" in capsys.readouterr().err
    assert main(["compare", "--results", str(tmp_path), "--baseline", "flw"]) == 0
    assert "mean paired difference to flw" in capsys.readouterr().out


def test_cli_fixed_images_test_is_an_option_and_labelled(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    for seed in range(3):
        base = 20.0 + rng.normal(0, 0.3, 5)
        make_run(tmp_path, "l1", seed, base)
        make_run(tmp_path, "mix", seed, base + 0.2 + rng.normal(0, 0.1, 5))
    assert main(["compare", "--results", str(tmp_path), "--wide"]) == 0
    crossed = capsys.readouterr().out
    assert "crossed seed × image random effects" in crossed and "FIXED TEST SET" not in crossed
    assert main(["compare", "--results", str(tmp_path), "--test", "fixed-images"]) == 0
    assert "these test images held fixed" in capsys.readouterr().out  # the compact table too
    assert main(["compare", "--results", str(tmp_path), "--test", "fixed-images",
                 "--wide"]) == 0
    fixed = capsys.readouterr().out
    assert "p: FIXED TEST SET (--test fixed-images): t-test on the per-seed mean" in fixed
    row = _row(summarize(*load_runs(tmp_path), "l1"), "mix")
    p = row["psnr_p_fixed_holm"]
    cell = (f"+{row['psnr_diff']:.2f} [+{row['psnr_diff_fixed_ci_low']:.2f}, "
            f"+{row['psnr_diff_fixed_ci_high']:.2f}] (p "
            + ("< 0.001" if p < 0.001 else f"= {p:.2g}" if p < 0.01 else f"= {p:.2f}"))
    assert cell in fixed
    with pytest.raises(SystemExit) as info:  # argparse: usage and exit 2
        main(["compare", "--results", str(tmp_path), "--test", "paired"])
    assert info.value.code == 2
    assert "argument --test: invalid choice: 'paired'" in capsys.readouterr().err


def test_a_known_dataset_is_named_in_tables_and_report(tmp_path: Path) -> None:
    """metrics.json's dataset.name (LOL-v1, recognised by checksum) replaces the manifest hash
    in table titles, captions and the report; an unnamed dataset keeps its hash."""
    from benchmark.analysis.tex import latex_tables

    for recipe in ("l1", "mse"):
        for seed in (0, 1, 2):
            make_run(tmp_path, recipe, seed, dataset_name="LOL-v1")
    runs, per_image = load_runs(tmp_path)
    assert set(runs["dataset_name"]) == {"LOL-v1"}
    summary = summarize(runs, per_image, "l1")
    md = markdown_tables(summary)
    assert "dataset `LOL-v1`" in md and MANIFEST[:12] not in md
    tex = latex_tables(summary)
    assert "LOL-v1" in tex and "tab:lossbench-smoke-lol-v1" in tex


# ---------------------------------------------------------------- collapses, --mdd, --all-pairs


def test_collapsed_runs_are_left_out_and_counted(tmp_path: Path) -> None:
    for seed in range(4):
        make_run(tmp_path, "l1", seed, [20.0 + 0.1 * seed, 21.0, 22.0])
        run = make_run(tmp_path, "wild", seed, [20.5 + 0.2 * seed, 21.5, 22.5] if seed < 3
                       else [5.0, 6.0, 7.0])
        if seed == 3:
            edit_metrics(run, outcome="collapsed", outcome_reason="output constant")
    runs, per_image = load_runs(tmp_path)
    assert set(runs["outcome"]) == {"ok", "collapsed"}
    summary = summarize(runs, per_image, "l1")
    wild = _row(summary, "wild")
    assert (wild["n_ok"], wild["n_collapsed"], wild["collapsed_seeds"]) == (3, 1, (3,))
    seed_means = [(20.5 + 0.2 * s + 21.5 + 22.5) / 3 for s in range(3)]
    assert wild["psnr_mean"] == pytest.approx(np.mean(seed_means))
    assert wild["psnr_n_shared_seeds"] == 3  # the collapsed seed is not in the test
    ci = sps.binomtest(1, 4).proportion_ci(method="exact")
    assert (wild["collapse_low"], wild["collapse_high"]) == pytest.approx((ci.low, ci.high))
    # the median over every finished seed, collapsed ones included
    assert wild["psnr_median_all"] == pytest.approx(np.median([*seed_means, 6.0]))
    md = markdown_tables(summary)
    assert f"collapsed 1/4 [{ci.low:.2f}, {ci.high:.2f}]: seeds 3" in md


def test_compare_mdd_and_all_pairs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(8)
    for seed in range(3):
        base = 20.0 + rng.normal(0, 0.3, 5)
        make_run(tmp_path, "l1", seed, base)
        make_run(tmp_path, "up", seed, base + 1.0 + rng.normal(0, 0.05, 5))
        make_run(tmp_path, "same", seed, base + rng.normal(0, 0.05, 5))
    assert main(["compare", "--results", str(tmp_path), "--mdd", "psnr=0.05,ssim=0.001",
                 "--all-pairs"]) == 0
    compact = capsys.readouterr().out
    assert "| **20.83 ± 0.23** |" in compact  # the compact default bolds the tested best too
    assert main(["compare", "--results", str(tmp_path), "--mdd", "psnr=0.05,ssim=0.001",
                 "--all-pairs", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "Seeds to detect the named difference" in out and "(for 0.05 dB)" in out
    assert "All pairs" in out and "| PSNR | up | same |" in out
    pairs = pd.read_csv(tmp_path / "tables" / "pairs.csv")
    assert len(pairs) == 3 * 4 and pairs["family"].eq(12).all()  # 3 pairs x 4 metrics
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv").set_index("recipe")
    assert summary.loc["up", "psnr_seeds_for_mdd"] >= 3
    assert bool(summary.loc["up", "psnr_best"]) and summary.loc["up", "psnr_rank_tested"] == 1
    assert "Holm-adjusted over the 12 tests of every pair" in out
    for bad in ("abc", "psnr=-1", "fid=0.5"):
        assert main(["compare", "--results", str(tmp_path), "--mdd", bad]) == 2
        assert "--mdd" in capsys.readouterr().err


def test_compare_all_pairs_writes_nothing_into_the_shipped_reference(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.analysis import output

    for seed in range(3):
        make_run(tmp_path, "l1", seed, [20.0 + 0.1 * seed, 21.0, 22.0])
        make_run(tmp_path, "up", seed, [21.0 + 0.3 * seed, 22.0, 23.0])
    monkeypatch.setattr(output, "SHIPPED_REFERENCE", tmp_path)
    assert main(["compare", "--results", str(tmp_path), "--all-pairs"]) == 0
    out = capsys.readouterr().out
    assert "All pairs" in out and "no tables written" in out
    assert not (tmp_path / "tables").exists()


def test_a_comparison_without_per_image_values_names_its_test(tmp_path: Path) -> None:
    for seed in range(3):
        make_run(tmp_path, "l1", seed, [20.0 + 0.1 * seed, 21.0, 22.0], per_image=False)
        make_run(tmp_path, "up", seed, [21.0 + 0.3 * seed, 22.0, 23.0], per_image=False)
    summary = summarize(*load_runs(tmp_path), "l1")
    up = _row(summary, "up")
    assert up["psnr_test_used"] == "seed means" and up["psnr_n_images"] == 1
    assert up["psnr_p"] == pytest.approx(up["psnr_p_fixed"])  # the t on per-seed means
    assert "t on seed means: no per-image values" in markdown_tables(summary)
