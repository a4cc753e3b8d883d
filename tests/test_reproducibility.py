"""Reproducibility (issue 5): identical reruns, what a run records, --check-repro, the CUDA
determinism settings (device mocked: no GPU here), --force and stale locks through the CLI.

Real smoke runs of ``l1`` on the default synthetic data with the planted random-init weights:
one in a separate ``python -m benchmark`` process, the others in-process through
``benchmark.cli.main``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import benchmark
from benchmark import record
from benchmark.cli import main
from benchmark.record import LOCK_FILE as LOCK_NAME
from benchmark.record import config_hash, hashed_part
from benchmark.run import determinism
from benchmark.run import setup as runsetup
from benchmark.run.files import repro_differences

pytestmark = pytest.mark.usefixtures("planted_weights")

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "l1", "--profile", "smoke", "--device", "cpu"]
KEYS = ("psnr", "ssim", "lpips", "psnr_gtmean", "ssim_gtmean")


def _folder(results: Path) -> Path:
    return results / "runs" / "l1" / "smoke" / "seed0"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _log_without_seconds(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    drop = lines[0].split(",").index("seconds")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, planted_weights) -> dict[str, Path]:
    """The same command twice into two results folders: a fresh process, then in-process."""
    a, b = tmp_path_factory.mktemp("results_a"), tmp_path_factory.mktemp("results_b")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark", *RUN, "--results", str(a)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert main([*RUN, "--results", str(b)]) == 0
    return {"a": _folder(a), "b": _folder(b)}


@pytest.mark.slow
def test_same_command_twice_is_bit_identical(two_runs: dict[str, Path]) -> None:
    a, b = two_runs["a"], two_runs["b"]
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert ma["status"] == mb["status"] == "ok"
    assert ma["test"] == mb["test"]  # exact float equality, every metric
    assert all(isinstance(ma["test"][k], float) for k in KEYS)
    assert (a / "per_image.csv").read_bytes() == (b / "per_image.csv").read_bytes()
    assert (a / "val_log.csv").read_bytes() == (b / "val_log.csv").read_bytes()
    assert _log_without_seconds(a / "train_log.csv") == _log_without_seconds(b / "train_log.csv")
    wa, wb = (torch.load(f / "best.pt", weights_only=False)["model"] for f in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for sample in sorted(p.name for p in (a / "samples").iterdir()):
        assert (a / "samples" / sample).read_bytes() == (b / "samples" / sample).read_bytes()
    assert ma["config_hash"] == mb["config_hash"]


@pytest.mark.slow
def test_metrics_json_records_what_reproduces_the_run(two_runs: dict[str, Path]) -> None:
    folder = two_runs["b"]
    m = json.loads((folder / "metrics.json").read_text())
    config = yaml.safe_load((folder / "config.yaml").read_text())
    # resolved config and its hash
    assert m["config_hash"] == config["config_hash"] == config_hash(hashed_part(config))
    assert re.fullmatch(r"[0-9a-f]{64}", m["config_hash"])
    # dataset manifest hash
    assert m["dataset"]["manifest_sha256"] == config["data"]["manifest_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", m["dataset"]["manifest_sha256"])
    # code commit and dirty flag of this checkout
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert m["env"]["git_commit"] == head.stdout.strip()
    assert isinstance(m["env"]["git_dirty"], bool)
    # package versions and device
    assert m["env"]["packages"]["torch"] == torch.__version__.split("+")[0]
    assert m["env"]["packages"]["lpips"] == "0.1.4"
    assert m["env"]["device"] == "cpu" and m["env"]["threads"] == torch.get_num_threads()
    assert m["env"]["lossbench"] == benchmark.__version__  # compare --reference checks it
    # seeds: the run seed and the crop stream's seed
    assert (m["seed"], m["crop_seed"]) == (0, runsetup.crop_seed(0)) == (0, config["crop_seed"])
    # pretrained weights: checksum and whether they are the official files (planted: not)
    assert set(m["weights"]) == {"alexnet"}
    assert re.fullmatch(r"[0-9a-f]{64}", m["weights"]["alexnet"]["sha256"])
    assert m["weights"]["alexnet"]["official"] is False
    # the determinism setting in force
    det = m["determinism"]
    assert det["setting"] == "deterministic" and det["device_type"] == "cpu"
    assert det["guarantee"].startswith("bit-identical reruns on the same CPU type, thread count")
    assert det["threads"] == torch.get_num_threads() and det["nondeterministic_ops"] == []


@pytest.mark.slow
def test_deterministic_off_is_recorded_and_changes_the_config(
    two_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ref = two_runs["b"]
    before = _snapshot(ref)
    # on the finished run: a different configuration, refused through the CLI with what differs
    capsys.readouterr()
    code = main([*RUN, "--results", str(ref.parents[3]), "--deterministic", "off"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds a run of a different configuration" in err
    assert "protocol.deterministic: True -> False" in err and "Traceback" not in err
    assert _snapshot(ref) == before  # bytes and modification times: untouched
    # in a folder of its own it runs; on the CPU the numbers do not change
    assert main([*RUN, "--results", str(tmp_path), "--deterministic", "off"]) == 0
    m = json.loads((_folder(tmp_path) / "metrics.json").read_text())
    config = yaml.safe_load((_folder(tmp_path) / "config.yaml").read_text())
    assert m["determinism"]["setting"] == "fast" and config["protocol"]["deterministic"] is False
    assert m["config_hash"] != json.loads((ref / "metrics.json").read_text())["config_hash"]
    assert (_folder(tmp_path) / "per_image.csv").read_bytes() == (
        ref / "per_image.csv"
    ).read_bytes()


@pytest.mark.slow
def test_check_repro_reports_what_differs_and_leaves_the_folder_alone(
    two_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _folder(tmp_path)
    shutil.copytree(two_runs["b"], folder)
    metrics = record.load_metrics(folder)
    psnr = metrics["test"]["psnr"]
    metrics["test"]["psnr"] = psnr + 0.25
    metrics["env"]["packages"]["numpy"] = "1.0.0"
    record.write_metrics(folder, metrics)
    lines = (folder / "per_image.csv").read_text().splitlines()
    cells = lines[2].split(",")  # the second test image
    cells[2] = repr(float(cells[2]) - 0.5)  # its ssim
    (folder / "per_image.csv").write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]))
    before = _snapshot(folder)
    capsys.readouterr()
    code = main([*RUN, "--results", str(tmp_path), "--check-repro"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"--check-repro {folder}: DID NOT reproduce" in out
    assert f"test psnr: stored {psnr + 0.25!r}, rerun {psnr!r} (difference -0.25)" in out
    assert f"per-image values: 1 of {len(lines) - 1} image(s) differ: {cells[0]} (ssim +0.5)" in out
    assert "environment of the rerun differs" in out
    assert f"env.packages.numpy: '1.0.0' -> '{metrics['env']['numpy']}'" in out
    assert "test ssim:" not in out  # the stored mean was left as it was
    assert _snapshot(folder) == before
    assert not (folder / LOCK_NAME).exists()


def test_repro_differences_names_metrics_images_and_failures() -> None:
    stored = {"status": "ok", "test": dict.fromkeys(KEYS, 1.0)}
    same_csv = "image,psnr,ssim,lpips,psnr_gtmean,ssim_gtmean\na,1.0,1.0,,1.0,1.0\n"
    assert repro_differences(stored, stored, same_csv, same_csv) == []
    rerun = {"status": "ok", "test": {**stored["test"], "lpips": None}}
    other = same_csv.replace("a,1.0,1.0,,", "a,1.5,1.0,0.5,") + "b,1,1,1,1,1\n"
    assert repro_differences(stored, rerun, same_csv, other) == [
        "test lpips: stored 1.0, rerun None (difference 1.0 -> None)",
        "per-image rows: only in the stored run [], only in the rerun ['b']",
        "per-image values: 1 of 1 image(s) differ: a (psnr +0.5, lpips '' -> '0.5')",
    ]
    failed = {"status": "failed", "error": "out of memory"}
    assert repro_differences(stored, failed, same_csv, "") == ["the rerun failed: out of memory"]


@pytest.mark.slow
def test_force_redoes_the_run_and_a_stale_lock_is_recovered_through_the_cli(
    two_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _folder(tmp_path)
    shutil.copytree(two_runs["b"], folder)
    old = json.loads((folder / "metrics.json").read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (folder / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    capsys.readouterr()
    assert main([*RUN, "--results", str(tmp_path), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"recovered a stale lock of pid {dead.pid} on host {socket.gethostname()}" in out
    assert "already finished" not in out and "resuming" not in out
    new = json.loads((folder / "metrics.json").read_text())
    assert new["started_at"] >= old["finished_at"] and new["test"] == old["test"]
    assert (folder / "per_image.csv").read_bytes() == (two_runs["a"] / "per_image.csv").read_bytes()
    assert not (folder / LOCK_NAME).exists()


@pytest.fixture
def restore_determinism(monkeypatch: pytest.MonkeyPatch):
    """Put the process-wide flags back after a test changed them."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def test_cuda_deterministic_setting(restore_determinism) -> None:
    # the settings only touch process-wide flags: a "cuda" device object needs no GPU
    record = determinism.configure_determinism(torch.device("cuda"), True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    from benchmark.protocol import tf32_settings

    assert record.pop("tf32") == tf32_settings(False)  # the TF32 policy, off by default
    assert record == {
        "setting": "deterministic",
        "device_type": "cuda",
        "guarantee": "bit-identical reruns on the same GPU model, driver, CUDA/cuDNN and "
        "package versions",
        "use_deterministic_algorithms": True,
        "cudnn_benchmark": False,
        "cudnn_deterministic": True,
        "cublas_workspace_config": ":4096:8",
        "threads": torch.get_num_threads(),
        "nondeterministic_ops": [],
    }


def test_cuda_fast_setting(restore_determinism, monkeypatch: pytest.MonkeyPatch) -> None:
    determinism.configure_determinism(torch.device("cuda"), True)
    record = determinism.configure_determinism(torch.device("cuda"), False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert record["setting"] == "fast" and record["cudnn_benchmark"] is True
    assert record["guarantee"].startswith("not bit-identical")
    # a workspace setting the user exported is kept
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert (
        determinism.configure_determinism(torch.device("cuda"), True)["cublas_workspace_config"]
        == ":16:8"
    )


def test_cpu_setting_changes_nothing(restore_determinism) -> None:
    torch.backends.cudnn.benchmark = True
    record = determinism.configure_determinism(torch.device("cpu"), False)
    assert torch.backends.cudnn.benchmark and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert record["setting"] == "fast" and record["device_type"] == "cpu"
    assert record["guarantee"].startswith("bit-identical reruns on the same CPU type")


def test_ops_without_a_deterministic_kernel_are_recorded(restore_determinism) -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)
    found: list[str] = []
    x = torch.zeros(4)
    with warnings.catch_warnings(record=True) as passed:
        warnings.simplefilter("always")
        with determinism.nondeterminism_alerts(found):
            for _ in range(3):  # put_ without accumulate alerts on the CPU too
                x.put_(torch.tensor([1]), torch.tensor([2.0]), accumulate=False)
            warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
    assert found == ["put_"]
    assert [str(w.message) for w in passed] == ["an unrelated warning"]


def test_environment_of_a_cuda_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.run import environment as runstate

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(runstate, "_gpu_driver", lambda: "550.54.15")
    env = runstate.environment(torch.device("cuda"))
    assert env["device"] == "cuda" and env["device_name"] == "NVIDIA H100 80GB HBM3"
    assert (env["gpu_capability"], env["gpu_driver"]) == ("9.0", "550.54.15")
    assert env["gpu_name"] == "NVIDIA H100 80GB HBM3" and env["cpu_model"]
    cpu_env = runstate.environment(torch.device("cpu"))
    assert "gpu_driver" not in cpu_env and cpu_env["device_name"] == cpu_env["cpu_model"]


def test_cpu_model_from_cpuinfo(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.run import environment as runstate

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R)   Processor\nflags\t: fpu amx_bf16\n")
    assert runstate.cpu_model(info) == "Intel(R) Xeon(R) Processor"
    # no /proc/cpuinfo (macOS): lscpu's "Model name", then the platform's word
    lscpu = "Architecture: x86_64\nModel name:  AMD EPYC 9654 96-Core Processor\n"
    monkeypatch.setattr(runstate.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=lscpu))
    assert runstate.cpu_model(tmp_path / "absent") == "AMD EPYC 9654 96-Core Processor"

    def no_lscpu(*a, **k):
        raise FileNotFoundError("lscpu")

    monkeypatch.setattr(runstate.subprocess, "run", no_lscpu)
    monkeypatch.setattr(runstate.platform, "processor", lambda: "arm")
    assert runstate.cpu_model(tmp_path / "absent") == "arm"
