"""The metric registry (benchmark.metrics.METRICS): one entry adds a metric everywhere, and
every field is what its consumers use (direction, label, unit, decimals, needs-weights).

The "one entry" test registers a fake metric in the registry (monkeypatched, so restored after)
and checks that the per-image frame, the summary (means, tests, Holm family, ranks), the
tables and the figures pick it up with no other edit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import cli
from benchmark import metrics as metrics_mod
from benchmark.analysis import plots
from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.frames import compare_frames
from benchmark.analysis.report import compact_markdown
from benchmark.analysis.scores import score_table, scores, summarize_scores
from benchmark.analysis.summary_files import write_tables
from benchmark.metrics import METRICS, Metric
from benchmark.record import UNHASHED_METRICS, hashed_part
from tests.test_results import make_run


def _fake_fn(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image (lower is better)."""
    return (pred.double() - ref.double()).abs().mean(dim=(1, 2, 3))


FAKE = Metric("fake", _fake_fn, higher_is_better=False, label="Fakeness", unit="u",
              decimals=1, fine_decimals=5, optional=True)


def _add_fake(run: Path, values: np.ndarray) -> None:
    """What a run that computed ``fake`` writes: its column and its mean in metrics.json."""
    table = pd.read_csv(run / "per_image.csv", dtype={"image": str})
    table["fake"] = values
    table.to_csv(run / "per_image.csv", index=False)
    meta = json.loads((run / "metrics.json").read_text())
    meta["test"]["fake"] = float(values.mean())
    (run / "metrics.json").write_text(json.dumps(meta))


def _results(root: Path, *, fake: bool) -> Path:
    """l1 and mse, seeds 0-3, three images; mse's PSNR 0.5 dB higher and its fake 0.7 higher
    (worse), with seed and image noise."""
    rng = np.random.default_rng(3)
    for recipe, shift in (("l1", 0.0), ("mse", 1.0)):
        for seed in range(4):
            noise = rng.normal(0, 0.05, 3)
            run = make_run(root, recipe, seed, 20.0 + 0.5 * shift + 0.2 * seed
                           + np.array([0.0, 1.0, 2.0]) + noise)
            if fake:
                _add_fake(run, 5.0 + 0.7 * shift + 0.1 * seed + np.array([0.0, 0.3, 0.6])
                          + rng.normal(0, 0.05, 3))
    return root


def test_one_entry_adds_a_metric_to_frames_statistics_tables_and_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = compare_frames(_results(tmp_path / "before", fake=False), "l1")[2]
    monkeypatch.setitem(METRICS, "fake", FAKE)
    runs, per_image, summary = compare_frames(_results(tmp_path / "after", fake=True), "l1")
    # record -> frames
    assert "fake" in set(per_image["metric"]) and "fake" in runs.columns
    # statistics: mean, the paired test, Holm over one more metric, ranks by its direction
    mse = summary[summary["recipe"] == "mse"].iloc[0]
    l1 = summary[summary["recipe"] == "l1"].iloc[0]
    assert mse["fake_diff"] == pytest.approx(0.7, abs=0.05)  # always recipe - baseline
    assert mse["fake_p"] < 0.05
    assert summary["holm_family"].max() == before["holm_family"].max() + 1
    assert (l1["fake_rank"], mse["fake_rank"]) == (1, 2)  # lower is better
    assert (l1["psnr_rank"], mse["psnr_rank"]) == (2, 1)
    assert mse["fake_p_improve"] < 0.5 < mse["psnr_p_improve"]
    # tables: its label, unit, arrow and decimals, with no edit to any table module
    wide = markdown_tables(summary)
    assert "Fakeness (u) ↓" in wide and "ΔFakeness vs l1 (u)" in wide
    assert f"{mse['fake_mean']:.1f} ± {mse['fake_std']:.1f}" in wide
    compact = compact_markdown(summary)
    assert "Fakeness (u) ↓" in compact and f"+{mse['fake_diff']:.1f}*" in compact
    paths = write_tables(summary, tmp_path / "tables")
    assert "fake_mean" in pd.read_csv(paths[0]).columns
    assert "Fakeness (u)\\\\{}$\\downarrow$" in paths[2].read_text()  # over two lines
    # figures: a panel in the metrics figure, a box panel in the difference figure
    fig = plots.metrics_figure(summary, runs=runs)
    assert "Fakeness (u) ↓" in [ax.get_xlabel() for ax in fig.axes]
    diff = plots.per_image_difference_figure(per_image, "l1")
    assert "Δ Fakeness (u) vs l1 ↓" in [ax.get_xlabel() for ax in diff.axes]
    # the run side: evaluate computes it when chosen, and --metrics accepts it
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    y = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    got = metrics_mod.evaluate(x, y, ("psnr", "ssim", "fake"))
    assert list(got) == ["psnr", "ssim", "psnr_gtmean", "ssim_gtmean", "fake"]
    torch.testing.assert_close(got["fake"], _fake_fn(x, y))
    assert metrics_mod.choices()[-1] == "fake" and "fake" not in metrics_mod.always()


