"""Losing little work to preemption: time-based checkpoints and a checkpoint on request.

Both resume bit-identically: the final metrics, per-image values and logs equal those of an
uninterrupted run (l1, smoke profile, CPU).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmark.protocol import PROFILES
from benchmark.record import OPERATIONAL_FIELDS
from benchmark.run import execute as train
from benchmark.run.loop import StopRequested
from benchmark.run.spec import RunOptions, RunSpec

pytestmark = pytest.mark.usefixtures("planted_weights")

SMOKE = PROFILES["smoke"]


class _Interrupt(KeyboardInterrupt):
    """A kill right after a checkpoint was written."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, planted_weights) -> Path:
    """An uninterrupted l1 smoke run; its folder."""
    results = tmp_path_factory.mktemp("reference")
    train.run(RunSpec("l1", "smoke", 0, None, results,
                      options=RunOptions(device="cpu")), quiet=True)
    return results / "runs" / "l1" / "smoke" / "seed0"


def _same_as(folder: Path, ref: Path) -> None:
    for name in ("per_image.csv", "val_log.csv"):
        assert (folder / name).read_text() == (ref / name).read_text(), name
    strip = [line.rsplit(",", 1)[0] for line in (ref / "train_log.csv").read_text().splitlines()]
    got = [line.rsplit(",", 1)[0] for line in (folder / "train_log.csv").read_text().splitlines()]
    assert got == strip  # every column but the wall-clock seconds


def test_ckpt_minutes_is_operational_and_validated() -> None:
    assert "ckpt_minutes" in OPERATIONAL_FIELDS  # finished runs stay valid when it changes
    assert SMOKE.ckpt_minutes == 10.0
    with pytest.raises(ValueError, match="ckpt_minutes must be >= 0"):
        replace(SMOKE, ckpt_minutes=-1)


def test_time_based_checkpoint_then_resume_is_bit_identical(reference: Path, tmp_path: Path):
    # iterations never reach ckpt_every: every checkpoint but the last is time-triggered
    timed = replace(SMOKE, ckpt_every=1000, ckpt_minutes=1e-9)
    seen: list[int] = []

    def kill_at_7(it: int) -> None:
        seen.append(it)
        if it == 7:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train.run(RunSpec("l1", timed, 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True, on_checkpoint=kill_at_7)
    assert seen == list(range(1, 8))  # one checkpoint per step: the interval is that short
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["iteration"] == 7
    resumed = train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                                options=RunOptions(device="cpu")), quiet=True)
    ref = train.run(RunSpec("l1", "smoke", 0, None, reference.parents[3],
                            options=RunOptions(device="cpu")), quiet=True)  # cached
    assert resumed["test"] == ref["test"]  # exact
    assert resumed["config_hash"] == ref["config_hash"]  # ckpt settings are not hashed
    _same_as(folder, reference)


def test_without_time_checkpoints_only_the_iteration_cadence_counts(tmp_path: Path):
    seen: list[int] = []
    proto = replace(SMOKE, ckpt_every=1000, ckpt_minutes=0, iterations=6)
    train.run(RunSpec("l1", proto, 0, None, tmp_path,
                      options=RunOptions(device="cpu")), quiet=True, on_checkpoint=seen.append)
    assert seen == [6]  # the end only


def test_stop_request_checkpoints_stops_and_resumes_bit_identically(
    reference: Path, tmp_path: Path
):
    polls: list[int] = []

    def stop() -> bool:  # a scheduler signal that arrives during the 5th step
        polls.append(1)
        return len(polls) >= 5

    with pytest.raises(StopRequested, match="checkpointing iteration 5"):
        train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                          options=RunOptions(device="cpu")), quiet=True, stop=stop)
    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    assert not (folder / "metrics.json").exists()  # not a failed run: no record of one
    assert not (folder / "run.lock").exists()  # the lock is released
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["iteration"] == 5
    resumed = train.run(RunSpec("l1", "smoke", 0, None, tmp_path,
                                options=RunOptions(device="cpu")), quiet=True)
    assert resumed["status"] == "ok" and resumed["checkpoint_seconds"] > 0
    ref = train.run(RunSpec("l1", "smoke", 0, None, reference.parents[3],
                            options=RunOptions(device="cpu")), quiet=True)
    assert resumed["test"] == ref["test"]
    _same_as(folder, reference)
