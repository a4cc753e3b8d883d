"""``python -m benchmark cite [RECIPE...]``: the BibTeX of lossbench and of everything behind a
set of recipes.

First lossbench itself; then for each recipe its own papers (``references:``) and those of every
loss it mixes; then, once, the metrics, the dataset (LOL) and the network every lossbench number
rests on. Each entry is printed once, in that order, ready to paste into a ``.bib`` file; every
entry prints under plain and plainnat with no bibtex warning (tests/test_references.py).
"""

from __future__ import annotations

from typing import Any

from benchmark.losses import LOSSES
from benchmark.recipes.schema import Recipe, load_recipe
from benchmark.references import SELF_REFERENCE, bibtex, common_keys, needs_url_package


def recipe_keys(recipe: Recipe) -> list[str]:
    """The recipe's own keys, then its losses' keys, in order, each once."""
    keys = list(recipe.references)
    for spec in recipe.losses:
        keys += list(getattr(LOSSES.get(spec.name), "references", ()))
    return list(dict.fromkeys(keys))


def cite_keys(recipes: list[Recipe]) -> list[str]:
    """Every key behind ``recipes``: lossbench's, theirs and their losses', then the metrics',
    data's, net's."""
    keys = [k for recipe in recipes for k in recipe_keys(recipe)]
    return list(dict.fromkeys([SELF_REFERENCE, *keys, *common_keys()]))


def command_cite(args: Any) -> int:
    """Print the BibTeX entries of lossbench and behind ``args.recipes`` (names or YAML paths;
    none: lossbench, the metrics, the dataset and the network)."""
    recipes = [load_recipe(name) for name in args.recipes or []]
    names = ", ".join(r.name for r in recipes)
    text = bibtex(cite_keys(recipes))
    print("% lossbench" + (f" and the papers behind the recipe(s) {names}, their losses," if
                           names else ",")
          + " the metrics (PSNR, SSIM, LPIPS, GT-mean), the dataset (LOL) and the network "
          "(U-Net)")
    if needs_url_package(text):
        print("% some entries use \\url: load \\usepackage{url} (or hyperref) in the document")
    print()
    print(text, end="")
    return 0


__all__ = ["cite_keys", "command_cite", "recipe_keys"]
