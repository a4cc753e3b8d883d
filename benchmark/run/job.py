"""One job of a sweep, as a worker process runs it (submitit pickles a call to :func:`run_job`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from benchmark.errors import UserError


def run_job(recipe: str, profile: str, seed: int, data: str | None, results: str,
            force: bool, threads: int | None, precision: str | None = None,
            ckpt_minutes: float | None = None, stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[int], None] | None = None) -> dict[str, Any]:
    """One job (runs in the worker process). Returns the run's metrics dict, never raises for a
    failed run so one failure cannot stop the sweep. Torch threads: ``threads``, else the
    Slurm allocation (``SLURM_CPUS_PER_TASK``), else torch's default."""
    import dataclasses

    import torch

    from benchmark.protocol import resolve_profile
    from benchmark.run.execute import run

    threads = threads or int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or None
    if threads:
        torch.set_num_threads(threads)
    try:
        protocol: Any = profile
        if ckpt_minutes is not None:
            protocol = dataclasses.replace(resolve_profile(profile)[0], ckpt_minutes=ckpt_minutes)
        return run(recipe, profile=protocol, seed=seed, data_dir=data, results_dir=results,
                   force=force, quiet=True, precision=precision, stop=stop,
                   on_checkpoint=on_checkpoint)
    except UserError as exc:
        return {"status": "failed", "error": str(exc), "recipe": recipe, "seed": seed}


__all__ = ["run_job"]
