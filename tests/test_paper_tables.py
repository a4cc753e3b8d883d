"""The tables as a paper uses them: summary.tex compiles in a one- and a two-column article
with no overfull box, and every Markdown table the tools write is valid GFM that fits a page.

The compile test needs pdflatex with booktabs (CI installs them; .ci/run); it is skipped, with
the reason, on a machine without them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark.analysis.commands import command_compare, command_report
from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.frames import compare_frames
from benchmark.analysis.report import report_markdown_tables
from benchmark.analysis.summary_files import write_tables
from benchmark.analysis.tex import latex_tables
from benchmark.cli import build_parser
from benchmark.recipes.schema import recipe_names
from tests.gfm import parse
from tests.test_results import make_run

# widest realistic content: every shipped recipe name, failures, unofficial weights, 3 seeds
LONGEST = max(recipe_names(), key=len)


def _command(handler, argv: list[str], frames: tuple) -> int:
    """A sub-command as the CLI parses it, on the frames the fixture computed once (the summary
    took three times as long when each command recomputed it)."""
    return handler(build_parser().parse_args(argv), frames=frames)


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory):
    results = tmp_path_factory.mktemp("results")
    for k, recipe in enumerate(recipe_names()):
        for seed in (0, 1, 2):
            if recipe == LONGEST and seed == 2:
                make_run(results, recipe, seed, status="failed", error="NaN in term tv at 12")
                continue
            make_run(results, recipe, seed, [18.0 + 0.3 * k + 0.1 * seed, 19.5 - 0.2 * k,
                                             21.0 + 0.05 * k * seed],
                     unofficial=("alexnet", "vgg19") if recipe in ("s3net", "srgan") else ())
    make_run(results, "l1", 3, [20.0, 21.0, 22.0])  # a seed only the baseline finished
    frames = compare_frames(results, "l1")
    return results, frames[2], frames


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.skip("pdflatex is not installed (CI installs texlive-latex-base and "
                    "texlive-latex-recommended)")
    found = subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True,
                           check=False)
    if not found.stdout.strip():
        pytest.skip("booktabs.sty is not installed (texlive-latex-recommended)")
    return exe


def _compile(tmp_path: Path, options: str, body: str) -> str:
    (tmp_path / "paper.tex").write_text(
        f"\\documentclass[{options}]{{article}}\n\\usepackage{{booktabs}}\n"
        "\\begin{document}\n" + body + "\n\\end{document}\n", encoding="ascii")
    for _ in range(2):  # the second pass resolves the references
        done = subprocess.run([_pdflatex(), "-interaction=nonstopmode", "-halt-on-error",
                               "paper.tex"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, check=False)
        log = (tmp_path / "paper.log").read_text(encoding="latin-1")
        assert done.returncode == 0, log[-3000:]
    return log


@pytest.mark.parametrize("options", ["10pt", "10pt,twocolumn"])
def test_summary_tex_compiles_without_overfull_boxes(summary, tmp_path: Path,
                                                     options: str) -> None:
    results, frame = summary[:2]
    (tex,) = [p for p in write_tables(frame, tmp_path / "tables") if p.suffix == ".tex"]
    text = tex.read_text(encoding="utf-8")
    labels = re.findall(r"\\label\{([^}]+)\}", text)
    refs = " ".join(f"Table~\\ref{{{label}}}" for label in labels)
    log = _compile(tmp_path, options, f"See {refs}.\n\n\\input{{tables/summary.tex}}\n"
                   "\\clearpage\nSee again {refs}.")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "Missing character" not in log
    assert "undefined" not in log.lower().replace("undefined references", "")
    assert "LaTeX Warning: Reference" not in log
    assert len(labels) >= 2 and len(set(labels)) == len(labels)


@pytest.mark.parametrize("options", ["10pt", "10pt,twocolumn"])
def test_reference_tex_compiles(tmp_path: Path, options: str) -> None:
    """The shipped reference (13 recipes, PSNR and SSIM only) compiles with no overfull box,
    its captions naming the network, schedule, seeds and test set."""
    shipped = Path(__file__).resolve().parents[1] / "results" / "reference" / "LOL-v1" / "lite"
    runs, _, frame = compare_frames(shipped, "l1")
    text = latex_tables(frame, runs=runs)
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "summary.tex").write_text(text, encoding="utf-8")
    log = _compile(tmp_path, options, "\\input{tables/summary.tex}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "A UNet (width 16, 1.94 M parameters) trained with each loss for 2,000 " \
           "iterations (profile lite), seeds 0, 1, 2, 3, 4; scores on the 15 test images of " \
           "LOL-v1." in text


def test_summary_tex_is_encoding_safe_and_labelled(summary) -> None:
    frame = summary[1]
    text = latex_tables(frame)
    assert text.isascii()  # no Unicode minus, dagger, arrows, pm: OT1/T1 safe
    # minus signs are math minus ($-$); "--" is an en dash between interval bounds
    assert re.search(r"(?<![\w$\\{-])-(?=[\d.])", text) is None
    assert re.search(r"\de-\d", text) is None
    assert "<" not in text.replace("$<$", "") and ">" not in text.replace("$>$", "")
    assert r"\textsuperscript{\dag}" in text and r"\textsuperscript{\ddag}" in text
    assert r"\label{tab:lossbench-smoke-" in text
    manifest = str(frame["dataset"].iloc[0])[:12]
    assert (r"\caption{Low-light enhancement losses compared with the smoke profile of "
            f"lossbench on a dataset with manifest {manifest}.") in text
    assert text.count(r"\toprule") == text.count(r"\bottomrule") == text.count(r"\label{")


def test_caption_uses_the_dataset_name_and_can_be_replaced(summary) -> None:
    frame = summary[1].assign(dataset_name="LOL-v1")
    text = latex_tables(frame, caption="Our losses on LOL_v1 & more")
    assert r"\label{tab:lossbench-smoke-lol-v1}" in text
    assert r"\caption{Our losses on LOL\_v1 \& more. The lossbench network" in text
    assert "on LOL-v1." in latex_tables(frame)


def test_compare_writes_the_captions_it_is_given(summary, capsys) -> None:
    """--caption for every table; a final period is not doubled; ~ and -- print as typed."""
    results = summary[0]
    assert _command(command_compare, [
        "compare", "--results", str(results), "--caption", "Results.", "--caption",
        "intervals=Intervals ~ --metrics", "--caption", "runs=n=3 runs", "--caption",
        "tests2=Power"], summary[2]) == 0
    capsys.readouterr()
    text = (results / "tables" / "summary.tex").read_text()
    assert r"\caption{Results. A UNet (width 8, " in text and "Results.." not in text
    assert r"\caption{Intervals \textasciitilde{} -{}-metrics. A UNet" in text
    assert r"\caption{n=3 runs. A UNet" in text and r"\caption{Power. A UNet" in text


def test_captions_stand_alone(summary) -> None:
    """Network, profile, iterations, seeds, test set, what ± and the intervals are, * and bold:
    in every table's caption; intervals as [a, b]; p-values without e-notation."""
    results, frame = summary[:2]
    runs = summary[2][0]
    text = latex_tables(frame, runs=runs)
    captions = re.findall(r"\\caption\{(.*)\}\n", text)
    assert len(captions) == 5
    for caption in captions:
        assert "trained with each loss for 20 iterations (profile smoke), seeds 0, 1, 2, 3; " \
               "scores on the 3 test images of" in caption, caption
    assert r"Mean $\pm$ SD over seeds" in captions[0]
    # no --all-pairs: bold and ranks are untested, and the caption says there are none
    assert "no bold and no ranks" in captions[0] and r"\textbf" not in text
    assert r"* p $<$ 0.05 (crossed seed $\times$ image test" in captions[0]
    assert "Holm-adjusted over the" in captions[0]
    assert r"Table~\ref{tab:lossbench-smoke-" in captions[0]
    assert "the tables that follow" not in text and "Student t" in captions[1]
    assert re.search(r"\[\$-\$?\d+\.\d+, \$?-?\$?\d+\.\d+\]|\[\d+\.\d+, \d+\.\d+\]", text)
    assert re.search(r"\d--\d", text) is None  # no en-dash intervals
    assert re.search(r"\de\$?-", text) is None and "e-0" not in text  # no e-notation
    assert "machine-dependent" in captions[2]


