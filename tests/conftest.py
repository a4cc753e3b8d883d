"""Shared fixtures.

``planted_weights``: a temporary TORCH_HOME whose ``hub/checkpoints`` holds deterministic
random-init VGG19 and AlexNet weights under the official torchvision file names, with
``BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS=1``, so the real loading code of ``benchmark.weights`` is what
the tests run (the files are recorded as ``"official": false``). The files hold only the
``features.*`` tensors (the only keys ``benchmark.weights`` reads): about 80 MB for VGG19 and
10 MB for AlexNet instead of 548 MB and 233 MB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import alexnet, vgg19

from benchmark import weights

PLANT_SEED = 1234


@dataclass(frozen=True)
class PlantedWeights:
    torch_home: Path
    checkpoints: Path
    files: dict[str, Path]  # backbone name -> planted file


def random_features_state_dict(features: nn.Sequential, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic He-normal conv weights and small random biases, keyed ``features.*``."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for index, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            w_shape = tuple(module.weight.shape)
            fan_in = w_shape[1] * w_shape[2] * w_shape[3]
            weight = torch.randn(w_shape, generator=gen) * math.sqrt(2.0 / fan_in)
            bias = torch.randn(w_shape[0], generator=gen) * 0.05
            state[f"features.{index}.weight"] = weight
            state[f"features.{index}.bias"] = bias
    return state


def plant(checkpoints: Path, seed: int = PLANT_SEED) -> dict[str, Path]:
    """Write the planted files into ``checkpoints``; return their paths by backbone name."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    files = {}
    with torch.device("meta"):
        trunks = {"vgg19": vgg19(weights=None).features, "alexnet": alexnet(weights=None).features}
    for offset, (name, trunk) in enumerate(trunks.items()):
        path = checkpoints / weights.BACKBONES[name].file_name
        torch.save(random_features_state_dict(trunk, seed + offset), path)
        files[name] = path
    return files


@pytest.fixture(scope="session")
def planted_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedWeights]:
    """Random-init backbones under the official names in a temporary TORCH_HOME (session-wide)."""
    torch_home = tmp_path_factory.mktemp("torch_home")
    checkpoints = torch_home / "hub" / "checkpoints"
    files = plant(checkpoints)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        mp.setenv(weights.ALLOW_ENV, "1")
        weights.clear_cache()
        yield PlantedWeights(torch_home, checkpoints, files)
    weights.clear_cache()
