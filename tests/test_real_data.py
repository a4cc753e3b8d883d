"""Datasets by name, runs without pretrained weights, and a smoke run on real LOL-v1 pixels.

The real-pixel test reads a LOL-v1 subset from ``$LOSSBENCH_REAL_DATA`` (CI points it at its copy
of a 24 + 15 pair subset of the official files); without the variable it is skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import cv2
import pytest

from benchmark.cli import main
from benchmark.data import known, synth
from benchmark.data.imagefiles import file_sha256
from benchmark.data.pairs import discover

REAL = os.environ.get("LOSSBENCH_REAL_DATA")
SMOKE_RUN = ["--profile", "smoke", "--device", "cpu"]


def _official_lists(root: Path) -> dict[str, dict[str, set[str]]]:
    """A stand-in known list made from the files of ``root`` (as if it were the official set)."""
    ds = discover(root)
    return {"LOL-v1": {
        side: {file_sha256(p) for pair in pairs for p in (pair.low, pair.high)}
        for side, pairs in (("train", ds.train), ("test", ds.test))
    }}


def _copy_as_lol(src: Path, dst: Path) -> Path:
    for split in ("our485", "eval15"):
        shutil.copytree(src / split, dst / split)
    return dst


def test_the_shipped_lol_v1_list_is_the_official_one() -> None:
    lists = known.known_lists()
    assert set(lists) == {"LOL-v1"}
    # 485 training + 15 test pairs, two files each; every digest a sha256
    assert len(lists["LOL-v1"]["train"]) <= 970 and len(lists["LOL-v1"]["test"]) == 30
    assert known.known_pairs() == {"LOL-v1": {"train": 485, "test": 15}}
    text = (known.KNOWN_DIR / "LOL-v1.sha256").read_text().splitlines()
    assert len(text) == 1000
    assert all(len(line.split()[0]) == 64 for line in text)
    # one official file, recomputed independently: eval15/high/1.png
    assert text[0].split() == [
        "e47ae1d4a84c19cabdc1092a4bab1f8c99f7909e9783ba2930580d7f2cf7a856", "eval15/high/1.png"]


def test_identify_official_subset_unknown_and_synthetic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = synth.ensure_default()
    assert known.identify(discover(root)).name == "synthetic"
    copy = _copy_as_lol(root, tmp_path / "copy")
    assert known.identify(discover(copy)).status == "unknown"  # same pixels, not the default
    lists = _official_lists(copy)
    monkeypatch.setattr(known, "known_lists", lambda: lists)
    ident = known.identify(discover(copy))
    assert (ident.name, ident.status) == ("LOL-v1", "official")
    # renamed files: still recognised (content, not names)
    first = sorted((copy / "eval15" / "low").iterdir())[0]
    for side in ("low", "high"):
        (copy / "eval15" / side / first.name).rename(copy / "eval15" / side / ("x" + first.name))
    assert known.identify(discover(copy)).name == "LOL-v1"
    # one pair fewer: a subset, named as such
    for side in ("low", "high"):
        (copy / "eval15" / side / ("x" + first.name)).unlink()
    ident = known.identify(discover(copy))
    assert (ident.name, ident.status) == (None, "subset")
    assert "a subset of LOL-v1, not the official set" in ident.note
    # one edited file: unknown
    victim = sorted((copy / "our485" / "high").iterdir())[0]
    pixels = cv2.imread(str(victim), cv2.IMREAD_UNCHANGED)
    pixels[0, 0, 0] ^= 1
    assert cv2.imwrite(str(victim), pixels)
    assert known.identify(discover(copy)).status == "unknown"


def test_metrics_without_lpips_need_no_pretrained_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """No TORCH_HOME weights at all: a backbone-free recipe runs with --metrics psnr,ssim, LPIPS
    is null in metrics.json and empty in per_image.csv, and the hash differs from the default."""
    from benchmark import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv(weights.ALLOW_ENV, raising=False)
    weights.clear_cache()
    results = tmp_path / "results"
    code = main(["run", "l1", *SMOKE_RUN, "--results", str(results), "--metrics", "psnr,ssim"])
    assert code == 0
    folder = results / "runs" / "l1" / "smoke" / "seed0"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["metrics"] == ["psnr", "ssim"]
    assert metrics["test"]["lpips"] is None
    assert math.isfinite(metrics["test"]["psnr"]) and math.isfinite(metrics["test"]["ssim"])
    assert metrics["dataset"]["name"] == "synthetic"
    assert metrics["weights"] == {}
    header, *rows = (folder / "per_image.csv").read_text().splitlines()
    lpips_col = header.split(",").index("lpips")
    assert all(row.split(",")[lpips_col] == "" for row in rows)
    out = capsys.readouterr().out
    assert "not computed" in out
    # the default metrics need AlexNet: refused up front, naming the file
    code = main(["run", "l1", *SMOKE_RUN, "--results", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert code == 2 and "alexnet" in err.lower()
    assert not (tmp_path / "r2" / "runs").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("psnr,ssim,fid", r"--metrics: unknown metric 'fid'"),
    ("psnr,lpips", r"psnr and ssim are always computed"),
    ("pnsr,ssim", r"unknown metric 'pnsr'; did you mean 'psnr'"),
])
def test_bad_metrics_argument(value: str, message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "l1", "--metrics", value])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.skipif(not REAL, reason="set LOSSBENCH_REAL_DATA to a LOL-v1 folder (CI does)")
def test_smoke_run_on_real_lol_v1_pixels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = Path(REAL)
    ds = discover(root)
    assert ds.layout == "lol_v1"
    assert len(ds.test) == 15 and len(ds.train) >= 2
    assert all(p.low.name == p.high.name for p in ds.train + ds.test)
    ident = known.identify(ds)
    official = len(ds.train) == 485
    assert ident.status == ("official" if official else "subset")
    results = tmp_path / "results"
    code = main(["run", "l1", *SMOKE_RUN, "--data", str(root), "--results", str(results),
                 "--metrics", "psnr,ssim"])
    out = capsys.readouterr().out
    assert code == 0
    assert ("the official LOL-v1" if official else "a subset of LOL-v1, not the official") in out
    if not official:
        assert f"{len(ds.train)} training pairs (official 485) and 15 test pairs" in out
    metrics = json.loads((results / "runs/l1/smoke/seed0/metrics.json").read_text())
    assert metrics["dataset"]["name"] == ("LOL-v1" if official else None)
    assert metrics["dataset"]["identity"] == ident.status
    assert metrics["dataset"]["n_test"] == 15
    for key in ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean"):
        assert math.isfinite(metrics["test"][key]), key
    assert 5.0 < metrics["test"]["psnr"] < 40.0
