"""The pretrained-weights policy: cache location, download fallback, checksums, records, CLI."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import AlexNet_Weights, VGG19_Weights

from benchmark import weights
from benchmark.cli import main
from benchmark.errors import UserError


@pytest.fixture()
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh TORCH_HOME with no files, the opt-in variable unset and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(weights.ALLOW_ENV, raising=False)

    def offline(url: str, dst: Path) -> None:
        raise OSError("simulated: network is unreachable")

    monkeypatch.setattr(weights, "_download", offline)
    weights.clear_cache()
    yield tmp_path
    weights.clear_cache()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_names_and_urls_come_from_torchvision() -> None:
    assert weights.BACKBONES["vgg19"].url == VGG19_Weights.IMAGENET1K_V1.url
    assert weights.BACKBONES["vgg19"].file_name == "vgg19-dcbb9e9d.pth"
    assert weights.BACKBONES["alexnet"].file_name == "alexnet-owt-7be5be79.pth"
    assert AlexNet_Weights.IMAGENET1K_V1.url.endswith("/alexnet-owt-7be5be79.pth")
    for bb in weights.BACKBONES.values():
        # torch hub names carry the sha256 prefix; torchvision's _file_size is in MiB
        assert bb.sha256.startswith(bb.file_name.rsplit("-", 1)[1].split(".")[0])
        assert len(bb.sha256) == 64
        assert bb.size / 2**20 == pytest.approx(bb.weights.meta["_file_size"], abs=1e-3)


def test_missing_file_offline_is_a_clear_user_error(empty_home: Path) -> None:
    expected = empty_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(UserError) as err:
        weights.vgg19_features()
    text = str(err.value)
    assert f"vgg19-dcbb9e9d.pth is not at {expected}" in text
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in text
    assert "simulated: network is unreachable" in text
    assert "`python -m benchmark weights`" in text
    assert f"then copy vgg19-dcbb9e9d.pth to {expected}." in text


def test_missing_alexnet_names_its_own_file(empty_home: Path) -> None:
    with pytest.raises(UserError, match=r"alexnet-owt-7be5be79\.pth is not at .*hub/checkpoints"):
        weights.alexnet_state_dict()


def test_wrong_checksum_refused_then_accepted_with_opt_in(
    empty_home: Path, planted_weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = empty_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(planted_weights.files["vgg19"].read_bytes())
    sha = _sha(target)
    with pytest.raises(UserError) as err:
        weights.vgg19_features()
    text = str(err.value)
    assert f"{target} is not the official torchvision file vgg19-dcbb9e9d.pth" in text
    assert f"its sha256 is {sha}, expected {weights.BACKBONES['vgg19'].sha256}" in text
    assert "BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS=1" in text

    monkeypatch.setenv(weights.ALLOW_ENV, "1")
    trunk = weights.vgg19_features()
    assert isinstance(trunk, nn.Sequential) and len(trunk) == 37
    assert weights.weights_record(["vgg19"]) == {
        "vgg19": {"file": "vgg19-dcbb9e9d.pth", "sha256": sha, "official": False}
    }


def test_matching_checksum_is_official_without_opt_in(
    empty_home: Path, planted_weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pin the expected value to the planted file's hash: the policy then treats it as official
    source = planted_weights.files["alexnet"]
    target = empty_home / "hub" / "checkpoints" / source.name
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    bb = weights.BACKBONES["alexnet"]
    monkeypatch.setitem(
        weights.BACKBONES, "alexnet", weights.Backbone(bb.name, bb.weights, _sha(target), bb.size)
    )
    state = weights.alexnet_state_dict()
    assert sorted(state) == sorted(torch.load(source, weights_only=True))
    assert weights.weights_record(["alexnet"])["alexnet"]["official"] is True


def test_missing_file_is_downloaded_to_the_hub_cache(
    empty_home: Path, planted_weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_download(url: str, dst: Path) -> None:
        calls.append((url, Path(dst)))
        Path(dst).write_bytes(planted_weights.files["alexnet"].read_bytes())

    monkeypatch.setattr(weights, "_download", fake_download)
    monkeypatch.setenv(weights.ALLOW_ENV, "1")
    target = empty_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    # the fake "download" does not hash to the official value: treated as corrupt, deleted
    with pytest.raises(UserError, match=r"the download of .*alexnet-owt-7be5be79\.pth is corrupt"):
        weights.alexnet_state_dict()
    assert calls == [(AlexNet_Weights.IMAGENET1K_V1.url, target)]
    assert not target.exists()
    bb = weights.BACKBONES["alexnet"]
    official = _sha(planted_weights.files["alexnet"])
    monkeypatch.setitem(
        weights.BACKBONES, "alexnet", weights.Backbone(bb.name, bb.weights, official, bb.size)
    )
    weights.alexnet_state_dict()
    assert target.is_file() and len(calls) == 2


def test_planted_fixture_loads_through_the_real_code(planted_weights) -> None:
    trunk = weights.vgg19_features("cpu")
    planted = torch.load(planted_weights.files["vgg19"], weights_only=True)
    assert len(trunk) == 37 and not trunk.training
    assert all(not p.requires_grad for p in trunk.parameters())
    assert all(not m.inplace for m in trunk if isinstance(m, nn.ReLU))
    torch.testing.assert_close(trunk[34].weight, planted["features.34.weight"], rtol=0, atol=0)
    assert weights.vgg19_features(torch.device("cpu")) is trunk  # one trunk per process+device
    record = weights.weights_record(["vgg19", "alexnet"])
    assert record["vgg19"]["sha256"] == _sha(planted_weights.files["vgg19"])
    assert record["alexnet"]["sha256"] == _sha(planted_weights.files["alexnet"])
    assert {r["official"] for r in record.values()} == {False}


def test_features_only_files_must_fit_the_architecture(
    empty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(weights.ALLOW_ENV, "1")
    target = empty_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, target)
    with pytest.raises(UserError, match=r"holds no 'features\.\*' tensors, so it is not vgg19"):
        weights.vgg19_features()
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, target)
    with pytest.raises(UserError, match=r"do not fit torchvision's vgg19 \(features\.0\.bias"):
        weights.vgg19_features()


def test_weights_record_rejects_unknown_names(planted_weights) -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet' \(known: vgg19, alexnet\)"):
        weights.weights_record(["resnet"])


def test_command_check_reports_without_downloading(
    empty_home: Path, planted_weights, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = empty_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "alexnet-owt-7be5be79.pth").write_bytes(
        planted_weights.files["alexnet"].read_bytes()
    )
    assert weights.command_weights(argparse.Namespace(check=True)) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split() == ["backbone", "file", "path", "sha256", "official"]
    assert lines[1].split() == [
        "vgg19",
        "vgg19-dcbb9e9d.pth",
        str(checkpoints / "vgg19-dcbb9e9d.pth"),
        "-",
        "missing",
    ]
    alex = planted_weights.files["alexnet"]
    assert lines[2].split() == [
        "alexnet",
        alex.name,
        str(checkpoints / alex.name),
        _sha(alex),
        "NO",
    ]
    assert "missing or not official" in out.err


def test_cli_weights_offline_exits_2_with_instructions(
    empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lossbench: downloading https://download.pytorch.org/models/vgg19-")
    assert "\nlossbench: error: pretrained weights for vgg19 are missing" in err
    assert "Traceback" not in err


def test_a_run_names_every_missing_file_and_the_offline_way(empty_home: Path,
                                                            tmp_path: Path, capsys) -> None:
    """s3net (VGG19) with LPIPS (AlexNet), offline and with neither file: one message names
    both, and says how to run a backbone-free recipe offline."""
    checkpoints = empty_home / "hub" / "checkpoints"
    code = main(["run", "s3net", "--profile", "smoke", "--device", "cpu", "--results",
                 str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert ("pretrained weights are missing: alexnet-owt-7be5be79.pth (alexnet) and "
            f"vgg19-dcbb9e9d.pth (vgg19) are not in {checkpoints}") in err
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in err
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in err
    assert "simulated: network is unreachable" in err
    assert "`--metrics psnr,ssim`" in err
    assert not (tmp_path / "results").exists()
    # one file missing: its own message, with the same hint
    code = main(["run", "l1", "--profile", "smoke", "--device", "cpu", "--results",
                 str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"alexnet-owt-7be5be79.pth is not at {checkpoints / 'alexnet-owt-7be5be79.pth'}" in err
    assert "vgg19" not in err and "`--metrics psnr,ssim`" in err


def test_a_torchvision_built_for_another_torch_is_a_clear_error(tmp_path: Path) -> None:
    """What torchvision raises at import when its operators were compiled for another torch
    (a CPU-only torch beside a CUDA torchvision): exit 2 with what to install, no traceback."""
    import subprocess
    import sys

    fake = tmp_path / "shadow" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n')
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{fake.parent}:{root}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "benchmark", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("lossbench: error: torchvision ")
    assert "does not match torch" in done.stderr
    assert "'operator torchvision::nms does not exist'" in done.stderr
    assert "pip install" in done.stderr and "requirements.lock" in done.stderr
