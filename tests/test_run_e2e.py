"""End to end: ``python -m benchmark run`` on the default synthetic data, and issue 5's behaviours.

Every run uses the planted random-init VGG19/AlexNet (conftest ``planted_weights``). The fast
tests train ``l1`` with the smoke profile (20 iterations); VGG/GAN recipes and the real SIGKILL
test are marked slow.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from benchmark.cli import main
from benchmark.data import synth
from benchmark.data.pairs import discover
from benchmark.errors import UserError
from benchmark.protocol import PROFILES, resolve_precision
from benchmark.recipes import mix as recipes
from benchmark.record import LOCK_FILE as LOCK_NAME
from benchmark.record import config_hash, hashed_part
from benchmark.run import execute as train
from benchmark.run.spec import RunOptions, RunSpec

pytestmark = pytest.mark.usefixtures("planted_weights")

SMOKE = PROFILES["smoke"]
TEST_KEYS = ("psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_root() -> Path:
    return synth.ensure_default()


@pytest.fixture(scope="module")
def l1_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path, planted_weights) -> dict:
    """One l1 smoke run through the CLI, shared by the tests that inspect its folder."""
    results = tmp_path_factory.mktemp("results")
    start = time.perf_counter()
    code = main(["run", "l1", "--profile", "smoke", "--results", str(results), "--device", "cpu"])
    seconds = time.perf_counter() - start
    folder = results / "runs" / "l1" / "smoke" / "seed0"
    return {
        "code": code,
        "results": results,
        "folder": folder,
        "seconds": seconds,
        "metrics": json.loads((folder / "metrics.json").read_text()),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _losses(path: Path) -> list[dict[str, str]]:
    """train_log rows without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(path)]


def test_l1_smoke_writes_the_run_folder(l1_run: dict, data_root: Path) -> None:
    assert l1_run["code"] == 0
    folder = l1_run["folder"]
    for name in (
        "config.yaml",
        "metrics.json",
        "per_image.csv",
        "train_log.csv",
        "val_log.csv",
        "checkpoint.pt",
        "best.pt",
    ):
        assert (folder / name).is_file(), name
    assert not (folder / LOCK_NAME).exists()
    m = l1_run["metrics"]
    assert m["status"] == "ok" and m["error"] is None
    assert (m["recipe"], m["profile"], m["seed"], m["iterations"]) == ("l1", "smoke", 0, 20)
    assert set(m["test"]) == set(TEST_KEYS)
    assert all(isinstance(m["test"][k], float) for k in TEST_KEYS)
    assert 5.0 < m["test"]["psnr"] < 60.0 and 0.0 < m["test"]["ssim"] <= 1.0
    assert isinstance(m["train_seconds"], float) and isinstance(m["eval_seconds"], float)
    for key in ("python", "torch", "torchvision", "numpy", "device_name", "git_commit", "packages"):
        assert key in m["env"]
    assert m["weights"]["alexnet"]["official"] is False  # planted weights
    assert len(m["weights"]["alexnet"]["sha256"]) == 64
    assert m["dataset"]["layout"] == "lol_v1"
    ds = discover(data_root)
    # one per_image row per test image, with finite values, means equal to metrics.json
    rows = _rows(folder / "per_image.csv")
    assert [r["image"] for r in rows] == [p.name for p in ds.test]
    for key in TEST_KEYS:
        values = [float(r[key]) for r in rows]
        assert all(v == v and abs(v) != float("inf") for v in values)
        assert sum(values) / len(values) == pytest.approx(m["test"][key], rel=1e-12)
    # samples: low | output | reference of the first test images
    samples = sorted(p.name for p in (folder / "samples").iterdir())
    first = Path(ds.test[0].name).stem
    assert {f"{first}_low.png", f"{first}_output.png", f"{first}_reference.png"} <= set(samples)
    assert len(samples) == 3 * min(SMOKE.n_samples, len(ds.test))


def test_logs_and_config(l1_run: dict) -> None:
    folder = l1_run["folder"]
    log = _rows(folder / "train_log.csv")
    assert list(log[0]) == ["iteration", "total", "l1", "grad_norm", "lr", "seconds"]
    assert [int(r["iteration"]) for r in log] == list(range(5, 21, 5))
    assert all(float(r["total"]) == float(r["l1"]) for r in log)  # weight 1
    val = _rows(folder / "val_log.csv")
    assert [int(r["iteration"]) for r in val] == [10, 20]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["config_hash"] == l1_run["metrics"]["config_hash"]
    assert config["config_hash"] == config_hash(hashed_part(config))
    assert config["protocol"] == resolve_precision(SMOKE, torch.device("cpu"))[0].to_dict()
    assert config["protocol"]["precision"] in ("bf16", "fp32")  # resolved, never "auto"
    assert config["recipe"]["losses"][0]["name"] == "l1"
    assert len(config["data"]["val_images"]) == SMOKE.n_val
    assert config["model"]["parameters"] > 0


