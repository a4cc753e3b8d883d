"""The bibliography: recipes and losses cite keys it holds, ``cite`` prints them, nothing internal.

The repository names papers, never the internal documents the losses were first specified in:
a ``git grep`` over the checkout must find none of their file names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark import references
from benchmark.cli import main
from benchmark.losses import LOSSES
from benchmark.recipes.cite import cite_keys, recipe_keys
from benchmark.recipes.mix import load_recipe, recipe_names
from benchmark.references import bibliography, bibtex, parse_bib, short_citation

ROOT = Path(__file__).resolve().parents[1]
ENTRY = re.compile(r"^@(\w+)\{([^,]+),$", flags=re.M)
# what must never appear in the repository (outside .ci/): internal document names, paths
FORBIDDEN = r"[0-9]{3}_[0-9a-f]{16}|\.\./shared|DESIGN\.md"


def test_bib_file_parses_and_every_entry_is_complete() -> None:
    text = references.BIB_PATH.read_text(encoding="utf-8")
    bib = parse_bib(text)
    assert list(bib) == [m.group(2) for m in ENTRY.finditer(text)]  # nothing skipped
    for key, entry in bib.items():
        assert references.field(entry, "title"), key
        assert references.field(entry, "year").isdigit(), key
        assert entry.count("{") == entry.count("}"), key


def test_parser_refuses_a_duplicate_and_an_open_entry() -> None:
    one = "@misc{a,\n  title = {T},\n  year = {2000}\n}\n"
    with pytest.raises(ValueError, match=r"^key 'a' appears twice$"):
        parse_bib(one + one)
    with pytest.raises(ValueError, match=r"^entry 'b' has no closing brace$"):
        parse_bib("@misc{b,\n  title = {T\n")


def test_every_recipe_and_every_loss_cites_keys_the_bibliography_holds() -> None:
    bib = bibliography()
    for name in recipe_names():
        recipe = load_recipe(name)
        assert recipe.references, name
        assert set(recipe_keys(recipe)) <= set(bib), name
    for name, cls in LOSSES.items():
        assert cls.references, name
        assert set(cls.references) <= set(bib), name
    assert set(references.common_keys()) <= set(bib)


def test_every_entry_is_cited_somewhere() -> None:
    """No dead entries: each key is used by a recipe, a loss, the metrics or the docs."""
    used = " ".join(p.read_text(encoding="utf-8") for p in
                    [*ROOT.glob("recipes/*.yaml"), *ROOT.glob("benchmark/**/*.py"),
                     *ROOT.glob("docs/*.md")])
    assert [k for k in bibliography() if k not in used] == []


def test_short_citation() -> None:
    assert short_citation("zhao2017loss") == "Zhao et al. (2017)"
    assert short_citation("simonyan2015vgg") == "Simonyan and Zisserman (2015)"
    assert short_citation("leftthomas2017srgan") == "leftthomas (2017)"
    assert short_citation("exposurefusion_losses") == "Anonymous (2023)"
    assert short_citation("lossbench") == "The lossbench developers (2026)"


def test_cite_keys_order_and_uniqueness() -> None:
    s3net, l1 = load_recipe("s3net"), load_recipe("l1")
    keys = cite_keys([s3net, l1])
    assert keys[0] == "lossbench"  # lossbench itself, then the recipe's own keys
    assert keys[1:4] == ["yang2021s3net", "yang2020ynet", "wang2020drn"]
    assert len(keys) == len(set(keys))
    assert keys.index("charbonnier1994two") < keys.index("zhao2017loss")  # s3net before l1
    assert keys[-len(references.common_keys()):] == references.common_keys()


def test_cite_command_prints_bibtex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cite", "srgan_tv", "l1"]) == 0
    out = capsys.readouterr().out
    printed = parse_bib(out)
    assert list(printed) == cite_keys([load_recipe("srgan_tv"), load_recipe("l1")])
    assert printed["ledig2016srganv1"] == bibliography()["ledig2016srganv1"]
    assert out.startswith("% lossbench and the papers behind the recipe(s) srgan_tv, l1,")
    assert "% some entries use \\url: load \\usepackage{url}" in out  # leftthomas2017srgan
    for key in ("ledig2017srgan", "goodfellow2014gan", "zhang2018lpips", "wei2018retinexnet",
                "ronneberger2015unet"):
        assert key in printed


def test_cite_refuses_an_unknown_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cite", "s3nett"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lossbench: error: unknown recipe 's3nett'; did you mean 's3net'?")


def test_bibtex_refuses_an_unknown_key() -> None:
    from benchmark.errors import UserError

    with pytest.raises(UserError, match=r"^'zhao2017los' is not a key of recipes/references.bib; "
                       r"did you mean 'zhao2017loss'\? \(add the paper's BibTeX entry there"):
        bibtex(["zhao2017los"])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_recipe_with_the_old_source_field_is_refused(tmp_path: Path) -> None:
    from benchmark.errors import UserError

    path = _write(tmp_path, "old", "name: old\nsource: notes.txt\nlosses:\n"
                  "  - {name: l1, weight: 1}\n")
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    assert str(info.value) == (
        f"{path}: source: this field was replaced by 'references', a list of BibTeX keys of "
        "recipes/references.bib (e.g. references: [zhao2017loss]); add the paper's entry there "
        "and cite its key")


def test_recipe_reference_problems_name_the_key_path(tmp_path: Path) -> None:
    from benchmark.errors import UserError

    path = _write(tmp_path, "refs", "name: refs\nreferences: [zhao2017loss, wang2004sim, 3]\n"
                  "losses:\n  - {name: l1, weight: 1}\n")
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    assert str(info.value).splitlines() == [
        f"{path}: references[1]: 'wang2004sim' is not a key of recipes/references.bib; did you "
        "mean 'wang2004ssim'? (add the paper's BibTeX entry there and cite its key)",
        f"{path}: references[2]: expected a BibTeX key, got a number (3)",
    ]
    path = _write(tmp_path, "refs", "name: refs\nreferences: zhao2017loss\n"
                  "losses:\n  - {name: l1, weight: 1}\n")
    with pytest.raises(UserError, match=r"references: expected a list of BibTeX keys, got a "
                       r"string 'zhao2017loss'$"):
        load_recipe(str(path))


def test_no_internal_document_names_in_the_repository() -> None:
    """``git grep`` of the tracked and untracked files outside .ci/ finds none."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    found = subprocess.run(
        ["git", "grep", "-n", "--untracked", "-E", FORBIDDEN, "--", ".", ":!.ci"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert found.returncode in (0, 1), found.stderr
    assert found.stdout == ""


def test_cite_without_recipes_prints_lossbench_itself(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["cite"]) == 0
    printed = parse_bib(capsys.readouterr().out)
    assert list(printed)[0] == "lossbench"
    assert list(printed)[1:] == references.common_keys()


def test_citation_files_agree_with_the_package() -> None:
    """CITATION.cff, LICENSE and the lossbench BibTeX entry say what pyproject.toml says."""
    import tomllib

    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["authors"]
    assert cff["version"] == project["version"] and cff["license"] == project["license"]["text"]
    assert cff["title"].startswith("lossbench")
    entry = bibliography()["lossbench"]
    assert f"version {project['version']}" in references.field(entry, "howpublished")
    assert str(cff["date-released"])[:4] == references.field(entry, "year")
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def _bibtex_log(tmp_path: Path, style: str) -> str:
    """Run bibtex on every entry of the bibliography under ``style``; its log."""
    exe = shutil.which("bibtex")
    if exe is None:
        pytest.skip("bibtex is not installed (CI installs texlive-latex-base)")
    found = subprocess.run(["kpsewhich", f"{style}.bst"], capture_output=True, text=True,
                           check=False)
    if not found.stdout.strip():
        pytest.skip(f"{style}.bst is not installed (texlive-latex-recommended)")
    shutil.copy(references.BIB_PATH, tmp_path / "refs.bib")
    (tmp_path / "paper.aux").write_text(
        "\\relax\n\\citation{*}\n\\bibstyle{" + style + "}\n\\bibdata{refs}\n")
    done = subprocess.run([exe, "paper"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    log = (tmp_path / "paper.blg").read_text(encoding="latin-1")
    assert done.returncode == 0, log
    return log + (tmp_path / "paper.bbl").read_text(encoding="latin-1")


@pytest.mark.parametrize("style", ["plain", "plainnat"])
def test_every_entry_prints_with_no_bibtex_warning(tmp_path: Path, style: str) -> None:
    """bibtex under plain and plainnat: no warning, every entry printed, arXiv ids shown."""
    log = _bibtex_log(tmp_path, style)
    blg = log.split("\\begin{thebibliography}")[0]
    assert "Warning" not in blg and "error" not in blg.lower(), blg
    bbl = log[len(blg):]
    assert bbl.count("\\bibitem") == len(bibliography())
    for arxiv in ("2105.00681", "2304.02978", "1609.04802v1", "2208.14818", "2008.08298"):
        assert f"arXiv:{arxiv}" in bbl, arxiv
    if style == "plainnat":
        assert "Anonymous(2023)" in bbl.replace(" ", "") or "{Anonymous}(2023)" in bbl
