"""A sweep reuses a finished run only when its folder holds the requested configuration.

It used to take any ``status: ok`` folder as cached: a sweep with another ``--data`` or
``--metrics`` into the same results printed "1 cached" and showed the old numbers. Now it
refuses with exit 2, naming the folder and the fields that differ, before anything is
submitted or written, exactly as ``run`` refuses such a folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from benchmark import sweep
from benchmark.cli import main
from benchmark.data import synth
from benchmark.errors import UserError
from benchmark.record import atomic_write_json
from benchmark.run import execute
from benchmark.run.files import base_metrics
from benchmark.run.reuse import for_seed, reusable
from benchmark.run.setup import prepare
from benchmark.run.spec import RunOptions, RunSpec

pytestmark = pytest.mark.usefixtures("planted_weights")  # LPIPS's AlexNet, when asked for


@pytest.fixture(scope="module")
def other_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic set less one training pair: another manifest, another dataset."""
    root = tmp_path_factory.mktemp("other") / "synth"
    shutil.copytree(synth.ensure_default(), root)
    first = sorted((root / "our485" / "low").iterdir())[0]
    for side in ("low", "high"):
        (root / "our485" / side / first.name).unlink()
    return root


def _files(results: Path) -> dict[str, int]:
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in results.rglob("*")}


def _finished(results: Path, metrics: tuple[str, ...]) -> Path:
    """A finished l1 smoke folder as the run writes it (its config.yaml through the run's own
    writer; metrics.json with the run's fields, status ok), without training."""
    setup = prepare(RunSpec("l1", "smoke", 0, None, results,
                            options=RunOptions(device="cpu", metrics=metrics)), quiet=True)
    setup.folder.mkdir(parents=True)
    execute._prepare_folder(setup)
    atomic_write_json(setup.folder / "metrics.json",
                      {**base_metrics(setup, None, None), "status": "ok"})
    return setup.folder


def test_one_prepare_per_recipe_serves_every_seed(tmp_path: Path) -> None:
    """:func:`for_seed` relies on the seed being the only hashed field that varies by seed."""
    zero = prepare(RunSpec("mse", "smoke", 0, None, tmp_path,
                           options=RunOptions(device="cpu")), quiet=True)
    three = prepare(RunSpec("mse", "smoke", 3, None, tmp_path,
                            options=RunOptions(device="cpu")), quiet=True)
    derived = for_seed(zero, 3, three.folder)
    assert derived.hashed == three.hashed
    assert derived.config_hash == three.config_hash != zero.config_hash


def test_reusable_compares_the_config_hash_of_every_planned_run(
    tmp_path: Path, other_data: Path
) -> None:
    results = tmp_path / "results"
    folder = _finished(results, ("psnr", "ssim"))
    planned = [("l1", "smoke", 0), ("l1", "smoke", 1)]
    assert reusable(planned, results, metrics=("psnr", "ssim")) == {folder}
    recorded = yaml.safe_load((folder / "config.yaml").read_text())["protocol"]["precision"]
    other = {"bf16": "fp32", "fp32": "bf16"}[recorded]
    assert reusable(planned, results, precision=recorded, metrics=("psnr", "ssim")) == {folder}
    with pytest.raises(UserError) as err:
        reusable(planned, results, data=other_data, metrics=("psnr", "ssim"))
    text = str(err.value)
    assert text.startswith(f"sweep: nothing submitted. {folder} holds a run of a different "
                           f"configuration")
    assert "data.manifest_sha256: " in text
    with pytest.raises(UserError, match=r"metrics: \['psnr', 'ssim'\] -> '<absent>'"):
        reusable(planned, results)  # --metrics dropped: LPIPS is asked for now
    with pytest.raises(UserError, match=f"protocol.precision: '{recorded}' -> '{other}'.*"
                                        f"pass --precision {recorded}"):
        reusable(planned, results, precision=other, metrics=("psnr", "ssim"))


def test_several_refused_folders_are_all_named(tmp_path: Path, other_data: Path) -> None:
    results = tmp_path / "results"
    first = _finished(results, ("psnr", "ssim"))
    second = first.parent / "seed1"
    shutil.copytree(first, second)  # another seed's folder: its config says seed 0, so it differs
    with pytest.raises(UserError) as err:
        reusable([("l1", "smoke", 0), ("l1", "smoke", 1)], results, data=other_data,
                 metrics=("psnr", "ssim"))
    assert f"1 more planned run folder(s) hold another configuration too: {second}." in str(
        err.value)


def test_sweep_refuses_before_submitting_or_writing(
    tmp_path: Path, other_data: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    results = tmp_path / "results"
    folder = _finished(results, ("psnr", "ssim"))

    def never(*args, **kwargs):
        raise AssertionError("a job was submitted")

    monkeypatch.setattr(sweep, "run_local", never)
    before = _files(results)
    base = ["sweep", "l1", "--seeds", "0", "--profile", "smoke", "--results", str(results)]
    for extra in (["--metrics", "psnr,ssim", "--data", str(other_data)],
                  ["--metrics", "psnr,ssim", "--data", str(other_data), "--force"],
                  []):
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"lossbench: error: sweep: nothing submitted. {folder} holds a run "
                              f"of a different configuration")
        assert "Traceback" not in err
        assert _files(results) == before
    assert main([*base, "--metrics", "psnr,ssim", "--status"]) == 0
    assert "1 cached" in capsys.readouterr().out


@pytest.mark.slow
def test_issue_case_smoke_sweep_then_another_dataset(
    tmp_path: Path, other_data: Path, capsys: pytest.CaptureFixture
) -> None:
    """The report's case end to end: a real smoke sweep, then the same sweep on another dataset
    (or without ``--metrics``) into the same results: exit 2, the finished run untouched; the
    unchanged sweep still says cached."""
    results = tmp_path / "results"
    base = ["sweep", "l1", "--seeds", "0", "--profile", "smoke", "--results", str(results)]
    assert main([*base, "--metrics", "psnr,ssim"]) == 0
    assert "1 runs (0 cached, 0 running elsewhere, 1 to run)" in capsys.readouterr().out
    metrics = results / "runs" / "l1" / "smoke" / "seed0" / "metrics.json"
    assert json.loads(metrics.read_text())["status"] == "ok"
    before = _files(results)
    assert main([*base, "--metrics", "psnr,ssim", "--data", str(other_data)]) == 2
    err = capsys.readouterr().err
    assert "holds a run of a different configuration" in err and "data.manifest_sha256" in err
    assert main(base) == 2
    assert "metrics: ['psnr', 'ssim'] -> '<absent>'" in capsys.readouterr().err
    assert _files(results) == before
    assert main([*base, "--metrics", "psnr,ssim"]) == 0
    assert "1 runs (1 cached, 0 running elsewhere, 0 to run)" in capsys.readouterr().out
