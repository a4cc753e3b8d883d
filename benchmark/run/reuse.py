"""Which of a sweep's planned runs may be reused: the run's own folder check, done for every
planned run before anything is submitted.

A run reuses its folder only when the config hash there equals the one requested (operational
fields aside, :data:`benchmark.record.OPERATIONAL_FIELDS`) and refuses a folder of another
configuration, naming the fields that differ (:func:`benchmark.run.setup.check_folder`). A sweep
used to look at ``metrics.json``'s status only, so a sweep with another ``--data`` or
``--metrics`` into the same results tree passed the old runs off as cached. :func:`reusable`
builds, for every planned run whose folder exists, the configuration its job would request
(:func:`benchmark.run.setup.prepare`, the same code path) and applies the same check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from benchmark import record
from benchmark.errors import UserError
from benchmark.recipes import mix as recipes_mod
from benchmark.run.setup import ALL_METRICS, Setup, check_folder, prepare
from benchmark.run.spec import RunOptions, RunSpec

#: how many refused folders a message lists by name (the first one in full)
LISTED = 5


def for_seed(setup: Setup, seed: int, folder: Path) -> Setup:
    """``setup`` as :func:`prepare` would build it for ``seed``: the seed is the only hashed
    field a sweep's runs of one recipe differ by (a test keeps this true), so one ``prepare``
    per recipe serves every seed. The model and the loss mix are dropped (not needed here)."""
    hashed = {**setup.hashed, "seed": seed}
    return dataclasses.replace(setup, seed=seed, hashed=hashed,
                               config_hash=record.config_hash(hashed), folder=folder, model=None,
                               mix=None)


def reusable(planned: Sequence[tuple[str, str, int]], results: str | Path,
             data: str | Path | None = None, precision: str | None = None,
             metrics: Sequence[str] | None = None) -> set[Path]:
    """The run folders of ``planned`` (recipe as named, profile, seed) that hold a finished run
    of exactly the configuration their job would request.

    ``precision`` ``None`` / ``auto`` admits the precision a folder recorded (``auto`` resolves
    per machine, and a Slurm sweep is planned on a login node without the cluster's GPUs); a
    pinned one must match. Folders that do not exist yet are not looked at (nothing to reuse).

    Raises:
        UserError: some folders hold runs of another configuration (each named with the fields
            that differ, the first in full), checked for all planned runs before any is
            submitted; or a planned run's input is refused as ``run`` would refuse it.
    """
    results = Path(results)
    names: dict[str, str] = {}
    prepared: dict[tuple[str, str, str | None], Setup] = {}
    found: set[Path] = set()
    refused: list[tuple[Path, str]] = []
    for spec, profile, seed in planned:
        if spec not in names:
            names[spec] = recipes_mod.load_recipe(spec).name
        folder = record.run_dir(results, names[spec], profile, seed)
        if not folder.is_dir():
            continue
        wanted = precision
        stored = record.peek_config(folder)[1] or {}
        recorded = (stored.get("protocol") or {}).get("precision")
        if precision in (None, "auto") and recorded in ("bf16", "fp32"):
            wanted = recorded
        key = (spec, profile, wanted)
        if key not in prepared:
            options = RunOptions(precision=wanted, metrics=tuple(metrics or ALL_METRICS))
            setup = prepare(RunSpec(spec, profile, seed, data, results, options), quiet=True)
            prepared[key] = for_seed(setup, setup.seed, setup.folder)
        try:
            done = check_folder(for_seed(prepared[key], seed, folder))
        except UserError as exc:
            refused.append((folder, str(exc)))
            continue
        if done is not None:
            found.add(folder)
    if refused:
        more = ""
        if len(refused) > 1:
            others = [str(f) for f, _ in refused[1:]]
            listed = ", ".join(others[:LISTED]) + (", ..." if len(others) > LISTED else "")
            more = (f" {len(others)} more planned run folder(s) hold another configuration too: "
                    f"{listed}.")
        raise UserError(f"sweep: nothing submitted. {refused[0][1]}{more}")
    return found


__all__ = ["for_seed", "reusable"]
