"""The rank-transfer study (``compare --transfer``): tau and rho against scipy, known transfers
(identical, shuffled, partly flipped) on score arrays and on run folders, the bootstrap
interval's coverage by simulation, the figure's conventions and the user errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from scipy import stats as sps

from benchmark.analysis.transfer import coverage, kendall_tau, spearman_rho, transfer
from benchmark.analysis.transfer_report import (
    ARROWS,
    load_pair,
    points_frame,
    sentence,
    study,
    transfer_figure,
)
from benchmark.cli import main
from tests.test_results import make_run

N_IMAGES = 15


def _profile(rng: np.random.Generator, means: dict[str, float], images: np.ndarray, seeds: int,
             sd_seed: float = 0.1, sd_cell: float = 0.2) -> dict[str, np.ndarray]:
    """``{recipe: seeds x images}``: recipe mean + shared image effect + seed + residual."""
    return {r: m + images + rng.normal(0, sd_seed, (seeds, 1))
            + rng.normal(0, sd_cell, (seeds, images.size)) for r, m in means.items()}


# ---------------------------------------------------------------- tau and rho


def test_tau_and_rho_equal_scipy_with_and_without_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 4, 7).astype(float) if rng.random() < 0.5 else rng.normal(size=7)
        y = rng.integers(0, 4, 7).astype(float) if rng.random() < 0.5 else rng.normal(size=7)
        tau, rho = sps.kendalltau(x, y).statistic, sps.spearmanr(x, y).statistic
        if np.isnan(tau):
            assert np.isnan(kendall_tau(x, y)) and np.isnan(spearman_rho(x, y))
            continue
        assert float(kendall_tau(x, y)) == pytest.approx(tau, abs=1e-12)
        assert float(spearman_rho(x, y)) == pytest.approx(rho, abs=1e-12)
    many = rng.normal(size=(5, 6))
    assert kendall_tau(many, many[::-1]) == pytest.approx(
        [sps.kendalltau(a, b).statistic for a, b in zip(many, many[::-1], strict=True)])


# ---------------------------------------------------------------- known transfers (arrays)


MEANS = {f"r{k}": float(k) for k in range(8)}  # 1 dB apart: every order is clear


def test_identical_ranking_gives_tau_one_and_no_flip() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(18, 2, N_IMAGES)
    a = _profile(rng, MEANS, images, 3)
    b = _profile(rng, {r: 3.0 + 1.5 * m for r, m in MEANS.items()}, images, 2)  # shifted, scaled
    t = transfer(a, b, np.random.default_rng(2), n_boot=500)
    assert t.tau == 1.0 and t.rho == 1.0 and t.tau_low >= 0.9 and t.tau_high == 1.0
    assert t.n_agree == len(t.pairs) == 28 and t.flips().empty
    assert t.pairs["sig_a"].all()  # 3 seeds 1 dB apart; with 2 seeds (b) the test has 1 df


def test_shuffled_ranking_gives_tau_near_zero_and_an_interval_covering_it() -> None:
    rng = np.random.default_rng(3)
    images = rng.normal(18, 2, N_IMAGES)
    perm = [3, 6, 0, 5, 2, 7, 1, 4]  # an order with Kendall's tau 0 against 0..7
    assert sps.kendalltau(range(8), perm).statistic == pytest.approx(0.0, abs=1e-12)
    a = _profile(rng, MEANS, images, 3, sd_seed=0.5, sd_cell=1.0)
    b = _profile(rng, {f"r{k}": float(perm[k]) for k in range(8)}, images, 3, sd_seed=0.5,
                 sd_cell=1.0)
    t = transfer(a, b, np.random.default_rng(4), n_boot=500)
    assert abs(t.tau) <= 0.15 and t.tau_low < 0.0 < t.tau_high
    assert 10 <= t.n_agree <= 18


def test_partly_flipped_ranking_flags_exactly_the_flipped_pairs() -> None:
    rng = np.random.default_rng(5)
    images = rng.normal(18, 2, N_IMAGES)
    long = dict(MEANS)
    long["r1"], long["r2"] = MEANS["r2"], MEANS["r1"]  # two clear swaps
    long["r5"], long["r6"] = MEANS["r6"], MEANS["r5"]
    tiny = {**MEANS, "r7": 7.0, "x": 7.01}  # a near tie that flips by chance only
    a = _profile(rng, tiny, images, 3, sd_cell=0.05)
    b = _profile(rng, {**long, "x": 6.99}, images, 3, sd_cell=0.05)
    t = transfer(a, b, np.random.default_rng(6), n_boot=300)
    flipped = {(r.first, r.second) for r in t.flips().itertuples()}
    assert flipped == {("r1", "r2"), ("r5", "r6"), ("r7", "x")}
    pairs = t.pairs.set_index(["first", "second"])
    for pair in [("r1", "r2"), ("r5", "r6")]:  # clear at both: each order significant
        assert pairs.loc[pair, "sig_a"] and pairs.loc[pair, "sig_b"]
    assert not pairs.loc[("r7", "x"), "sig_a"] and not pairs.loc[("r7", "x"), "sig_b"]
    assert t.tau == pytest.approx(1 - 2 * 3 / 36)


def test_missing_seeds_are_resampled_within_the_recipe() -> None:
    rng = np.random.default_rng(7)
    images = rng.normal(18, 2, N_IMAGES)
    a = _profile(rng, MEANS, images, 3)
    a["r3"][2] = np.nan  # seed 2 of r3 did not finish
    b = _profile(rng, MEANS, images, 3)
    t = transfer(a, b, np.random.default_rng(8), n_boot=200)
    assert t.seeds_a[3] == 2 and t.tau == 1.0
    assert t.mean_a[3] == pytest.approx(a["r3"][:2].mean())
    with pytest.raises(ValueError, match="same image columns"):
        transfer(a, {r: v[:, :5] for r, v in b.items()}, rng)


@pytest.mark.parametrize(("gap", "low", "high"), [(0.5, 0.93, 1.0), (0.05, 0.78, 0.99)])
def test_interval_coverage_by_simulation(gap: float, low: float, high: float) -> None:
    """Coverage of the tau of the expected recipe means (6 recipes with two swaps, 3 seeds,
    15 images; seed SD 0.3, recipe x image SD 0.5, image SD 3; 150 data sets x 200
    replicates: the rate's SD is at most 0.025). Recipes 0.5 dB apart (about 2 standard errors
    of a pairwise difference): at least 93%. 0.05 dB apart, a fifth of a standard error: the
    observed tau is pulled towards 0 and it covers less, the known limit docs/STATISTICS.md
    states (``benchmarks/transfer_coverage.py`` prints the whole table)."""
    rate = coverage(gap, np.random.default_rng(int(gap * 100)), reps=150, n_boot=200)
    assert low <= rate <= high


# ---------------------------------------------------------------- run folders and compare


def _folders(root: Path, profiles: dict[str, dict[str, float]], seeds: dict[str, int],
             seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images = rng.normal(18, 2, N_IMAGES)
    for profile, means in profiles.items():
        for recipe, m in means.items():
            for s in range(seeds[profile]):
                make_run(root, recipe, s, images + m + rng.normal(0, 0.05)
                         + rng.normal(0, 0.1, N_IMAGES), profile=profile)


LITE = {"l1": 0.0, "mse": -1.0, "ssim": 1.0, "flw": 2.0}
LONG = {"l1": 3.0, "mse": 2.0, "ssim": 5.0, "flw": 4.0}  # ssim and flw swap


def test_compare_transfer_on_one_results_tree(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _folders(tmp_path, {"lite": LITE, "long": LONG}, {"lite": 3, "long": 2})
    assert main(["compare", "--results", str(tmp_path), "--transfer-profiles", "lite",
                 "long", "--compact"]) == 0
    out = capsys.readouterr().out
    assert ("On PSNR, lite and long agree on the order of 5 of 6 recipe pairs (4 recipes); "
            "Kendall's τ = 0.67 [") in out
    # 3 seeds 1 dB apart at lite: significant; 2 seeds at long: no test (it would have 1 df)
    assert ("this pair flips: flw/ssim (flw higher at lite, significant; ssim higher at long, "
            "untested)") in out
    assert "with 2 seeds at long no order there is tested" in out
    # the plain answer for lite's claims: every pair is 1 dB apart over 3 seeds at lite
    assert "Of the 6 PSNR pairs whose order is significant at lite, 5 keep it at long." in out
    assert "(Means over 3 seeds at lite and 2 at long and the same 15 test images" in out
    for name in ("tables/transfer_lite_long.md", "tables/transfer_lite_long.csv",
                 "plots/transfer_lite_long.png", "plots/transfer_lite_long.pdf"):
        assert (tmp_path / name).is_file(), name
    pdf = (tmp_path / "plots/transfer_lite_long.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType fonts (pdf.fonttype 42)


def test_compare_transfer_with_a_second_folder(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _folders(tmp_path / "lite", {"lite": LITE}, {"lite": 3})
    _folders(tmp_path / "long", {"long": LITE}, {"long": 2}, seed=1)
    assert main(["compare", "--results", str(tmp_path / "long"), "--transfer",
                 str(tmp_path / "lite")]) == 0
    out = capsys.readouterr().out
    assert "lite and long agree on the order of 6 of 6 recipe pairs" in out
    assert "Of the 6 PSNR pairs whose order is significant at lite, all 6 keep it at long." in out
    assert "Kendall's τ = 1.00 [1.00, 1.00]" in out and "no pair flips" in out


@pytest.mark.parametrize(("setup", "args", "message"), [
    ({"lite": LITE, "long": LONG, "quick": LITE}, [],
     "the runs hold 3 profile(s) (lite, long, quick); name the two to compare with "
     "--transfer-profiles CHEAP LONG"),
    ({"lite": LITE, "long": LONG}, ["--transfer-profiles", "lite", "lnog"],
     "--transfer-profiles: no runs of profile 'lnog'; did you mean 'long'?"),
    ({"lite": {"l1": 0.0}, "long": {"l1": 1.0, "mse": 0.0}}, ["--transfer-profiles", "lite",
                                                               "long"],
     "1 recipe(s) finished at both lite and long (l1); a ranking needs 2 or more"),
])
def test_transfer_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: dict,
                              args: list[str], message: str) -> None:
    _folders(tmp_path, setup, dict.fromkeys(setup, 2))
    assert main(["compare", "--results", str(tmp_path), *args]
                + ([] if args else ["--transfer", str(tmp_path)])) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_profile_in_both_folders_is_refused(tmp_path: Path) -> None:
    _folders(tmp_path / "a", {"lite": LITE}, {"lite": 2})
    _folders(tmp_path / "b", {"lite": LITE, "long": LONG}, {"lite": 2, "long": 2})
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="profile lite has runs in both"):
        load_pair(tmp_path / "a", tmp_path / "b")


def test_compare_reference_works_on_a_long_rerun(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing in ``compare --reference`` assumes lite: a long rerun against a long reference."""
    from tests.test_reference import _runs

    _runs(tmp_path / "ref", "l1", {0: -0.1, 1: 0.0, 2: 0.1}, profile="long")
    _runs(tmp_path / "mine", "l1", {0: 0.02, 1: -0.03}, profile="long")
    assert main(["compare", "--results", str(tmp_path / "mine"), "--reference",
                 str(tmp_path / "ref")]) == 0
    assert "profile long" in capsys.readouterr().out


