"""Recipes: schema validation (exact messages), YAML number parsing, the loss mix, `list`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import benchmark.losses as losses_pkg
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.recipes.mix import (
    RECIPES_DIR,
    LossMix,
    LossSpec,
    Recipe,
    build_mix,
    check_recipe_for_protocol,
    load_recipe,
    parse_yaml,
    recipe_names,
)

BROKEN = Path(__file__).parent / "data" / "broken_recipes"
LIST_HINT = " (python -m benchmark list shows every loss)"

# file -> the exact message after "<file>: " (several problems: one line each, all prefixed).
BROKEN_MESSAGES = {
    "unknown_top_key": "descripton: unknown key; did you mean 'description'?",
    "misspelt_weight": "losses[2].wieght: unknown key; did you mean 'weight'?\n"
    "{file}: losses[2].weight: missing required key",
    "unknown_loss": "losses[0].name: unknown loss 'ssmi'; did you mean 'ssim'?" + LIST_HINT,
    "unknown_param": "losses[0].params.epsilon: loss 'charbonnier' has no parameter 'epsilon'; "
    "did you mean 'eps'? (it takes: eps)",
    "negative_weight": "losses[0].weight: expected a number >= 0, got -0.5",
    "nan_weight": "losses[0].weight: expected a finite number >= 0, got nan",
    "inf_weight": "losses[0].weight: expected a finite number >= 0, got inf",
    "bool_weight": "losses[0].weight: expected a number >= 0, got a boolean (true)",
    "quoted_weight": "losses[0].weight: expected a number >= 0, got a string '1e-3'; "
    "write the number without quotes",
    "word_weight": "losses[0].weight: expected a number >= 0, got a string 'heavy'",
    "missing_name": "name: missing required key",
    "empty_name": "name: '' differs from the file name 'empty_name'; the run folder is named "
    "after the recipe, so rename one to match (name: empty_name)",
    "missing_losses": "losses: missing required key",
    "empty_losses": "losses: the list is empty; a recipe needs at least one loss",
    "empty": "the file is empty; a recipe needs 'name' and 'losses'",
    "comments_only": "the file is empty; a recipe needs 'name' and 'losses'",
    "syntax_error": "YAML syntax error at line 4, column 5: expected ',' or '}', but got '{' "
    "(while parsing a flow mapping that starts at line 3, column 5)",
    "bad_indent": "YAML syntax error at line 4, column 12: mapping values are not allowed here",
    "losses_not_list": "losses: expected a list of loss entries, got a mapping",
    "params_not_mapping": "losses[0].params: expected a mapping, got a list",
    "name_mismatch": "name: 's3net' differs from the file name 'name_mismatch'; the run folder "
    "is named after the recipe, so rename one to match (name: name_mismatch)",
    "top_level_list": "expected a mapping with keys name, description, references, losses, got a "
    "list",
    "entry_not_mapping": "losses[0]: expected a mapping like {name: l1, weight: 1.0}, "
    "got a string 'l1'",
    "duplicate_key": "line 5, column 5: duplicate key 'weight'",
    "duplicate_label": "losses[1].label: 'pixel' is already used by losses[0]",
    "reserved_label": "losses[0].label: 'total' is reserved for the weighted sum",
    "bad_label": "losses[0].label: expected a word of letters, digits and '_', "
    "got a string 'vgg.relu1'",
    "loss_name_not_string": "losses[0].name: expected a loss name, got a number (3)",
    "description_not_string": "description: expected a string, got a list",
    "many_problems": "refrences: unknown key; did you mean 'references'?\n"
    "{file}: losses[0].weight: expected a number >= 0, got -1\n"
    "{file}: losses[1].name: unknown loss 'charbonier'; did you mean 'charbonnier'?"
    + LIST_HINT
    + "\n{file}: losses[2].name: missing required key\n"
    "{file}: losses[3].params: expected a mapping, got a number (0.5)",
}


def test_corpus_and_table_match():
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(BROKEN_MESSAGES)


@pytest.mark.parametrize("stem", sorted(BROKEN_MESSAGES))
def test_broken_recipe_exact_message(stem):
    path = str(BROKEN / f"{stem}.yaml")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}: " + BROKEN_MESSAGES[stem].replace("{file}", path)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("-2e-8", -2e-8), ("1E+3", 1000.0), (".5", 0.5), ("5.", 5.0),
     ("2.5e-1", 0.25), ("+1e2", 100.0)],
)
def test_scientific_notation_is_a_float(text, value):
    parsed = parse_yaml(f"w: {text}")["w"]
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(value, rel=1e-15)


def test_plain_pyyaml_would_read_1e_minus_3_as_text():
    # why recipes need their own loader: PyYAML follows YAML 1.1 here
    assert yaml.safe_load("w: 1e-3")["w"] == "1e-3"


def test_other_scalars_keep_their_yaml_types():
    data = parse_yaml("a: 3\nb: '1e-3'\nc: l1\nd: true\ne: .inf\nf: 0x10\ng: null")
    assert data == {"a": 3, "b": "1e-3", "c": "l1", "d": True, "e": math.inf, "f": 16, "g": None}
    assert isinstance(data["a"], int)


def test_1e_minus_3_weight_and_param_in_a_recipe(tmp_path):
    path = write(tmp_path, "sci", "name: sci\nlosses:\n"
                 "  - {name: l1, weight: 1}\n"
                 "  - {name: charbonnier, weight: 1e-3, params: {eps: 1e-6}}\n")
    recipe = load_recipe(path)
    assert recipe.losses[1].weight == 1e-3
    assert isinstance(recipe.losses[0].weight, float)
    assert recipe.losses[1].params == {"eps": 1e-6}
    assert isinstance(recipe.losses[1].params["eps"], float)


def test_labels_default_to_name_then_numbered(tmp_path):
    path = write(tmp_path, "lab", "name: lab\nlosses:\n"
                 "  - {name: l1, weight: 1}\n  - {name: mse, weight: 1, label: pixel_l2}\n"
                 "  - {name: l1, weight: 2}\n  - {name: l1, weight: 3, label: l1_2}\n")
    labels = [spec.label for spec in load_recipe(path).losses]
    assert labels == ["l1", "pixel_l2", "l1_3", "l1_2"]


def test_load_by_name_and_unknown_name():
    assert load_recipe("l1").path == RECIPES_DIR / "l1.yaml"
    with pytest.raises(UserError) as info:
        load_recipe("s3nte")
    names = ", ".join(recipe_names())
    assert str(info.value) == (
        f"unknown recipe 's3nte'; did you mean 's3net'? (recipes in recipes/: {names}; "
        "or give a path to a YAML file)"
    )


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(UserError, match=r"^nowhere/x\.yaml: no such recipe file$"):
        load_recipe("nowhere/x.yaml")
    (tmp_path / "d.yaml").mkdir()
    path = str(tmp_path / "d.yaml")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}: is not a file (a recipe is one YAML file)"


def test_messages_name_the_file_as_the_user_gave_it(monkeypatch):
    assert load_recipe("l1").display == "recipes/l1.yaml"
    assert load_recipe(str(RECIPES_DIR / "l1.yaml")).display == "recipes/l1.yaml"
    monkeypatch.chdir(BROKEN.parent)
    with pytest.raises(UserError) as info:
        load_recipe("broken_recipes/negative_weight.yaml")
    assert str(info.value).startswith("broken_recipes/negative_weight.yaml: losses[0].weight: ")


def test_label_that_clashes_with_a_module_method(tmp_path):
    path = write(tmp_path, "cl", "name: cl\nlosses:\n  - {name: l1, weight: 1, label: eval}\n")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert str(info.value) == (
        f"{path}: losses[0].label: 'eval' is a reserved word (a torch module method)"
    )


def test_shipped_recipes_are_documented():
    names = recipe_names()
    required = {"s3net", "srgan", "srgan_tv", "flw", "exposure_fusion", "zero_dce_color",
                "frequency", "edge", "l1", "mse", "charbonnier", "ssim", "ms_ssim", "zhao_mix"}
    assert required <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert len(recipe.description) > 30, name
        assert recipe.references, name


def test_weights_from_the_papers():
    weights = {n: {s.name: s.weight for s in load_recipe(n).losses} for n in recipe_names()}
    assert weights["srgan"] == {"perceptual": 1.0, "adversarial": 1e-3}
    assert weights["srgan_tv"]["tv"] == 7.5e-8
    assert weights["zhao_mix"] == {"ms_ssim": 0.84, "gaussian_l1": 0.16}
    # the released code (NVlabs/PL4NN src/loss.py, MSSSIML1's default alpha)
    assert weights["zhao_mix_code"] == {"ms_ssim": 0.025, "gaussian_l1": 0.975}
    assert weights["frequency"]["frequency"] == 0.01
    assert weights["zero_dce_color"]["color_constancy"] == 5.0
    assert set(weights["flw"].values()) == {1.0} and len(weights["flw"]) == 5


def test_to_dict_is_resolved_and_serialisable(tmp_path):
    text = "name: td\nreferences: [lai2017lapsrn]\nlosses:\n  - {name: charbonnier, weight: 2}\n"
    path = write(tmp_path, "td", text)
    data = load_recipe(path).to_dict()
    default_eps = losses_pkg.loss_params("charbonnier")["eps"].default
    assert data == {
        "name": "td", "description": "", "references": ["lai2017lapsrn"],
        "losses": [{"name": "charbonnier", "label": "charbonnier", "weight": 2.0,
                    "params": {"eps": default_eps}}],
        "loss_references": {"charbonnier": ["charbonnier1994two", "lai2017lapsrn"]},
        "resolved_params": {"charbonnier": {"eps": default_eps}},
    }
    assert yaml.safe_load(yaml.safe_dump(data)) == json.loads(json.dumps(data)) == data


class Scaled(nn.Module):
    """Test double: mean |pred - target| * k, optionally with a discriminator."""

    def __init__(self, k: float = 1.0, adversarial: bool = False, min_size: int = 1) -> None:
        super().__init__()
        self.k, self.min_size = k, min_size
        if adversarial:
            self.discriminator = nn.Conv2d(3, 1, 1)

    def min_input_size(self) -> int:
        return self.min_size

    def forward(self, pred, target, *, low=None):
        return (pred - target).abs().mean() * self.k


def test_loss_mix_total_is_weighted_sum_of_unweighted_terms():
    mix = LossMix({"a": Scaled(1.0), "b": Scaled(3.0, adversarial=True)}, {"a": 0.5, "b": 1e-3})
    pred, target = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    total, terms = mix(pred, target)
    base = (pred - target).abs().mean()
    torch.testing.assert_close(terms["a"], base, rtol=1e-6, atol=0)
    torch.testing.assert_close(terms["b"], 3 * base, rtol=1e-6, atol=0)
    torch.testing.assert_close(total, 0.5 * base + 3e-3 * base, rtol=1e-6, atol=0)
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert [label for label, _ in mix.adversarial_terms()] == ["b"]
    assert isinstance(mix.terms, nn.ModuleDict)


def test_build_mix_passes_user_error_through(monkeypatch, tmp_path):
    sentinel = UserError("weights: vgg19-dcbb9e9d.pth is missing")

    class NeedsWeights(nn.Module):
        def __init__(self) -> None:
            raise sentinel

    monkeypatch.setitem(losses_pkg.LOSSES, "needs_weights", NeedsWeights)
    path = write(tmp_path, "nw", "name: nw\nlosses:\n  - {name: needs_weights, weight: 1}\n")
    with pytest.raises(UserError) as info:
        build_mix(load_recipe(path))
    assert info.value is sentinel


def test_build_mix_names_the_param_of_a_constructor_error(monkeypatch, tmp_path):
    class Picky(nn.Module):
        def __init__(self, preset: str = "a", scale: float = 1.0) -> None:
            super().__init__()
            if preset not in ("a", "b"):
                raise ValueError(f"unknown preset '{preset}' (choose a or b)")

    monkeypatch.setitem(losses_pkg.LOSSES, "picky", Picky)
    path = write(tmp_path, "pk", "name: pk\nlosses:\n  - {name: l1, weight: 1}\n"
                 "  - {name: picky, weight: 1, params: {scale: 2, preset: c}}\n")
    with pytest.raises(UserError) as info:
        build_mix(load_recipe(path))
    assert str(info.value) == f"{path}: losses[1].params.preset: unknown preset 'c' (choose a or b)"


def test_protocol_check_exact_message():
    recipe = Recipe("big", "", (), (LossSpec("l1", 1.0, {}, "l1"), LossSpec("x", 1.0, {}, "x")),
                    None)
    mix = LossMix({"l1": Scaled(), "x": Scaled(min_size=161)}, {"l1": 1.0, "x": 1.0})
    check_recipe_for_protocol(recipe, mix, 161)
    with pytest.raises(UserError) as info:
        check_recipe_for_protocol(recipe, mix, 128)
    assert str(info.value) == (
        "recipe 'big': losses[1] (x): 'x' needs inputs of at least 161x161 pixels, but this "
        "profile trains on 128x128 patches; use a profile with patches of at least 161 pixels, "
        "or change the loss's params so it fits (python -m benchmark list)"
    )


def test_protocol_check_refuses_ms_ssim_at_a_small_patch():
    recipe = load_recipe("ms_ssim")
    mix = build_mix(recipe)
    need = mix.terms["ms_ssim"].min_input_size()
    assert need > 64
    with pytest.raises(UserError) as info:
        check_recipe_for_protocol(recipe, mix, 64)
    assert str(info.value).startswith(
        f"recipes/ms_ssim.yaml: losses[0] (ms_ssim): 'ms_ssim' needs inputs of at least "
        f"{need}x{need} pixels, but this profile trains on 64x64 patches"
    )
    check_recipe_for_protocol(recipe, mix, need)  # the recipe test runs it at exactly `need`


def _needs_vgg(recipe: Recipe) -> bool:
    return any(spec.name == "perceptual" for spec in recipe.losses)


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_builds_and_sums(name, request):
    recipe = load_recipe(name)
    if _needs_vgg(recipe):
        request.getfixturevalue("planted_weights")
    torch.manual_seed(0)
    mix = build_mix(recipe)
    size = max([48] + [t.min_input_size() for t in mix.terms.values()])
    target = torch.rand(1 if size > 128 else 2, 3, size, size)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    total, terms = mix(pred, target, low=target * 0.2)
    assert list(terms) == [spec.label for spec in recipe.losses]
    expected = sum(spec.weight * terms[spec.label] for spec in recipe.losses)
    assert total.dim() == 0 and torch.isfinite(total)
    torch.testing.assert_close(total, expected, rtol=1e-6, atol=0)
    total.backward()
    assert torch.isfinite(pred.grad).all()
    assert (len(mix.adversarial_terms()) > 0) == any(s.name == "adversarial" for s in recipe.losses)


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"Recipes ({len(recipe_names())}, in {RECIPES_DIR}):" in out
    assert "s3net" in out and "1*charbonnier + 1*wssim + 1*perceptual[preset=drn]" in out
    assert "1*perceptual[preset=srgan] + 0.001*adversarial + 7.5e-08*tv[reduction=mean]" in out
    assert "INVALID" not in out
    assert f"Losses ({len(losses_pkg.LOSSES)}):" in out
    loss_lines = out.split("Losses (")[1].splitlines()
    for name, cls in losses_pkg.LOSSES.items():
        line = next(ln for ln in loss_lines if ln.split()[:1] == [name])
        assert cls.references, name
        assert f"[{', '.join(cls.references)}]" in line
