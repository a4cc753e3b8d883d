"""Recipes: a YAML mix of losses -> validated :class:`Recipe` -> :class:`LossMix` module.

Reading and validating recipe files (the file format, every check) lives in
:mod:`benchmark.recipes.schema`; its public names are importable from here too. This module
builds the weighted sum of a recipe's losses, checks it against a protocol and lists recipes.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import torch
from torch import nn

from benchmark.errors import UserError
from benchmark.losses import LOSSES, build_loss
from benchmark.losses.custom import check_contract
from benchmark.losses.perceptual import PerceptualLoss, shared_perceptual
from benchmark.recipes.schema import (
    RECIPES_DIR,
    LossSpec,
    Recipe,
    load_recipe,
    parse_yaml,
    recipe_names,
    validate_recipe,
)


class LossMix(nn.Module):
    """The weighted sum of a recipe's losses.

    ``forward(pred, target, *, low=None)`` returns ``(total, terms)``: the weighted total and the
    unweighted value of every term keyed by label (the training loop logs them). Several VGG
    perceptual terms share one trunk pass per input
    (:func:`benchmark.losses.perceptual.shared_perceptual`); the values are those of separate calls.
    """

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        if set(terms) != set(weights) or not terms:
            raise ValueError("LossMix: terms and weights need the same, non-empty set of labels")
        self.terms = nn.ModuleDict(terms)
        self.weights = {label: float(weights[label]) for label in terms}
        self._perceptual = sum(isinstance(t, PerceptualLoss) for t in terms.values())

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        shared = shared_perceptual(self.terms, pred, target) if self._perceptual > 1 else {}
        values = {
            label: shared[label] if label in shared else term(pred, target, low=low)
            for label, term in self.terms.items()
        }
        total = sum(self.weights[label] * value for label, value in values.items())
        return total, values

    def adversarial_terms(self) -> list[tuple[str, nn.Module]]:
        """Terms with a ``.discriminator`` that the training loop must update itself."""
        return [(label, t) for label, t in self.terms.items() if hasattr(t, "discriminator")]


def build_mix(recipe: Recipe) -> LossMix:
    """Build every loss of ``recipe``; constructor errors become UserErrors naming the key path."""
    terms: dict[str, nn.Module] = {}
    for i, spec in enumerate(recipe.losses):
        if spec.custom is not None:
            terms[spec.label] = _build_custom(recipe, i, spec)
            continue
        try:
            terms[spec.label] = build_loss(spec.name, **spec.params)
        except UserError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            at = _param_path(i, spec, str(message))
            raise UserError(f"{recipe.display}: {at}: {message}") from exc
    return LossMix(terms, {spec.label: spec.weight for spec in recipe.losses})


def _build_custom(recipe: Recipe, i: int, spec: LossSpec) -> nn.Module:
    """Construct a user's loss from its params; any failure names the file and key."""
    try:
        loss = spec.custom.cls(**spec.params)
    except Exception as exc:  # noqa: BLE001 - the user's constructor may raise anything
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(
            f"{recipe.display}: {_param_path(i, spec, text) if spec.params else f'losses[{i}]'}"
            f": constructing {spec.name} from its params failed: {type(exc).__name__}"
            f"{': ' + text if text else ''}"
        ) from None
    if not isinstance(loss, nn.Module):
        raise UserError(f"{recipe.display}: losses[{i}].name: {spec.name} did not build an "
                        "nn.Module")
    return loss


def _param_path(i: int, spec: LossSpec, message: str) -> str:
    """The key path a constructor error most likely refers to."""
    named = [key for key in spec.params if re.search(rf"\b{re.escape(str(key))}\b", message)]
    if len(named) == 1 or len(spec.params) == 1:
        return f"losses[{i}].params.{(named or list(spec.params))[0]}"
    return f"losses[{i}].params" if spec.params else f"losses[{i}]"


def check_recipe_for_protocol(recipe: Recipe, mix: LossMix, patch_size: int) -> None:
    """Refuse, before training, a recipe whose losses cannot run on the protocol's patches, or
    whose custom loss breaks the contract (:func:`benchmark.losses.custom.check_contract`)."""
    problems = []
    for i, spec in enumerate(recipe.losses):
        term = mix.terms[spec.label]
        need = int(term.min_input_size()) if hasattr(term, "min_input_size") else 1
        if need > patch_size:
            problems.append(
                f"{recipe.display}: losses[{i}] ({spec.label}): '{spec.name}' needs inputs of at "
                f"least {need}x{need} pixels, but this profile trains on {patch_size}x"
                f"{patch_size} patches; use a profile with patches of at least {need} pixels, or "
                f"change the loss's params so it fits (python -m benchmark list)"
            )
    if problems:
        raise UserError("\n".join(problems))
    for i, spec in enumerate(recipe.losses):
        if spec.custom is None:
            continue
        try:
            check_contract(mix.terms[spec.label], patch_size)
        except ValueError as exc:
            raise UserError(
                f"{recipe.display}: losses[{i}].name: the custom loss {spec.name} breaks the loss "
                f"contract: {exc} (checked once before training; see docs/TOOLS.md)"
            ) from None


def _mix_text(recipe: Recipe) -> str:
    parts = []
    for spec in recipe.losses:
        params = ",".join(f"{k}={v}" for k, v in spec.params.items())
        custom = " (custom)" if spec.custom is not None else ""
        parts.append(f"{spec.weight:g}*{spec.name}{custom}" + (f"[{params}]" if params else ""))
    return " + ".join(parts)


def command_list(args: Any) -> int:
    """``python -m benchmark list``: the recipes (with their mixes) and the registered losses."""
    names = recipe_names()
    print(f"Recipes ({len(names)}, in {RECIPES_DIR}):")
    width = max((len(n) for n in names), default=4)
    for name in names:
        try:
            recipe = load_recipe(name)
        except UserError as exc:
            print(f"  {name:<{width}}  INVALID: {str(exc).splitlines()[0]}")
            continue
        print(f"  {name:<{width}}  {_mix_text(recipe)}")
        if recipe.references:
            print(f"  {'':<{width}}    cites: {', '.join(recipe.references)}")
        for line in textwrap.wrap(recipe.description, 96 - width):
            print(f"  {'':<{width}}    {line}")
    print()
    print(f"Losses ({len(LOSSES)}):")
    width = max(len(n) for n in LOSSES)
    print(f"  {'name':<{width}}  paper [BibTeX keys]")
    for name, cls in LOSSES.items():
        keys = ", ".join(getattr(cls, "references", ())) or "-"
        print(f"  {name:<{width}}  {getattr(cls, 'paper', '') or '-'} [{keys}]")
    print("\n`python -m benchmark cite RECIPE...` prints the BibTeX behind recipes.")
    return 0


__all__ = ["RECIPES_DIR", "LossMix", "LossSpec", "Recipe", "build_mix",
           "check_recipe_for_protocol", "command_list", "load_recipe", "parse_yaml",
           "recipe_names", "validate_recipe"]
