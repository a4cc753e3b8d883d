"""Bad input through the real command line: exit code 2, the expected message, no traceback,
nothing written under ``--results``.

The corpus: every broken recipe of ``tests/data/broken_recipes/`` (with the exact messages of
``tests/test_recipes.py``), broken dataset folders built from a small valid one (missing partners,
size mismatches, truncated and garbage PNGs, grayscale images, empty splits, a directory named
like an image, images smaller than the patches, unknown layouts) and bad arguments. Most cases
call ``benchmark.cli.main`` in-process (fast); a handful run ``python -m benchmark`` in a real
subprocess to prove no traceback escapes the process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_recipes import BROKEN, BROKEN_MESSAGES

from benchmark.cli import main
from benchmark.run.spec import RunOptions, RunSpec

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("planted_weights")


def _save(path: Path, h: int = 72, w: int = 72, seed: int = 0, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    (img.convert(mode) if mode != "RGB" else img).save(path)


@pytest.fixture(scope="module")
def good_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid lol_v1 dataset: 4 training pairs (2 of them become validation), 1 test pair."""
    root = tmp_path_factory.mktemp("good") / "lol"
    for split, names in (("our485", "1234"), ("eval15", "5")):
        for name in names:
            _save(root / split / "low" / f"{name}.png", seed=int(name))
            _save(root / split / "high" / f"{name}.png", seed=10 + int(name))
    return root


def _truncate(root: Path) -> None:
    path = root / "our485" / "low" / "1.png"
    path.write_bytes(path.read_bytes()[:-40])


def _remove_test_lows(root: Path) -> None:
    (root / "eval15" / "low" / "5.png").unlink()


def _dir_like_an_image(root: Path) -> None:
    (root / "our485" / "low" / "4.png").unlink()
    (root / "our485" / "low" / "4.png").mkdir()


def _all_small(root: Path) -> None:
    for side, offset in (("low", 0), ("high", 10)):
        for name in "1234":
            _save(root / "our485" / side / f"{name}.png", 40, 50, seed=offset + int(name))


#: case -> (how to break a copy of the good dataset, the expected lines of the message)
DATASET_CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "missing_partner": (
        lambda r: (r / "our485" / "low" / "3.png").unlink(),
        [
            "has 1 problem(s):",
            "  - missing partner: our485/high/3.png has no partner in our485/low/",
        ],
    ),
    "size_mismatch": (
        lambda r: _save(r / "our485" / "high" / "2.png", 72, 80, seed=12),
        ["  - size mismatch: our485/low/2.png is 72x72 but our485/high/2.png is 80x72"],
    ),
    "truncated_png": (
        _truncate,
        ["  - unreadable: our485/low/1.png: truncated PNG (no IEND chunk)"],
    ),
    "zero_byte_file": (
        lambda r: (r / "eval15" / "high" / "5.png").write_bytes(b""),
        ["  - unreadable: eval15/high/5.png: not a PNG, JPEG, BMP or TIFF image"],
    ),
    "garbage_file": (
        lambda r: (r / "our485" / "high" / "1.png").write_bytes(b"GIF89a not really"),
        ["  - unreadable: our485/high/1.png: not a PNG, JPEG, BMP or TIFF image"],
    ),
    "grayscale": (
        lambda r: _save(r / "our485" / "high" / "4.png", seed=14, mode="L"),
        ["  - grayscale: our485/high/4.png is grayscale (L) in an RGB split"],
    ),
    "empty_split": (
        _remove_test_lows,
        [
            "  - empty split: test split: eval15/low/ has 0 image(s) and eval15/high/ has 1; "
            "both need images"
        ],
    ),
    "directory_named_like_an_image": (
        _dir_like_an_image,
        ["  - missing partner: our485/high/4.png has no partner in our485/low/"],
    ),
    "missing_split_folder": (
        lambda r: shutil.rmtree(r / "eval15" / "high"),
        ["  - missing folder: eval15/high/ is missing"],
    ),
    "images_smaller_than_the_patches": (
        _all_small,
        ["2 training image(s) are smaller than the profile's 64x64 patches: 2 (50x40), 4 (50x40)"],
    ),
    "unknown_layout": (
        lambda r: [shutil.rmtree(r / d) for d in ("our485", "eval15")] + [(r / "pics").mkdir()],
        ["unknown layout. Looked for lol_v1", "found folders: pics/"],
    ),
}