# ---------------------------------------------------------------- the figure


def _boxes_overlap(a, b) -> bool:  # noqa: ANN001 - matplotlib Bbox
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _undrawn_tick(text: Text) -> bool:
    """A tick label outside its axis's view limits (matplotlib keeps it but does not draw it)."""
    for ax in text.figure.axes:
        for k, axis in enumerate((ax.xaxis, ax.yaxis)):
            if text in axis.get_ticklabels():
                lo, hi = sorted(axis.get_view_interval())
                return not lo - 1e-9 <= text.get_position()[k] <= hi + 1e-9
    return False


def test_figure_conventions(tmp_path: Path) -> None:
    recipes = {f"recipe_{k}": float(k) for k in range(13)}
    _folders(tmp_path, {"lite": recipes, "long": recipes}, {"lite": 3, "long": 2})
    runs, per_image, pair = load_pair(tmp_path, None, ("lite", "long"))
    found = study(runs, per_image, pair, n_boot=100)
    points = points_frame(runs, found, pair)
    assert set(points["metric"]) == {"psnr", "ssim"} and len(points) == 26
    row = points[(points["metric"] == "psnr") & (points["recipe"] == "recipe_3")].iloc[0]
    seeds = np.array(row["seeds_a"])
    half = sps.t.ppf(0.975, 2) * seeds.std(ddof=1) / np.sqrt(3)
    assert (row["low_a"], row["high_a"]) == pytest.approx((seeds.mean() - half,
                                                           seeds.mean() + half))
    fig = transfer_figure(points)
    assert fig.get_size_inches()[0] == pytest.approx(3.5)
    psnr = points[points["metric"] == "psnr"]
    lo, hi = fig.axes[0].get_ylim()  # the bulk: every per-seed mean inside, wide bars cut
    assert lo <= min(min(v) for v in psnr["seeds_b"]) and hi >= max(max(v) for v in psnr["seeds_b"])
    agg = FigureCanvasAgg(fig)
    agg.draw()
    renderer = agg.get_renderer()
    canvas = fig.bbox
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
             and not _undrawn_tick(t)]
    boxes = [t.get_window_extent(renderer) for t in texts]
    for text, box in zip(texts, boxes, strict=True):
        assert (box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1 and box.y0 >= canvas.y0 - 1
                and box.y1 <= canvas.y1 + 1), f"outside the canvas: {text.get_text()!r}"
    for (t1, b1), (t2, b2) in itertools.combinations(zip(texts, boxes, strict=True), 2):
        assert not _boxes_overlap(b1, b2), (t1.get_text(), t2.get_text())
    styles = {(line.get_color(), line.get_marker()) for line in fig.legends[0].get_lines()}
    cut = any(line.get_marker() in ARROWS for ax in fig.axes for line in ax.get_lines())
    # 13 recipes + the per-seed mark (+ the arrow of a cut bar), each its own colour x marker
    assert len(styles) == 14 + cut
    empty = transfer_figure(points.iloc[:0])
    assert "no recipe finished at both profiles" in [t.get_text() for t in empty.findobj(Text)]


