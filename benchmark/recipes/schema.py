"""Recipe files: YAML parsing and schema validation -> a validated :class:`Recipe`.

A recipe file (``recipes/<name>.yaml``) holds exactly these keys::

    name: s3net                        # required; must equal the file name (the run folder's name)
    description: ...                   # optional; where the weights come from
    references: [yang2021s3net]        # optional; BibTeX keys of recipes/references.bib
    losses:                            # required; a non-empty list
      - {name: charbonnier, weight: 1.0}
      - {name: perceptual, weight: 1.0, params: {preset: drn}, label: vgg}

Each loss entry takes ``name`` and ``weight`` (both required; a finite number >= 0, never a
boolean or a quoted string), ``params`` (a mapping of constructor keywords) and ``label`` (the
key used in logs; by default the loss name, then ``name_2``, ``name_3``... when a loss repeats).
Every problem of a file is reported at once, each line naming the file and the key path.

``references`` replaced the earlier free-text ``source`` field, which is refused with a message
that says how to migrate (a citation must be a key the bibliography holds, so ``cite`` can print
it).

A loss ``name`` holding a ``:`` is a user's loss: ``my_losses.py:MyLoss`` (a file, relative to
the recipe's folder) or ``mypkg.losses:MyLoss`` (an importable module), imported while the file is
validated (:mod:`benchmark.losses.custom`); its default label is the class name, and its resolved
entry records the source's sha256 (and a module's package version) under ``custom``.

Decision on ``name``: it must equal the file name without ``.yaml``, for files in ``recipes/``
and elsewhere alike, so ``run recipes/x.yaml``, ``run x`` and ``results/runs/x/`` always agree.
Numbers are read as YAML 1.2 reads them: PyYAML (YAML 1.1) would read ``1e-3`` as a string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from benchmark.errors import UserError, did_you_mean
from benchmark.losses import LOSSES, loss_params
from benchmark.losses.custom import CustomLoss, custom_params, is_custom, load_custom
from benchmark.references import bibliography, unknown_key_message
from benchmark.resources import recipes_dir

#: the shipped recipes: the checkout's recipes/, or the wheel's copy (benchmark.resources)
RECIPES_DIR: Path = recipes_dir()

TOP_KEYS = ("name", "description", "references", "losses")
ENTRY_KEYS = ("name", "weight", "params", "label")
RESERVED_LABELS = ("total",)
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names the same key twice (PyYAML would silently keep the last one)."""


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader with a YAML 1.2 float rule (``1e-3`` is a number) that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateKey(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_FLOAT_TAG = "tag:yaml.org,2002:float"
_RecipeLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text the way recipe files are read (``1e-3`` -> float, duplicate keys refused)."""
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class LossSpec:
    """One weighted term of a recipe."""

    name: str
    weight: float
    params: dict = field(default_factory=dict)
    label: str = ""
    #: a user's loss (``file.py:Class`` / ``module:Class``); None for a registered one
    custom: CustomLoss | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``path`` is the file it came from (None when built in code)."""

    name: str
    description: str
    references: tuple[str, ...]
    losses: tuple[LossSpec, ...]
    path: Path | None = None

    @property
    def display(self) -> str:
        """How messages name the recipe's file."""
        return _display(self.path) if self.path is not None else f"recipe '{self.name}'"

    def to_dict(self) -> dict:
        """Fully resolved recipe (constructor defaults filled in) for config.yaml and hashing."""
        losses = []
        for spec in self.losses:
            accepted = (loss_params(spec.name) if spec.custom is None
                        else custom_params(spec.custom.cls) or {})
            params = {k: _plain(p.default) for k, p in accepted.items()
                      if p.default is not p.empty}
            params.update({k: _plain(v) for k, v in spec.params.items()})
            entry = {"name": spec.name, "label": spec.label, "weight": spec.weight,
                     "params": params}
            if spec.custom is not None:  # hashed: an edited loss file changes the config hash
                entry["custom"] = {k: v for k, v in spec.custom.provenance().items()
                                   if k != "origin"}
            losses.append(entry)
        return {"name": self.name, "description": self.description,
                "references": list(self.references), "losses": losses,
                "loss_references": {s.name: list(getattr(LOSSES.get(s.name), "references", ()))
                                    for s in self.losses},
                "resolved_params": {e["label"]: _resolved(e["name"], e["params"])
                                    for e in losses}}


def _resolved(name: str, params: dict) -> dict:
    """What a loss's parameters resolve to (presets expanded): recorded, never hashed."""
    cls = LOSSES.get(name)
    return _plain(cls.resolved_params(params)) if hasattr(cls, "resolved_params") else params


def _plain(value: Any) -> Any:
    """Tuples -> lists (recursively) so the dict dumps the same to YAML and JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _display(path: Path) -> str:
    path = Path(path)
    try:
        return str(Path("recipes") / path.resolve().relative_to(RECIPES_DIR))
    except ValueError:
        return str(path)


def recipe_names() -> list[str]:
    """Names of the recipes shipped in ``recipes/``, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def _resolve(name_or_path: str) -> Path:
    text = str(name_or_path)
    looks_like_path = "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))
    if not looks_like_path:
        path = RECIPES_DIR / f"{text}.yaml"
        if not path.is_file():
            names = recipe_names()
            raise UserError(
                f"unknown recipe '{text}'{did_you_mean(text, names)} (recipes in "
                f"{_display(RECIPES_DIR)}/: {', '.join(names) or 'none'}; or give a path to a "
                "YAML file)"
            )
        return path
    path = Path(text)
    if not path.exists():
        raise UserError(f"{text}: no such recipe file")
    if not path.is_file():
        raise UserError(f"{text}: is not a file (a recipe is one YAML file)")
    return path


def load_recipe(name_or_path: str) -> Recipe:
    """Load and validate a recipe given by name (``recipes/<name>.yaml``) or by path.

    Raises:
        UserError: every problem of the file, one line each, naming the file and the key path.
    """
    path = _resolve(name_or_path)
    where = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot read the file ({exc})") from None
    try:
        data = parse_yaml(text)
    except _DuplicateKey as exc:
        raise UserError(f"{where}: {_at(exc.problem_mark)}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at {_at(mark)}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f" ({exc.context} that starts at {_at(exc.context_mark)})"
        raise UserError(f"{where}: YAML syntax error{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: YAML syntax error: {exc}") from None
    return validate_recipe(data, path)


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def validate_recipe(data: Any, path: Path) -> Recipe:
    """Check parsed YAML against the schema; raise one UserError listing every problem."""
    where = _display(path)
    if data is None:
        raise UserError(f"{where}: the file is empty; a recipe needs 'name' and 'losses'")
    if not isinstance(data, dict):
        raise UserError(
            f"{where}: expected a mapping with keys {', '.join(TOP_KEYS)}, got {_kind(data)}"
        )
    problems: list[str] = []
    if "source" in data:
        problems.append(
            "source: this field was replaced by 'references', a list of BibTeX keys of "
            "recipes/references.bib (e.g. references: [zhao2017loss]); add the paper's entry "
            "there and cite its key"
        )
        data = {k: v for k, v in data.items() if k != "source"}
    _check_keys(data, TOP_KEYS, ("name", "losses"), "", problems)
    references = _check_references(data.get("references", []), problems)
    texts = {}
    for key in ("name", "description"):
        value = data.get(key, "")
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {_kind(value)}")
            value = ""
        texts[key] = value
    if isinstance(data.get("name"), str) and texts["name"] != path.stem:
        problems.append(
            f"name: '{texts['name']}' differs from the file name '{path.stem}'; the run folder "
            f"is named after the recipe, so rename one to match (name: {path.stem})"
        )
    specs: list[LossSpec] = []
    if "losses" in data:
        specs = _check_losses(data["losses"], problems, Path(path).resolve().parent)
    if problems:
        raise UserError("\n".join(f"{where}: {p}" for p in problems))
    return Recipe(texts["name"], texts["description"].strip(), references, tuple(specs),
                  Path(path))


def _check_references(value: Any, problems: list[str]) -> tuple[str, ...]:
    """``references``: a list of keys the bibliography holds."""
    if not isinstance(value, list):
        problems.append(f"references: expected a list of BibTeX keys, got {_kind(value)}")
        return ()
    keys = []
    for i, key in enumerate(value):
        if not isinstance(key, str):
            problems.append(f"references[{i}]: expected a BibTeX key, got {_kind(key)}")
        elif key not in bibliography():
            problems.append(f"references[{i}]: {unknown_key_message(key)}")
        else:
            keys.append(key)
    return tuple(keys)


def _check_keys(mapping: dict, allowed: tuple[str, ...], required: tuple[str, ...], prefix: str,
                problems: list[str]) -> None:
    """Unknown keys of ``mapping`` (with a suggestion), then missing required ones."""
    for key in mapping:
        if key not in allowed:
            problems.append(f"{prefix}{key}: unknown key{did_you_mean(str(key), allowed)}")
    for key in required:
        if key not in mapping:
            problems.append(f"{prefix}{key}: missing required key")


def _kind(value: Any) -> str:
    """How a message describes a YAML value of the wrong kind."""
    if value is None or isinstance(value, dict | list):
        return {type(None): "nothing (null)", dict: "a mapping", list: "a list"}[type(value)]
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string '{value}'"
    return f"a number ({value})" if isinstance(value, int | float) else f"{value!r}"


def _is_number_text(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _check_weight(value: Any, at: str, problems: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = "; write the number without quotes" if _is_number_text(value) else ""
        problems.append(f"{at}: expected a number >= 0, got {_kind(value)}{hint}")
        return 0.0
    weight = float(value)
    if math.isnan(weight) or math.isinf(weight):
        problems.append(f"{at}: expected a finite number >= 0, got {weight}")
    elif weight < 0:
        problems.append(f"{at}: expected a number >= 0, got {value}")
    return weight


def _check_losses(losses: Any, problems: list[str], base_dir: Path) -> list[LossSpec]:
    if not isinstance(losses, list):
        problems.append(f"losses: expected a list of loss entries, got {_kind(losses)}")
        return []
    if not losses:
        problems.append("losses: the list is empty; a recipe needs at least one loss")
        return []
    entries = []
    for i, entry in enumerate(losses):
        at = f"losses[{i}]"
        if not isinstance(entry, dict):
            problems.append(
                f"{at}: expected a mapping like {{name: l1, weight: 1.0}}, got {_kind(entry)}"
            )
            continue
        _check_keys(entry, ENTRY_KEYS, ("name", "weight"), f"{at}.", problems)
        name = entry.get("name")
        known, custom = False, None
        if "name" in entry:
            if not isinstance(name, str):
                problems.append(f"{at}.name: expected a loss name, got {_kind(name)}")
            elif is_custom(name):
                try:
                    custom = load_custom(name, base_dir)
                except ValueError as exc:
                    problems.append(f"{at}.name: {exc}")
            elif name not in LOSSES:
                problems.append(
                    f"{at}.name: unknown loss '{name}'{did_you_mean(name, LOSSES)}"
                    " (python -m benchmark list shows every loss)"
                )
            else:
                known = True
        weight = 0.0
        if "weight" in entry:
            weight = _check_weight(entry["weight"], f"{at}.weight", problems)
        params = entry.get("params", {})
        if not isinstance(params, dict):
            problems.append(f"{at}.params: expected a mapping, got {_kind(params)}")
            params = {}
        elif known or custom is not None:
            accepted = loss_params(name) if known else custom_params(custom.cls)
            for key in params if accepted is not None else ():
                if key not in accepted:
                    takes = ", ".join(accepted) or "none"
                    library = (" ('reduction' is for library use: a recipe's terms are batch "
                               "means)" if key == "reduction" and known
                               and getattr(LOSSES[name], "reduces", False) else "")
                    problems.append(
                        f"{at}.params.{key}: loss '{name}' has no parameter '{key}'"
                        f"{did_you_mean(str(key), accepted)} (it takes: {takes}){library}"
                    )
        label = entry.get("label")
        if label is not None and not (isinstance(label, str) and _LABEL_RE.match(label)):
            problems.append(
                f"{at}.label: expected a word of letters, digits and '_', got {_kind(label)}"
            )
            label = None
        elif label in RESERVED_LABELS:
            problems.append(f"{at}.label: '{label}' is reserved for the weighted sum")
            label = None
        elif label is not None and hasattr(nn.ModuleDict, label):
            problems.append(f"{at}.label: '{label}' is a reserved word (a torch module method)")
            label = None
        entries.append((at, name if known or custom else "", weight, dict(params), label, custom))
    return _assign_labels(entries, problems)


def _assign_labels(entries: list[tuple], problems: list[str]) -> list[LossSpec]:
    taken: dict[str, str] = {}
    for at, _, _, _, label, _ in entries:
        if label is not None:
            if label in taken:
                problems.append(f"{at}.label: '{label}' is already used by {taken[label]}")
            taken.setdefault(label, at)
    specs = []
    for at, name, weight, params, label, custom in entries:
        if label is None:
            stem = custom.cls.__name__ if custom is not None else name
            label, n = stem, 1
            while label in taken:
                n += 1
                label = f"{stem}_{n}"
            taken[label] = at
        specs.append(LossSpec(name=name, weight=weight, params=params, label=label,
                              custom=custom))
    return specs