def test_rerun_prints_the_cached_result(l1_run: dict, capsys: pytest.CaptureFixture) -> None:
    before = (l1_run["folder"] / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    code = main(["run", "l1", "--profile", "smoke", "--results", str(l1_run["results"])])
    out = capsys.readouterr().out
    assert code == 0
    assert "already finished" in out and "not redone (--force redoes it)" in out
    assert f"{l1_run['metrics']['test']['psnr']:.2f}" in out
    assert str(l1_run["folder"]) in out
    # the planted test backbones are not the official files: the table says so
    assert "UNOFFICIAL pretrained weights (alexnet)" in out
    assert (l1_run["folder"] / "metrics.json").stat().st_mtime_ns == before


def test_a_different_configuration_is_refused(l1_run: dict) -> None:
    longer = replace(SMOKE, iterations=30)
    with pytest.raises(UserError) as err:
        train.run(RunSpec("l1", longer, 0, None, l1_run["results"],
                          options=RunOptions(device="cpu")), quiet=True)
    text = str(err.value)
    assert "holds a run of a different configuration" in text
    assert "protocol.iterations: 20 -> 30" in text and "use another --results folder" in text
    with pytest.raises(UserError, match="protocol.iterations: 20 -> 30"):  # --force too
        train.run(RunSpec("l1", longer, 0, None, l1_run["results"],
                          options=RunOptions(device="cpu", force=True)), quiet=True)
    assert json.loads((l1_run["folder"] / "metrics.json").read_text()) == l1_run["metrics"]


def test_another_precision_is_refused_through_the_cli(
    l1_run: dict, capsys: pytest.CaptureFixture
) -> None:
    recorded = yaml.safe_load((l1_run["folder"] / "config.yaml").read_text())["protocol"]
    other = "fp32" if recorded["precision"] == "bf16" else "bf16"
    capsys.readouterr()
    code = main(["run", "l1", "--profile", "smoke", "--results", str(l1_run["results"]),
                 "--precision", other])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert f"protocol.precision: '{recorded['precision']}' -> '{other}'" in captured.err
    assert f"To use or resume that run, pass --precision {recorded['precision']}." in captured.err
    assert json.loads((l1_run["folder"] / "metrics.json").read_text()) == l1_run["metrics"]


class _StopError(KeyboardInterrupt):
    """Simulates an interruption (like Ctrl-C) right after a checkpoint was written."""


def test_resume_after_interruption_is_bit_identical(
    l1_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def stop(it: int) -> None:
        if it == 10:
            raise _StopError

    with pytest.raises(_StopError):
        train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True, on_checkpoint=stop)
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    assert not (folder / "metrics.json").exists() and (folder / "checkpoint.pt").exists()
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["iteration"] == 10
    capsys.readouterr()
    resumed = train.run(RunSpec("l1", "smoke", 0, None, tmp_path, options=RunOptions(device="cpu")))
    assert "resuming" in capsys.readouterr().out
    assert resumed["test"] == l1_run["metrics"]["test"]  # exact, not approximate
    ref = l1_run["folder"]
    assert (folder / "per_image.csv").read_text() == (ref / "per_image.csv").read_text()
    assert _losses(folder / "train_log.csv") == _losses(ref / "train_log.csv")
    assert (folder / "val_log.csv").read_text() == (ref / "val_log.csv").read_text()
    # --force redoes the finished run from scratch (the checkpoint is not reused)
    capsys.readouterr()
    again = train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                              options=RunOptions(device="cpu", force=True)))
    out = capsys.readouterr().out
    assert "resuming" not in out and "already finished" not in out
    assert again["started_at"] >= resumed["finished_at"]
    assert again["test"] == l1_run["metrics"]["test"]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_check_repro_reruns_and_compares(l1_run: dict, capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(l1_run["folder"])
    capsys.readouterr()
    code = main(
        ["run", "l1", "--profile", "smoke", "--results", str(l1_run["results"]), "--check-repro"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"--check-repro {l1_run['folder']}: reproduced bit-identically (5 test metrics" in out
    assert "DID NOT" not in out and "environment of the rerun differs" not in out
    assert repr(l1_run["metrics"]["test"]["psnr"]) in out
    assert _snapshot(l1_run["folder"]) == before  # not a byte, not a timestamp changed


def test_check_repro_needs_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "l1", "--profile", "smoke", "--results", str(tmp_path), "--check-repro"])
    assert code == 2
    assert "holds no finished run to check; run it first" in capsys.readouterr().err


def _poison(monkeypatch: pytest.MonkeyPatch, label: str, at_call: int, mode: str) -> None:
    """Make loss term ``label`` go non-finite at its ``at_call``-th training call."""
    real = recipes.build_mix

    def build(recipe):  # noqa: ANN001, ANN202
        mix = real(recipe)
        term, calls = mix.terms[label], [0]
        original = term.forward

        def forward(pred, target, *, low=None):  # noqa: ANN001, ANN202
            calls[0] += 1
            out = original(pred, target, low=low)
            if calls[0] == at_call:
                # "value": the term is NaN; "grad": finite value, NaN gradient; "raise": a bug
                if mode == "raise":
                    raise RuntimeError("boom")
                return out * float("nan") if mode == "value" else out + pred.mul(0).sqrt().sum()
            return out

        term.forward = forward
        return mix

    monkeypatch.setattr(recipes, "build_mix", build)


def test_nan_term_fails_the_run_and_keeps_the_checkpoint(
    l1_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _poison(monkeypatch, "l1", at_call=13, mode="value")
    code = main(["run", "l1", "--profile", "smoke", "--results", str(tmp_path)])
    assert code == 1
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    m = json.loads((folder / "metrics.json").read_text())
    assert m["status"] == "failed"
    assert m["failed_iteration"] == 13 and m["failed_term"] == "loss term 'l1'"
    assert "non-finite value (nan) in loss term 'l1' at iteration 13" in m["error"]
    assert "last good checkpoint (iteration 10) is kept" in m["error"]
    assert all(m["test"][k] is None for k in TEST_KEYS)
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["iteration"] == 10
    assert "run FAILED" in capsys.readouterr().err
    assert not (folder / LOCK_NAME).exists()
    # the same command again (the fault gone) retries from the kept checkpoint
    monkeypatch.undo()
    retried = train.run(RunSpec("l1", "smoke", 0, None, tmp_path, options=RunOptions(device="cpu")))
    assert "resuming" in capsys.readouterr().out
    assert retried["status"] == "ok" and retried["test"] == l1_run["metrics"]["test"]


def test_compare_shows_a_real_failed_run(
    l1_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    shutil.copytree(l1_run["folder"], results / "runs" / "l1" / "smoke" / "seed0")
    _poison(monkeypatch, "charbonnier", at_call=3, mode="value")
    assert main(["run", "charbonnier", "--profile", "smoke", "--results", str(results)]) == 1
    failed = json.loads((results / "runs/charbonnier/smoke/seed0/metrics.json").read_text())
    assert failed["status"] == "failed"
    capsys.readouterr()
    assert main(["compare", "--results", str(results), "--baseline", "l1"]) == 0
    compact = capsys.readouterr().out
    assert "| charbonnier (0‡) | n/a | n/a | n/a | n/a | n/a | n/a |" in compact, compact
    assert main(["compare", "--results", str(results), "--baseline", "l1", "--wide"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| charbonnier |"))
    assert "| 0 of 1 (failed: 0)" in row and "| n/a |" in row, out  # seed 0 failed
    with open(results / "tables" / "summary.csv", newline="") as fh:
        rows = {r["recipe"]: r for r in csv.DictReader(fh)}
    assert (rows["charbonnier"]["n_ok"], rows["charbonnier"]["n_failed"]) == ("0", "1")
    assert rows["charbonnier"]["errors"] == f"seed0: {failed['error']}"
    assert "non-finite value (nan) in loss term 'charbonnier' at iteration 3" in failed["error"]


def test_an_unexpected_error_is_recorded_then_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _poison(monkeypatch, "l1", at_call=3, mode="raise")
    with pytest.raises(RuntimeError, match="boom"):
        train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True)
    m = json.loads((tmp_path / "runs" / "l1" / "smoke" / "seed0" / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"].startswith("RuntimeError: boom")


def test_nan_gradient_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _poison(monkeypatch, "l1", at_call=2, mode="grad")
    m = train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True)
    assert m["status"] == "failed" and m["failed_iteration"] == 2
    assert "in the gradient of the network at iteration 2" in m["error"]
    assert "no checkpoint was written before it" in m["error"]


def test_a_locked_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (folder / LOCK_NAME).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname()})
        )
        with pytest.raises(UserError, match=rf"is in use by another run: pid {holder.pid} on"):
            train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                              options=RunOptions(device="cpu")), quiet=True)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    assert main(["run", "l11", "--profile", "smoke", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'l11'; did you mean 'l1'" in err and "Traceback" not in err
    missing = tmp_path / "no_such_data"
    assert (
        main(["run", "l1", "--profile", "smoke", "--data", str(missing), "--results", str(results)])
        == 2
    )
    assert f"dataset folder {missing} does not exist" in capsys.readouterr().err
    assert main(["run", "ms_ssim", "--profile", "smoke", "--results", str(results)]) == 2
    assert "needs inputs of at least" in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["s3net", "srgan", "flw"])
def test_recipe_smoke_end_to_end(recipe: str, tmp_path: Path) -> None:
    m = train.run(RunSpec(recipe, "smoke", 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True)
    assert m["status"] == "ok", m["error"]
    assert all(isinstance(m["test"][k], float) for k in TEST_KEYS)
    folder = tmp_path / "runs" / recipe / "smoke" / "seed0"
    header = list(_rows(folder / "train_log.csv")[0])
    labels = [spec.label for spec in recipes.load_recipe(recipe).losses]
    assert header[1 : 2 + len(labels)] == ["total", *labels]
    shares = [f"gradshare_{lb}" for lb in labels]
    assert set(shares) | {f"gradnorm_{lb}" for lb in labels} <= set(header)
    for row in _rows(folder / "train_log.csv"):
        values = [float(row[c]) for c in shares]
        assert all(0 <= v <= 1 for v in values) and sum(values) == pytest.approx(1, abs=1e-9)
    if recipe == "srgan":
        assert "d_loss" in header
        assert "discriminators" in torch.load(folder / "checkpoint.pt", weights_only=False)
    if recipe in ("s3net", "srgan"):
        assert set(m["weights"]) == {"alexnet", "vgg19"}


KILL_SCRIPT = """
import sys, dataclasses
from benchmark.run import execute as train
from benchmark.run.spec import RunOptions, RunSpec
from benchmark.protocol import PROFILES
proto = dataclasses.replace(PROFILES["smoke"], name="killed", iterations=40, ckpt_every=10,
                            val_every=20, log_every=5)
train.run(RunSpec("l1", proto, 0, None, sys.argv[1], options=RunOptions(device="cpu")), quiet=True)
"""


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_matches(tmp_path: Path) -> None:
    proto = replace(SMOKE, name="killed", iterations=40, ckpt_every=10, val_every=20, log_every=5)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    folder = killed / "runs" / "l1" / "killed" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(killed)], env=env, cwd=REPO)
    try:
        deadline = time.time() + 240
        while not (folder / "checkpoint.pt").exists() and proc.poll() is None:
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        time.sleep(0.05)  # a little past the first checkpoint, well before iteration 40
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (folder / "metrics.json").exists()
    assert (folder / LOCK_NAME).exists()  # left behind by the killed process: stale
    resumed = train.run(RunSpec("l1", proto, 0, None, killed,
                                options=RunOptions(device="cpu")), quiet=True)
    reference = train.run(RunSpec("l1", proto, 0, None, clean,
                                  options=RunOptions(device="cpu")), quiet=True)
    assert resumed["status"] == "ok"
    assert resumed["test"] == reference["test"]
    ref_folder = clean / "runs" / "l1" / "killed" / "seed0"
    assert (folder / "per_image.csv").read_text() == (ref_folder / "per_image.csv").read_text()
    assert _losses(folder / "train_log.csv") == _losses(ref_folder / "train_log.csv")