def test_registry_removal_of_the_fake_left_everything_as_it_was() -> None:
    """The monkeypatched entry is gone again (the tests do not leak into each other)."""
    assert list(METRICS) == ["psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean"]


def test_decimals_of_the_registry_are_the_tables_decimals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, summary = compare_frames(_results(tmp_path, fake=False), "l1")
    mse = summary[summary["recipe"] == "mse"].iloc[0]
    assert f"{mse['psnr_mean']:.2f} ± {mse['psnr_std']:.2f}" in compact_markdown(summary)
    monkeypatch.setitem(METRICS, "psnr", replace(METRICS["psnr"], decimals=4))
    text = compact_markdown(summary)
    assert f"{mse['psnr_mean']:.4f} ± {mse['psnr_std']:.4f}" in text
    assert f"+{mse['psnr_diff']:.4f}" in text


def test_direction_of_the_registry_orders_ranks_and_arrows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _results(tmp_path, fake=False)
    _, _, summary = compare_frames(root, "l1")
    ranks = summary.set_index("recipe")["psnr_rank"]
    assert (ranks["l1"], ranks["mse"]) == (2, 1)
    monkeypatch.setitem(METRICS, "psnr", replace(METRICS["psnr"], higher_is_better=False))
    _, _, flipped = compare_frames(root, "l1")
    ranks = flipped.set_index("recipe")["psnr_rank"]
    assert (ranks["l1"], ranks["mse"]) == (1, 2)
    assert "PSNR (dB) ↓" in compact_markdown(flipped)
    # the difference is recipe - baseline whatever the direction; P(better) follows it
    mse, mse_flipped = (f[f["recipe"] == "mse"].iloc[0] for f in (summary, flipped))
    assert mse_flipped["psnr_diff"] == mse["psnr_diff"] > 0
    assert mse_flipped["psnr_p_improve"] < 0.5 < mse["psnr_p_improve"]


def test_registry_is_consistent() -> None:
    for name, m in METRICS.items():
        assert m.name == name
        assert m.decimals <= m.fine_decimals
        if m.gt_mean_of is not None:  # a variant of a chosen metric, same function
            base = METRICS[m.gt_mean_of]
            assert base.gt_mean_of is None and m.fn is base.fn and not m.headline
    assert metrics_mod.choices() == ("psnr", "ssim", "lpips") == cli.METRICS
    assert metrics_mod.always() == ("psnr", "ssim")
    assert metrics_mod.required() == ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean")
    assert metrics_mod.summarized() == ("psnr", "ssim", "lpips", "psnr_gtmean")
    assert metrics_mod.headline() == ("psnr", "ssim", "lpips")
    assert metrics_mod.backbones(["psnr", "ssim"]) == set()
    assert metrics_mod.backbones(["psnr", "ssim", "lpips"]) == {"alexnet"}
    assert metrics_mod.chosen(["psnr", "ssim"]) == ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean")


