"""What one run is: a typed, picklable run specification.

A :class:`RunSpec` names *what* is trained (the recipe, the protocol, the seed, the data) and
where its folder goes; :class:`RunOptions` says *how* (device, precision, determinism, the test
metrics, checkpoint cadence, threads). The ``run`` command, the sweep (local processes and
Slurm jobs through submitit) and the library all build one and hand it to
:func:`benchmark.run.execute.run`; nothing below them reads an argparse namespace.

The recipe may be a name from ``recipes/``, a path to a YAML file, a validated
:class:`~benchmark.recipes.schema.Recipe`, or a mapping with the YAML file's keys (validated
when the spec is built, with the same messages). :meth:`RunSpec.load_recipe` resolves it, once.
A spec whose recipe is a name or a path pickles to a few hundred bytes: that is what a sweep
sends to its workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.protocol import Protocol
from benchmark.recipes.schema import Recipe, load_recipe, validate_recipe


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out. ``None`` means the profile's (or the machine's) default.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``; None: CUDA when available.
        precision: the network's forward precision, ``"auto"``, ``"bf16"`` or ``"fp32"``.
        tf32: let float32 CUDA convolutions/matmuls use TF32 (hashed when on).
        deterministic: override the profile's CUDA determinism setting.
        compile: ``torch.compile`` the UNet (recorded, not hashed).
        cuda_graphs: capture the training step in a CUDA graph where the recipe allows.
        metrics: the test metrics (None: all); ``("psnr", "ssim")`` needs no pretrained
            AlexNet. Checked by :func:`benchmark.run.setup.prepare`.
        grad_shares: log each loss term's gradient share (operational, not hashed).
        ckpt_minutes: also checkpoint every this many minutes (0: off; operational).
        force: redo a run that already finished (same configuration only).
        threads: torch's CPU threads for this process (None: leave torch's setting).
    """

    device: str | None = None
    precision: str | None = None
    tf32: bool | None = None
    deterministic: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    metrics: tuple[str, ...] | None = None
    grad_shares: bool | None = None
    ckpt_minutes: float | None = None
    force: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.metrics is not None:  # a list from a caller: a tuple, so the spec stays frozen
            if isinstance(self.metrics, str):
                raise UserError(f"metrics: expected a sequence of metric names, got the string "
                                f"{self.metrics!r} (e.g. ('psnr', 'ssim'))")
            object.__setattr__(self, "metrics", tuple(self.metrics))


@dataclass(frozen=True)
class RunSpec:
    """One run: recipe x protocol x seed x data, its results folder and its options.

    Attributes:
        recipe: a recipe name, a path to a YAML file, a validated ``Recipe``, or a mapping
            with a recipe file's keys (``name``, ``losses``, ...; validated here).
        profile: a profile name (``smoke``, ``quick``, ``lite``, ``long``, ``paper``,
            ``auto``) or a :class:`~benchmark.protocol.Protocol`.
        seed: the run's seed (network initialisation, crops, discriminators).
        data: a LOL-style dataset folder; None: the synthetic default set.
        results: the results folder; the run goes to ``runs/<recipe>/<profile>/seed<N>/``.
        options: how the run is carried out.

    Example:
        >>> spec = RunSpec("l1", profile="smoke", options=RunOptions(device="cpu"))
        >>> spec.load_recipe().name
        'l1'
    """

    recipe: str | Path | Recipe | Mapping[str, Any]
    profile: str | Protocol = "auto"
    seed: int = 0
    data: str | Path | None = None
    results: str | Path = "results"
    options: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        if isinstance(self.recipe, Mapping):  # validated now: a bad dict fails at once
            object.__setattr__(self, "recipe", recipe_from_dict(self.recipe))
        elif not isinstance(self.recipe, str | Path | Recipe):
            raise UserError(f"recipe: expected a recipe name, a path to a YAML file, a Recipe or "
                            f"a mapping, got {type(self.recipe).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed: expected a whole number >= 0, got {self.seed!r}")

    def load_recipe(self) -> Recipe:
        """The validated recipe (loaded from its file the first time only).

        Raises:
            UserError: the recipe cannot be found or does not validate.
        """
        if isinstance(self.recipe, Recipe):
            return self.recipe
        return load_recipe(str(self.recipe))

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes``; keys of :class:`RunOptions` change the options."""
        option_keys = {f.name for f in dataclasses.fields(RunOptions)}
        options = {k: changes.pop(k) for k in list(changes) if k in option_keys}
        if options:
            changes["options"] = dataclasses.replace(changes.get("options", self.options),
                                                     **options)
        return dataclasses.replace(self, **changes)


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """Validate a recipe given as a mapping (the keys of a recipe file).

    Raises:
        UserError: every problem at once, each naming the key path (as for a file).
    """
    name = data.get("name")
    stem = name if isinstance(name, str) and name else "recipe"
    recipe = validate_recipe(dict(data), Path(f"{stem}.yaml"))
    return dataclasses.replace(recipe, path=None)


__all__ = ["RunOptions", "RunSpec", "recipe_from_dict"]
