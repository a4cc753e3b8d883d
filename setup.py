"""One build step pyproject.toml cannot express: the top-level ``recipes/`` folder (the shipped
recipe YAML files and ``references.bib``, the editable source) is copied into the wheel as
package data, ``benchmark/_recipes/``, where :func:`benchmark.resources.recipes_dir` finds it.
The copy is made in the build folder only; an editable install reads ``recipes/`` itself.
Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPES = Path(__file__).resolve().parent / "recipes"
SHIPPED = (".yaml", ".bib")


class BuildWithRecipes(build_py):
    """``build_py`` plus the recipe folder under ``benchmark/_recipes``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "benchmark" / "_recipes"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(RECIPES.iterdir()):
            if source.suffix in SHIPPED:
                shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildWithRecipes})
