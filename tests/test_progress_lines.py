"""Training progress without a terminal: a line per log interval (a log file or a pipe used to
get nothing until the final table, as tqdm turns itself off there), and nothing when quiet."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from benchmark.protocol import PROFILES
from benchmark.run.execute import run
from benchmark.run.spec import RunOptions, RunSpec

pytestmark = pytest.mark.slow  # two short training runs

SHORT = dataclasses.replace(PROFILES["smoke"], iterations=10, val_every=10, ckpt_every=10)


def test_a_line_per_log_interval_when_stdout_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run(RunSpec("charbonnier", SHORT, 0, results=tmp_path / "a",
                options=RunOptions(device="cpu", metrics=("psnr", "ssim"))))
    out = capsys.readouterr().out  # captured: not a terminal
    lines = re.findall(r"^charbonnier smoke seed0: iteration (\d+)/10 total (\S+) "
                       r"charbonnier (\S+) lr (\S+) \(\d+ s\)$", out, re.M)
    assert [int(it) for it, *_ in lines] == [5, 10], out
    for _, total, term, lr in lines:
        assert float(total) == pytest.approx(float(term), rel=1e-3)  # one term of weight 1
        assert 0 < float(lr) <= SHORT.lr
    run(RunSpec("charbonnier", SHORT, 0, results=tmp_path / "b",
                options=RunOptions(device="cpu", metrics=("psnr", "ssim"))), quiet=True)
    assert "iteration" not in capsys.readouterr().out
