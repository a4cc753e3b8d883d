"""The sample grid: input | each recipe's output | reference, with a zoomed crop per image.

Split from :mod:`benchmark.analysis.plots` (which re-exports these names); same conventions:
pure functions, ``Figure`` objects, no pyplot.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from benchmark import record
from benchmark.analysis.figstyle import MAX_HEIGHT, STYLE, WIDTH, wrap_name


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _read_rgb(path: str) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError):
        return None


def crop_box(reference: np.ndarray, frac: float = 0.25) -> tuple[int, int, int]:
    """``(top, left, size)`` of the square with the most detail (mean luma gradient) in it."""
    h, w = reference.shape[:2]
    size = min(max(8, int(min(h, w) * frac)), h, w)
    luma = reference[..., :3].mean(axis=-1) if reference.ndim == 3 else reference
    grad = np.zeros((h, w))
    grad[:, 1:] += np.abs(np.diff(luma, axis=1))
    grad[1:, :] += np.abs(np.diff(luma, axis=0))
    integral = np.pad(grad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best, box = -1.0, (0, 0, size)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            b, r = top + size, left + size
            score = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if score > best:
                best, box = score, (top, left, size)
    return box


def _aspect(samples: pd.DataFrame, images: list[str]) -> float:
    """Height over width of the first readable image (1 when none reads)."""
    for path in samples[samples["image"].isin(images)]["path"]:
        try:
            with Image.open(path) as im:
                return im.height / im.width
        except (OSError, ValueError):
            continue
    return 1.0


def sample_grid_figure(samples: pd.DataFrame, max_images: int = 3,
                       hide: tuple[str, ...] = ()) -> Figure:
    """Low | each recipe | reference, per test image a full row and a zoomed-crop row.

    Args:
        samples: columns ``image``, ``column`` (``low``, recipe names, ``reference``, in the
            order they should appear), ``path`` (a PNG) and optionally ``seed`` (the run's
            seed, shown in the column title). The crop is the most detailed square of the
            reference, the same for every column, outlined in yellow on the full view.
        max_images: at most this many test images (rows), sorted by name, and fewer when
            more would make the figure taller than a page.
        hide: columns not drawn (e.g. ``("low", "reference")`` for a figure that must not
            show dataset images); the crop is still the reference's most detailed square.
    """
    images = sorted(samples["image"].unique())[:max_images]
    columns = [c for c in dict.fromkeys(samples["column"]) if c not in hide]
    seeds = (samples.dropna(subset=["seed"]).groupby("column")["seed"].first().to_dict()
             if "seed" in samples else {})
    aspect = _aspect(samples, images)  # height / width of the full view
    col_w = WIDTH / max(1, len(columns))
    per_image = col_w * (aspect + 1.0) + 0.1
    images = images[: max(1, int((MAX_HEIGHT - 1.0) // per_image))]  # within a page
    chars = max(4, int(col_w * 72 / (7 * 0.58)))  # a title line's characters in a column
    titles = [wrap_name(c, chars) for c in columns]
    lines = max((t.count("\n") + 1 for t in titles), default=1) + bool(seeds)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, min(MAX_HEIGHT, 0.5 + 0.13 * lines + per_image
                                         * len(images))), layout="constrained")
        if not images:
            return _empty(fig, "no samples/ in these runs")
        axes = fig.subplots(2 * len(images), len(columns), squeeze=False,
                            gridspec_kw={"height_ratios": [aspect, 1.0] * len(images)})
        for i, image in enumerate(images):
            paths = samples[samples["image"] == image].set_index("column")["path"]
            ref = _read_rgb(paths["reference"]) if "reference" in paths else None
            box = crop_box(ref) if ref is not None else None
            for j, column in enumerate(columns):
                full, zoom = axes[2 * i, j], axes[2 * i + 1, j]
                pixels = _read_rgb(paths[column]) if column in paths else None
                for ax in (full, zoom):
                    ax.set_xticks([])
                    ax.set_yticks([])
                    for spine in ax.spines.values():
                        spine.set_visible(False)
                if i == 0:
                    seed = seeds.get(column)
                    full.set_title(titles[j] if seed is None
                                   else f"{titles[j]}\nseed {int(seed)}", fontsize=7)
                if pixels is None:
                    full.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7)
                    continue
                full.imshow(pixels, interpolation="nearest")
                if box is not None:
                    top, left, size = box
                    full.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False,
                                             ec="yellow", lw=0.8))
                    zoom.imshow(pixels[top : top + size, left : left + size],
                                interpolation="nearest")
            axes[2 * i, 0].set_ylabel(image, fontsize=7)
            axes[2 * i + 1, 0].set_ylabel("zoom", fontsize=7)
        shown = ("each recipe's output (input, reference not shown)"
                 if {"low", "reference"} <= set(hide) else "input, each recipe's output, reference")
        fig.suptitle(f"Test images: {shown};\nyellow box: the zoomed region (below)"
                     if len(columns) < 4 else
                     f"Test images: {shown}; yellow box: the zoomed region (below)")
    return fig


def sample_table(runs: pd.DataFrame, baseline: str, max_images: int = 3) -> pd.DataFrame:
    """Image paths for the sample grid: low | baseline | other recipes | reference.

    Uses each recipe's lowest finished seed that has ``samples/``; low and reference images
    come from the baseline's run when it has one.
    """
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    chosen, seeds = {}, {}
    for recipe, sub in ok.groupby("recipe", sort=True):
        found = [(Path(d) / record.SAMPLES_DIR, s)
                 for d, s in zip(sub["run_dir"], sub["seed"], strict=True)
                 if (Path(d) / record.SAMPLES_DIR).is_dir()]
        if found:
            chosen[recipe], seeds[recipe] = found[0]
    rows: list[dict] = []
    if not chosen:
        return pd.DataFrame(columns=["image", "column", "path", "seed"])
    order = sorted(chosen, key=lambda r: (r != baseline, r))
    source = chosen[order[0]]
    images = sorted(p.name[: -len("_output.png")] for p in source.glob("*_output.png"))
    for image in images[:max_images]:
        rows.append({"image": image, "column": "low", "path": str(source / f"{image}_low.png"),
                     "seed": None})
        for recipe in order:
            rows.append({"image": image, "column": recipe, "seed": int(seeds[recipe]),
                         "path": str(chosen[recipe] / f"{image}_output.png")})
        rows.append({"image": image, "column": "reference", "seed": None,
                     "path": str(source / f"{image}_reference.png")})
    return pd.DataFrame(rows)