def test_a_bar_cut_by_the_axes_ends_in_an_arrowhead() -> None:
    """The axes span the means and per-seed means; a bar running past them is marked at the
    edge, on the side it runs on, and the legend names the mark; an uncut figure has none."""
    def points(wide: float) -> pd.DataFrame:
        rows = []
        for recipe, centre in (("l1", 17.0), ("ssim", 18.0)):
            seeds = (centre - 0.1, centre + 0.1)
            half = wide if recipe == "l1" else 0.1
            rows.append({"metric": "psnr", "recipe": recipe, "profile_a": "lite",
                         "profile_b": "long", "tau": 1.0, "tau_low": 1.0, "tau_high": 1.0,
                         "mean_a": centre, "low_a": centre - 0.1, "high_a": centre + 0.1,
                         "seeds_a": seeds, "mean_b": centre, "low_b": centre - half,
                         "high_b": centre + half, "seeds_b": seeds})
        return pd.DataFrame(rows)

    def arrows(fig) -> list[tuple[str, float, float]]:
        return [(line.get_marker(), float(line.get_xdata()[0]), float(line.get_ydata()[0]))
                for line in fig.axes[0].get_lines() if line.get_marker() in ARROWS]

    cut = transfer_figure(points(5.0))
    y0, y1 = cut.axes[0].get_ylim()
    assert y0 > 17.0 - 5.0 and y1 < 17.0 + 5.0  # the l1 bar is wider than the axes
    assert sorted(arrows(cut)) == sorted([(ARROWS[1], 17.0, y1), (ARROWS[0], 17.0, y0)])
    assert "interval runs on" in [t.get_text() for t in cut.legends[0].get_texts()]
    whole = transfer_figure(points(0.1))
    assert arrows(whole) == []
    assert "interval runs on" not in [t.get_text() for t in whole.legends[0].get_texts()]


