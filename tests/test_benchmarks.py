"""The benchmark scripts run end to end on a tiny budget and report what they claim to measure.

Timings are not asserted (a shared machine is too noisy); the structure of the figures, the
fast loop's precision and the ratio's definition are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_train  # noqa: E402

from benchmark import record  # noqa: E402
from benchmark.protocol import resolve_precision  # noqa: E402
from tests.test_results import make_run  # noqa: E402


@pytest.mark.slow
def test_bench_train_reports_both_loops_and_their_ratio(
    tmp_path: Path, planted_weights, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "figures.json"
    code = bench_train.main(["--profile", "smoke", "--recipes", "l1", "--steps", "1",
                             "--repeats", "1", "--warmup", "1", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    meta, records = report["meta"], report["records"]
    expected = resolve_precision(bench_train.PROFILES["smoke"], torch.device("cpu"))[0].precision
    assert meta["precision"] == expected
    assert [(r["recipe"], r["loop"]) for r in records] == [("l1", "fast"), ("l1", "ref")]
    fast, ref = records
    assert fast["ratio"] == pytest.approx(fast["steps_per_s"] / ref["steps_per_s"])
    for r in records:
        assert r["images_per_s"] == pytest.approx(r["steps_per_s"] * 4)  # smoke batch
        assert set(r["parts_ms"]) == set(bench_train.PARTS)
        assert 0.0 <= r["data_share"] < 1.0
    table = capsys.readouterr().out
    assert f"fast loop precision {expected}, channels_last; ref fp32, NCHW" in table
    assert "| smoke   | l1      | fast |" in table and "x |" in table


def test_calibration_script_prints_both_tables(capsys: pytest.CaptureFixture) -> None:
    import calibration as script

    assert script.main(["--reps", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("| run-dominated | 3 x 15 | 0.3 / 0.0 / 0.1 |") == 2  # null and power
    assert "new default: crossed seed x image (reject)" in out
    assert "True difference 0.3 dB" in out
    assert "<!-- calibration-improvement -->" in out and "| 5 | normal |" in out
    assert "| run-dominated | 3 x 15 |" in out.split("<!-- calibration-detectable -->")[1]


def test_tv_weight_reference_term_on_a_ramp() -> None:
    """On a horizontal ramp of slope a, leftthomas/SRGAN's TV is 2 a^2 per element and
    lossbench's mean-reduced v1 TV is (a^2)^1.25: the script's ratio must be 2 / sqrt(a)."""
    import tv_weight

    from benchmark.losses import build_loss

    a = 0.04
    x = (a * torch.arange(32.0)).expand(2, 3, 24, 32).contiguous()
    ref = tv_weight.reference_tv(x)
    assert ref.item() == pytest.approx(2 * a**2, rel=1e-5)
    mean = build_loss("tv", reduction="mean")(x, x)
    assert (ref / mean).item() == pytest.approx(2 / a**0.5, rel=1e-4)
    batches = list(tv_weight.crops([x[0].permute(1, 2, 0).numpy()], 16, 3, 2, seed=0))
    assert [tuple(b.shape) for b in batches] == [(3, 3, 16, 16)] * 2


def test_gpu_check_stops_at_once_without_cuda(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lossbench: error: gpu-check needs a CUDA device")
    assert not (tmp_path / "out").exists()


def test_gpu_check_quick_runs_three_steps_into_its_own_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """``--quick`` (the short second device run): the CUDA tests, the step benchmark of the
    QUICK_RECIPES and the l1 run pair, nothing else, into gpu_check_quick.json/.md; a full
    check's gpu_check.json in the same folder is left as it is. Steps are stubbed."""
    import gpu_check

    calls: list[tuple[str, list[str]]] = []

    def fake_step(name: str, cmd: list[str], timeout: int, env: dict | None = None) -> dict:
        calls.append((name, cmd))
        return {"name": name, "command": " ".join(cmd), "exit": 0, "seconds": 0.1,
                "limit_s": timeout, "tail": "1 passed in 0.1s"}

    monkeypatch.setattr(gpu_check, "step", fake_step)
    monkeypatch.setattr(gpu_check, "make_pairs", lambda root: root)
    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu_check.json").write_text('{"first": true}\n')
    code = gpu_check.main(["--quick", "--dry-run", "--out", str(out), "--work",
                           str(tmp_path / "work"), "--budget", "120"])
    assert code == 0
    assert [name for name, _ in calls] == [
        "pytest -m cuda", "bench_train lite + paper, eager and graphs", "l1 smoke run (eager)",
        "l1 smoke run (graphs)", "l1 smoke seeds 1,2,3,4 (sweep, --cuda-graphs)",
        "compare --reference --paired (CPU reference)"]
    sweep_cmd, compare_cmd = calls[4][1], calls[5][1]
    # the four seeds go into the eager run's folder, which compare then checks (five seeds)
    results = sweep_cmd[sweep_cmd.index("--results") + 1]
    assert results.endswith("run-eager") and compare_cmd[compare_cmd.index("--results") + 1] \
        == results
    assert "--cuda-graphs" in sweep_cmd and sweep_cmd[sweep_cmd.index("--device") + 1] == "cpu"
    assert Path(compare_cmd[compare_cmd.index("--reference") + 1]) == gpu_check.SYNTH_REFERENCE
    assert compare_cmd[-1] == "--paired"
    bench = calls[1][1]
    assert bench[bench.index("--recipes") + 1:bench.index("--graphs")] == \
        gpu_check.QUICK_RECIPES[:2]  # a dry run benchmarks two of them
    assert bench[bench.index("--json") + 1].endswith("bench_train_quick.json")
    summary = json.loads((out / "gpu_check_quick.json").read_text())
    assert summary["quick"] is True and len(summary["steps"]) == 6
    assert summary["reference_check"]["verdict"] is None  # the stub compare wrote no table
    assert "Quick check" in (out / "gpu_check_quick.md").read_text()
    assert (out / "gpu_check.json").read_text() == '{"first": true}\n'
    assert "wrote" in capsys.readouterr().out


