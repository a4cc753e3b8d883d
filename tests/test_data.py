"""benchmark.data.pairs: layout detection, pairing, validation messages, image reading, splits."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch

from benchmark.cli import main
from benchmark.data import pairs as data
from benchmark.data.pairs import (
    Pair,
    default_dataset_dir,
    discover,
    load_pairs,
    manifest_hash,
    read_image,
    split_train_val,
)
from benchmark.errors import UserError

PHOTO = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))  # BGR


def photo(h: int = 24, w: int = 32, offset: int = 0) -> np.ndarray:
    """A small crop of a real photograph (BGR uint8), different for each offset."""
    y, x = 100 + 7 * offset % 300, 150 + 11 * offset % 300
    return np.ascontiguousarray(PHOTO[y : y + h, x : x + w])


def write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


FOLDERS = {
    "lol_v1": (("our485", "low", "high"), ("eval15", "low", "high")),
    "lol_v2": (("Train", "Low", "Normal"), ("Test", "Low", "Normal")),
    "retinexformer": (("Train", "input", "target"), ("Test", "input", "target")),
}


def make(root: Path, layout: str = "lol_v1", train=("1", "2", "3", "4", "10"), test=("5",)) -> Path:
    """A tiny valid dataset of real image crops in the given layout."""
    for (top, low, high), names in zip(FOLDERS[layout], (train, test), strict=True):
        for i, name in enumerate(names):
            write(root / top / low / f"{name}.png", photo(offset=i) // 8)
            write(root / top / high / f"{name}.png", photo(offset=i))
    return root


def problems_of(root: Path) -> str:
    with pytest.raises(UserError) as info:
        discover(root)
    return str(info.value)


@pytest.mark.parametrize("layout", sorted(FOLDERS))
def test_each_layout_is_detected_and_paired(tmp_path: Path, layout: str) -> None:
    ds = discover(make(tmp_path, layout))
    assert ds.layout == layout
    assert ds.root == tmp_path.resolve()
    assert [p.name for p in ds.train] == ["1", "2", "3", "4", "10"]  # natural order
    assert [p.name for p in ds.test] == ["5"]
    (top, low, high), _ = FOLDERS[layout]
    assert ds.train[4] == Pair(
        "10", tmp_path / top / low / "10.png", tmp_path / top / high / "10.png"
    )


def test_folder_names_are_case_insensitive(tmp_path: Path) -> None:
    make(tmp_path / "x", "lol_v1")
    for old, new in (("our485", "OUR485"), ("eval15/high", "eval15/High")):
        (tmp_path / "x" / old).rename(tmp_path / "x" / new)
    ds = discover(tmp_path / "x")
    assert ds.layout == "lol_v1"
    assert ds.test[0].high == tmp_path / "x" / "eval15" / "High" / "5.png"


def test_lol_v2_prefixes_are_ignored_when_pairing(tmp_path: Path) -> None:
    for i, (low, high) in enumerate(
        [("low00001", "normal00001"), ("Low00002", "Normal00002"), ("r000da54ft", "r000da54ft")]
    ):
        write(tmp_path / "Train" / "Low" / f"{low}.png", photo(offset=i) // 8)
        write(tmp_path / "Train" / "Normal" / f"{high}.png", photo(offset=i))
    # "lowland" has no digit after the prefix: it is a plain name and must match as is
    write(tmp_path / "Test" / "Low" / "lowland.png", photo() // 8)
    write(tmp_path / "Test" / "Normal" / "lowland.png", photo())
    ds = discover(tmp_path)
    assert ds.layout == "lol_v2"
    assert [p.name for p in ds.train] == ["00001", "00002", "r000da54ft"]
    assert ds.train[0].low.name == "low00001.png"
    assert ds.train[0].high.name == "normal00001.png"
    assert [p.name for p in ds.test] == ["lowland"]


def test_lol_v2_release_root_names_both_subsets(tmp_path: Path) -> None:
    make(tmp_path / "Real_captured", "lol_v2")
    make(tmp_path / "Synthetic", "lol_v2")
    msg = problems_of(tmp_path)
    assert "looks like the LOL-v2 release, which holds 2 dataset(s)" in msg
    assert f"point --data at one of {tmp_path / 'Real_captured'}, {tmp_path / 'Synthetic'}" in msg
    assert discover(tmp_path / "Synthetic").layout == "lol_v2"


def test_unknown_layout_says_what_was_looked_for(tmp_path: Path) -> None:
    write(tmp_path / "images" / "a.png", photo())
    msg = problems_of(tmp_path)
    assert f"dataset {tmp_path.resolve()}: unknown layout" in msg
    for looked_for in (
        "lol_v1 (our485/{low,high} + eval15/{low,high})",
        "lol_v2 (Train|Test/{Low,Normal}",
        "retinexformer (Train|Test/{input,target})",
    ):
        assert looked_for in msg
    assert "found folders: images/" in msg


def test_missing_or_non_folder_root(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset folder .*nope does not exist"):
        discover(tmp_path / "nope")
    write(tmp_path / "f.png", photo())
    with pytest.raises(UserError, match=r"dataset path .*f\.png is not a folder"):
        discover(tmp_path / "f.png")


def _truncate(path: Path) -> None:
    data_ = path.read_bytes()
    path.write_bytes(data_[: len(data_) // 2])


# each case: (how to break a valid lol_v1 dataset, the exact problem line expected)
BREAKS = {
    "missing folder": (
        lambda r: shutil.rmtree(r / "eval15" / "high"),
        "  - missing folder: eval15/high/ is missing",
    ),
    "missing partner": (
        lambda r: (r / "our485" / "high" / "2.png").unlink(),
        "  - missing partner: our485/low/2.png has no partner in our485/high/",
    ),
    "orphan high": (
        lambda r: write(r / "our485" / "high" / "7.png", photo()),
        "  - missing partner: our485/high/7.png has no partner in our485/low/",
    ),
    "size mismatch": (
        lambda r: write(r / "our485" / "high" / "1.png", photo(24, 30)),
        "  - size mismatch: our485/low/1.png is 32x24 but our485/high/1.png is 30x24",
    ),
    "channel mismatch": (
        lambda r: write(r / "our485" / "low" / "3.png", cv2.cvtColor(photo(), cv2.COLOR_BGR2BGRA)),
        "  - channel mismatch: our485/low/3.png has 4 channels (RGBA) but our485/high/3.png "
        "has 3 (RGB)",
    ),
    "truncated png": (
        lambda r: _truncate(r / "our485" / "low" / "10.png"),
        "  - unreadable: our485/low/10.png: truncated PNG (no IEND chunk)",
    ),
    "truncated jpeg": (
        lambda r: (
            (r / "eval15" / "low" / "5.png").unlink(),
            write(r / "eval15" / "low" / "5.jpg", photo()),
            _truncate(r / "eval15" / "low" / "5.jpg"),
        ),
        "  - unreadable: eval15/low/5.jpg: truncated JPEG (no EOI)",
    ),
    "not an image": (
        lambda r: (r / "our485" / "high" / "2.png").write_bytes(b"<html>404</html>"),
        "  - unreadable: our485/high/2.png: not a PNG, JPEG, BMP or TIFF image",
    ),
    "grayscale": (
        lambda r: write(
            r / "our485" / "high" / "10.png", cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY)
        ),
        "  - grayscale: our485/high/10.png is grayscale (L) in an RGB split",
    ),
    "empty split": (
        lambda r: [p.unlink() for p in (r / "eval15" / "low").iterdir()],
        "  - empty split: test split: eval15/low/ has 0 image(s) and eval15/high/ has 1; "
        "both need images",
    ),
    "duplicate": (
        lambda r: write(r / "our485" / "low" / "4.jpg", photo()),
        "  - duplicate name: our485/low/4.jpg and our485/low/4.png both pair as '4'",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_problem_is_reported_with_file_names(tmp_path: Path, case: str) -> None:
    root = make(tmp_path)
    discover(root)  # valid before breaking it
    brk, line = BREAKS[case]
    brk(root)
    msg = problems_of(root)
    assert msg.startswith(f"dataset {root.resolve()} (layout lol_v1) has 1 problem(s):\n"), msg
    assert line in msg.splitlines(), msg


def test_corrupt_png_bytes_are_caught_by_crc(tmp_path: Path) -> None:
    root = make(tmp_path)
    path = root / "our485" / "low" / "1.png"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the IDAT data: same length, bad CRC
    path.write_bytes(bytes(raw))
    assert "  - unreadable: our485/low/1.png: corrupt PNG (bad CRC in chunk 'IDAT')" in (
        problems_of(root).splitlines()
    )


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    root = make(tmp_path)
    cases = (
        "missing folder",
        "missing partner",
        "size mismatch",
        "channel mismatch",
        "truncated png",
        "grayscale",
        "duplicate",
    )
    for case in cases:
        BREAKS[case][0](root)
    lines = problems_of(root).splitlines()
    assert lines[0] == f"dataset {root.resolve()} (layout lol_v1) has {len(cases)} problem(s):"
    for case in cases:
        assert BREAKS[case][1] in lines
    assert lines[-1] == "Fix or remove these files and run again."


def test_long_lists_are_capped_but_counted(tmp_path: Path) -> None:
    root = make(tmp_path)
    for i in range(20):
        write(root / "our485" / "low" / f"x{i}.png", photo())
    msg = problems_of(root)
    assert "has 20 problem(s)" in msg
    assert msg.count("  - missing partner: ") == 12
    assert "  - ... and 8 more missing partner problem(s)" in msg


def test_cli_run_with_broken_dataset_exits_2_without_traceback(tmp_path, capsys) -> None:
    if importlib.util.find_spec("benchmark.run.execute") is None:
        pytest.skip("benchmark.run.execute is not written yet")
    root = make(tmp_path / "lol")
    (root / "our485" / "high" / "2.png").unlink()
    code = main(
        [
            "run",
            "l1",
            "--data",
            str(root),
            "--profile",
            "smoke",
            "--results",
            str(tmp_path / "results"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "our485/low/2.png has no partner in our485/high/" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing written for a refused run


# ---------------------------------------------------------------- read_image


def test_read_8bit_png_exact_and_rgb_order(tmp_path: Path) -> None:
    bgr = photo()
    img = read_image(write(tmp_path / "a.png", bgr))
    assert img.dtype == np.float32 and img.shape == (24, 32, 3) and img.flags.c_contiguous
    np.testing.assert_array_equal(img, bgr[:, :, ::-1].astype(np.float32) / 255)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 2] = 255  # BGR red
    np.testing.assert_array_equal(read_image(write(tmp_path / "r.png", red))[0, 0], [1, 0, 0])


def test_read_16bit_png_keeps_16_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bgr16 = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    img = read_image(write(tmp_path / "a16.png", bgr16))
    expected = bgr16[:, :, ::-1].astype(np.float64) / 65535
    np.testing.assert_allclose(img, expected, rtol=0, atol=1e-7)  # float32 rounding only
    # an 8-bit read would leave only multiples of 1/255
    assert np.abs(img * 255 - np.round(img * 255)).max() > 0.4
    assert len(np.unique(img)) > 256


@pytest.mark.parametrize(
    ("suffix", "mean_tol", "max_tol"), [(".bmp", 0, 0), (".tif", 0, 0), (".jpg", 0.02, 0.25)]
)
def test_read_other_formats(tmp_path: Path, suffix: str, mean_tol: float, max_tol: float) -> None:
    bgr = photo(48, 64)
    img = read_image(write(tmp_path / f"a{suffix}", bgr))  # JPEG: OpenCV default quality 95
    err = np.abs(img - bgr[:, :, ::-1].astype(np.float32) / 255)
    assert img.shape == (48, 64, 3)
    assert err.mean() <= mean_tol and err.max() <= max_tol


def test_read_rgba_drops_alpha(tmp_path: Path) -> None:
    bgra = cv2.cvtColor(photo(), cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 7
    img = read_image(write(tmp_path / "a.png", bgra))
    np.testing.assert_array_equal(img, photo()[:, :, ::-1].astype(np.float32) / 255)


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    png = write(tmp_path / "t.png", photo())
    _truncate(png)
    with pytest.raises(UserError, match=rf"image {png}: truncated PNG \(no IEND chunk\)"):
        read_image(png)
    jpg = write(tmp_path / "t.jpg", photo())
    _truncate(jpg)  # OpenCV alone would decode this silently as a grey-filled image
    with pytest.raises(UserError, match=rf"image {jpg}: truncated JPEG \(no EOI\)"):
        read_image(jpg)
    gray = write(tmp_path / "g.png", cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY))
    with pytest.raises(UserError, match=rf"image {gray} is grayscale; lossbench needs RGB"):
        read_image(gray)
    with pytest.raises(UserError, match=r"image .*missing\.png cannot be read \(No such file"):
        read_image(tmp_path / "missing.png")


# ---------------------------------------------------------------- loading, splits, hashes


def test_load_pairs_in_order(tmp_path: Path) -> None:
    ds = discover(make(tmp_path))
    low, high = load_pairs(ds.train)
    assert len(low) == len(high) == 5
    for pair, lo, hi in zip(ds.train, low, high, strict=True):
        np.testing.assert_array_equal(lo, read_image(pair.low))
        np.testing.assert_array_equal(hi, read_image(pair.high))
        assert lo.mean() < hi.mean() / 4


def test_load_pairs_rechecks_sizes(tmp_path: Path) -> None:
    ds = discover(make(tmp_path))
    write(ds.train[0].high, photo(10, 12))  # changed after discovery
    with pytest.raises(UserError, match=r"pair '1': .*1\.png is 32x24 but .*1\.png is 12x10"):
        load_pairs(ds.train)


def _pairs(n: int) -> list[Pair]:
    return [Pair(f"{i:05d}", Path(f"l/{i}.png"), Path(f"h/{i}.png")) for i in range(n)]


def test_split_train_val_is_fixed_by_names() -> None:
    pairs = _pairs(40)
    train, val = split_train_val(pairs, 5)
    assert len(val) == 5 and len(train) == 35
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(pairs)
    # independent recomputation from the documented rule
    ranked = sorted(
        pairs, key=lambda p: hashlib.sha256(f"lossbench-val:{p.name}".encode()).digest()
    )
    assert set(val) == set(ranked[:5])
    # independent of the order given; input order kept in the outputs
    train_r, val_r = split_train_val(pairs[::-1], 5)
    assert set(val_r) == set(val) and list(val_r) == list(val)[::-1]
    assert list(train) == [p for p in pairs if p not in val]
    assert split_train_val(pairs, 0) == (tuple(pairs), ())


def test_split_train_val_rejects_bad_sizes() -> None:
    with pytest.raises(UserError, match=r"training split has 3 pair\(s\): cannot hold out 3"):
        split_train_val(_pairs(3), 3)
    with pytest.raises(ValueError, match="n_val must be >= 0, got -1"):
        split_train_val(_pairs(3), -1)


def test_manifest_hash(tmp_path: Path) -> None:
    root = make(tmp_path / "a")
    ds = discover(root)
    rows = sorted(
        (p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in root.rglob("*.png")
    )
    expected = hashlib.sha256("".join(f"{r}\t{s}\n" for r, s in rows).encode()).hexdigest()
    assert manifest_hash(ds) == expected
    # the same files elsewhere: same hash
    shutil.copytree(root, tmp_path / "b")
    assert manifest_hash(discover(tmp_path / "b")) == expected
    # one changed file changes it (even without rediscovery)
    path = ds.test[0].low
    write(path, photo(offset=9) // 8)
    os.utime(path, ns=(1, 1))
    assert manifest_hash(ds) != expected
    # a renamed pair changes it
    hash_b = manifest_hash(discover(tmp_path / "b"))
    for side in ("low", "high"):
        (tmp_path / "b" / "eval15" / side / "5.png").rename(
            tmp_path / "b" / "eval15" / side / "6.png"
        )
    ds_b = discover(tmp_path / "b")
    assert manifest_hash(ds_b) != hash_b
    ds_b.test[0].low.unlink()
    with pytest.raises(UserError, match=r"cannot hash .*b/eval15/low/6\.png: No such file"):
        manifest_hash(ds_b)


def test_default_dataset_dir() -> None:
    assert default_dataset_dir() == Path(data.__file__).resolve().parents[2] / "datasets" / "synth"


# ---------------------------------------------------------------- integer decoding (memory)


def test_decode_image_is_the_stored_integers_in_rgb(tmp_path: Path) -> None:
    """decode_image keeps the file's integers (checked against OpenCV's own BGR decode), and
    to_float of it equals read_image bit for bit, for 8- and 16-bit files and an alpha PNG."""
    rng = np.random.default_rng(3)
    cases = {
        "rgb8.png": rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8),
        "rgb16.png": rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16),
        "rgba8.png": rng.integers(0, 256, size=(20, 30, 4), dtype=np.uint8),
    }
    for name, bgr in cases.items():
        path = tmp_path / name
        assert cv2.imwrite(str(path), bgr)
        img = data.decode_image(path)
        assert img.dtype == bgr.dtype and img.shape == (20, 30, 3)
        np.testing.assert_array_equal(img, bgr[:, :, 2::-1])
        scale = 255.0 if bgr.dtype == np.uint8 else 65535.0
        expected = bgr[:, :, 2::-1].astype(np.float32) / np.float32(scale)
        np.testing.assert_array_equal(data.to_float(img), expected)
        np.testing.assert_array_equal(read_image(path), expected)


def test_native_pairs_become_storage_without_a_copy(tmp_path: Path) -> None:
    """Training storage of 8-bit files is a channel-first view of the decoded buffer (no second
    copy of the dataset), with the values of the float path."""
    from benchmark.run.evaluate import as_float
    from benchmark.run.loop import to_storage

    ds = discover(make(tmp_path))
    lows, _ = load_pairs(ds.train, native=True)
    floats, _ = load_pairs(ds.train)
    stored = to_storage(lows, torch.device("cpu"))
    for arr, t, f in zip(lows, stored, floats, strict=True):
        assert arr.dtype == np.uint8 and t.dtype == torch.uint8
        assert t.untyped_storage().data_ptr() == arr.__array_interface__["data"][0]
        assert t.shape == (3, *arr.shape[:2])
        np.testing.assert_array_equal(as_float(t).permute(1, 2, 0).numpy(), f)
    via_float = to_storage(floats, torch.device("cpu"))
    for a, b in zip(stored, via_float, strict=True):
        assert torch.equal(a, b)
