"""What a sweep is asked to do: :class:`SweepOptions` (typed, from the ``sweep`` flags or a
caller) and the executor settings of a ``sweep.yaml`` (:func:`load_sweep_config`).

Flags win over ``sweep.yaml``, which wins over the defaults (:mod:`benchmark.slurm`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UserError, did_you_mean
from benchmark.slurm import SLURM_KEYS


@dataclass(frozen=True)
class SweepOptions:
    """One sweep: recipes x seeds of one profile, and how to run them.

    ``None`` means "from ``sweep.yaml``, else the default": every recipe, the profile's seeds,
    one local job, the profile's precision, every metric. The Slurm fields (``partition`` to
    ``signal_margin_s``, the keys of :data:`benchmark.slurm.SLURM_KEYS`) are the ``--flags`` of
    the same names. ``device`` to ``grad_shares`` are every run's
    :class:`~benchmark.run.spec.RunOptions` of the same names (the ``run`` flags ``--device``,
    ``--tf32``, ``--deterministic``, ``--compile``, ``--cuda-graphs``, ``--no-grad-shares``).
    """

    recipes: tuple[str, ...] = ()
    seeds: tuple[int, ...] | None = None
    profile: str = "auto"
    data: str | None = None
    results: str = "results"
    executor: str = "local"
    jobs: int | str | None = None
    force: bool = False
    precision: str | None = None
    metrics: tuple[str, ...] | None = None
    grid: tuple[str, ...] | None = None
    status: bool = False
    config: str | None = None
    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    time_min: int | None = None
    account: str | None = None
    array_parallelism: int | None = None
    signal_margin_s: int | None = None
    max_requeues: int | None = None
    ckpt_minutes: float | None = None
    device: str | None = None
    tf32: bool | None = None
    deterministic: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    grad_shares: bool | None = None

    def slurm_flags(self) -> dict[str, Any]:
        """The Slurm settings given as flags (sweep.yaml keys -> value; None: not given)."""
        return {key: getattr(self, key) for key in SLURM_KEYS}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SweepOptions:
        """The options among ``values`` (e.g. ``vars(args)`` of the ``sweep`` parser); other
        keys are ignored, missing ones take the defaults, lists become tuples, the ``on``/``off``
        of ``--tf32`` and ``--deterministic`` booleans, and ``no_grad_shares`` (the flag
        ``--no-grad-shares``) ``grad_shares=False``."""
        known = {f.name for f in dataclasses.fields(cls)}
        picked = {k: v for k, v in values.items() if k in known}
        for key in ("tf32", "deterministic"):
            if isinstance(picked.get(key), str):
                picked[key] = picked[key] == "on"
        if values.get("no_grad_shares"):
            picked["grad_shares"] = False
        for key in ("recipes", "seeds", "metrics", "grid"):
            if picked.get(key) is not None:
                picked[key] = tuple(picked[key])
        return cls(**picked)


def load_sweep_config(path: str | None) -> dict[str, Any]:
    """Executor settings from sweep.yaml: keys of SLURM_KEYS, 'max_requeues', 'ckpt_minutes',
    'seeds', 'recipes' and 'jobs'."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise UserError(f"{p}: cannot read sweep config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of settings, got {type(data).__name__}")
    allowed = set(SLURM_KEYS) | {"seeds", "recipes", "jobs", "max_requeues", "ckpt_minutes"}
    for key in data:
        if key not in allowed:
            raise UserError(f"{p}: {key}: unknown key{did_you_mean(str(key), allowed)} "
                            f"(allowed: {', '.join(sorted(allowed))})")
    for key in ("gpus_per_job", "cpus_per_job", "mem_gb", "time_min", "array_parallelism", "jobs",
                "max_requeues", "signal_margin_s"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)
                            or data[key] < 0):
            raise UserError(f"{p}: {key}: expected a whole number >= 0, got {data[key]!r}")
    minutes = data.get("ckpt_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int | float)
                                or not minutes >= 0):
        raise UserError(f"{p}: ckpt_minutes: expected a number of minutes >= 0 (0: only every "
                        f"ckpt_every iterations), got {minutes!r}")
    return data


__all__ = ["SweepOptions", "load_sweep_config"]