def test_gpu_report_tables_and_targets_come_from_the_json() -> None:
    """Step times, TFLOP/s, the captured-or-not reason, the curve and the targets' verdicts
    are the JSON's numbers; a dry run never claims a target."""
    import gpu_report

    def rec(profile: str, recipe: str, loop: str, ms: float, **extra: object) -> dict:
        return {"profile": profile, "recipe": recipe, "loop": loop, "step_ms": ms,
                "tflop_per_s": 582.0 / ms, "peak_fraction": 582.0 / ms / 790, "peak_mib": 900.0,
                **extra}

    records = [rec("paper", "l1", "fast", 10.0),
               rec("paper", "l1", "graph", 2.5, captured=True, graph_note="captured at 4"),
               rec("paper", "srgan", "fast", 20.0),
               rec("paper", "srgan", "graph", 20.0, captured=False,
                   graph_note="CUDA graphs: not used, the step stays eager: the recipe trains a "
                   "discriminator (adv): its own optimiser")]
    summary = {"device": "GPU X", "steps": [{"name": "a", "exit": 0, "seconds": 1.0}],
               "pytest": {"counts": {"passed": 12}, "failed": [],
                          "figures": [{"test": "perceptual lol5", "cuda": 1.5e-5}]},
               "bench_train": {"meta": {"unet_train_gflop": {"paper": 582.0}}, "records": records},
               "throughput": [{"concurrency": 2, "aggregate_steps_per_s": 300.0,
                               "per_run_steps_per_s": 150.0, "speedup": 1.5}],
               "peak_tflops": 790.0}
    md = gpu_report.markdown(summary)
    assert "| paper | l1 | 10.00 | 2.50 | 4.00x | 58.2 | 232.8 | 29.5 | 900 |  |" in md
    assert "| paper | srgan | 20.00 | eager |" in md and "the recipe trains a discriminator |" in md
    assert "`pytest -m cuda`: 12 passed." in md and "perceptual lol5: cuda 1.50e-05" in md
    assert "| 2 | 300.0 | 150.0 | 1.50 |" in md
    assert "| paper-shape l1 step <= 3.5 ms | 2.50 ms | yes |" in md
    assert "| lite l1 step <= 1.5 ms | n/a ms | n/a |" in md
    check = {"reference": "results/reference/synth/lite", "verdict": "reproduced",
             "rows": [{"metric": "psnr", "n_ref": 5, "n_user": 5, "ref_mean": 24.1234,
                       "user_mean": 24.2, "diff": 0.0766, "ci_low": -0.1, "ci_high": 0.25,
                       "margin": 0.5, "verdict": "reproduced"}]}
    md = gpu_report.markdown({**summary, "reference_check": check})
    assert "(`compare --reference results/reference/synth/lite --paired`): **reproduced**." in md
    assert "| psnr | 24.12 (5) | 24.20 (5) | +0.08 [-0.10, 0.25] | 0.50 | reproduced |" in md
    refused = gpu_report.markdown({**summary, "reference_check": {
        "reference": "r", "verdict": None, "why": ["lossbench: error: profile differs"]}})
    assert "**not compared** (lossbench: error: profile differs)." in refused
    dry = gpu_report.markdown({**summary, "dry_run": True})
    assert "| paper-shape l1 step <= 3.5 ms | 2.50 ms | n/a |" in dry and "Dry run" in dry
    doc = f"intro\n{gpu_report.BEGIN}\nold\n{gpu_report.END}\nrest\n"
    assert gpu_report.replace_section(doc, "NEW\n") == (
        f"intro\n{gpu_report.BEGIN}\n\nNEW\n\n{gpu_report.END}\nrest\n")
    with pytest.raises(ValueError, match="section markers"):
        gpu_report.replace_section("no markers", "x")