def test_sentence_without_flips_and_for_a_missing_metric() -> None:
    rng = np.random.default_rng(9)
    images = rng.normal(18, 2, N_IMAGES)
    t = transfer(_profile(rng, MEANS, images, 3), _profile(rng, MEANS, images, 3),
                 np.random.default_rng(0), n_boot=100)
    text = sentence({"psnr": t}, ("lite", "long"))
    assert text.startswith("On PSNR, lite and long agree on the order of 28 of 28 recipe pairs")
    assert "no pair flips." in text and "SSIM" not in text
    assert sentence({}, ("lite", "long")) == ""


def test_two_seeds_at_a_profile_leave_its_orders_untested_and_say_so(recwarn) -> None:
    """With 2 seeds at long (the CPU measurement) the crossed test has no p-value: a flip is
    "untested" there, never "not significant", and no warning per pair floods the output."""
    rng = np.random.default_rng(12)
    images = rng.normal(18, 2, N_IMAGES)
    long = dict(MEANS)
    long["r1"], long["r2"] = MEANS["r2"], MEANS["r1"]
    t = transfer(_profile(rng, MEANS, images, 3, sd_cell=0.05),
                 _profile(rng, long, images, 2, sd_cell=0.05), np.random.default_rng(1),
                 n_boot=100)
    assert t.pairs["p_b"].isna().all() and not t.pairs["sig_b"].any()
    assert t.pairs["p_a"].notna().all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    text = sentence({"psnr": t}, ("lite", "long"))
    assert "r1/r2 (r2 higher at lite, significant; r1 higher at long, untested)" in text
    assert "with 2 seeds at long no order there is tested (the test needs 3)" in text
    assert "at lite no order" not in text