def _run(args: list[str], results: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["run", *args, "--profile", "smoke", "--device", "cpu", "--results", str(results)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("stem", sorted(BROKEN_MESSAGES))
def test_broken_recipe_through_the_cli(
    stem: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = str(BROKEN / f"{stem}.yaml")
    results = tmp_path / "results"
    code, out, err = _run([path], results, capsys)
    assert code == 2
    expected = f"{path}: " + BROKEN_MESSAGES[stem].replace("{file}", path)
    assert err == f"lossbench: error: {expected}\n"
    assert "Traceback" not in out + err
    assert not results.exists()


@pytest.mark.parametrize("case", sorted(DATASET_CASES))
def test_broken_dataset_through_the_cli(
    case: str, good_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "data"
    shutil.copytree(good_data, root)
    breaker, lines = DATASET_CASES[case]
    breaker(root)
    results = tmp_path / "results"
    code, out, err = _run(["l1", "--data", str(root)], results, capsys)
    assert code == 2, out + err
    assert err.startswith(f"lossbench: error: dataset {root.resolve()}")
    for line in lines:
        assert line in err
    assert "Traceback" not in out + err
    assert not results.exists()


def test_the_good_dataset_is_accepted(good_data: Path, tmp_path: Path) -> None:
    """Guards the corpus: every case above fails because of its one defect."""
    from benchmark.run import setup as runsetup

    setup = runsetup.prepare(RunSpec("l1", "smoke", 0, good_data, tmp_path / "results",
                                     options=RunOptions(device="cpu")), quiet=True)
    assert [p.name for p in setup.dataset.test] == ["5"]
    assert len(setup.train_pairs) == 2 and len(setup.val_pairs) == 2
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "{tmp}/nowhere"],
            "lossbench: error: dataset folder {tmp}/nowhere does not exist",
        ),
        (["--data", "{tmp}/a_file"], "lossbench: error: dataset path {tmp}/a_file is not a folder"),
        (
            ["--results", "{tmp}/a_file/results"],
            "--results: cannot create the run folder "
            "{tmp}/a_file/results/runs/l1/smoke/seed0: {tmp}/a_file is a file, not a folder",
        ),
        (["--device", "cuda"], "--device cuda: CUDA is not available on this machine"),
    ],
)
def test_bad_paths_and_devices(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "a_file").write_text("not a folder")
    results = tmp_path / "results"
    argv = ["run", "l1", "--profile", "smoke", "--results", str(results)]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in out + err
    assert not results.exists()
    assert (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "-1"], "argument --seed: expected a number >= 0, got -1"),
        (["--seed", "one"], "argument --seed: expected a whole number, got 'one'"),
        (["--profile", "fast"], "argument --profile: invalid choice: 'fast'"),
        (["--deterministic", "yes"], "argument --deterministic: invalid choice: 'yes'"),
    ],
)
def test_bad_arguments(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as info:
        main(["run", "l1", "--results", str(results), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: python -m benchmark run")
    assert not results.exists()


@pytest.mark.slow
def test_no_traceback_escapes_a_real_process(good_data: Path, tmp_path: Path) -> None:
    """A few representative cases in real ``python -m benchmark`` processes."""
    root = tmp_path / "data"
    shutil.copytree(good_data, root)
    _truncate(root)
    results = tmp_path / "results"
    cases = [
        ([str(BROKEN / "syntax_error.yaml")], "YAML syntax error at line 4, column 5"),
        (["l1", "--data", str(root)], "truncated PNG (no IEND chunk)"),
        (["l1", "--data", str(tmp_path / "nowhere")], "does not exist"),
        (["l1", "--seed", "-1"], "argument --seed: expected a number >= 0, got -1"),
        (["l1", "--profile", "fast"], "argument --profile: invalid choice: 'fast'"),
    ]
    for args, message in cases:
        extra = [] if "--profile" in args else ["--profile", "smoke"]
        proc = subprocess.run(
            [sys.executable, "-m", "benchmark", "run", *args, *extra, "--results", str(results)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert not results.exists()


def test_weights_are_checked_before_anything_is_trained(
    planted_weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """LPIPS's AlexNet is only used after training: its file is still checked up front."""
    from benchmark import weights

    monkeypatch.delenv(weights.ALLOW_ENV)
    results = tmp_path / "results"
    code, out, err = _run(["l1"], results, capsys)
    assert code == 2
    path = planted_weights.files["alexnet"]
    assert f"{path} is not the official torchvision file alexnet-owt-7be5be79.pth" in err
    assert "Traceback" not in out + err
    assert not results.exists()
