"""Weight sweeps: grid expressions, derived recipe names and files, and a 2 x 2 smoke sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.recipes.grid import derive, parse_expression
from benchmark.recipes.mix import load_recipe


def _pair(folder: Path) -> Path:
    path = folder / "pair.yaml"
    path.write_text("name: pair\ndescription: l1 plus mse\nlosses:\n"
                    "  - {name: l1, weight: 1.0}\n  - {name: mse, weight: 1.0}\n")
    return path


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("losses[1]weight=1", "--grid 'losses[1]weight=1': expected TERM.weight=V1,V2,..."),
        ("losses[1].weight=0.1,x", "--grid 'losses[1].weight=0.1,x': 'x' is not a number"),
        ("losses[1].weight=-1", "--grid 'losses[1].weight=-1': a weight must be >= 0, got -1"),
        ("losses[1].weight=nan", "--grid 'losses[1].weight=nan': nan is not a finite number"),
        ("losses[1].weight=1,1.0", "--grid 'losses[1].weight=1,1.0': a value is listed twice"),
        ("losses[1].lr=1", "--grid 'losses[1].lr=1': expected TERM.weight=V1,V2,..."),
    ],
)
def test_bad_expressions_name_the_expression(expr: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_expression(expr)
    assert str(info.value).startswith(message)


def test_terms_are_addressed_by_index_name_or_label_to_the_same_name(tmp_path: Path) -> None:
    s3net = [p.name for p in derive("s3net", ["perceptual.weight=0.10,1e1"], tmp_path)]
    again = [p.name for p in derive("s3net", ["losses[2].weight=1e-1,10"], tmp_path)]
    assert s3net == again == ["s3net@losses[2].weight=0.1.yaml", "s3net@losses[2].weight=10.yaml"]
    recipe = load_recipe(str(tmp_path / s3net[0]))
    assert recipe.name == "s3net@losses[2].weight=0.1"
    assert [s.weight for s in recipe.losses] == [1.0, 1.0, 0.1]
    assert recipe.description.startswith("Derived from recipe 's3net' by sweep --grid: "
                                         "losses[2].weight=0.1. S3Net")
    both = derive("s3net", ["wssim.weight=0.5,2", "losses[0].params.eps=1e-3"], tmp_path)
    assert [p.stem for p in both] == [
        "s3net@losses[1].weight=0.5@losses[0].params.eps=0.001",
        "s3net@losses[1].weight=2@losses[0].params.eps=0.001",
    ]
    assert load_recipe(str(both[1])).losses[0].params == {"eps": 0.001}


def test_unknown_or_ambiguous_terms_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: twice\nlosses:\n  - {name: l1, weight: 1}\n  - {name: l1, weight: 2}\n")
    # 'l1' is also the first term's label (the second is l1_2), so it resolves to losses[0]
    assert "twice@losses[0].weight=1" in str(derive(str(twice), ["l1.weight=1"], tmp_path / "g"))
    three = tmp_path / "three.yaml"
    three.write_text("name: three\nlosses:\n  - {name: l1, weight: 1, label: a}\n"
                     "  - {name: l1, weight: 2, label: b}\n")
    with pytest.raises(UserError) as info:
        derive(str(three), ["l1.weight=1"], tmp_path / "g")
    assert str(info.value) == ("--grid 'l1.weight=1': 'l1' appears 2 times in recipe 'three' "
                               "(losses[0] (label a), losses[1] (label b)); address one by "
                               "index or label")
    with pytest.raises(UserError) as info:
        derive("s3net", ["losses[3].weight=1"], tmp_path / "g")
    assert str(info.value) == ("--grid 'losses[3].weight=1': recipe 's3net' has 3 loss(es), "
                               "losses[0] to losses[2]")
    with pytest.raises(UserError) as info:
        derive("s3net", ["losses[0].params.epz=1"], tmp_path / "g")
    assert "losses[0].params.epz: loss 'charbonnier' has no parameter 'epz'" in str(info.value)


def test_derived_custom_loss_keeps_its_file(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from torch import nn\nclass L(nn.Module):\n"
        "    def forward(self, pred, target, *, low=None):\n"
        "        return (pred - target).abs().mean()\n")
    base = tmp_path / "own.yaml"
    base.write_text("name: own\nlosses:\n  - {name: l1, weight: 1}\n"
                    "  - {name: mine.py:L, weight: 1}\n")
    (path,) = derive(str(base), ["L.weight=0.5"], tmp_path / "elsewhere")
    spec = load_recipe(str(path)).losses[1]
    assert spec.name == f"{tmp_path.as_posix()}/mine.py:L" and spec.weight == 0.5


def test_cli_refuses_a_bad_grid_with_exit_2(tmp_path: Path, capsys) -> None:
    code = main(["sweep", str(_pair(tmp_path)), "--grid", "msee.weight=1", "--profile",
                 "smoke", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("lossbench: error: --grid 'msee.weight=1': recipe 'pair' has no term "
                           "'msee'; did you mean 'mse'? (its terms: losses[0] l1, losses[1] mse)")
    assert main(["sweep", "--grid", "l1.weight=1", "--results", str(tmp_path / "r")]) == 2
    assert "--grid: name the recipe(s) to derive from" in capsys.readouterr().err


@pytest.mark.slow
def test_two_by_two_smoke_sweep_runs_caches_and_plots(tmp_path: Path, planted_weights,
                                                     capsys) -> None:
    args = ["sweep", str(_pair(tmp_path)), "--grid", "mse.weight=0.1,10", "--grid",
            "l1.weight=0.5,1", "--profile", "smoke", "--seeds", "0", "--results",
            str(tmp_path / "results")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sweep: 4 runs (0 cached, 0 running elsewhere, 4 to run)" in out
    runs = sorted(p.name for p in (tmp_path / "results" / "runs").iterdir())
    assert runs == ["pair@losses[1].weight=0.1@losses[0].weight=0.5",
                    "pair@losses[1].weight=0.1@losses[0].weight=1",
                    "pair@losses[1].weight=10@losses[0].weight=0.5",
                    "pair@losses[1].weight=10@losses[0].weight=1"]
    config = (tmp_path / "results" / "runs" / runs[0] / "smoke" / "seed0" / "config.yaml")
    recorded = yaml.safe_load(config.read_text())["recipe"]
    assert [t["weight"] for t in recorded["losses"]] == [0.5, 0.1]
    assert recorded["description"].startswith("Derived from recipe 'pair' by sweep --grid")
    plots = sorted(p.name for p in (tmp_path / "results" / "plots").glob("sensitivity_*"))
    assert [p.rsplit(".", 1)[1] for p in plots] == ["pdf", "png"]
    assert main(args) == 0
    assert "sweep: 4 runs (4 cached, 0 running elsewhere, 0 to run)" in capsys.readouterr().out
