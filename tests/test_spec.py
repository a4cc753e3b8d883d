"""The typed run specification and the checkpoint seam.

The ``run`` and ``sweep`` handlers turn their flags into a :class:`RunSpec` / ``SweepOptions``
and nothing below them takes an argparse namespace; the trainer owns its whole state (RNG and
crop stream included) and writes its checkpoints through one object.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmark.cli import build_parser
from benchmark.model import UNet
from benchmark.protocol import PROFILES
from benchmark.recipes import build_mix, load_recipe
from benchmark.run.checkpoint import Checkpoint
from benchmark.run.command import spec_from_args
from benchmark.run.loop import Trainer
from benchmark.run.spec import RunOptions, RunSpec
from benchmark.sweep_options import SweepOptions

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"


def test_run_flags_become_the_spec() -> None:
    args = build_parser().parse_args(
        ["run", "l1", "--profile", "smoke", "--seed", "3", "--data", "d", "--results", "r",
         "--device", "cpu", "--precision", "fp32", "--deterministic", "off", "--tf32", "off",
         "--compile", "--cuda-graphs", "--metrics", "psnr,ssim", "--no-grad-shares", "--force"])
    assert spec_from_args(args) == RunSpec(
        "l1", "smoke", 3, "d", "r",
        RunOptions(device="cpu", precision="fp32", tf32=False, deterministic=False,
                   compile=True, cuda_graphs=True, metrics=("psnr", "ssim"), grad_shares=False,
                   force=True))
    plain = spec_from_args(build_parser().parse_args(["run", "l1"]))
    assert plain == RunSpec("l1", "auto", 0, None, "results",
                            RunOptions(metrics=("psnr", "ssim", "lpips")))


def test_sweep_flags_become_the_options() -> None:
    args = build_parser().parse_args(
        ["sweep", "l1", "mse", "--seeds", "0", "2", "--profile", "smoke", "--executor", "slurm",
         "--mem-gb", "64", "--partition", "gpu", "--ckpt-minutes", "2.5", "--metrics",
         "psnr,ssim", "--grid", "l1.weight=1,2"])
    opts = SweepOptions.from_mapping(vars(args))
    assert (opts.recipes, opts.seeds, opts.profile, opts.executor) == (
        ("l1", "mse"), (0, 2), "smoke", "slurm")
    assert (opts.metrics, opts.grid, opts.ckpt_minutes) == (("psnr", "ssim"),
                                                            ("l1.weight=1,2",), 2.5)
    flags = opts.slurm_flags()
    assert flags["mem_gb"] == 64 and flags["partition"] == "gpu" and flags["time_min"] is None


def test_no_function_below_the_handlers_takes_a_namespace() -> None:
    """Only ``command_*`` handlers (and the adapter that reads the ``run`` flags) take one."""
    allowed = {"spec_from_args", "_test", "build_parser", "main"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs]
            takes = any(a is not None and "Namespace" in ast.unparse(a) for a in annotations)
            if takes and not (node.name.startswith("command_") or node.name in allowed):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {node.name}")
    assert not offenders, offenders


def _trainer(crop_seed: int) -> Trainer:
    torch.manual_seed(0)
    proto = replace(PROFILES["smoke"], iterations=4, val_every=100, ckpt_every=2, log_every=2,
                    precision="fp32", patch=32, ema_decay=0.9)
    gen = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, 48, 48, generator=gen) for _ in range(4)]
    low = [x * 0.2 for x in imgs]
    return Trainer(proto, UNet(4, 2), build_mix(load_recipe("l1")), torch.device("cpu"),
                   torch.Generator().manual_seed(crop_seed), (low, imgs), (low[:1], imgs[:1]))


def test_trainer_checkpoints_itself_and_resumes_bit_identically(tmp_path: Path) -> None:
    """``run_steps`` writes ``checkpoint.pt`` when it decides to; a fresh trainer with another
    crop seed restores everything from it (crop stream, RNG, EMA, optimiser) and ends on the
    same weights as the uninterrupted one."""
    whole = _trainer(crop_seed=7)
    whole.run_steps(lambda row: None, lambda it: None, lambda it: None, lambda: None)

    first = _trainer(crop_seed=7)
    first.checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "abc")
    written = []

    class StopHereError(Exception):
        pass

    def stop_at_2(it: int) -> None:
        written.append(it)
        raise StopHereError

    with pytest.raises(StopHereError):
        first.run_steps(lambda row: None, stop_at_2, lambda it: None, lambda: None)
    assert written == [2] and first.checkpoint.last_seconds > 0
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["config_hash"] == "abc" and saved["iteration"] == 2
    assert "crop" in saved["rng"] and saved["ema"] is not None

    resumed = _trainer(crop_seed=99)  # another crop stream: the checkpoint must replace it
    assert Checkpoint(tmp_path / "checkpoint.pt", "abc").restore(resumed)
    assert torch.equal(resumed.gen.get_state(), first.gen.get_state())
    resumed.run_steps(lambda row: None, lambda it: None, lambda it: None, lambda: None)
    for (name, a), b in zip(whole.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(whole.ema.parameters(), resumed.ema.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path: Path) -> None:
    from benchmark.errors import UserError

    trainer = _trainer(crop_seed=7)
    Checkpoint(tmp_path / "checkpoint.pt", "abc").save(trainer)
    with pytest.raises(UserError, match="checkpoint.pt belongs to another configuration; "
                                        "delete it to start over"):
        Checkpoint(tmp_path / "checkpoint.pt", "def").restore(trainer)
    assert not Checkpoint(tmp_path / "missing.pt", "abc").restore(trainer)
