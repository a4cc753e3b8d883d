"""What every figure shares: sizes, fonts, the per-recipe palette, axis limits from the bulk of
the data, and saving.

- Sizes: one column (:data:`COLUMN`, 3.5 in) or two columns (:data:`WIDTH`, 7 in) wide, never
  taller than :data:`MAX_HEIGHT` (a text block's height).
- Fonts: TrueType in PDFs (``pdf.fonttype`` 42; IEEE PDF eXpress and ACM refuse Type 3). The
  rc settings apply when a figure is drawn *and* when it is saved, so :func:`save` uses them.
- Palette: Okabe and Ito's eight colours for colour-blind readers, each recipe with its own
  marker and line style as well (stable: the position of the recipe's name in the sorted list
  of every recipe of the results tree), so the 9th recipe differs from the 1st by marker and
  line style, not by a shade.
- Limits: :func:`bulk_limits` takes the axis range from the bulk of the values (median +/- a
  robust spread), so one collapsed run cannot squeeze the others into a few pixels;
  :func:`edge_position` says where a value outside it is drawn (a marked point at the edge).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 8,
         "pdf.fonttype": 42, "ps.fonttype": 42,
         "axes.spines.top": False, "axes.spines.right": False}
WIDTH = 7.0  # inches: a two-column figure (a page's text width)
COLUMN = 3.5  # inches: a one-column figure
MAX_HEIGHT = 9.0  # inches: never taller than a text block

#: Okabe & Ito (2008), ordered so that the first few are the most distinct on white
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#B8A000")  # the last: Okabe-Ito yellow darkened to stay visible on white
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers, 8 colours: (colour, marker) pairs
LINESTYLES = ("-", "--", ":", "-.")  # repeat only after 56 recipes
#: how a value beyond the axis is drawn: at the edge, a triangle pointing outwards
EDGE_MARKERS = {"low_x": "<", "high_x": ">", "low_y": "v", "high_y": "^"}


def recipe_styles(recipes: Iterable[str]) -> dict[str, dict]:
    """``{recipe: {"color", "marker", "ls"}}`` by the recipe's position in the sorted names.

    Pass every recipe of the whole results tree, so a recipe looks the same in every figure of
    every (profile, dataset) group, whichever recipes a group holds.
    """
    names = sorted(set(recipes))
    return {r: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
                "ls": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)]}
            for i, r in enumerate(names)}


def styles_for(recipes: Sequence[str], styles: dict[str, dict] | None) -> dict[str, dict]:
    """``styles`` when it covers ``recipes``, else styles made from ``recipes`` alone."""
    return styles if styles is not None and set(recipes) <= set(styles) else recipe_styles(recipes)


def _finite(values: Iterable[float]) -> np.ndarray:
    return np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)


def bulk_limits(values: Iterable[float], also: Iterable[float] = (), k: float = 6.0,
                pad: float = 0.1) -> tuple[float, float]:
    """Axis limits that hold the bulk of ``values``: those within ``k`` robust SDs (1.4826 x
    the median absolute deviation) of the median, plus ``pad`` of their span on each side.
    Values of ``also`` (interval ends) widen the limits when they lie within the same window.

    A value outside is an outlier for the axis (a collapsed run, an interval stretched by
    one): draw it with :func:`edge_position`.
    """
    v = _finite(values)
    if v.size == 0:
        return (0.0, 1.0)
    med = float(np.median(v))
    scale = 1.4826 * float(np.median(np.abs(v - med)))
    if scale <= 0:
        scale = float(np.std(v)) or abs(med) * 0.05 or 1.0
    inner = v[np.abs(v - med) <= k * scale]
    extra = _finite(also)
    inner = np.concatenate([inner, extra[np.abs(extra - med) <= k * scale]])
    lo, hi = float(inner.min()), float(inner.max())
    span = hi - lo or scale
    return lo - pad * span, hi + pad * span


def inner_limits(limits: tuple[float, float], pad: float = 0.1) -> tuple[float, float]:
    """The range of the data inside ``limits`` made by :func:`bulk_limits` (no padding)."""
    lo, hi = limits
    span = (hi - lo) / (1 + 2 * pad)
    return lo + pad * span, hi - pad * span


def edge_position(value: float, limits: tuple[float, float]) -> tuple[float, str | None]:
    """Where to draw ``value`` on an axis with ``limits``: itself when inside, else halfway
    between the bulk and the axis end, with the side (``"low"`` / ``"high"``)."""
    lo, hi = limits
    if not math.isfinite(value) or lo <= value <= hi:
        return value, None
    inner_lo, inner_hi = inner_limits(limits)
    if value < lo:
        return (lo + inner_lo) / 2, "low"
    return (hi + inner_hi) / 2, "high"


def legend_columns(labels: Sequence[str], width: float, fontsize: float = 7.0) -> int:
    """How many legend columns of ``labels`` fit side by side in ``width`` inches."""
    longest = max((len(s) for s in labels), default=1)
    per = longest * fontsize * 0.56 / 72 + 0.45  # text + handle + padding
    return max(1, min(len(labels), int((width - 0.2) // per)))


def legend_rows_height(n: int, ncols: int, fontsize: float = 7.0) -> float:
    """Inches a figure legend of ``n`` entries in ``ncols`` columns needs."""
    return math.ceil(n / max(1, ncols)) * fontsize * 1.75 / 72 + 0.1


def clamp_height(height: float) -> float:
    return min(MAX_HEIGHT, height)


def wrap_name(name: str, chars: int) -> str:
    """A recipe name over lines of at most ``chars`` characters, broken after underscores."""
    if len(name) <= chars:
        return name
    lines, line = [], ""
    for part in [p + "_" for p in name.split("_")[:-1]] + [name.split("_")[-1]]:
        if line and len(line) + len(part) > chars:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line] if line else lines)


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.pdf`` (TrueType fonts) with no time stamp (stable
    bytes), each replaced atomically (a reader sees the old file or the new, never half)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with mpl.rc_context(STYLE):
        for suffix, kwargs in ((".png", {"dpi": 200, "metadata": {"Software": None}}),
                               (".pdf", {"metadata": {"CreationDate": None, "Creator": None,
                                                      "Producer": None}})):
            path = stem.with_suffix(suffix)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fig.savefig(fh, format=suffix[1:], **kwargs)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            out.append(path)
    return out


__all__ = ["COLUMN", "EDGE_MARKERS", "LINESTYLES", "MARKERS", "MAX_HEIGHT", "PALETTE", "STYLE",
           "WIDTH", "bulk_limits", "clamp_height", "edge_position", "inner_limits",
           "legend_columns", "legend_rows_height", "recipe_styles", "save", "styles_for",
           "wrap_name"]
