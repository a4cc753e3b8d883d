"""The shipped reference results and the documents made from them: the per-metric tables and
the prediction interval (against scipy and by simulation), the generated blocks of README.md,
docs/RESULTS.md and docs/PROTOCOL.md (equal to what the tool makes from the committed folder),
and the reference sweep's recipe list (every shipped recipe that needs no pretrained backbone).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from benchmark.analysis.frames import compare_frames, load_runs
from benchmark.analysis.metric_tables import metric_markdown, prediction, prediction_markdown
from benchmark.cli import main
from tests.test_reference import _edit, _runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reference as reference_script  # noqa: E402

SHIPPED = ROOT / "results" / "reference" / "LOL-v1" / "lite"


# ---------------------------------------------------------------- the prediction interval


def test_prediction_interval_against_scipy(tmp_path: Path) -> None:
    offsets = {0: -0.3, 1: 0.1, 2: 0.05, 3: 0.4}
    _runs(tmp_path, "l1", offsets)
    runs, _ = load_runs(tmp_path)
    pred = prediction(runs, "l1", "psnr")
    values = 21.0 + np.array(list(offsets.values()))  # each run's mean over its images
    sd = values.std(ddof=1)
    half = sps.t.ppf(0.975, 3) * sd * np.sqrt(1 + 1 / 4)
    assert pred.n == 4 and pred.mean == pytest.approx(values.mean(), rel=1e-12)
    assert (pred.low, pred.high) == pytest.approx((values.mean() - half, values.mean() + half),
                                                  rel=1e-12)
    text = prediction_markdown(pred, "a lite l1 run on LOL-v1")
    assert text.startswith("A lite l1 run on LOL-v1 should score a test-set PSNR within **[")
    one = prediction(runs[runs["seed"] == 0], "l1", "psnr")
    assert np.isnan(one.low) and "too few for a prediction interval" in prediction_markdown(
        one, "a run")


@pytest.mark.parametrize("n", [2, 3, 5])
def test_prediction_interval_covers_a_new_run_95_percent(n: int) -> None:
    """Simulation: n reference runs and one new run from the same normal run-to-run
    distribution; the new run falls inside the interval 95% of the time (SD of the rate over
    4000 replicates: 0.0034)."""
    rng = np.random.default_rng(n)
    reps, hits = 4000, 0
    for _ in range(reps):
        values = rng.normal(17.0, 0.3, n + 1)
        runs = pd.DataFrame({"status": "ok", "recipe": "l1", "psnr": values[:n]})
        pred = prediction(runs, "l1", "psnr")
        hits += pred.low <= values[n] <= pred.high
    assert 0.94 <= hits / reps <= 0.96


# ---------------------------------------------------------------- the per-metric table


def test_metric_table_shows_every_seed_and_the_summary(tmp_path: Path) -> None:
    _runs(tmp_path, "l1", {0: -0.1, 1: 0.0, 2: 0.1})
    _runs(tmp_path, "flw", {0: 0.2, 1: 0.4})  # seed 2 missing
    runs, _, summary = compare_frames(tmp_path, "l1")
    text = metric_markdown(runs, summary, "psnr")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == ("| Recipe | seed 0 | seed 1 | seed 2 | mean ± SD | 95% CI | "
                        "Δ vs l1 [95% CI] | p (Holm) |")
    l1 = lines[2].split(" | ")
    assert l1[1:4] == ["20.90", "21.00", "21.10"] and l1[4] == "21.00 ± 0.10"
    ci = sps.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    assert l1[5] == f"[{21 - ci:.2f}, {21 + ci:.2f}]" and lines[2].endswith("| base |  |")
    flw = lines[3].split(" | ")
    assert flw[1:4] == ["21.20", "21.40", "–"] and flw[6] == "+0.35"  # seeds 0, 1 shared; no CI
    assert flw[7].rstrip(" |") == "n/a"


# ---------------------------------------------------------------- the generated documents


def test_docs_blocks_are_generated_from_the_shipped_folder() -> None:
    """README, docs/RESULTS.md and docs/PROTOCOL.md hold exactly what `make reference-docs`
    makes from results/reference/LOL-v1/lite: nothing in them is typed by hand."""
    assert any(SHIPPED.glob("runs/*/lite/seed*/metrics.json")), "no shipped reference runs"
    bodies = reference_script.blocks(SHIPPED)
    for doc, name in (*reference_script.BLOCKS, reference_script.RERUN_BLOCK,
                      reference_script.COST_BLOCK):
        if name not in bodies:  # the rerun and cost blocks: once their folders have runs
            assert (not reference_script.earlier_versions(SHIPPED) if name == "protocol-rerun"
                    else reference_script.cost_block(SHIPPED) is None)
            continue
        text = (ROOT / doc).read_text(encoding="utf-8")
        expected = reference_script.fill(text, name, bodies[name], doc)
        assert text == expected, f"{doc}: the {name} block is stale; run make reference-docs"


def test_readme_table_is_what_compare_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's table is `compare`'s output on the shipped folder, and reading the
    shipped folder writes nothing into it."""
    before = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*"))
    assert main(["compare", "--results", str(SHIPPED)]) == 0
    printed = capsys.readouterr().out.split("\n(the shipped reference is read-only")[0].strip()
    assert sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*")) == before
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert printed and printed in readme
    for command in (["plots"], ["report"]):
        assert main([*command, "--results", str(SHIPPED)]) == 2
        assert "are read-only" in capsys.readouterr().err
    assert sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*")) == before