def test_the_two_profiles_are_ordered_by_iterations(tmp_path: Path) -> None:
    """Without --transfer-profiles the cheaper profile comes first, whatever the names."""
    import json

    _folders(tmp_path, {"paper": LONG, "quick": LITE}, {"paper": 2, "quick": 2})
    for path in tmp_path.glob("runs/*/paper/seed*/metrics.json"):
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "iterations": 100_000}))
    assert load_pair(tmp_path)[2] == ("quick", "paper")


# ---------------------------------------------------------------- the long profile


def test_long_is_lite_trained_ten_times_longer() -> None:
    """Every field of long equals lite's but the iteration count and the cadences, which are
    10x, so the schedule keeps its shape; and it follows lite if lite changes."""
    import dataclasses

    from benchmark.protocol import LONG_FACTOR, PROFILES, resolve_profile, scaled

    lite, long = PROFILES["lite"].to_dict(), PROFILES["long"].to_dict()
    scaled_fields = {"iterations", "warmup", "val_every", "ckpt_every", "log_every"}
    assert LONG_FACTOR == 10 and long["iterations"] == 20_000
    assert {k for k in lite if lite[k] != long[k]} == scaled_fields | {"name"}
    assert all(long[k] == 10 * lite[k] for k in scaled_fields)
    p = PROFILES["long"]
    assert p.iterations % p.val_every == p.iterations % p.ckpt_every == 0
    for frac in (0.1, 0.5, 1.0):  # the same learning rate at the same fraction of training
        assert p.lr_at(int(frac * p.iterations)) == pytest.approx(
            PROFILES["lite"].lr_at(int(frac * PROFILES["lite"].iterations)), rel=1e-9)
    changed = dataclasses.replace(PROFILES["lite"], lr=5e-4)
    assert scaled(changed, "long", 10).lr == 5e-4
    assert resolve_profile("long", "cpu")[0] is PROFILES["long"]
    from benchmark.cli import build_parser

    assert build_parser().parse_args(["run", "l1", "--profile", "long"]).profile == "long"


# ---------------------------------------------------------------- the reference script


def _reference_script():  # noqa: ANN202 - the module
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    import reference

    return reference


