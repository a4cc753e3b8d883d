"""``sweep --jobs auto`` (benchmark/run/capacity.py), with a mocked GPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark.cli import build_parser
from benchmark.model import UNet, count_parameters
from benchmark.protocol import PROFILES
from benchmark.run import capacity
from benchmark.sweep import RunKey

GIB = 2**30
LITE = dataclasses.replace(PROFILES["lite"], precision="bf16")
PAPER = dataclasses.replace(PROFILES["paper"], precision="bf16")


def _mock_gpus(monkeypatch: pytest.MonkeyPatch, free: list[int], cores: int = 16) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(free))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (free[i], 141 * GIB))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(capacity.os, "cpu_count", lambda: cores)


def test_saved_activation_count_matches_a_hand_count() -> None:
    """The meta-device count of what autograd saves, on a net small enough to count by hand:
    conv (saves its input, 3x8x8) -> relu (saves its output, 4x8x8) -> conv (saves its input,
    4x8x8), float32, batch 2."""
    net = lambda: torch.nn.Sequential(  # noqa: E731
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))
    got = capacity._saved_bytes(net, (2, 3, 8, 8), torch.float32)
    # the weights are saved too (conv backward needs them): 4*3*3*3 and 1*4*1*1
    inputs = 2 * (3 + 4 + 4) * 64 * 4
    weights = (4 * 3 * 3 * 3 + 4) * 4
    assert got == inputs + weights


def test_run_memory_grows_with_the_profile_data_and_backbone() -> None:
    pixels = 485 * 600 * 400
    lite, paper = capacity.run_memory_bytes(LITE, pixels), capacity.run_memory_bytes(PAPER, pixels)
    assert capacity.CONTEXT_BYTES + 6 * pixels < lite < paper
    params = count_parameters(UNet(PAPER.width, PAPER.depth))
    assert paper - capacity.CONTEXT_BYTES - 6 * pixels > 16 * params  # + the activations
    assert capacity.run_memory_bytes(LITE, pixels, backbone=True) > lite + 80 * 2**20
    assert capacity.run_memory_bytes(LITE, 2 * pixels) - lite == 6 * pixels


@pytest.mark.parametrize(
    ("free_gib", "cores", "runs", "jobs", "bound"),
    [
        (140, 16, 45, 16, "CPU cores"),
        (8, 16, 45, 3, "1 GPU memory"),
        (140, 64, 45, 32, "the cap"),
        (140, 16, 4, 4, "runs to do"),
        (0.5, 16, 45, 1, "1 GPU memory"),  # never 0: one run still tries (and says OOM)
    ],
)
def test_auto_jobs_on_a_mocked_gpu(monkeypatch: pytest.MonkeyPatch, free_gib: float,
                                   cores: int, runs: int, jobs: int, bound: str) -> None:
    _mock_gpus(monkeypatch, [int(free_gib * GIB)], cores)
    per_run = capacity.run_memory_bytes(LITE, 485 * 600 * 400)
    if bound == "1 GPU memory" and free_gib >= 1:
        assert jobs == int(free_gib * GIB * (1 - capacity.HEADROOM)) // per_run
    got, line = capacity.choose_jobs(LITE, runs, 485 * 600 * 400, False)
    assert got == jobs
    assert line.startswith(f"--jobs auto -> {jobs} (bounded by the {bound}")


def test_two_gpus_add_their_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_gpus(monkeypatch, [4 * GIB, 4 * GIB], cores=64)
    one, _ = capacity.choose_jobs(PAPER, 100, 0, True, cuda=True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    single, _ = capacity.choose_jobs(PAPER, 100, 0, True, cuda=True)
    assert one >= 2 * single - 1 and single >= 1


def test_sweep_jobs_reads_the_profile_recipes_and_data(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_gpus(monkeypatch, [6 * GIB], cores=16)
    todo = [RunKey("l1", "lite", s) for s in range(8)]
    plain, line = capacity.sweep_jobs(todo, data=None, precision="bf16")
    with_vgg, _ = capacity.sweep_jobs([*todo, RunKey("s3net", "lite", 0)], None, "bf16")
    assert 1 <= with_vgg < plain <= 8 and "runs to do: 8" in line


def test_cli_accepts_jobs_auto_and_numbers_only() -> None:
    parser = build_parser()
    assert parser.parse_args(["sweep", "l1", "--jobs", "auto"]).jobs == "auto"
    assert parser.parse_args(["sweep", "l1", "--jobs", "3"]).jobs == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "l1", "--jobs", "many"])
