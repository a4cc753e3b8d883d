"""Building blocks of a run: crops, storage, atomic writes, config hash, lock, RNG states."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import runstate as rs
from benchmark.errors import UserError
from benchmark.evaluation import as_float, fit_resolution
from benchmark.protocol import PROFILES
from benchmark.trainloop import (
    NonFiniteError,
    _describe,
    sample_batch,
    to_storage,
)


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
    rs.atomic_write_json(target, {"a": 1})
    rs.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_write_to_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "metrics.json"
    with pytest.raises(UserError, match=r"cannot write .*gone/metrics.json: .*free space and perm"):
        rs.atomic_write_text(target, "x")


def test_nan_is_refused_in_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        rs.atomic_write_json(tmp_path / "m.json", {"psnr": float("nan")})
    assert not (tmp_path / "m.json").exists()


def test_config_hash_is_canonical() -> None:
    a = {"recipe": {"name": "l1", "losses": [1, 2]}, "seed": 0}
    b = {"seed": 0, "recipe": {"losses": [1, 2], "name": "l1"}}
    assert rs.config_hash(a) == rs.config_hash(b)
    assert rs.config_hash(a) != rs.config_hash({**a, "seed": 1})
    assert len(rs.config_hash(a)) == 64


def test_diff_configs_names_the_changed_fields() -> None:
    old = {"protocol": {"iterations": 20, "lr": 1e-3}, "recipe": {"losses": [{"weight": 1.0}]}}
    new = {"protocol": {"iterations": 30, "lr": 1e-3}, "recipe": {"losses": [{"weight": 2.0}]}}
    assert rs.diff_configs(old, new) == [
        "protocol.iterations: 20 -> 30",
        "recipe.losses[0].weight: 1.0 -> 2.0",
    ]


def test_lock_refuses_a_second_owner(tmp_path: Path) -> None:
    first = rs.RunLock(tmp_path)
    assert first.acquire() is None
    info = json.loads((tmp_path / rs.LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(UserError, match=rf"is in use by another run: pid {os.getpid()} on host"):
        rs.RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / rs.LOCK_NAME).exists()
    with rs.RunLock(tmp_path):
        assert (tmp_path / rs.LOCK_NAME).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path: Path) -> None:
    pid = _dead_pid()
    (tmp_path / rs.LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    lock = rs.RunLock(tmp_path)
    note = lock.acquire()
    assert note is not None and f"recovered a stale lock of pid {pid}" in note
    assert json.loads((tmp_path / rs.LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / rs.LOCK_NAME
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(UserError, match="pid 1 on host elsewhere.example"):
        rs.RunLock(tmp_path).acquire()
    old = time.time() - rs.STALE_SECONDS - 5
    os.utime(path, (old, old))
    lock = rs.RunLock(tmp_path)
    assert "recovered a stale lock" in lock.acquire()
    lock.release()


def test_rng_state_round_trip() -> None:
    gen = torch.Generator().manual_seed(9)
    rs.seed_everything(4)
    state = rs.rng_state(gen)
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    rs.set_rng_state(state, gen)
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    assert first[:2] == again[:2]
    assert torch.equal(first[2], again[2]) and torch.equal(first[3], again[3])


def test_environment_records_what_reproduces_a_run() -> None:
    env = rs.environment(torch.device("cpu"))
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
