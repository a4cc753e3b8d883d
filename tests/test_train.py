"""Building blocks of a run: crops, storage, atomic writes, config hash, lock, RNG states."""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark import record
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.model import UNet
from benchmark.protocol import PROFILES
from benchmark.record import atomic as record_atomic
from benchmark.run import environment as env_mod
from benchmark.run import execute as train
from benchmark.run import lock as lock_mod
from benchmark.run import rng as rng_mod
from benchmark.run.evaluate import as_float, fit_resolution
from benchmark.run.loop import (
    NonFiniteError,
    _describe,
    sample_batch,
    to_storage,
)
from benchmark.run.setup import is_out_of_memory, oom_message


def _images(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 256, (h + i, w + 2 * i, 3)) / 255.0).astype(np.float32) for i in range(n)
    ]


def test_storage_is_uint8_when_exact_and_float_otherwise() -> None:
    eight = _images(2, 20, 30)
    sixteen = [
        (np.random.default_rng(1).integers(0, 65536, (20, 30, 3)) / 65535.0).astype(np.float32)
    ]
    stored = to_storage(eight + sixteen, torch.device("cpu"))
    assert [t.dtype for t in stored] == [torch.uint8, torch.uint8, torch.float32]
    for t, img in zip(stored, eight + sixteen, strict=True):
        assert t.shape == (3, *img.shape[:2])
        # bit-exact round trip to what read_image returned
        assert np.array_equal(as_float(t).permute(1, 2, 0).numpy(), img)


def test_crops_are_aligned_seeded_and_inside_the_image() -> None:
    lows = _images(3, 40, 50)
    highs = [np.clip(x * 0.5 + 0.25, 0, 1).astype(np.float32) for x in lows]  # pointwise map
    lo, hi = (to_storage(x, torch.device("cpu")) for x in (lows, highs))
    a = sample_batch(lo, hi, 16, 8, torch.Generator().manual_seed(5))
    b = sample_batch(lo, hi, 16, 8, torch.Generator().manual_seed(5))
    c = sample_batch(lo, hi, 16, 8, torch.Generator().manual_seed(6))
    assert a[0].shape == a[1].shape == (8, 3, 16, 16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # the high patch is the same pointwise map of the low patch: same position, same flip
    expect = torch.from_numpy(np.clip(a[0].numpy() * 0.5 + 0.25, 0, 1).astype(np.float32))
    assert torch.allclose(a[1], expect, atol=1.5 / 255)
    # every patch is a real crop of one of the images under one of the 8 flips/transposes
    for patch in a[0]:
        found = False
        for img in lo:
            full = as_float(img)
            for cand in (patch, patch.flip(-1), patch.flip(-2), patch.flip(-1).flip(-2)):
                for p in (cand, cand.transpose(-1, -2)):
                    win = full.unfold(1, 16, 1).unfold(2, 16, 1)  # 3 x H' x W' x 16 x 16
                    hit = (win == p[:, None, None]).flatten(3).all(-1).all(0)
                    found = found or bool(hit.any())
        assert found


def test_fit_resolution_scales_the_longer_side() -> None:
    x = torch.rand(1, 3, 300, 200)
    assert fit_resolution(x, "full") is x
    assert fit_resolution(x, 150).shape == (1, 3, 150, 100)
    assert fit_resolution(x, 400) is x
    y = fit_resolution(torch.full((1, 3, 64, 48), 0.3), 32)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)


def test_atomic_write_leaves_no_temporary_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    record.atomic_write_json(target, {"a": 1})
    record.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_write_to_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "metrics.json"
    with pytest.raises(UserError, match=r"cannot write .*gone/metrics.json: .*free space and perm"):
        record.atomic_write_text(target, "x")


def test_nan_is_refused_in_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        record.atomic_write_json(tmp_path / "m.json", {"psnr": float("nan")})
    assert not (tmp_path / "m.json").exists()


def test_config_hash_is_canonical() -> None:
    a = {"recipe": {"name": "l1", "losses": [1, 2]}, "seed": 0}
    b = {"seed": 0, "recipe": {"losses": [1, 2], "name": "l1"}}
    assert record.config_hash(a) == record.config_hash(b)
    assert record.config_hash(a) != record.config_hash({**a, "seed": 1})
    assert len(record.config_hash(a)) == 64


