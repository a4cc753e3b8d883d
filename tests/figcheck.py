"""Measured layout checks for figures: every text inside the canvas, no two texts overlapping.

A figure is drawn on an Agg canvas and every visible, non-empty ``Text`` artist's bounding box
(in pixels) is compared with the canvas and with every other text's box.
"""

from __future__ import annotations

from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

TOLERANCE = 1.0  # pixels (at 100 dpi): rounding of the renderer's extents


def text_boxes(fig: Figure) -> list[tuple[str, object]]:
    """``(text, bbox in pixels)`` of every visible, non-empty text of ``fig``."""
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(100)
    canvas.draw()
    renderer = canvas.get_renderer()
    ticks, drawn = set(), []  # tick labels exist for ticks outside the view too: only drawn ones
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.majorTicks, *axis.minorTicks]:
                ticks |= {id(tick.label1), id(tick.label2)}
            if not (ax.axison and axis.get_visible()):
                continue
            for tick in axis._update_ticks():  # the ticks the axis draws (inside its view)
                drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    out = []
    for text in [t for t in fig.findobj(Text) if id(t) not in ticks] + drawn:
        if not text.get_visible() or not text.get_text().strip():
            continue
        out.append((text.get_text(), text.get_window_extent(renderer)))
    return out


def layout_problems(fig: Figure) -> list[str]:
    """Every text that sticks out of the canvas or overlaps another text."""
    width, height = fig.bbox.width, fig.bbox.height
    boxes = text_boxes(fig)
    problems = []
    for label, box in boxes:
        if (box.x0 < -TOLERANCE or box.y0 < -TOLERANCE or box.x1 > width + TOLERANCE
                or box.y1 > height + TOLERANCE):
            problems.append(f"outside the canvas ({width:.0f}x{height:.0f}): {label!r} at "
                            f"({box.x0:.0f}, {box.y0:.0f})-({box.x1:.0f}, {box.y1:.0f})")
    for (a, ba), (b, bb) in combinations(boxes, 2):
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > TOLERANCE and h > TOLERANCE:
            problems.append(f"overlap: {a!r} and {b!r}")
    return problems
