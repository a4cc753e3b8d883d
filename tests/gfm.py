"""A checker for GitHub-flavoured Markdown tables (the GFM spec's table extension).

GFM renders a table only when a header row is followed by a delimiter row (``|---|:--:|``)
with the same number of cells; otherwise the pipes show as text. :func:`tables` finds every
table of a document and :func:`problems` every line that looks like a table row (starts with
``|``, outside code blocks) but would not render as one, or a body row whose cell count differs
from its header's (GFM pads or drops cells silently, which hides a lost column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DELIM_CELL = re.compile(r"^\s*:?-+:?\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass
class Table:
    """One table: its first line (1-based), header cells and body rows."""

    line: int
    header: list[str]
    rows: list[list[str]]


def split_row(line: str) -> list[str]:
    """Cells of a table row: split on unescaped pipes, outer pipes optional, cells stripped."""
    text = line.strip()
    cells, cell, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            cell += "|"
            i += 2
            continue
        if ch == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += ch
        i += 1
    cells.append(cell)
    if text.startswith("|"):
        cells = cells[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        cells = cells[:-1]
    return [c.strip() for c in cells]


def _is_delimiter(line: str) -> bool:
    if "|" not in line and "-" not in line:
        return False
    cells = split_row(line)
    return bool(cells) and all(_DELIM_CELL.match(c) for c in cells)


def _code_lines(lines: list[str]) -> set[int]:
    """Indices of lines inside fenced code blocks (fences included)."""
    inside, fence, out = False, "", set()
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m and (not inside or m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            out.add(i)
            inside, fence = (not inside), m.group(1)
            continue
        if inside:
            out.add(i)
    return out


def parse(text: str) -> tuple[list[Table], list[str]]:
    """Every table of ``text`` and every problem (``'line N: why'``)."""
    lines = text.splitlines()
    code = _code_lines(lines)
    tables: list[Table] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in code or not line.lstrip().startswith("|"):
            i += 1
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        header = split_row(line)
        if i + 1 in code or not _is_delimiter(nxt):
            problems.append(f"line {i + 1}: a table row without a delimiter row under its "
                            "header: renders as raw pipes")
            i += 1
            continue
        if len(split_row(nxt)) != len(header):
            problems.append(f"line {i + 2}: delimiter row has {len(split_row(nxt))} cells, the "
                            f"header {len(header)}: not a table")
            i += 2
            continue
        table = Table(i + 1, header, [])
        i += 2
        while i < len(lines) and i not in code and lines[i].strip() and "|" in lines[i]:
            row = split_row(lines[i])
            if len(row) != len(header):
                problems.append(f"line {i + 1}: {len(row)} cells under a header of "
                                f"{len(header)}")
            table.rows.append(row)
            i += 1
        tables.append(table)
    return tables, problems
