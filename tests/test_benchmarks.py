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

from benchmark.protocol import resolve_precision  # noqa: E402


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


def test_gpu_check_summarises_bench_train_records(tmp_path: Path) -> None:
    """The summary's ms per step and ratio come from bench_train's steps_per_s records."""
    import gpu_check

    records = [
        {"recipe": "l1", "loop": "fast", "steps_per_s": 40.0},
        {"recipe": "l1", "loop": "ref", "steps_per_s": 10.0},
        {"recipe": "s3net", "loop": "fast", "steps_per_s": 20.0},
        {"recipe": "s3net", "loop": "ref", "steps_per_s": 8.0},
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": {}, "records": records}))
    rows = gpu_check._bench_rows(path)
    assert rows == [
        {"recipe": "l1", "fast_ms": 25.0, "ref_ms": 100.0, "speedup": 4.0},
        {"recipe": "s3net", "fast_ms": 50.0, "ref_ms": 125.0, "speedup": 2.5},
    ]
    md = gpu_check._markdown({"device": "X", "torch": "t", "cuda": "c", "driver": "d",
                              "steps": [{"name": "a", "exit": 0, "seconds": 1.0}],
                              "bench_train": rows, "paper_2k": None})
    assert "| l1 | 25.0 | 100.0 | 4.00x |" in md


def test_equivalence_script_prints_the_verdict_rates(capsys: pytest.CaptureFixture) -> None:
    import equivalence as script

    assert script.main(["--reps", "200", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 3 | 1 |")]
    assert len(rows) == 1 and rows[0].startswith("| 3 | 1 | 0.542 |")
    at_margin = float(rows[0].split("|")[6].split("/")[0])  # shift 3 SD: the margin
    assert at_margin <= 0.1
    assert "Not used: TOST with the margin fixed at 3 x the reference's SD" in out


def test_reference_export_copies_only_finished_runs_text_files(tmp_path: Path) -> None:
    import reference

    work = tmp_path / "work"
    for recipe, status in (("l1", "ok"), ("mse", "failed")):
        folder = work / "runs" / recipe / "lite" / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"status": status}))
        for name in ("config.yaml", "per_image.csv", "train_log.csv", "checkpoint.pt", "best.pt"):
            (folder / name).write_text(name)
        (folder / "samples").mkdir()
        (folder / "samples" / "1.png").write_text("png")
    out = tmp_path / "ref"
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 0
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == [f"runs/l1/lite/seed0/{n}" for n in
                      ("config.yaml", "metrics.json", "per_image.csv", "train_log.csv")]
    assert "gt_mean_l1" in reference.RECIPES and "s3net" not in reference.RECIPES


def test_reference_export_never_mixes_two_protocols(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """Runs of an earlier lite in the destination: refused, or replaced with --replace."""
    import reference
    import yaml

    def run(root: Path, recipe: str, seed: int, lr: float) -> None:
        folder = root / "runs" / recipe / "lite" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"status": "ok"}))
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"protocol": {"lr": lr, "ckpt_every": 7 * seed}}))  # ckpt_every: operational

    work, out = tmp_path / "work", tmp_path / "ref"
    run(work, "l1", 0, 3e-4)
    run(out, "l1", 1, 3e-4)
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 0
    assert (out / "runs/l1/lite/seed1/config.yaml").is_file()  # same protocol: kept
    run(out, "mse", 2, 1e-3)
    capsys.readouterr()
    assert reference.main(["export", "--work", str(work), "--to", str(out)]) == 2
    assert "holds runs of another protocol" in capsys.readouterr().err
    assert (out / "runs/mse/lite/seed2/config.yaml").is_file()  # nothing touched
    assert reference.main(["export", "--work", str(work), "--to", str(out), "--replace"]) == 0
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == ["runs/l1/lite/seed0/config.yaml", "runs/l1/lite/seed0/metrics.json"]
