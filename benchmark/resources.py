"""Files lossbench ships besides its code, found the same way in a checkout and in a wheel.

- The recipe folder: the shipped recipes (``<name>.yaml``) and the bibliography
  (``references.bib``). Its editable source is the top-level ``recipes/`` folder of the checkout,
  which a checkout and an editable install read directly. A built wheel carries a copy as
  package data, ``benchmark/_recipes/`` (``setup.py``'s build step copies it into the build
  folder, never into the checkout), found through :mod:`importlib.resources`.
- The known-dataset manifests: ``benchmark/data/known/*.sha256``, package data in place.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: where a wheel keeps its copy of the recipe folder, inside the package
PACKAGED_RECIPES = "_recipes"


def _as_path(traversable: object) -> Path:
    # a wheel is installed as plain files, so the package's resources are on the file system
    return Path(str(traversable))


def recipes_dir() -> Path:
    """The recipe folder: the wheel's packaged copy when installed, else the checkout's
    ``recipes/``."""
    packaged = resources.files("benchmark") / PACKAGED_RECIPES
    if packaged.is_dir():
        return _as_path(packaged)
    return Path(__file__).resolve().parents[1] / "recipes"


def known_dir() -> Path:
    """The folder of the known-dataset manifests (``<dataset>.sha256``)."""
    return _as_path(resources.files("benchmark.data") / "known")


__all__ = ["PACKAGED_RECIPES", "known_dir", "recipes_dir"]
