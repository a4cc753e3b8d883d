"""Gradient shares: each weighted term's gradient w.r.t. the network output, in train_log.csv.

The reference is a hand computation: for l1 and mse the gradient with respect to the prediction
is known in closed form (sign(x - y) / n and 2 (x - y) / n), so the logged norms are checked on a
tiny network against those formulas on the same batch (float32 against float64, 1e-5
relative).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.losses import build_loss
from benchmark.protocol import Protocol
from benchmark.recipes.mix import LossMix, build_mix, load_recipe, recipe_names
from benchmark.run.forward import network_input
from benchmark.run.loop import Trainer, sample_batch, to_storage

CPU = torch.device("cpu")
TINY = Protocol(
    name="tiny", width=4, depth=2, patch=16, batch=3, iterations=4, lr=1e-3, min_lr=1e-4,
    warmup=1, val_every=4, n_val=1, ckpt_every=4, log_every=2, eval_resolution=64,
    precision="fp32", channels_last=False,
)  # fmt: skip


def _data(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    rng = np.random.default_rng(seed)
    lows = [(rng.integers(0, 256, (40, 48, 3)) / 255.0).astype(np.float32) for _ in range(3)]
    highs = [np.clip(x * 2.5, 0, 1).astype(np.float32) for x in lows]
    return to_storage(lows, CPU), to_storage(highs, CPU)


def _trainer(mix: nn.Module, proto: Protocol = TINY) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())  # a tiny network
    return Trainer(proto, model, mix, CPU, torch.Generator().manual_seed(4), _data(), ([], []))


def test_logged_norms_equal_the_hand_computed_gradients() -> None:
    mix = LossMix({"l1": build_loss("l1"), "mse": build_loss("mse")}, {"l1": 1.0, "mse": 0.5})
    trainer = _trainer(mix)
    assert trainer.log_columns[-4:] == ["gradnorm_l1", "gradnorm_mse", "gradshare_l1",
                                        "gradshare_mse"]
    replay = copy.deepcopy(trainer.gen)
    row = trainer._step(1)
    assert trainer._shares is None  # iteration 1 is not logged: nothing extra computed
    sample_batch(*trainer.train_data, TINY.patch, TINY.batch, replay)  # step 1's batch
    low, high = sample_batch(*trainer.train_data, TINY.patch, TINY.batch, replay)
    with torch.no_grad():
        pred = trainer.model(network_input(low, TINY))  # the weights before step 2
    trainer._flush([(1, row)])
    trainer._flush([(2, trainer._step(2))])
    logged = trainer._log_row(2, 0.0)
    d = (pred - high).double()
    l1 = (torch.sign(d) / d.numel()).norm().item() * 1.0
    mse = (2 * d / d.numel()).norm().item() * 0.5
    assert logged["gradnorm_l1"] == pytest.approx(l1, rel=1e-5)
    assert logged["gradnorm_mse"] == pytest.approx(mse, rel=1e-5)
    assert logged["gradshare_l1"] == pytest.approx(l1 / (l1 + mse), rel=1e-5)
    assert logged["gradshare_mse"] == pytest.approx(mse / (l1 + mse), rel=1e-5)
    assert trainer._shares is None  # consumed by the log row


def test_gradient_shares_never_change_the_training_numbers() -> None:
    def train(on: bool) -> tuple[list[float], list[torch.Tensor]]:
        mix = LossMix({"l1": build_loss("l1"), "ssim": build_loss("ssim")},
                      {"l1": 1.0, "ssim": 0.2})
        trainer = _trainer(mix, dataclasses.replace(TINY, grad_shares=on))
        records = [trainer._step(it).tolist() for it in range(1, 5)]
        return records, [p.detach().clone() for p in trainer.model.parameters()]

    (rec_on, params_on), (rec_off, params_off) = train(True), train(False)
    assert rec_on == rec_off
    assert all(torch.equal(a, b) for a, b in zip(params_on, params_off, strict=True))


def test_switched_off_or_single_term_logs_no_share_columns() -> None:
    off = _trainer(build_mix(load_recipe("flw")), dataclasses.replace(TINY, grad_shares=False))
    single = _trainer(build_mix(load_recipe("l1")))
    for trainer in (off, single):
        assert not [c for c in trainer.log_columns if c.startswith(("gradnorm_", "gradshare_"))]


def test_every_multi_term_recipe_gets_share_columns(planted_weights) -> None:
    for name in recipe_names():
        recipe = load_recipe(name)
        if len(recipe.losses) < 2:
            continue
        trainer = _trainer(build_mix(recipe), dataclasses.replace(TINY, patch=176))
        labels = [spec.label for spec in recipe.losses]
        assert [c for c in trainer.log_columns if c.startswith("gradshare_")] == [
            f"gradshare_{lb}" for lb in labels
        ], name


def test_the_adversarial_term_counts_as_a_term(planted_weights) -> None:
    mix = LossMix({"l1": build_loss("l1"), "adversarial": build_loss("adversarial")},
                  {"l1": 1.0, "adversarial": 1e-3})
    trainer = _trainer(mix, dataclasses.replace(TINY, patch=32))
    trainer._flush([(1, trainer._step(1))])
    trainer._flush([(2, trainer._step(2))])
    row = trainer._log_row(2, 0.0)
    assert row["gradnorm_adversarial"] > 0
    assert row["gradshare_l1"] + row["gradshare_adversarial"] == pytest.approx(1, abs=1e-12)


def test_no_grad_shares_flag_reaches_the_run(tmp_path: Path, planted_weights) -> None:
    from benchmark.cli import main

    args = ["run", "flw", "--profile", "smoke", "--device", "cpu", "--results"]
    assert main([*args, str(tmp_path / "a"), "--no-grad-shares"]) == 0
    assert main([*args, str(tmp_path / "b")]) == 0
    heads, tests = {}, {}
    for side in ("a", "b"):
        folder = tmp_path / side / "runs" / "flw" / "smoke" / "seed0"
        heads[side] = (folder / "train_log.csv").read_text().splitlines()[0].split(",")
        heads[side + "_cfg"] = (folder / "config.yaml").read_text()
        tests[side] = json.loads((folder / "metrics.json").read_text())["test"]
    assert not [c for c in heads["a"] if c.startswith(("gradnorm_", "gradshare_"))]
    assert "gradshare_flw_color" in heads["b"]
    assert tests["a"] == tests["b"]
    assert "grad_shares: false" in heads["a_cfg"] and "grad_shares: true" in heads["b_cfg"]
    hash_line = [line for line in heads["a_cfg"].splitlines() if line.startswith("config_hash")]
    assert hash_line and hash_line[0] in heads["b_cfg"]  # operational: the same config hash


def test_the_config_key_ignores_the_operational_fields_as_the_config_hash() -> None:
    from benchmark.record import config_key as _config_key

    old = {"recipe": {"name": "flw"}, "protocol": {"lr": 1e-3, "log_every": 5}}
    new = {"recipe": {"name": "flw"}, "protocol": {"lr": 1e-3, "log_every": 10,
                                                   "grad_shares": True}}
    assert _config_key(old) == _config_key(new)  # compare groups them as one configuration
    assert _config_key(old) != _config_key({**old, "protocol": {"lr": 2e-3}})
