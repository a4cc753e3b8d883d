"""Each figure function returns a Figure with the expected axes, labels and series."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle

from benchmark.analysis import plots
from benchmark.analysis.figstyle import styles_for
from benchmark.analysis.frames import compare_frames, load_runs, load_train_logs
from benchmark.analysis.stats import summarize
from tests.test_results import make_run

RECIPES = ("l1", "s3net", "srgan")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("results")
    for seed in (0, 1):
        for k, recipe in enumerate(RECIPES):
            make_run(tmp_path, recipe, seed, [20.0 + k, 21.0 + k + seed, 22.0 - k],
                     unofficial=("alexnet",) if recipe == "srgan" else ())
    return tmp_path


@pytest.fixture(scope="module")
def frames(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    runs, per_image = load_runs(results)
    return runs, per_image, summarize(runs, per_image, "l1", n_boot=200)


def test_no_pyplot_state_leaks(frames) -> None:
    before = plt.get_fignums()
    fig = plots.metrics_figure(frames[2])
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before


def test_metrics_figure(frames) -> None:
    summary = frames[2]
    fig = plots.metrics_figure(summary)
    assert len(fig.axes) == 4
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "PSNR (dB) ↑", "SSIM ↑", "LPIPS ↓", "GT-mean PSNR (dB) ↑"]
    # the table's marks: ‡ fewer than 3 seeds; † only for unofficial weights used in training
    # (srgan's are AlexNet's: its LPIPS marker is hollow instead); n = finished seeds
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "srgan‡ (n=2)", "s3net‡ (n=2)", "l1‡ (n=2)"]
    colors = plots.recipe_colors(RECIPES)
    ordered = summary.sort_values("recipe", ascending=False)
    for ax, metric in zip(fig.axes, ("psnr", "ssim", "lpips", "psnr_gtmean"), strict=True):
        assert len(ax.containers) == 3 and all(
            isinstance(c, ErrorbarContainer) for c in ax.containers)
        for y, (container, row) in enumerate(zip(ax.containers, ordered.itertuples(),
                                                  strict=True)):
            x, yy = container.lines[0].get_data()
            assert float(x[0]) == pytest.approx(getattr(row, f"{metric}_mean"), rel=1e-12)
            assert list(yy) == [y]
            line = container.lines[0]
            assert line.get_color() == colors[row.recipe]
            hollow = metric == "lpips" and row.recipe == "srgan"
            assert (line.get_markerfacecolor() == "white") == hollow, (metric, row.recipe)
        # the dashed baseline line sits at l1's mean
        base = summary.loc[summary["recipe"] == "l1", f"{metric}_mean"].iloc[0]
        assert ax.lines[-1].get_xdata()[0] == pytest.approx(base)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # no recipe has † (srgan's unofficial weights are AlexNet's): no † entry
    assert legend == ["mean over seeds, 95% CI", "l1 mean",
                      "LPIPS from unofficial AlexNet weights (not comparable)",
                      "n = finished seeds; ‡ fewer than 3 seeds"]
    assert fig.get_size_inches()[0] == pytest.approx(7.0)


def test_colours_are_stable_across_groups() -> None:
    """A recipe keeps its colour when a group lacks other recipes or the tree gains one."""
    whole = plots.recipe_colors(["zhao_mix", "l1", "s3net", "flw"])
    assert plots.recipe_colors(["s3net", "flw", "zhao_mix", "l1"]) == whole
    styles = plots.recipe_styles(["zhao_mix", "l1", "s3net", "flw"])
    assert styles_for(["s3net"], styles)["s3net"] == styles["s3net"]
    assert len(set(whole.values())) == 4
    # more recipes than colours: each (colour, marker, line style) is still unique
    many = plots.recipe_styles([f"r{i:02d}" for i in range(20)])
    assert len({(s["color"], s["marker"], s["ls"]) for s in many.values()}) == 20
    assert len({(s["color"], s["marker"]) for s in many.values()}) == 20


def test_perception_distortion_figure(frames) -> None:
    summary = frames[2]
    fig = plots.perception_distortion_figure(summary)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("PSNR (dB)") and ax.get_ylabel().startswith("LPIPS")
    assert len(ax.containers) == 3
    points = [c.lines[0].get_data() for c in ax.containers]
    got = sorted((float(x[0]), float(y[0])) for x, y in points)
    want = sorted(zip(summary["psnr_mean"], summary["lpips_mean"], strict=True))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["l1‡ (n=2)", "s3net‡ (n=2)", "srgan‡ (n=2)"]  # in the legend: no
    assert not ax.texts  # label on the plane, so none can overprint another
    faces = {c.get_label(): c.lines[0].get_markerfacecolor() for c in ax.containers}
    assert faces["srgan"] == "white" and faces["l1"] != "white"
    assert "LPIPS: unofficial AlexNet weights" in [
        t.get_text() for t in fig.legends[0].get_texts()]


def test_perception_distortion_without_lpips_plots_ssim(frames) -> None:
    """Runs made with --metrics psnr,ssim: the plane of PSNR and SSIM, titled as such."""
    summary = frames[2].assign(lpips_mean=np.nan)
    fig = plots.perception_distortion_figure(summary)
    (ax,) = fig.axes
    assert ax.get_ylabel().startswith("SSIM") and "no run computed LPIPS" in ax.get_title()
    points = [c.lines[0].get_data() for c in ax.containers]
    got = sorted((float(x[0]), float(y[0])) for x, y in points)
    want = sorted(zip(summary["psnr_mean"], summary["ssim_mean"], strict=True))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    faces = [c.lines[0].get_markerfacecolor() for c in ax.containers]
    assert "white" not in faces  # no LPIPS, so no unofficial-LPIPS hollow marker
    empty = plots.perception_distortion_figure(summary.assign(ssim_mean=np.nan))
    assert "no recipe has both" in empty.axes[0].texts[0].get_text()


def test_metrics_figure_leaves_out_an_unrecorded_metric(frames) -> None:
    fig = plots.metrics_figure(frames[2].assign(lpips_mean=np.nan))
    assert [ax.get_xlabel().split(" ")[0] for ax in fig.axes] == ["PSNR", "SSIM", "GT-mean"]


def test_validation_curves_figure(frames) -> None:
    from benchmark.analysis.logs import load_val_logs

    val = load_val_logs(frames[0])
    fig = plots.validation_curves_figure(val)
    (ax,) = fig.axes
    assert sorted(line.get_label() for line in ax.lines) == list(RECIPES)
    # median over seeds 0 and 1: 15 + it / 20 + 0.05
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, 15 + np.asarray(x) / 20 + 0.05, rtol=1e-12)
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3
    assert "no val_log.csv" in plots.validation_curves_figure(val.iloc[:0]).axes[0].texts[
        0].get_text()


def test_training_curves_figure(frames) -> None:
    logs = load_train_logs(frames[0])
    extra = logs[logs["recipe"] == "srgan"].assign(term="d_loss", value=0.7)
    fig = plots.training_curves_figure(pd.concat([logs, extra]))
    assert [ax.get_title() for ax in fig.axes] == ["total (weighted sum)", "l1", "d_loss"]
    total, l1, d_loss = fig.axes
    assert len(total.lines) == 3 and len(d_loss.lines) == 1
    assert sum(isinstance(c, PolyCollection) for c in total.collections) == 3
    assert total.get_yscale() == "linear" and total.get_xlabel() == "iteration"  # 1 to 0.14
    # median over the two seeds: total = exp(-it/50) + 0.01 * seed
    x, y = total.lines[0].get_data()
    np.testing.assert_allclose(y, np.exp(-np.asarray(x) / 50) + 0.005, rtol=1e-12)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        *RECIPES, "band: min-max over seeds"]
    colors = plots.recipe_colors(RECIPES)
    assert [line.get_color() for line in total.lines] == [colors[r] for r in RECIPES]


def test_training_curves_log_scale_for_wide_ranges() -> None:
    it = np.arange(0, 101, 10)
    logs = pd.DataFrame({"recipe": "l1", "seed": 0, "iteration": it, "term": "total",
                         "value": 10.0 ** (-it / 20)})
    (ax,) = plots.training_curves_figure(logs).axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "loss"


def test_training_curves_empty() -> None:
    cols = ["run_id", "recipe", "profile", "dataset", "seed", "iteration", "term", "value"]
    fig = plots.training_curves_figure(pd.DataFrame(columns=cols))
    assert "no train_log.csv" in fig.axes[0].texts[0].get_text()


def test_sample_grid_figure(results: Path, frames) -> None:
    table = plots.sample_table(frames[0], "l1")
    assert list(dict.fromkeys(table["column"])) == ["low", "l1", "s3net", "srgan", "reference"]
    assert table["image"].nunique() == 2 and all(Path(p).is_file() for p in table["path"])
    fig = plots.sample_grid_figure(table)
    assert len(fig.axes) == 2 * 2 * 5  # (full + zoom) x images x columns
    assert [ax.get_title() for ax in fig.axes[:5]] == [
        "low", "l1\nseed 0", "s3net\nseed 0", "srgan\nseed 0", "reference"]
    assert "yellow box" in fig.get_suptitle()
    full, zoom = fig.axes[0], fig.axes[5]
    assert len(full.images) == 1 and len(zoom.images) == 1
    (box,) = [p for p in full.patches if isinstance(p, Rectangle)]
    size = box.get_width()
    assert zoom.images[0].get_array().shape[:2] == (size, size)


def test_sample_grid_can_hide_the_dataset_images(frames) -> None:
    """A figure that must not show dataset images: outputs only, the same zoom boxes."""
    table = plots.sample_table(frames[0], "l1")
    full = plots.sample_grid_figure(table)
    fig = plots.sample_grid_figure(table, hide=("low", "reference"))
    # three wide columns of square images: one test image keeps the figure within a page
    assert len(fig.axes) == 2 * 1 * 3 and fig.get_size_inches()[1] <= 9.0
    assert [ax.get_title() for ax in fig.axes[:3]] == ["l1\nseed 0", "s3net\nseed 0",
                                                      "srgan\nseed 0"]
    assert "input, reference not shown" in fig.get_suptitle()
    box = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)][0]
    same = [p for p in full.axes[1].patches if isinstance(p, Rectangle)][0]
    assert box.get_xy() == same.get_xy() and box.get_width() == same.get_width()


def test_crop_box_finds_the_detailed_region() -> None:
    image = np.zeros((64, 64, 3))
    image[40:56, 8:24] = np.random.default_rng(0).random((16, 16, 3))
    top, left, size = plots.crop_box(image)
    assert size == 16 and (top, left) == (40, 8)


def test_per_image_difference_figure(frames) -> None:
    per_image = frames[1]
    fig = plots.per_image_difference_figure(per_image, "l1")
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "Δ PSNR (dB) vs l1 ↑", "Δ SSIM vs l1 ↑", "Δ LPIPS vs l1 ↓"]
    psnr_ax = fig.axes[0]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == [
        "no difference from l1", "box: median and quartiles of (seed, image) pairs; "
        "whiskers 1.5 IQR"]
    assert sum(isinstance(p, PathPatch) for p in psnr_ax.patches) == 2  # s3net, srgan
    assert [t.get_text() for t in psnr_ax.get_yticklabels()] == ["s3net", "srgan"]
    # s3net = l1 + (1, 1, -1) per seed: the median line of its box sits at +1
    medians = [line for line in psnr_ax.lines if line.get_label() == "_nolegend_"]
    assert medians and any(np.allclose(m.get_xdata(), 1.0) for m in psnr_ax.lines)


def test_save_is_deterministic(tmp_path: Path, frames) -> None:
    fig = plots.metrics_figure(frames[2])
    png, pdf = plots.save(fig, tmp_path / "a" / "metrics")
    assert (png.name, pdf.name) == ("metrics.png", "metrics.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    again = plots.save(plots.metrics_figure(frames[2]), tmp_path / "b" / "metrics")
    assert again[0].read_bytes() == png.read_bytes()
    assert again[1].read_bytes() == pdf.read_bytes()


def test_rank_stability_figure(frames) -> None:
    _, per_image, summary = frames
    freqs = plots.rank_frequency_frame(per_image, summary, n_boot=200)  # as the summary
    assert sorted(freqs["metric"].unique()) == ["lpips", "psnr", "ssim"]
    # every recipe takes some rank in every replicate: each row of fractions sums to 1
    sums = freqs.groupby(["metric", "recipe"])["fraction"].sum()
    np.testing.assert_allclose(sums, 1.0)
    fig = plots.rank_stability_figure(freqs)
    assert [ax.get_title() for ax in fig.axes] == ["PSNR ↑", "SSIM ↑", "LPIPS ↓"]  # no unit
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(RECIPES)
    image = fig.axes[0].images[0].get_array()
    table = freqs[freqs["metric"] == "psnr"].pivot(index="recipe", columns="rank",
                                                   values="fraction")
    np.testing.assert_allclose(image, table.to_numpy())
    # the rank held in the summary is the figure's value at the recipe's observed rank
    for recipe, rank, held in summary[["recipe", "psnr_rank", "psnr_rank_stability"]].values:
        assert table.at[recipe, int(rank)] == pytest.approx(held)
    empty = plots.rank_stability_figure(freqs.iloc[:0])
    assert "two recipes" in empty.axes[0].texts[0].get_text()


# ---------------------------------------------------------------- measured layout, fonts


SHIPPED = Path(__file__).resolve().parents[1] / "results" / "reference" / "LOL-v1" / "lite"


@pytest.fixture(scope="module")
def shipped():
    """The shipped reference (lite v2: 14 recipes x 5 seeds)."""
    runs, per_image, summary = compare_frames(SHIPPED, "l1")
    return runs, per_image, summary, plots.recipe_styles(runs["recipe"].unique())


@pytest.fixture(scope="module")
def shipped_v1():
    """The lite v1 reference kept beside it (13 recipes, a collapsed ms_ssim seed at 6.17 dB)."""
    runs, per_image, summary = compare_frames(SHIPPED.with_name("lite-v1"), "l1")
    return runs, per_image, summary, plots.recipe_styles(runs["recipe"].unique())


def _all_figures(runs, per_image, summary, styles) -> dict:
    from benchmark.analysis.instruments import grad_share_figure, load_grad_shares
    from benchmark.analysis.logs import load_val_logs

    return {
        "metrics": plots.metrics_figure(summary, styles=styles, runs=runs),
        "pd": plots.perception_distortion_figure(summary, styles=styles, runs=runs),
        "train": plots.training_curves_figure(load_train_logs(runs), styles=styles),
        "val": plots.validation_curves_figure(load_val_logs(runs), styles=styles),
        "diff": plots.per_image_difference_figure(per_image, "l1", styles=styles),
        "rank": plots.rank_stability_figure(plots.rank_frequency_frame(per_image, summary,
                                                                       n_boot=100)),
        "grad": grad_share_figure(load_grad_shares(runs)),
    }


@pytest.mark.parametrize("source", ["fixture", "shipped"])
def test_every_text_inside_the_canvas_and_none_overlapping(source, frames, shipped) -> None:
    """Measured on the drawn figure: every text's box inside the canvas, no two overlapping;
    one or two columns wide, never taller than a page."""
    from tests.figcheck import layout_problems

    args = (*frames, None) if source == "fixture" else shipped
    figures = _all_figures(*args)
    if source == "fixture":  # sample images: only the fixture's runs have them
        table = plots.sample_table(frames[0], "l1")
        figures["samples"] = plots.sample_grid_figure(table)
        long = table.assign(column=table["column"].replace(
            {"s3net": "exposure_fusion_luma", "srgan": "zero_dce_color_long_name"}))
        figures["samples_long_names"] = plots.sample_grid_figure(long)
    for name, fig in figures.items():
        assert layout_problems(fig) == [], name
        width, height = fig.get_size_inches()
        assert width in (3.5, 7.0) and height <= 9.0, (name, width, height)


def test_a_collapsed_run_does_not_stretch_the_axes(shipped_v1) -> None:
    """ms_ssim seed 2 of lite v1 scored 6.17 dB: the PSNR axis holds the other runs (16-19 dB),
    and the collapsed run is an outward triangle at the edge with its value written beside it."""
    runs, _, summary, styles = shipped_v1
    fig = plots.metrics_figure(summary, styles=styles, runs=runs)
    psnr = fig.axes[0]
    low, high = psnr.get_xlim()
    assert 12.0 < low < 16.0 and 19.0 < high < 22.0, (low, high)
    assert any("seed 6.17" in t.get_text() for t in psnr.texts)
    edge = [line for line in psnr.lines if line.get_marker() == "<"]
    assert edge and all(low <= line.get_xdata()[0] <= high for line in edge)
    # every seed is drawn: 13 recipes x 3 seeds as hollow points, in every panel
    hollow = [line for line in psnr.lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 39
    diff = plots.per_image_difference_figure(shipped_v1[1], "l1", styles=styles)
    assert [ax.get_xlabel().split(" vs")[0] for ax in diff.axes] == ["Δ PSNR (dB)", "Δ SSIM"]
    assert diff.axes[0].get_xlim()[0] > -12.0  # the collapsed run's -15 dB pairs: counted


def test_pdfs_embed_no_type3_fonts(tmp_path: Path, results: Path, frames) -> None:
    """pdffonts (poppler-utils; CI installs it) on every PDF `plots` writes: TrueType only."""
    import shutil
    import subprocess

    exe = shutil.which("pdffonts")
    if exe is None:
        pytest.skip("pdffonts is not installed (poppler-utils; CI installs it)")
    runs, per_image, summary = frames
    written = plots.write_figures(tmp_path, runs.assign(), per_image, summary, "l1")
    assert {w["kind"] for w in written} >= {"metrics", "perception_distortion", "samples"}
    for item in written:
        out = subprocess.run([exe, str(item["pdf"])], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        rows = out.splitlines()[2:]
        assert rows, item["pdf"]
        assert not [r for r in rows if "Type 3" in r], (item["pdf"], out)


def test_no_sample_figure_without_samples(tmp_path: Path, frames) -> None:
    """From a folder without samples/ (the shipped reference) no placeholder is drawn."""
    runs, per_image, summary = frames
    bare = runs.assign(run_dir=str(tmp_path / "nowhere"))
    written = plots.write_figures(tmp_path, bare, per_image, summary, "l1")
    assert "samples" not in {w["kind"] for w in written}
