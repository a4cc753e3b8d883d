"""A user's own loss in a recipe: import, contract check, hashing, end to end; every refusal is
exit 2 with a message naming the recipe file and key, never a traceback."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.recipes.mix import build_mix, check_recipe_for_protocol, load_recipe
from benchmark.record import config_hash, hashed_part

LOSS_FILE = '''
import torch
from torch import nn


class Amplitude(nn.Module):
    """Mean |(|F(x)| - |F(y)|)| of the orthonormal 2-D FFT, times alpha."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, pred, target, *, low=None):
        fp, ft = torch.fft.rfft2(pred, norm="ortho"), torch.fft.rfft2(target, norm="ortho")
        return self.alpha * (fp.abs() - ft.abs()).abs().mean()


class NoLow(nn.Module):
    def forward(self, pred, target):
        return (pred - target).abs().mean()


class Nan(nn.Module):
    def forward(self, pred, target, *, low=None):
        return (pred - target).abs().mean() * float("nan")


class Detached(nn.Module):
    def forward(self, pred, target, *, low=None):
        return (pred.detach() - target).abs().mean()


class Flat(nn.Module):
    def forward(self, pred, target, *, low=None):
        return pred.sum() * 0.0


class Vector(nn.Module):
    def forward(self, pred, target, *, low=None):
        return (pred - target).abs().mean(dim=(1, 2, 3))


class PrefersWrong(nn.Module):
    def forward(self, pred, target, *, low=None):
        return -(pred - target).abs().mean()


class Crashes(nn.Module):
    def forward(self, pred, target, *, low=None):
        return pred.view(-1, 7).mean()


class NeedsParam(nn.Module):
    def __init__(self, scale):
        super().__init__()
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale

    def forward(self, pred, target, *, low=None):
        return self.scale * (pred - target).abs().mean()


class NotALoss:
    pass