def test_gpu_check_budget_and_pytest_summary() -> None:
    import gpu_check

    budget = gpu_check.Budget(100.0)
    assert budget.limit(30) == 30 and 85 <= budget.limit(500) <= 90
    assert gpu_check.Budget(-5).limit(30) == 1  # spent: the step is then skipped
    skipped = gpu_check.step("x", ["false"], 1)
    assert skipped["exit"] == "skipped"
    tail = ("FAILED tests/test_a.py::test_b[x] - AssertionError: boom\n"
            "=== 1 failed, 9 passed, 3 skipped, 700 deselected in 12.3s ===")
    assert gpu_check.pytest_summary(tail) == {
        "counts": {"failed": 1, "passed": 9, "skipped": 3, "deselected": 700},
        "failed": ["tests/test_a.py::test_b[x]"]}
    assert gpu_check.backbone_free(["l1", "s3net", "srgan", "flw"]) == ["l1", "flw"]


def test_gpu_check_makes_pairs_large_enough_for_the_paper_shapes(tmp_path: Path) -> None:
    import gpu_check

    from benchmark.data import pairs as data_mod

    root = gpu_check.make_pairs(tmp_path / "big", n_train=2, n_test=1, size=(260, 300))
    dataset = data_mod.discover(root)
    low, high = data_mod.load_pairs(dataset.train)
    assert len(dataset.train) == 2 and len(dataset.test) == 1
    assert low[0].shape == (260, 300, 3) and float(low[0].mean()) < float(high[0].mean())


