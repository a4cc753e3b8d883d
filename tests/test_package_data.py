"""The shipped files are found through one place (:mod:`benchmark.resources`), in the checkout
the editable sources themselves; tests/test_install.py checks a built wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

from benchmark import references, resources
from benchmark.data import known
from benchmark.recipes import schema

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_reads_the_editable_sources() -> None:
    assert resources.recipes_dir() == ROOT / "recipes"
    assert schema.RECIPES_DIR == ROOT / "recipes"
    assert references.BIB_PATH == ROOT / "recipes" / "references.bib"
    assert known.KNOWN_DIR == ROOT / "benchmark" / "data" / "known"
    # a stale wheel copy in the checkout would hide every edit of recipes/
    assert not (ROOT / "benchmark" / resources.PACKAGED_RECIPES).exists()


def test_the_build_packages_benchmark_only_with_its_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["packages"]["find"]["include"] == ["benchmark", "benchmark.*"]
    assert config["package-data"]["benchmark.data"] == ["known/*.sha256"]
    assert sorted(p.name for p in known.KNOWN_DIR.glob("*.sha256")) == ["LOL-v1.sha256"]
    assert "graft recipes" in (ROOT / "MANIFEST.in").read_text().splitlines()
