"""Weight sweeps: ``--grid 'TERM.FIELD=v1,v2,...'`` expressions -> derived recipe files.

Grammar of one expression (several ``--grid`` options form their product)::

    TERM.FIELD=VALUE[,VALUE...]
    TERM   losses[i]            the i-th entry of the recipe's ``losses`` list (from 0)
           NAME                 a loss name that appears once in the recipe (``perceptual``)
           LABEL                a term's log label (``vgg``, ``l1_2``)
    FIELD  weight | params.KEY
    VALUE  a number (``0.1``, ``1e-3``); a weight must be finite and >= 0

A derived recipe is the base recipe with the values set. Its name is the base name followed by
``@losses[i].FIELD=VALUE`` per expression, in the order given, with the term always written as
``losses[i]`` and the value as ``format(value, 'g')``; so ``perceptual.weight=0.10`` and
``losses[2].weight=1e-1`` name the same recipe (``s3net@losses[2].weight=0.1``) and the same run
folder. These characters are safe in file names on Linux, macOS and Windows. The derived YAML is
written to ``<results>/grid/<name>.yaml`` (never overwritten with different content) and its run
records the fully resolved recipe in ``config.yaml`` like any run.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UserError, did_you_mean
from benchmark.losses.custom import is_custom
from benchmark.recipes.schema import Recipe, load_recipe, parse_yaml

_EXPR = re.compile(r"^\s*(?P<term>losses\[\d+\]|[A-Za-z_]\w*)\.(?P<field>weight|params\.\w+)\s*="
                   r"(?P<values>.*)$")
_INDEX = re.compile(r"^losses\[(\d+)\]$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.@=\[\]+-]+$")


def parse_expression(expr: str) -> tuple[str, str, list[float]]:
    """``'losses[2].weight=0.1,1'`` -> ``('losses[2]', 'weight', [0.1, 1.0])``.

    Raises:
        UserError: naming the expression and what is wrong with it.
    """
    match = _EXPR.match(expr)
    if not match:
        raise UserError(
            f"--grid '{expr}': expected TERM.weight=V1,V2,... or TERM.params.KEY=V1,V2,... where "
            "TERM is losses[i], a loss name that appears once, or a term's label "
            "(example: --grid 'losses[2].weight=0.01,0.1,1')"
        )
    values = []
    for text in match["values"].split(","):
        try:
            value = float(text.strip())
        except ValueError:
            raise UserError(f"--grid '{expr}': '{text.strip()}' is not a number") from None
        if not math.isfinite(value):
            raise UserError(f"--grid '{expr}': {text.strip()} is not a finite number")
        if match["field"] == "weight" and value < 0:
            raise UserError(f"--grid '{expr}': a weight must be >= 0, got {text.strip()}")
        values.append(value)
    if len(set(values)) != len(values):
        raise UserError(f"--grid '{expr}': a value is listed twice")
    return match["term"], match["field"], values


def resolve_term(recipe: Recipe, term: str, expr: str) -> int:
    """The index in ``recipe.losses`` that ``term`` (``losses[i]``, name or label) addresses."""
    n = len(recipe.losses)
    index = _INDEX.match(term)
    if index:
        i = int(index[1])
        if i >= n:
            raise UserError(f"--grid '{expr}': recipe '{recipe.name}' has {n} loss(es), "
                            f"losses[0] to losses[{n - 1}]")
        return i
    by_label = [i for i, s in enumerate(recipe.losses) if s.label == term]
    if by_label:
        return by_label[0]
    by_name = [i for i, s in enumerate(recipe.losses) if s.name == term]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        where = ", ".join(f"losses[{i}] (label {recipe.losses[i].label})" for i in by_name)
        raise UserError(f"--grid '{expr}': '{term}' appears {len(by_name)} times in recipe "
                        f"'{recipe.name}' ({where}); address one by index or label")
    known = [s.label for s in recipe.losses] + [s.name for s in recipe.losses]
    raise UserError(f"--grid '{expr}': recipe '{recipe.name}' has no term '{term}'"
                    f"{did_you_mean(term, known)} (its terms: "
                    f"{', '.join(f'losses[{i}] {s.label}' for i, s in enumerate(recipe.losses))})")


def derive(base: str, expressions: list[str], out_dir: Path) -> list[Path]:
    """Write every derived recipe of ``base`` for the product of ``expressions``; their paths.

    Raises:
        UserError: a bad expression, a term the recipe lacks, a parameter the loss does not
            take, or an existing derived file with other content.
    """
    recipe = load_recipe(base)
    raw = parse_yaml(recipe.path.read_text(encoding="utf-8"))
    axes = []
    for expr in expressions:
        term, field, values = parse_expression(expr)
        i = resolve_term(recipe, term, expr)
        axes.append([(i, field, v) for v in values])
        keys = [(a[0][0], a[0][1]) for a in axes]
        if len(set(keys)) != len(keys):
            raise UserError(f"--grid '{expr}': sets losses[{i}].{field}, which another --grid "
                            "already sweeps")
    paths = []
    for combo in itertools.product(*axes):
        data = _derived_data(recipe, raw, combo)
        name = data["name"]
        if not _SAFE_NAME.match(name) or len(name) > 200:
            raise UserError(f"--grid: the derived recipe name '{name}' is not a safe folder name "
                            "(letters, digits, _ . @ = [ ] + - and at most 200 characters); "
                            "rename the base recipe or sweep fewer values at once")
        path = out_dir / f"{name}.yaml"
        text = yaml.safe_dump(data, sort_keys=False, width=100)
        if path.exists() and path.read_text(encoding="utf-8") != text:
            raise UserError(f"{path}: exists with other content (a derived recipe of an edited "
                            "base recipe?); remove it to derive it again")
        if not path.exists():
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        load_recipe(str(path))  # the derived recipe validates like any (e.g. unknown params)
        paths.append(path)
    return paths


def _derived_data(recipe: Recipe, raw: dict[str, Any], combo: tuple) -> dict[str, Any]:
    losses = [dict(entry) for entry in raw["losses"]]
    folder = recipe.path.resolve().parent
    for entry in losses:  # a user's loss file stays the one next to the base recipe
        target, _, cls = str(entry["name"]).rpartition(":")
        if is_custom(entry["name"]) and target.endswith(".py") and not Path(target).is_absolute():
            entry["name"] = f"{(folder / target).as_posix()}:{cls}"
    parts = []
    for i, field, value in combo:
        number: float | int = int(value) if value.is_integer() and field != "weight" else value
        if field == "weight":
            losses[i]["weight"] = value
        else:
            params = dict(losses[i].get("params") or {})
            params[field.split(".", 1)[1]] = number
            losses[i]["params"] = params
        parts.append(f"losses[{i}].{field}={value:g}")
    name = "@".join([recipe.name, *parts])
    text = (f"Derived from recipe '{recipe.name}' by sweep --grid: {', '.join(parts)}. "
            f"{recipe.description}").strip()
    out = {"name": name, "description": text}
    if recipe.references:
        out["references"] = list(recipe.references)
    out["losses"] = losses
    return out


def expand_grid(recipes: list[str], expressions: list[str], results: Path) -> list[str]:
    """Every derived recipe (as a path) of every recipe in ``recipes``."""
    out = []
    for name in recipes:
        out.extend(str(p) for p in derive(name, expressions, Path(results).resolve() / "grid"))
    return out


__all__ = ["derive", "expand_grid", "parse_expression", "resolve_term"]
