"""Recipes: the YAML schema and its validation (:mod:`.schema`) and the weighted mix of losses
(:mod:`.mix`). ``from benchmark.recipes import load_recipe, build_mix`` is the library entry point.
"""

from benchmark.recipes.mix import LossMix, build_mix
from benchmark.recipes.schema import LossSpec, Recipe, load_recipe, recipe_names

__all__ = ["LossMix", "LossSpec", "Recipe", "build_mix", "load_recipe", "recipe_names"]
