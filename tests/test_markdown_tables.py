"""Every Markdown table the project shows or writes is a valid GitHub-flavoured Markdown table.

The checker (tests/gfm.py) follows the GFM spec's table rules; it was cross-checked against
markdown-it-py's table parser on every Markdown file of the repository (same tables found).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.gfm import parse, split_row

ROOT = Path(__file__).resolve().parents[1]


def test_checker_accepts_a_table_and_reads_its_cells() -> None:
    text = "intro\n\n| a | b \\| c |\n|---|:--:|\n| 1 | `x \\| y` |\n|2|3|\n\nafter | not a row\n"
    tables, problems = parse(text)
    assert problems == []
    (table,) = tables
    assert (table.line, table.header) == (3, ["a", "b | c"])
    assert table.rows == [["1", "`x | y`"], ["2", "3"]]
    assert split_row("no | outer | pipes") == ["no", "outer", "pipes"]


def test_checker_finds_what_would_render_as_raw_pipes() -> None:
    text = ("| a | b |\n| 1 | 2 |\n\n| h | i |\n|---|\n\n| x | y |\n|---|---|\n| 1 | 2 | 3 |\n"
            "```\n| inside | code |\n```\n")
    tables, problems = parse(text)
    assert problems == [
        "line 1: a table row without a delimiter row under its header: renders as raw pipes",
        "line 2: a table row without a delimiter row under its header: renders as raw pipes",
        "line 5: delimiter row has 1 cells, the header 2: not a table",
        "line 9: 3 cells under a header of 2",
    ]
    assert [t.line for t in tables] == [7]


def _markdown_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                                 "*.md"], cwd=ROOT, capture_output=True, text=True, check=True,
                                timeout=60).stdout.split()
        files = [ROOT / f for f in listed]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in ROOT.rglob("*.md") if ".venv" not in p.parts]
    return sorted(f for f in files if f.is_file())


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_repository_markdown_tables_are_valid(path: Path) -> None:
    _, problems = parse(path.read_text(encoding="utf-8"))
    assert problems == [], path
