"""benchmark.data.synth: the embedded default data (determinism, scenes, low-light model, CLI)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import synth
from benchmark.data.pairs import discover, read_image
from benchmark.errors import UserError


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def timed_generate(out: Path, seed: int = 0) -> Path:
    start = time.perf_counter()
    root = synth.generate(out, seed=seed)
    seconds = time.perf_counter() - start
    print(f"\n{root}: generated in {seconds:.2f} s (shared CPU cores: timings are noisy)")
    assert seconds < 30
    return root


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """The full default dataset, seed 0."""
    return timed_generate(tmp_path_factory.mktemp("full") / "synth")


@pytest.fixture
def small(monkeypatch):
    """A cut-down generator (1 train photo, 1 crop per scale, 1 test view) for the logic tests."""
    monkeypatch.setattr(synth, "TRAIN_PHOTOS", {"coffee": synth.TRAIN_PHOTOS["coffee"]})
    monkeypatch.setattr(synth, "CROPS_PER_SCALE", 1)
    monkeypatch.setattr(synth, "TEST_VIEWS", {"chelsea_face": synth.TEST_VIEWS["chelsea_face"]})


def check_identical(a: Path, b: Path) -> None:
    files_a, files_b = files_of(a), files_of(b)
    assert files_a == files_b  # byte-identical, manifest.json included
    manifest = json.loads(files_a.pop("manifest.json"))
    assert manifest["generator"] == "lossbench.synth" and manifest["params"]["seed"] == 0
    assert manifest["files"] == {k: hashlib.sha256(v).hexdigest() for k, v in files_a.items()}
    assert synth.read_manifest(a) == manifest


def test_small_generation_is_byte_identical(small, tmp_path: Path) -> None:
    check_identical(timed_generate(tmp_path / "a"), timed_generate(tmp_path / "b"))


@pytest.mark.slow
def test_full_generation_is_byte_identical(full, tmp_path: Path) -> None:
    check_identical(full, timed_generate(tmp_path / "again"))


def test_layout_sizes_and_references(full) -> None:
    root = full
    ds = discover(root)
    assert ds.layout == "lol_v1"
    assert (len(ds.train), len(ds.test)) == (60, 4)
    manifest = synth.read_manifest(root)
    assert sorted(p["name"] for p in manifest["pairs"] if p["split"] == "test") == sorted(
        p.name for p in ds.test
    )
    test_pixels = sum(read_image(p.high).shape[0] * read_image(p.high).shape[1] for p in ds.test)
    assert test_pixels < 400_000  # full-resolution CPU evaluation stays cheap
    # a full-scale training reference is the untouched photo region
    entry = next(p for p in manifest["pairs"] if p["split"] == "train" and p["scale"] == 1.0)
    y, x, h, w = entry["box_yxhw"]
    photo = synth._read_photo(synth.TRAIN_PHOTOS[entry["scene"]])
    high = read_image(root / "our485" / "high" / f"{entry['name']}.png")
    np.testing.assert_array_equal(high, photo[y : y + h, x : x + w])


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.round(img * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def test_train_and_test_scenes_are_disjoint(full) -> None:
    root = full
    manifest = synth.read_manifest(root)
    scenes = {
        s: {p["scene"] for p in manifest["pairs"] if p["split"] == s} for s in ("train", "test")
    }
    assert scenes["train"] == set(synth.TRAIN_PHOTOS) and scenes["test"] == set(synth.TEST_PHOTOS)
    assert scenes["train"].isdisjoint(scenes["test"])
    # independent check on pixels: a full-scale test view is found (normalised cross-correlation
    # ~1) in its own photo and nowhere in the training photos, and vice versa
    photos = {
        k: _gray(synth._read_photo(v))
        for k, v in {**synth.TRAIN_PHOTOS, **synth.TEST_PHOTOS}.items()
    }
    full_scale = [("eval15", n) for n, v in synth.TEST_VIEWS.items() if v[1] is None]
    full_scale += [("our485", f"{s}_00") for s in synth.TRAIN_PHOTOS]
    for folder, name in full_scale:
        own = next(p["scene"] for p in manifest["pairs"] if p["name"] == name)
        template = _gray(read_image(root / folder / "high" / f"{name}.png"))
        other = synth.TEST_PHOTOS if folder == "our485" else synth.TRAIN_PHOTOS
        score = {
            k: cv2.matchTemplate(photos[k], template, cv2.TM_CCOEFF_NORMED).max()
            for k in [own, *other]
        }
        assert score[own] > 0.999, (name, score)
        assert max(score[k] for k in other) < 0.6, (name, score)


def _linear(path: Path) -> np.ndarray:
    x = read_image(path).astype(np.float64)  # sRGB -> linear, written from IEC 61966-2-1
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_low_images_follow_the_documented_model(full) -> None:
    root = full
    manifest = synth.read_manifest(root)
    ratios, noise = [], []
    for p in manifest["pairs"]:
        folder = "our485" if p["split"] == "train" else "eval15"
        lo, hi = (_linear(root / folder / side / f"{p['name']}.png") for side in ("low", "high"))
        lo_e, hi_e = float(np.log(synth.EXPOSURE[0])), float(np.log(synth.EXPOSURE[1]))
        assert lo_e <= np.log(p["exposure"]) <= hi_e
        assert all(synth.CAST[0] <= g <= synth.CAST[1] for g in p["cast"])
        signal = hi * p["exposure"] * np.array(p["cast"])  # expected sensor value
        ratios.append(lo.reshape(-1, 3).mean(0) / signal.reshape(-1, 3).mean(0))
        # Poisson-Gaussian variance + 8-bit sRGB quantisation, both in linear light
        fw, rn = p["full_well"], p["read_noise"]
        s = np.clip(signal, 0, 1)
        enc = np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)
        slope = np.where(enc <= 0.04045, 1 / 12.92, 2.4 / 1.055 * ((enc + 0.055) / 1.055) ** 1.4)
        expected = s / fw + (rn / fw) ** 2 + (slope / 255) ** 2 / 12
        mask = (s > 0.004) & (s < 0.5)  # away from clipping at 0 and 1
        noise.append(((lo - s) ** 2)[mask].mean() / expected[mask].mean())
    ratios = np.array(ratios)
    # mean brightness follows exposure x cast (clipping of read noise at 0 biases dark images up)
    assert ratios.min() > 0.97 and ratios.max() < 1.3 and 0.97 < np.median(ratios) < 1.05
    assert min(noise) > 0.9 and max(noise) < 1.1, noise


def test_seed_changes_crops_and_noise() -> None:
    names = [v[1] for v in synth._views(0)]
    assert names == [v[1] for v in synth._views(1)]
    crops0 = [v[4]["box_yxhw"] for v in synth._views(0)]
    assert crops0 != [v[4]["box_yxhw"] for v in synth._views(1)]
    high = np.full((32, 32, 3), 128, np.uint8)
    a, pa = synth.degrade(high, np.random.default_rng([0, 1, 0]))
    b, pb = synth.degrade(high, np.random.default_rng([1, 1, 0]))
    assert not np.array_equal(a, b) and pa != pb


def test_ensure_default_reuses_and_regenerates(small, tmp_path: Path) -> None:
    root = synth.ensure_default(tmp_path / "synth")
    assert root == tmp_path / "synth"
    first = files_of(root)
    assert len([k for k in first if k.startswith("our485/low/")]) == 2
    low = root / "our485" / "low" / "coffee_00.png"
    mtime = low.stat().st_mtime_ns
    assert synth.ensure_default(root) == root and low.stat().st_mtime_ns == mtime  # reused
    low.write_bytes(first["eval15/high/chelsea_face.png"])  # edited file -> regenerated
    synth.ensure_default(root)
    assert files_of(root) == first
    (root / "our485" / "high" / "stray.png").write_bytes(first["our485/high/coffee_00.png"])
    synth.ensure_default(root)  # an extra image would change the dataset -> regenerated
    assert files_of(root) == first
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["params"]["exposure"] = [0.5, 1.0]  # stale parameters -> regenerated
    (root / "manifest.json").write_text(json.dumps(manifest))
    synth.ensure_default(root)
    assert files_of(root) == first
    assert not [p for p in tmp_path.iterdir() if p.name != "synth"]  # no temporary folders left


def test_refuses_to_overwrite_a_folder_it_did_not_make(small, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(
        UserError, match=r"--out .*mine is not empty and is not a synthetic dataset"
    ):
        synth.generate(mine)
    with pytest.raises(UserError, match="refusing to overwrite"):
        synth.ensure_default(mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    made = synth.generate(tmp_path / "made")
    (made / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"also holds notes\.txt, which the generator did not make"):
        synth.generate(made)
    (tmp_path / "empty").mkdir()
    assert discover(synth.generate(tmp_path / "empty")).layout == "lol_v1"


def test_cli_data_synth(small, tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    assert main(["data", "synth", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"synthetic dataset {out} (generated in " in text
    assert "layout lol_v1, 2 train / 1 test pairs" in text and "not comparable with LOL" in text
    assert main(["data", "synth", "--out", str(out)]) == 0
    assert "(up to date, reused)" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--force"]) == 0
    assert "(generated in " in capsys.readouterr().out
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    assert main(["data", "synth", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lossbench: error: --out {tmp_path / 'other'} is not empty")
    assert "Traceback" not in err