def test_shipped_runs_are_text_only_and_complete() -> None:
    """Only the small text files; each run finished, on the official LOL-v1, at lite (and, in
    the long folder beside it, at long)."""
    allowed = set(reference_script.TEXT_FILES)
    long = reference_script.long_folder(SHIPPED)
    for run, profile in [*((r, "lite") for r in SHIPPED.glob("runs/*/*/seed*")),
                         *((r, "long") for r in long.glob("runs/*/*/seed*"))]:
        names = {p.name for p in run.iterdir()}
        assert names <= allowed and {"config.yaml", "metrics.json", "per_image.csv"} <= names
        data = json.loads((run / "metrics.json").read_text())
        assert data["status"] == "ok" and data["profile"] == profile == run.parent.name
        assert data["dataset"]["name"] == "LOL-v1" and data["dataset"]["identity"] == "official"
        assert data["metrics"] == ["psnr", "ssim"] and data["test"]["lpips"] is None


def test_docs_command_fills_every_block_and_draws_every_figure(tmp_path: Path) -> None:
    for doc, name in reference_script.BLOCKS:  # README.md has two blocks
        path = tmp_path / doc
        path.parent.mkdir(parents=True, exist_ok=True)
        head = path.read_text() if path.exists() else "# t\n"
        path.write_text(f"{head}\n<!-- {name}:begin -->\nold\n<!-- {name}:end -->\nafter\n")
    _runs(tmp_path / "ref", "l1", {0: -0.1, 1: 0.0, 2: 0.1})
    _runs(tmp_path / "ref", "flw", {0: 0.2, 1: 0.4, 2: 0.3})
    assert reference_script.main(["docs", "--results", str(tmp_path / "ref"), "--root",
                                  str(tmp_path), "--work", str(tmp_path / "ref")]) == 0
    for doc, name in reference_script.BLOCKS:
        text = (tmp_path / doc).read_text()
        assert "\nold\n" not in text and f"<!-- {name}:end -->\nafter\n" in text
    readme = (tmp_path / "README.md").read_text()
    assert ("| flw | 3 |" in readme or "| flw (3) |" in readme) and (
        "`lite` profile on LOL-v1" in readme)
    assert "should score a test-set PSNR within" in (tmp_path / "docs/PROTOCOL.md").read_text()
    figures = {p.name for p in (tmp_path / reference_script.FIGURES).iterdir()}
    assert figures == {f"{k}.png" for k in ("metrics", "psnr_ssim", "validation_curves",
                                            "training_curves", "per_image_diff",
                                            "rank_stability", "samples")}
    # the shipped RESULTS.md links only figures `docs` draws (transfer.png: once long runs
    # exist, tested below) and that are shipped
    for line in (ROOT / "docs" / "RESULTS.md").read_text().splitlines():
        if line.startswith("![") and "figures/reference/" in line:
            name = line.split("figures/reference/")[1].rstrip(")")
            assert name in figures | {"transfer.png"}, line
            assert (ROOT / reference_script.FIGURES / name).is_file(), line
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="README.md: needs one"):
        reference_script.main(["docs", "--results", str(tmp_path / "ref"), "--root",
                               str(tmp_path)])


