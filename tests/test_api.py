"""The library API, called as a user calls it: ``import benchmark`` then ``benchmark.<name>``.

The README's "Use as a library" block is run as it stands (one smoke run on the synthetic
stand-in, in a scratch folder); the other tests check each entry point against what the
command line and the run folders say.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmark
from benchmark.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _library_block() -> str:
    section = README.split("## Use as a library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.M | re.S)
    assert len(blocks) == 1, "the section shows one Python block"
    return blocks[0]


def test_import_benchmark_is_cheap_and_every_name_resolves() -> None:
    code = ("import sys, benchmark; assert 'torch' not in sys.modules, 'torch imported'; "
            "names = [n for n in benchmark.__all__ if n != '__version__']; "
            "[getattr(benchmark, n) for n in names]; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(benchmark.__all__) - 1
    assert set(dir(benchmark)) >= set(benchmark.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        benchmark.nope  # noqa: B018


def test_readme_library_block_runs(tmp_path: Path) -> None:
    """The README's example, verbatim, in a scratch folder: it trains, reads and summarises."""
    out = subprocess.run([sys.executable, "-c", _library_block()], cwd=tmp_path,
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    folder, ok, psnr = lines[0].split()
    assert Path(folder) == Path("results/runs/l1/smoke/seed0") and ok == "True"
    metrics = pd.read_json(tmp_path / folder / "metrics.json", typ="series")
    assert float(psnr) == round(metrics["test"]["psnr"], 2)
    n_test = metrics["dataset"]["n_test"]
    assert lines[1] == f"(1, {n_test})"  # one seed x every test image


def test_spec_accepts_name_path_dict_and_recipe_and_pickles(tmp_path: Path) -> None:
    by_name = benchmark.RunSpec("l1", profile="smoke")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nlosses:\n  - {name: l1, weight: 1.0}\n")
    by_path = benchmark.RunSpec(path, profile="smoke")
    as_dict = benchmark.RunSpec({"name": "mine", "losses": [{"name": "l1", "weight": 1.0}]})
    loaded = benchmark.load_recipe("l1")
    as_recipe = benchmark.RunSpec(loaded)
    assert by_name.load_recipe().to_dict() == loaded.to_dict() == as_recipe.load_recipe().to_dict()
    assert by_path.load_recipe().to_dict()["losses"] == as_dict.load_recipe().to_dict()["losses"]
    assert as_dict.load_recipe().name == "mine" and as_dict.load_recipe().path is None
    for spec in (by_name, by_path, as_dict):
        assert pickle.loads(pickle.dumps(spec)) == spec  # what a sweep sends to its workers
    forced = by_name.replace(force=True, seed=3)
    assert (forced.seed, forced.options.force, by_name.options.force) == (3, True, False)


def test_a_bad_dict_recipe_fails_when_the_spec_is_built() -> None:
    with pytest.raises(UserError) as err:
        benchmark.RunSpec({"name": "mine", "losses": [{"name": "l11", "weight": -1}]})
    text = str(err.value)
    assert "losses[0].name: unknown loss 'l11'; did you mean 'l1'?" in text
    assert "losses[0].weight" in text
    with pytest.raises(UserError, match="seed: expected a whole number >= 0, got -1"):
        benchmark.RunSpec("l1", seed=-1)
    with pytest.raises(UserError, match="recipe: expected a recipe name"):
        benchmark.RunSpec(3)


def test_train_refuses_bad_options_before_writing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    spec = benchmark.RunSpec("l1", profile="smoke", results=results,
                             options=benchmark.RunOptions(device="cpu", metrics=("psnr",)))
    with pytest.raises(UserError, match="psnr and ssim are always computed"):
        benchmark.train(spec)
    spec = spec.replace(metrics=("psnr", "ssim", "lpip"))
    with pytest.raises(UserError, match="unknown metric 'lpip'; did you mean 'lpips'"):
        benchmark.train(spec)
    assert not results.exists()


def _per_image(rows: list[tuple[str, int, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["recipe", "seed", "image", "metric", "value"])
    frame["run_id"] = frame["recipe"] + "/smoke/seed" + frame["seed"].astype(str)
    frame["profile"], frame["dataset"] = "smoke", "synthetic"
    return frame


def test_scores_are_seeds_by_images_in_order() -> None:
    rows = [(r, s, img, m, v)
            for r, base in (("l1", 10.0), ("mse", 20.0))
            for s in (2, 0)
            for img, dv in (("b.png", 0.5), ("a.png", 0.25))
            for m, scale in (("psnr", 1.0), ("ssim", 0.01))
            for v in [(base + s + dv) * scale]]
    per_image = _per_image(rows)
    psnr = benchmark.scores(per_image, "psnr")
    assert sorted(psnr) == ["l1", "mse"]
    # seeds 0, 2 (rows) x images a.png, b.png (columns), whatever order the frame had
    np.testing.assert_array_equal(psnr["l1"], [[10.25, 10.5], [12.25, 12.5]])
    np.testing.assert_allclose(benchmark.scores(per_image, "ssim")["mse"],
                               [[0.2025, 0.205], [0.2225, 0.225]], rtol=1e-12)
    # a collapsed run is left out when the run frame is given
    runs = pd.DataFrame({"run_id": ["l1/smoke/seed0", "l1/smoke/seed2", "mse/smoke/seed0",
                                    "mse/smoke/seed2"],
                         "status": "ok", "outcome": ["ok", "collapsed", "ok", "ok"]})
    kept = benchmark.scores(per_image, "psnr", runs=runs)
    np.testing.assert_array_equal(kept["l1"], [[10.25, 10.5], [np.nan, np.nan]])
    np.testing.assert_array_equal(kept["mse"], psnr["mse"])
    with pytest.raises(UserError, match="no per-image values of 'lpips'"):
        benchmark.scores(per_image, "lpips")


def test_scores_keep_the_shared_images_and_ask_for_one_profile() -> None:
    per_image = _per_image([("l1", 0, "a.png", "psnr", 1.0), ("l1", 0, "b.png", "psnr", 2.0),
                            ("l1", 1, "a.png", "psnr", 5.0), ("l1", 1, "b.png", "psnr", 6.0),
                            ("mse", 0, "a.png", "psnr", 3.0), ("mse", 0, "b.png", "psnr", 4.0),
                            ("mse", 1, "a.png", "psnr", 7.0)])
    got = benchmark.scores(per_image, "psnr")
    # the columns are the images every run has (mse's seed 1 lacks b.png): pairs stay paired
    np.testing.assert_array_equal(got["l1"], [[1.0], [5.0]])
    np.testing.assert_array_equal(got["mse"], [[3.0], [7.0]])
    other = per_image.assign(profile="quick")
    both = pd.concat([per_image, other])
    with pytest.raises(UserError, match=r"several profiles \(quick, smoke\)"):
        benchmark.scores(both, "psnr")
    assert benchmark.scores(both, "psnr", profile="quick")["l1"].shape == (2, 1)


def test_build_loss_reduction_none_gives_one_value_per_image() -> None:
    import torch

    torch.manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    per_image = benchmark.build_loss("l1", reduction="none")(pred, target)
    expected = (pred - target).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_image, expected, rtol=0, atol=1e-7)
    assert "l1" in benchmark.LOSSES