def test_reference_docs_say_the_transfer_only_when_long_runs_exist(tmp_path: Path) -> None:
    ref = _reference_script()
    from tests.test_reference import _runs

    for recipe, off in (("l1", 0.0), ("flw", 1.0), ("ssim", 2.0)):
        _runs(tmp_path / "lite", recipe, {s: off + 0.01 * s for s in (0, 1, 2)})
    before = ref.blocks(tmp_path / "lite")
    assert "Does lite rank" not in before["reference-reading"]
    assert "transfer.png" not in before["reference-results"]
    _runs(tmp_path / "long", "l1", {0: 0.0}, profile="long")  # one recipe: no ranking yet
    assert ref.transfer_study(tmp_path / "lite") is None
    assert "Does lite rank" not in ref.blocks(tmp_path / "lite")["reference-reading"]
    _runs(tmp_path / "long", "l1", {1: 0.01}, profile="long")
    for recipe, off in (("flw", 2.0), ("ssim", 1.0)):  # flw and ssim swap
        _runs(tmp_path / "long", recipe, {s: off + 0.01 * s for s in (0, 1)}, profile="long")
    after = ref.blocks(tmp_path / "lite")
    text = after["reference-reading"]
    assert text.startswith(before["reference-reading"])
    assert ("Does lite rank the losses the way 10x longer training (`long`) does? On PSNR, "
            "lite and long agree on the order of 2 of 3 recipe pairs (3 recipes); Kendall's "
            "τ = 0.33 [") in text
    assert "this pair flips: flw/ssim (ssim higher at lite" in text
    assert "(figures/reference/transfer.png)" in after["reference-results"]
    for doc, name in (*ref.BLOCKS, ref.COST_BLOCK):
        path = tmp_path / "root" / doc
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else "# t\n"
        path.write_text(f"{old}\n<!-- {name}:begin -->\nold\n<!-- {name}:end -->\n")
    assert ref.main(["docs", "--results", str(tmp_path / "lite"), "--root",
                     str(tmp_path / "root")]) == 0
    assert (tmp_path / "root" / ref.FIGURES / "transfer.png").is_file()
    assert "Does lite rank" in (tmp_path / "root" / "README.md").read_text()


def test_reference_run_is_resumable_at_long_and_runs_jobs_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _reference_script()
    make_run(tmp_path / "work", "l1", 0, profile="long")  # finished: not redone
    started = []

    class FakeRun:
        returncode = 0

        def __init__(self, cmd: list[str], cwd: Path, env: dict | None = None) -> None:
            started.append(cmd)

        def poll(self) -> int:
            return 0

    monkeypatch.setattr(ref.subprocess, "Popen", FakeRun)
    monkeypatch.setattr(ref.time, "sleep", lambda s: None)
    assert ref.main(["run", "--data", "/data/LOL-v1", "--work", str(tmp_path / "work"),
                     "--profile", "long", "--recipes", "l1", "flw", "--seeds", "0", "1",
                     "--device", "cuda", "--jobs", "3"]) == 0
    assert [(c[4], c[8]) for c in started] == [("flw", "0"), ("l1", "1"), ("flw", "1")]
    assert all(c[c.index("--profile") + 1] == "long" and c[c.index("--device") + 1] == "cuda"
               for c in started)
    assert ref.main(["export", "--work", str(tmp_path / "work"), "--profile", "long",
                     "--to", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "runs" / "l1" / "long" / "seed0" / "metrics.json").is_file()


def test_runs_without_per_image_values_are_a_user_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for profile in ("lite", "long"):
        for recipe in ("l1", "flw"):
            make_run(tmp_path, recipe, 0, profile=profile, per_image=False)
    assert main(["compare", "--results", str(tmp_path), "--transfer-profiles", "lite",
                 "long"]) == 2
    err = capsys.readouterr().err
    assert "--transfer: the runs of lite and long share no test image (per_image.csv)" in err


@pytest.mark.parametrize(("sig_a", "agree", "said"), [
    ([False, False, float("nan")], [True, False, True],
     " No PSNR order is significant at lite."),
    ([True, False, False], [True, False, False],
     " Of the 1 PSNR pair whose order is significant at lite, it keeps it at long."),
    ([True, False, False], [False, True, True],
     " Of the 1 PSNR pair whose order is significant at lite, it does not keep it at long."),
    ([True, True, True], [False, False, True],
     " Of the 3 PSNR pairs whose order is significant at lite, 1 keeps it at long."),
    ([True, True, False], [False, False, True],
     " Of the 2 PSNR pairs whose order is significant at lite, none keeps it at long."),
    ([True, True, False], [True, True, False],
     " Of the 2 PSNR pairs whose order is significant at lite, both keep it at long."),
])
def test_the_plain_answer_counts_only_the_orders_significant_at_the_cheap_profile(
        sig_a: list, agree: list, said: str) -> None:
    from types import SimpleNamespace

    from benchmark.analysis.transfer_report import _kept

    pairs = pd.DataFrame({"sig_a": sig_a, "agree": agree})
    assert _kept(SimpleNamespace(pairs=pairs), "lite", "long", "PSNR") == said