def test_docs_compares_the_runs_of_an_earlier_protocol_kept_beside_the_reference(
        tmp_path: Path) -> None:
    """Once `export --replace` has kept lite v1's runs in `<reference>-v1`, `docs` fills
    PROTOCOL.md's protocol-rerun block (every seed under each protocol) and draws its figure;
    a folder that is not `-v<N>` (the rerun's staging folder) is not an earlier protocol."""
    from tests.test_convergence import protocol_trees

    protocol_trees(tmp_path / "ref-v1", tmp_path / "ref")
    (tmp_path / "ref-in-progress" / "runs").mkdir(parents=True)
    assert reference_script.earlier_versions(tmp_path / "ref") == [tmp_path / "ref-v1"]
    for doc, name in (*reference_script.BLOCKS, reference_script.RERUN_BLOCK):
        path = tmp_path / doc
        path.parent.mkdir(parents=True, exist_ok=True)
        head = path.read_text() if path.exists() else "# t\n"
        path.write_text(f"{head}\n<!-- {name}:begin -->\nold\n<!-- {name}:end -->\nafter\n")
    assert reference_script.main(["docs", "--results", str(tmp_path / "ref"), "--root",
                                  str(tmp_path)]) == 0
    block = (tmp_path / "docs/PROTOCOL.md").read_text().split(
        "<!-- protocol-rerun:begin -->")[1].split("<!-- protocol-rerun:end -->")[0]
    assert block.startswith("\n\nGenerated by `make reference-docs` from 8 curve(s)")
    assert "| lr 0.001, raw weights (lite v1) | flw | 1 |" in block
    assert "| lr 0.0003, EMA weights (lite v2) | l1 | 0 |" in block
    assert "| l1 | lr 0.0003, EMA weights (lite v2) | 2 |" in block  # the means, 2 seeds
    assert {p.name for p in (tmp_path / "docs" / "figures").glob("protocol_rerun.*")} == {
        "protocol_rerun.png", "protocol_rerun.pdf"}
    assert reference_script.earlier_versions(tmp_path / "ref-v1") == []


