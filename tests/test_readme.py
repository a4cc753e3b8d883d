"""The README is checked against the program: its commands parse, its quick-start output is
what `run` prints, its citation is what `cite` prints, and its first screen leads with the
result (the generated reference table) and a quick start that works offline."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import build_parser
from benchmark.references import bibtex

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ("README.md", "docs/USAGE.md", "docs/SWEEPS.md")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def _commands(text: str) -> list[str]:
    """Every `python -m benchmark ...` line of the bash and text blocks (prompts and comments
    stripped; the output lines of a transcript are skipped)."""
    out = []
    for block in _blocks(text, "bash") + _blocks(text, "text"):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split("  #")[0].split(" # ")[0].strip()
            if line.startswith("python -m benchmark "):
                out.append(line)
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_parses(doc: str) -> None:
    """Each command shown runs through the real argument parser (sub-command, options and
    values all accepted)."""
    commands = _commands((ROOT / doc).read_text(encoding="utf-8"))
    assert commands, doc
    for line in commands:
        argv = shlex.split(line)[3:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse refuses with exit 2
            pytest.fail(f"{doc}: `{line}` does not parse ({exc.code})")


def test_inline_commands_name_real_sub_commands() -> None:
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 - argparse's own
    for match in re.findall(r"`python -m benchmark (\w[\w-]*)", README):
        assert match in names, match


def test_first_screen_leads_with_the_result_and_a_quick_start() -> None:
    """What it is, then the generated reference table, then an offline quick start that says
    which data it uses; reference material lives in docs/, and the page ends with Citing."""
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings[0].startswith("The result") and headings[1].startswith("Quick start")
    assert headings[-1] == "Citing"
    first = README.split("## Quick start")[0]
    assert "<!-- reference-table:begin -->" in first and "<!-- reference-table:end -->" in first
    assert README.index("<!-- reference-table:begin -->") < 2500  # about one screen of text
    quick = README.split("## Quick start")[1].split("\n## ")[0]
    assert "synthetic stand-in" in quick and "no pretrained backbone" in quick
    assert "run l1 " in quick  # a backbone-free recipe
    for moved in ("sbatch", "slurm_jobs.json", "| profile | UNet width |"):
        assert moved not in README, moved
    for link in re.findall(r"\]\(((?:docs/|results/|datasets/)?[\w./-]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_citation_block_is_what_cite_prints() -> None:
    (block,) = _blocks(README, "bibtex")
    assert block.strip() == bibtex(["lossbench"]).strip()


def _normalise(text: str) -> list[str]:
    """Output lines with what depends on the machine masked: numbers, the precision chosen,
    the checkout's path, column padding."""
    out = []
    for line in text.strip().splitlines():
        line = line.replace(str(ROOT), "/path/to/lossbench")
        line = re.sub(r"precision auto -> .*", "precision auto -> P", line)
        line = re.sub(r"\d+(?:\.\d+)?", "N", line)
        out.append(re.sub(r"\s+", " ", line).strip())
    return out


@pytest.mark.slow
def test_quick_start_output_is_what_run_prints(tmp_path: Path) -> None:
    """The quick start's command, run for real (synthetic stand-in, smoke profile, about a
    minute on 2 CPU cores): the lines printed are the README's, numbers masked."""
    (block,) = [b for b in _blocks(README, "text") if "--profile smoke --metrics" in b]
    shown, *expected = block.strip().splitlines()
    argv = shlex.split(shown.removeprefix("$ "))[3:] + ["--results", str(tmp_path / "results")]
    done = subprocess.run([sys.executable, "-m", "benchmark", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = (done.stderr + done.stdout).replace(str(tmp_path / "results") + "/", "results/")
    # without a terminal the progress bar becomes a line per log interval (" iteration k/n"),
    # which a reader at a terminal does not see: left out like the bar's "\r" lines
    printed_lines = [ln for ln in printed.splitlines() if not ln.startswith("\r")
                     and ": iteration " not in ln
                     and ("lossbench:" in ln or ln.startswith(("recipe", "l1 ", "run folder")))]
    assert _normalise("\n".join(printed_lines)) == _normalise("\n".join(expected))