def test_equivalence_script_prints_the_verdict_rates(capsys: pytest.CaptureFixture) -> None:
    import equivalence as script

    assert script.main(["--reps", "60", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 3 | 3 | 0.1 |")]
    assert len(rows) == 1 and rows[0].startswith("| 3 | 3 | 0.1 | 0.999 |")  # the formula
    assert float(rows[0].split("|")[6]) <= 0.2  # "reproduced" at the margin
    # the reference's run SDs, recomputed here from its files with the standard library
    import re
    import statistics

    root = Path(__file__).resolve().parents[1] / "results" / "reference" / "LOL-v1" / "lite"
    psnr: dict[str, list[float]] = {}
    for f in sorted(root.glob("runs/*/lite/seed*/metrics.json")):
        data = json.loads(f.read_text())
        if data.get("outcome") != "collapsed":
            psnr.setdefault(data["recipe"], []).append(data["test"]["psnr"])
    sds = sorted(statistics.stdev(v) for v in psnr.values())
    row = next(line for line in out.splitlines() if line.startswith("| psnr |"))
    low, med, high = (float(x) for x in row.split("|")[2].split("/"))
    assert low == pytest.approx(sds[0], abs=5e-4) and high == pytest.approx(sds[-1], abs=5e-4)
    assert med == pytest.approx(statistics.median(sds), abs=5e-4)  # printed to 3 digits
    # every pair of different recipes called "reproduced" has PSNR means within the margin
    said = re.search(r"(\d+) would be called \"reproduced\"[^:.]*:? ?([^\n]*)", out)
    pairs = [p.split(" as ") for p in said.group(2).rstrip(".").split(", ") if " as " in p]
    assert int(said.group(1)) == len(pairs)
    for a, b in pairs:
        assert abs(statistics.mean(psnr[a]) - statistics.mean(psnr[b])) < 0.5


def test_reference_export_copies_only_finished_runs_text_files(tmp_path: Path) -> None:
    import reference

    work = tmp_path / "work"
    for recipe, status in (("l1", "ok"), ("mse", "failed")):
        folder = make_run(work, recipe, 0, profile="lite", status=status)  # with samples/
        for name in (record.CHECKPOINT_FILE, record.BEST_FILE):
            (folder / name).write_bytes(b"weights")
    out = tmp_path / "ref"
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 0
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == [f"runs/l1/lite/seed0/{n}" for n in
                      ("config.yaml", "metrics.json", "per_image.csv", "train_log.csv",
                       "val_log.csv")]
    assert "gt_mean_l1" in reference.RECIPES and "s3net" not in reference.RECIPES


def test_reference_export_never_mixes_two_protocols(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """Runs of an earlier lite in the destination: refused, or replaced with --replace."""
    import reference

    def run(root: Path, recipe: str, seed: int, lr: float, version: int = 2) -> None:
        make_run(root, recipe, seed, profile="lite", extra_files=False, per_image=False,
                 protocol={"lr": lr, "ckpt_every": 7 * seed + 1,  # ckpt_every: operational
                           "version": version})

    work, out = tmp_path / "work", tmp_path / "ref"
    run(work, "l1", 0, 3e-4)
    run(out, "l1", 1, 3e-4)
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 0
    assert (out / "runs/l1/lite/seed1/config.yaml").is_file()  # same protocol: kept
    run(out, "mse", 2, 1e-3, version=1)
    run(out, "mse", 3, 1e-3, version=1)
    capsys.readouterr()
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 2
    assert "holds runs of another protocol" in capsys.readouterr().err
    assert (out / "runs/mse/lite/seed2/config.yaml").is_file()  # nothing touched
    # a folder of the old version's name already in the way: refused, nothing moved
    blocker = tmp_path / "ref-v1" / "runs"
    blocker.mkdir(parents=True)
    assert reference.main(["export", "--work", str(work), "--to", str(out), "--replace"]) == 2
    assert "ref-v1/runs exists already" in capsys.readouterr().err
    assert (out / "runs/mse/lite/seed2/config.yaml").is_file()
    blocker.rmdir()
    assert reference.main(["export", "--work", str(work), "--to", str(out), "--replace"]) == 0
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("config.yaml"))
    # the new protocol's runs: the exported one and the one that was there already
    assert copied == ["runs/l1/lite/seed0/config.yaml", "runs/l1/lite/seed1/config.yaml"]
    assert not (out / "runs/mse").exists()  # no empty folders left behind
    # the old protocol's runs are kept beside, under their protocol version, not deleted
    kept = sorted(p.relative_to(tmp_path / "ref-v1").as_posix()
                  for p in (tmp_path / "ref-v1").rglob("*") if p.is_file())
    assert kept == ["runs/mse/lite/seed2/config.yaml", "runs/mse/lite/seed2/metrics.json",
                    "runs/mse/lite/seed3/config.yaml", "runs/mse/lite/seed3/metrics.json"]