def test_a_new_metric_changes_no_existing_runs_config_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs made with the default choice leave ``metrics`` out of the hash, whatever the
    registry holds now (a new metric must not invalidate every cached run)."""
    monkeypatch.setitem(METRICS, "fake", FAKE)
    config = {"recipe": {"name": "l1", "losses": []}, "protocol": {"name": "smoke"},
              "data": {}, "seed": 0, "metrics": list(UNHASHED_METRICS)}
    assert "metrics" not in hashed_part(config)
    assert hashed_part({**config, "metrics": ["psnr", "ssim"]})["metrics"] == ["psnr", "ssim"]


def test_importing_the_registry_loads_neither_torch_nor_lpips() -> None:
    code = ("import sys, benchmark.metrics as m, benchmark.cli; m.METRICS['psnr'].heading; "
            "print(sorted(k for k in ('torch', 'lpips') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_cli_metrics_message_comes_from_the_registry() -> None:
    with pytest.raises(Exception, match="psnr and ssim are always computed; use psnr,ssim "
                       r"\(no pretrained weights needed\) or psnr,ssim,lpips \(the default\)"):
        cli._metrics("psnr,lpips")
    assert cli._metrics("lpips,ssim,psnr") == ("psnr", "ssim", "lpips")


# ---------------------------------------------------------------- scores -> statistics


def test_scores_are_the_rliable_shape_and_give_the_summary(tmp_path: Path) -> None:
    runs, per_image, summary = compare_frames(_results(tmp_path, fake=False), "l1")
    table = score_table(per_image, "psnr", runs)
    assert table.seeds == [0, 1, 2, 3] and len(table.images) == 3
    got = scores(per_image, "psnr", runs)
    assert set(got) == {"l1", "mse"} and got["l1"].shape == (4, 3)
    want = per_image[(per_image["recipe"] == "mse") & (per_image["metric"] == "psnr")]
    np.testing.assert_array_equal(
        got["mse"], want.pivot_table(index="seed", columns="image", values="value").to_numpy())
    stats = summarize_scores(got, "psnr", baseline="l1").set_index("recipe")
    rows = summary.set_index("recipe")
    for col in ("mean", "std", "ci_low", "ci_high", "ci_crossed_low", "ci_crossed_high",
                "diff", "diff_ci_low", "diff_ci_high", "p", "p_fixed", "p_improve"):
        assert stats.at["mse", col] == pytest.approx(rows.at["mse", f"psnr_{col}"], rel=1e-12)
    assert np.isnan(stats.at["l1", "diff"])
    with pytest.raises(ValueError, match="same seeds x images shape"):
        summarize_scores({"a": np.zeros((3, 2)), "b": np.zeros((2, 2))}, "psnr")


def test_seed_lists_are_tuples_in_the_summary_and_text_in_summary_csv(tmp_path: Path) -> None:
    root = _results(tmp_path, fake=False)
    make_run(root, "flw", 0)
    make_run(root, "flw", 2, status="failed", error="boom")
    _, _, summary = compare_frames(root, "l1")
    flw = summary[summary["recipe"] == "flw"].iloc[0]
    assert flw["ok_seeds"] == (0,) and flw["failed_seeds"] == (2,)
    assert flw["missing_seeds"] == (1, 3) and flw["group_seeds"] == (0, 1, 2, 3)
    csv = pd.read_csv(write_tables(summary, tmp_path / "tables")[0], dtype=str,
                      keep_default_na=False).set_index("recipe")
    assert (csv.at["flw", "ok_seeds"], csv.at["flw", "missing_seeds"]) == ("0", "1,3")
    assert (csv.at["l1", "group_seeds"], csv.at["l1", "failed_seeds"]) == ("0,1,2,3", "")