def test_docs_adds_the_transfer_study_and_the_long_runs_cost_once_long_runs_exist(
        tmp_path: Path) -> None:
    """With `long` runs beside the reference, `docs` writes every long run's cost (machine and
    threads named, lite's time per iteration beside it) into PROTOCOL.md's long-cost block, and
    the transfer sentence and figure where tests/test_transfer.py checks their wording."""
    blocks = (*reference_script.BLOCKS, reference_script.COST_BLOCK)
    for doc, name in blocks:
        path = tmp_path / doc
        path.parent.mkdir(parents=True, exist_ok=True)
        head = path.read_text() if path.exists() else "# t\n"
        path.write_text(f"{head}\n<!-- {name}:begin -->\nold\n<!-- {name}:end -->\nafter\n")
    threads = {"env": {"threads": 1, "cpu_model": "AMD EPYC", "device_name": "AMD EPYC"}}
    for recipe, off in (("l1", 0.0), ("ssim", 0.5), ("flw", 1.0)):
        for run in _runs(tmp_path / "LOL-v1" / "lite", recipe,
                         {s: off + 0.05 * s for s in range(3)}):
            _edit(run, metrics=threads)
    long_env = {"env": {"threads": 2, "cpu_model": "Intel Xeon", "device_name": "Intel Xeon"}}
    # long reverses ssim and flw
    for recipe, off in (("l1", 0.0), ("ssim", 1.0), ("flw", 0.5)):
        for run in _runs(tmp_path / "LOL-v1" / "long", recipe,
                         {s: off + 0.05 * s for s in range(2)}, profile="long"):
            _edit(run, metrics=long_env)
    assert reference_script.main(["docs", "--results", str(tmp_path / "LOL-v1" / "lite"),
                                  "--root", str(tmp_path)]) == 0
    said = "Does lite rank the losses the way 10x longer training (`long`) does?"
    assert said in (tmp_path / "README.md").read_text()
    results_md = (tmp_path / "docs/RESULTS.md").read_text()
    assert said in results_md and "(figures/reference/transfer.png)" in results_md
    assert (tmp_path / reference_script.FIGURES / "transfer.png").is_file()
    block = (tmp_path / "docs/PROTOCOL.md").read_text().split(
        "<!-- long-cost:begin -->")[1].split("<!-- long-cost:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6  # header and every long run
    iters = {profile: json.loads(next((tmp_path / "LOL-v1" / profile).glob(
        "runs/ssim/*/seed1/metrics.json")).read_text())["iterations"]
        for profile in ("lite", "long")}
    # make_run records 10 + seed training seconds: seed 1 is also lite's median over seeds 0-2
    assert (f"| ssim | 1 | Intel Xeon, 2 threads | {iters['long']:,} | {11 / 60:.1f} | "
            f"{11 / iters['long'] * 1000:.0f} | 1 | {11 / iters['lite'] * 1000:.0f} "
            "(AMD EPYC, 1 thread) |") in block
    assert "their ratio is not the cost ratio" in block


def test_the_sweep_runs_every_backbone_free_recipe() -> None:
    """RECIPES is every shipped recipe whose losses need no pretrained backbone (the
    perceptual losses need VGG19), so a recipe added to recipes/ is not silently left out."""
    from benchmark.losses import LOSSES

    free = set()
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        modules = {LOSSES[term["name"]].__module__ for term in recipe["losses"]}
        if "benchmark.losses.perceptual" not in modules:
            free.add(path.stem)
    assert set(reference_script.RECIPES) == free
    assert {"s3net", "srgan", "srgan_tv"}.isdisjoint(free)


@pytest.mark.parametrize("device, jobs, extra", [
    ("cpu", 1, []), ("cpu", 2, ["--no-grad-shares"]),
    ("cuda", 8, ["--cuda-graphs", "--no-grad-shares"])])
def test_the_sweep_hands_its_runs_the_flags_and_shares_the_cores(device, jobs, extra, monkeypatch):
    import argparse
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    args = argparse.Namespace(profile="long", data=Path("/d"), work=Path("/w"), device=device,
                              jobs=jobs, cuda_graphs="--cuda-graphs" in extra,
                              no_grad_shares="--no-grad-shares" in extra)
    cmd = reference_script._command(args, "l1", 3)
    assert cmd[1:] == ["-m", "benchmark", "run", "l1", "--profile", "long", "--seed", "3",
                       "--data", "/d", "--results", "/w", "--metrics", "psnr,ssim",
                       "--device", device, *extra]
    # the run command accepts every flag the sweep passes
    from benchmark.cli import build_parser

    parsed = build_parser().parse_args(cmd[3:])
    assert parsed.cuda_graphs == ("--cuda-graphs" in extra)
    env = reference_script._environment(args)
    # two one-thread runs on 2 cores, not two runs of 2 threads each; a GPU's runs keep it
    assert env["OMP_NUM_THREADS"] == {("cpu", 1): "2", ("cpu", 2): "1"}.get((device, jobs), "7")


def test_reading_states_what_the_test_found_and_no_more(tmp_path: Path) -> None:
    """The README's sentences under the table come from the summary: a large difference is
    reported with its interval and direction, a null one as "cannot tell" (with the detectable
    size, never as "equal"), and a recipe with one seed as untested."""
    from tests.test_results import make_run

    rng = np.random.default_rng(0)
    images = rng.normal(18.0, 2.0, 15)  # per-image difficulty, shared by every recipe
    shifts = {"l1": 0.0, "flw": 3.0, "mse": 0.0, "edge": -3.0}
    for recipe, shift in shifts.items():
        for seed in (0, 1, 2):
            noise = rng.normal(0, 0.1) + rng.normal(0, 0.2, 15)  # seed effect + seed x image
            make_run(tmp_path, recipe, seed, images + shift + noise, profile="lite")
    make_run(tmp_path, "ssim", 0, images + 1.0, profile="lite")
    _, _, summary = compare_frames(tmp_path, "l1")
    text = reference_script.reading(summary)
    assert "On PSNR, flw (+3." in text and " dB [+" in text
    # 3 recipes x PSNR, SSIM, LPIPS and GT-mean PSNR (the hand-made runs record all four)
    assert "Holm-adjusted over all 12 tests of the table (3 recipes" in text
    assert "No recipe is called best" in text
    assert "scores higher; edge (-3." in text
    assert "scores lower; it cannot tell mse from l1" in text
    assert "which is not evidence of equal scores" in text
    assert "Not tested yet (fewer than 3 seeds shared with l1): ssim;" in text
    flw = summary.set_index("recipe").loc["flw"]
    assert f"flw (+{flw['psnr_diff']:.2f} dB [+{flw['psnr_diff_ci_low']:.2f}, " in text
    assert "mse (" not in text  # no difference is quoted for what the test could not tell
    assert "No run collapsed under the protocol's collapse criterion" in text
    assert "collapse" not in reference_script.reading(summary, judged=False)  # lite v1 runs


def test_reading_counts_the_collapsed_runs(tmp_path: Path) -> None:
    """A collapsed run is named with its recipe's k/n and seeds, not averaged in."""
    from tests.test_results import edit_metrics, make_run

    for seed in range(4):
        make_run(tmp_path, "l1", seed, [20.0 + 0.1 * seed, 21.0, 22.0], profile="lite")
        for recipe in ("ms_ssim", "wild"):
            run = make_run(tmp_path, recipe, seed, [20.5 + 0.2 * seed, 21.5, 22.5]
                           if seed < 2 + (recipe == "ms_ssim") else [5.0, 6.0, 7.0],
                           profile="lite")
            if seed >= 2 + (recipe == "ms_ssim"):
                edit_metrics(run, outcome="collapsed", outcome_reason="below the identity")
    _, _, summary = compare_frames(tmp_path, "l1")
    text = reference_script.reading(summary)
    assert ("Collapsed under the protocol's collapse criterion, fixed before any run "
            "(docs/PROTOCOL.md): ms_ssim 1/4 (seed 3) and wild 2/4 (seeds 2,3); a collapsed "
            "run is counted in the table and left out of its recipe's mean, SD and tests.") in text


def test_status_counts_finished_started_and_missing_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reference.py status` reads the rerun's tree only: finished runs, started ones (a
    folder without a finished metrics.json) and missing ones, and the time left at the
    finished runs' median with --jobs at once."""
    from benchmark import record
    from tests.test_results import edit_metrics, make_run

    work = tmp_path / "work"
    for seed, minutes in ((0, 20), (1, 30), (2, 50)):  # median 30 min with the evaluation
        edit_metrics(make_run(work, "l1", seed, profile="lite"),
                     train_seconds=minutes * 60 - 60, eval_seconds=60)
    record.run_dir(work, "flw", "lite", 0).mkdir(parents=True)  # killed before it finished
    before = sorted(work.rglob("*"))
    assert reference_script.main(["status", "--work", str(work), "--recipes", "l1", "flw",
                                  "--seeds", "0", "1", "2", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{work} at lite: 3 of 6 runs finished, 1 started, 2 not started" in out
    assert "started: seed 0: flw\n" in out
    assert "not started: seed 1: flw; seed 2: flw" in out
    # 3 runs left, 2 at once: 2 rounds of the 30 min median
    assert "left: about 1.0 h with 2 at once (median finished run 30 min" in out
    assert sorted(work.rglob("*")) == before