def test_tables_show_only_computed_metrics(summary, tmp_path: Path) -> None:
    """Runs made with --metrics psnr,ssim: no LPIPS column anywhere, a table that fits one
    column, and summary.csv leaves lpips_comparable empty."""
    import pandas as pd

    frame = summary[1].assign(lpips_mean=float("nan"))
    for text in (markdown_tables(frame), report_markdown_tables(frame)):
        tables, _ = parse(text)
        assert not [h for t in tables for h in t.header if "LPIPS" in h]
        assert "LPIPS n/a" not in text
    lines = latex_tables(frame).splitlines()
    headers = [lines[i + 1] for i, line in enumerate(lines) if line == r"\toprule"]
    assert len(headers) == 5 and not [h for h in headers if "LPIPS" in h]
    paths = write_tables(frame, tmp_path)
    csv = pd.read_csv(paths[0])
    assert csv["lpips_comparable"].isna().all()


def test_default_compare_table_fits_github(summary, capsys) -> None:
    """The default `compare` table has at most 7 columns; `--wide` has every one; the train
    time is in no default table."""
    results = summary[0]
    assert _command(command_compare, ["compare", "--results", str(results)], summary[2]) == 0
    tables, problems = parse(capsys.readouterr().out)
    assert problems == [] and tables and all(len(t.header) <= 7 for t in tables)
    assert not any("time" in h.lower() for t in tables for h in t.header)
    assert _command(command_compare, ["compare", "--results", str(results), "--wide"],
                    summary[2]) == 0
    wide, problems = parse(capsys.readouterr().out)
    assert problems == [] and len(wide[0].header) > 7
    assert not any("time" in h.lower() for h in wide[0].header)


def _width(header: list[str], rows: list[list[str]]) -> int:
    """Characters a table needs on one line: the widest cell of each column plus padding."""
    return sum(max(len(c) for c in col) + 3 for col in zip(header, *rows, strict=True))


def test_markdown_tables_are_valid_and_the_report_s_fit_a_page(summary) -> None:
    frame = summary[1]
    for text in (markdown_tables(frame), report_markdown_tables(frame)):
        tables, problems = parse(text)
        assert problems == [] and len(tables) >= 2
    tables, _ = parse(report_markdown_tables(frame))
    assert len(tables) == 4  # summary, intervals, seeds/time/ranks, comparisons
    for table in tables:
        # ~140 characters: what a 1280 px window shows unwrapped at GitHub's table font
        assert _width(table.header, table.rows) <= 140, (table.header,
                                                         _width(table.header, table.rows))


def test_report_and_summary_md_tables_are_valid(summary, monkeypatch) -> None:
    from benchmark.analysis import report

    results = summary[0]
    # the tables are under test, not the figures (report.py holds its own name of the function)
    monkeypatch.setattr(report, "write_figures", lambda *a, **k: [])
    assert _command(command_report, ["report", "--results", str(results)], summary[2]) == 0
    for name in ("report.md", "tables/summary.md"):
        tables, problems = parse((results / name).read_text(encoding="utf-8"))
        assert problems == [] and tables, name