def test_test_split_is_scored_without_the_training_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing holds the training or validation pixels while the test split is read and
    scored (their memory is released first, so evaluation does not add to the run's peak)."""
    import gc
    import weakref

    seen: dict = {}
    real_evaluate, real_load = train._evaluate, train.data_mod.load_pairs

    def load_pairs(pairs, **kwargs):
        low, high = real_load(pairs, **kwargs)
        if kwargs.get("native"):  # the training and validation splits
            seen.setdefault("refs", []).extend(weakref.ref(a) for a in low + high)
        return low, high

    def evaluate(setup, trainer, *args):
        gc.collect()
        seen["data"] = (trainer.train_data, trainer.val_data)
        seen["alive"] = sum(ref() is not None for ref in seen["refs"])
        return real_evaluate(setup, trainer, *args)

    monkeypatch.setattr(train.data_mod, "load_pairs", load_pairs)
    monkeypatch.setattr(train, "_evaluate", evaluate)
    metrics = train.run(RunSpec("l1", "smoke", results=tmp_path,
                                options=RunOptions(device="cpu")), quiet=True)
    assert metrics["status"] == "ok"
    assert seen["data"] == (([], []), ([], [])) and len(seen["refs"]) > 0
    assert seen["alive"] == 0, f"{seen['alive']} training/validation images still referenced"
