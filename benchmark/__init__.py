"""lossbench: a reproducibility benchmark for the loss functions of low-light image enhancement.

The library API (``README.md``, "Use as a library"): :class:`RunSpec` / :class:`RunOptions`
describe a run, :func:`train` does it, :func:`load_results` reads a results folder,
:func:`scores` gives ``{recipe: array(seeds x images)}`` per metric and :func:`summarize` the
statistics; :func:`load_recipe`, :func:`build_loss` and :data:`LOSSES` are the recipes and
losses; :class:`SweepOptions` and :func:`run_sweep` run many. The names are imported on first
use, so ``import benchmark`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that owns it
_EXPORTS: dict[str, str] = {
    "RunSpec": "benchmark.run.spec",
    "RunOptions": "benchmark.run.spec",
    "RunResult": "benchmark.api",
    "train": "benchmark.api",
    "load_results": "benchmark.api",
    "scores": "benchmark.api",
    "summarize": "benchmark.api",
    "load_recipe": "benchmark.recipes.schema",
    "build_loss": "benchmark.losses",
    "LOSSES": "benchmark.losses",
    "SweepOptions": "benchmark.sweep_options",
    "run_sweep": "benchmark.sweep",
    "UserError": "benchmark.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