'''


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "my_losses.py").write_text(LOSS_FILE)
    return tmp_path


def _recipe(folder: Path, name: str, entries: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nlosses:\n" + textwrap.indent(entries.strip(), "  ") + "\n")
    return path


def _refusal(path: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> str:
    code = main(["run", str(path), "--profile", "smoke", "--device", "cpu", "--results",
                 str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert not (tmp_path / "results" / "runs").exists()  # nothing written for a refused run
    return err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: missing.py:Amplitude, weight: 1}",
         "losses[0].name: loss file {d}/missing.py does not exist (a relative path is taken "
         "from the recipe's folder, {d})"),
        ("{name: my_losses.py:Nope, weight: 1}",
         "losses[0].name: {d}/my_losses.py has no class 'Nope' (its nn.Module classes: "
         "Amplitude, Crashes, Detached, Flat, Nan, NeedsParam, NoLow, PrefersWrong, Vector)"),
        ("{name: my_losses.py:NotALoss, weight: 1}",
         "losses[0].name: {d}/my_losses.py: 'NotALoss' is not a torch.nn.Module subclass"),
        ("{name: broken.py:X, weight: 1}",
         "losses[0].name: importing {d}/broken.py failed: SyntaxError at line 2:"),
        ("{name: raising.py:X, weight: 1}",
         "losses[0].name: importing {d}/raising.py failed: ModuleNotFoundError: No module "
         "named 'not_a_module_here'"),
        ("{name: no_such_pkg_xyz.mod:X, weight: 1}",
         "losses[0].name: importing module no_such_pkg_xyz.mod failed: ModuleNotFoundError"),
        ("{name: my_losses.py:Amplitude, weight: 1, params: {alpah: 2}}",
         "losses[0].params.alpah: loss 'my_losses.py:Amplitude' has no parameter 'alpah'; "
         "did you mean 'alpha'? (it takes: alpha)"),
        ("{name: my_losses.py:NeedsParam, weight: 1, params: {scale: -1}}",
         "losses[0].params.scale: constructing my_losses.py:NeedsParam from its params failed: "
         "ValueError: scale must be > 0"),
        ("{name: my_losses.py:NoLow, weight: 1}",
         "losses[0].name: the custom loss my_losses.py:NoLow breaks the loss contract: "
         "forward(pred, target) does not match forward(pred, target, *, low=None)"),
        ("{name: my_losses.py:Nan, weight: 1}",
         "breaks the loss contract: it returns nan on a random batch"),
        ("{name: my_losses.py:Detached, weight: 1}",
         "breaks the loss contract: its value on a random batch does not depend on pred (no "
         "gradient)"),
        ("{name: my_losses.py:Flat, weight: 1}",
         "breaks the loss contract: it gives a zero gradient with respect to pred on a random "
         "batch"),
        ("{name: my_losses.py:Vector, weight: 1}",
         "breaks the loss contract: it returns a tensor of shape (2,) on a random batch; a loss "
         "returns a scalar"),
        ("{name: my_losses.py:PrefersWrong, weight: 1}",
         "breaks the loss contract: a perfect prediction scores -0, more than a random one"),
        ("{name: my_losses.py:Crashes, weight: 1}",
         "breaks the loss contract: calling it on a random batch (float32 NCHW (2, 3, 64, 64), "
         "in [0, 1]) raised RuntimeError: shape '[-1, 7]' is invalid"),
    ],
)
def test_a_broken_custom_loss_is_refused_naming_file_and_key(
    folder: Path, entry: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    (folder / "broken.py").write_text("import torch\ndef (:\n")
    (folder / "raising.py").write_text("import not_a_module_here\n")
    path = _recipe(folder, "bad", "- " + entry)
    err = _refusal(path, capsys, folder)
    assert err.startswith(f"lossbench: error: {path}: losses[0]")
    assert message.format(d=folder) in err


def test_a_custom_loss_checks_out_and_records_its_source_hash(folder: Path) -> None:
    path = _recipe(folder, "mine", """
- {name: l1, weight: 1.0}
- {name: my_losses.py:Amplitude, weight: 0.5, params: {alpha: 2.0}}
""")
    recipe = load_recipe(str(path))
    assert [s.label for s in recipe.losses] == ["l1", "Amplitude"]
    mix = build_mix(recipe)
    check_recipe_for_protocol(recipe, mix, 64)
    entry = recipe.to_dict()["losses"][1]
    import hashlib

    digest = hashlib.sha256((folder / "my_losses.py").read_bytes()).hexdigest()
    assert entry == {"name": "my_losses.py:Amplitude", "label": "Amplitude", "weight": 0.5,
                     "params": {"alpha": 2.0}, "custom": {"sha256": digest}}
    # the value is the one the class computes, through the mix
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)
    ref = 2.0 * (torch.fft.rfft2(x, norm="ortho").abs()
                 - torch.fft.rfft2(y, norm="ortho").abs()).abs().mean()
    assert torch.equal(mix(x, y)[1]["Amplitude"], ref)

    def digest_of(recipe_path: Path) -> str:
        config = {"recipe": load_recipe(str(recipe_path)).to_dict(), "seed": 0}
        return config_hash(hashed_part(config))

    before = digest_of(path)
    (folder / "my_losses.py").write_text(LOSS_FILE + "\n# edited\n")
    assert digest_of(path) != before  # an edited loss file is a new configuration


def test_builtin_recipes_carry_no_custom_field() -> None:
    for name in ("l1", "s3net", "gt_mean_l1"):
        assert all("custom" not in e for e in load_recipe(name).to_dict()["losses"])


def test_a_module_loss_records_its_file_hash(folder: Path, monkeypatch) -> None:
    pkg = folder / "userpkg_lb"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '0.3'\n")
    (pkg / "losses.py").write_text(LOSS_FILE)
    monkeypatch.syspath_prepend(str(folder))
    path = _recipe(folder, "mod", "- {name: userpkg_lb.losses:Amplitude, weight: 1}")
    entry = load_recipe(str(path)).to_dict()["losses"][0]
    assert entry["custom"]["version"] == "0.3"
    assert len(entry["custom"]["sha256"]) == 64
    sys.modules.pop("userpkg_lb.losses", None)
    sys.modules.pop("userpkg_lb", None)


def test_contract_errors_are_user_errors_even_in_code(folder: Path) -> None:
    path = _recipe(folder, "nan", "- {name: my_losses.py:Nan, weight: 1}")
    recipe = load_recipe(str(path))
    with pytest.raises(UserError, match=r"losses\[0\]\.name: the custom loss"):
        check_recipe_for_protocol(recipe, build_mix(recipe), 32)


@pytest.mark.slow
def test_custom_loss_recipe_runs_end_to_end_and_appears_in_compare(
    folder: Path, planted_weights, capsys: pytest.CaptureFixture
) -> None:
    path = _recipe(folder, "mine", """
- {name: l1, weight: 1.0}
- {name: my_losses.py:Amplitude, weight: 0.5}
""")
    results = folder / "results"
    common = ["--profile", "smoke", "--device", "cpu", "--results", str(results)]
    assert main(["run", str(path), *common]) == 0
    assert main(["run", "l1", *common]) == 0
    run = results / "runs" / "mine" / "smoke" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    header = (run / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"Amplitude", "gradshare_Amplitude", "gradshare_l1"} <= set(header)
    capsys.readouterr()
    assert main(["compare", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and "l1" in out
    assert main(["report", "--results", str(results)]) == 0
    report = (results / "report.md").read_text()
    assert "| my_losses.py:Amplitude (custom: sha256 `" in report