def test_diff_configs_names_the_changed_fields() -> None:
    old = {"protocol": {"iterations": 20, "lr": 1e-3}, "recipe": {"losses": [{"weight": 1.0}]}}
    new = {"protocol": {"iterations": 30, "lr": 1e-3}, "recipe": {"losses": [{"weight": 2.0}]}}
    assert record.diff_configs(old, new) == [
        "protocol.iterations: 20 -> 30",
        "recipe.losses[0].weight: 1.0 -> 2.0",
    ]


def test_lock_refuses_a_second_owner(tmp_path: Path) -> None:
    first = lock_mod.RunLock(tmp_path)
    assert first.acquire() is None
    info = json.loads((tmp_path / record.LOCK_FILE).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(UserError, match=rf"is in use by another run: pid {os.getpid()} on host"):
        lock_mod.RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / record.LOCK_FILE).exists()
    with lock_mod.RunLock(tmp_path):
        assert (tmp_path / record.LOCK_FILE).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path: Path) -> None:
    pid = _dead_pid()
    (tmp_path / record.LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    lock = lock_mod.RunLock(tmp_path)
    note = lock.acquire()
    assert note is not None and f"recovered a stale lock of pid {pid}" in note
    assert json.loads((tmp_path / record.LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / record.LOCK_FILE
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(UserError, match="pid 1 on host elsewhere.example"):
        lock_mod.RunLock(tmp_path).acquire()
    old = time.time() - lock_mod.STALE_SECONDS - 5
    os.utime(path, (old, old))
    lock = lock_mod.RunLock(tmp_path)
    assert "recovered a stale lock" in lock.acquire()
    lock.release()


def test_rng_state_round_trip() -> None:
    gen = torch.Generator().manual_seed(9)
    rng_mod.seed_everything(4)
    state = rng_mod.rng_state(gen)
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    rng_mod.set_rng_state(state, gen)
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    assert first[:2] == again[:2]
    assert torch.equal(first[2], again[2]) and torch.equal(first[3], again[3])


def test_environment_records_what_reproduces_a_run() -> None:
    env = env_mod.environment(torch.device("cpu"))
    for key in (
        "python",
        "torch",
        "torchvision",
        "numpy",
        "device",
        "device_name",
        "git_commit",
        "git_dirty",
        "packages",
        "cuda",
        "cudnn",
        "threads",
    ):
        assert key in env
    assert env["torch"] == torch.__version__
    assert env["packages"]["lpips"] == "0.1.4"
    json.dumps(env)


def test_non_finite_messages_name_the_term_and_iteration() -> None:
    exc = NonFiniteError(7, _describe("wssim"), float("nan"))
    assert str(exc) == "non-finite value (nan) in loss term 'wssim' at iteration 7"
    assert _describe("grad_norm") == "the gradient of the network"
    assert _describe("d_loss") == "the discriminator loss (d_loss)"
    assert PROFILES["smoke"].log_every >= 1


# -- failures that explain themselves: out of memory, disk full ---------------------------------


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _HalfWriter:
    """A file whose ``write`` stores half the bytes, then reports a full disk."""

    def __init__(self, fh) -> None:  # noqa: ANN001
        self.fh = fh

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        _enospc()
        return 0


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_keeps_the_previous_file_whole(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "metrics.json"
    record.atomic_write_json(target, {"status": "ok", "test": {"psnr": 20.5}})
    before = target.read_bytes()
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
    else:
        monkeypatch.setattr(record_atomic, "open",
                            lambda p, m: _HalfWriter(open(p, m)), raising=False)  # noqa: SIM115
    with pytest.raises(record.WriteError) as err:
        record.atomic_write_json(target, {"status": "failed", "error": "x" * 10_000})
    assert str(err.value) == (
        f"cannot write {target}: No space left on device; check the free space and permissions "
        f"of {tmp_path}"
    )
    assert isinstance(err.value, UserError)
    assert target.read_bytes() == before  # readers still see the old, complete file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary left


SMOKE_RUN = ["run", "l1", "--profile", "smoke", "--device", "cpu", "--results"]


@pytest.mark.slow
@pytest.mark.usefixtures("planted_weights")
def test_disk_full_at_the_end_of_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real_fsync, failures = os.fsync, [1]

    def fsync(fd: int) -> None:  # the first metrics.json write finds the disk full
        if ".metrics.json.tmp-" in os.readlink(f"/proc/self/fd/{fd}") and failures[0]:
            failures[0] -= 1
            _enospc()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    capsys.readouterr()
    assert main([*SMOKE_RUN, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    expected = (
        f"cannot write {folder}/metrics.json: No space left on device; check the free space and "
        f"permissions of {folder}. Files are replaced atomically: the last complete checkpoint "
        f"is kept"
    )
    assert f"lossbench: run FAILED ({folder}): {expected}" in err and "Traceback" not in err
    m = json.loads((folder / "metrics.json").read_text())  # recorded once space was back
    assert (m["status"], m["error"]) == ("failed", expected)
    assert not list(folder.glob(".*.tmp-*")) and not (folder / record.LOCK_FILE).exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*SMOKE_RUN, str(tmp_path)]) == 0  # the same command: evaluation only
    assert f"resuming {folder} from iteration 20" in capsys.readouterr().out
    assert json.loads((folder / "metrics.json").read_text())["status"] == "ok"


def test_out_of_memory_is_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))


def test_out_of_memory_message_says_what_to_lower() -> None:
    setup = SimpleNamespace(protocol=PROFILES["paper"], device=torch.device("cuda", 0))
    assert oom_message(setup, "while training") == (
        "out of memory on cuda:0 while training with profile paper: batch 8 of 256x256 px "
        "patches, UNet width 32, evaluation resolution full. The profile fixes these sizes so "
        "that runs stay comparable: free memory on the device (other processes; fewer --jobs in "
        "a sweep), or lower them with a smaller profile: quick (batch 4 of 176x176 px, "
        "evaluation full), lite (batch 4 of 176x176 px, evaluation full), long (batch 4 of "
        "176x176 px, evaluation full), smoke (batch 4 of "
        "64x64 px, evaluation 128); numbers of different profiles are not comparable"
    )


@pytest.mark.slow
@pytest.mark.usefixtures("planted_weights")
def test_out_of_memory_while_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real, calls = UNet.forward, [0]

    def forward(self: UNet, x: torch.Tensor) -> torch.Tensor:
        calls[0] += self.training
        if calls[0] == 13 and self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x)

    monkeypatch.setattr(UNet, "forward", forward)
    capsys.readouterr()
    assert main([*SMOKE_RUN, str(tmp_path)]) == 1
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    m = json.loads((folder / "metrics.json").read_text())
    assert (m["status"], m["failed_iteration"], m["iterations"]) == ("failed", 13, 10)
    assert m["error"].startswith(
        "out of memory on cpu at iteration 13 with profile smoke: batch 4 of 64x64 px patches"
    )
    assert m["error"].endswith(
        "The last good checkpoint (iteration 10) is kept; the same command resumes"
    )
    assert f"run FAILED ({folder}): {m['error']}" in capsys.readouterr().err
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["iteration"] == 10


@pytest.mark.slow
@pytest.mark.usefixtures("planted_weights")
def test_out_of_memory_while_evaluating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def evaluate_test(*args: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(train, "evaluate_test", evaluate_test)
    assert main([*SMOKE_RUN, str(tmp_path)]) == 1
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    m = json.loads((folder / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"].startswith(
        "out of memory on cpu while evaluating the test split with profile smoke"
    )
    assert m["error"].endswith(
        "training finished (checkpoint.pt, points/): the same command only redoes the evaluation"
    )
    assert not (folder / "per_image.csv").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*SMOKE_RUN, str(tmp_path)]) == 0
    assert f"resuming {folder} from iteration 20" in capsys.readouterr().out


def test_operational_protocol_fields_stay_out_of_the_config_hash() -> None:
    from benchmark.record import OPERATIONAL_FIELDS, config_hash, hashed_part

    config = {"recipe": {"name": "l1", "losses": []}, "protocol": PROFILES["smoke"].to_dict(),
              "model": {}, "data": {}, "seed": 0}
    base = config_hash(hashed_part(config))
    for name in OPERATIONAL_FIELDS:
        changed = {**config, "protocol": {**config["protocol"], name: 999}}
        assert config_hash(hashed_part(changed)) == base, name
    for name in ("iterations", "lr", "patch", "n_val", "precision"):
        changed = {**config, "protocol": {**config["protocol"], name: 999}}
        assert config_hash(hashed_part(changed)) != base, name
