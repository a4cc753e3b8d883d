"""LOL-style paired datasets: layout discovery, validation, image reading, the validation split.

Layouts recognised by :func:`discover` (:data:`LAYOUTS`; folder names case-insensitive):
``lol_v1`` (``our485/{low,high}``, ``eval15/{low,high}``), ``lol_v2``
(``Train|Test/{Low,Normal}``) and ``retinexformer`` (``Train|Test/{input,target}``).

The official LOL-v2 release holds two datasets (``Real_captured/`` and ``Synthetic/``), each in
the lol_v2 layout. ``--data`` must point at one of them; pointing at the release folder is an
error that names both candidates (a silent choice would mix up which numbers were measured).

Pairs match by file stem. A ``low`` prefix in the low folder and a ``normal`` prefix in the
high folder are ignored when a digit follows (``low00001.png`` <-> ``normal00001.png``, the
LOL-v2 Real_captured naming); other names must match exactly.

Validation reads every file once as bytes (no pixel decoding for PNG; the checks are in
:mod:`benchmark.data.imagefiles`): the sha256 for :func:`manifest_hash` is taken from those bytes,
PNG chunks are CRC-checked up to ``IEND``, JPEG files must end with the EOI marker, and the
header (size, mode) comes from Pillow. All problems are gathered and raised together in one
:class:`UserError`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmark.data.imagefiles import file_sha256, inspect_file, integrity_problem
from benchmark.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: layout -> split -> (split folder, low-light folder, normal-light folder)
LAYOUTS: dict[str, dict[str, tuple[str, str, str]]] = {
    "lol_v1": {"train": ("our485", "low", "high"), "test": ("eval15", "low", "high")},
    "lol_v2": {"train": ("Train", "Low", "Normal"), "test": ("Test", "Low", "Normal")},
    "retinexformer": {"train": ("Train", "input", "target"), "test": ("Test", "input", "target")},
}
LOL_V2_SUBSETS = ("Real_captured", "Synthetic")

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_PROBLEM_ORDER = (
    "missing folder",
    "empty split",
    "duplicate name",
    "unreadable",
    "grayscale",
    "missing partner",
    "size mismatch",
    "channel mismatch",
)
_MAX_PER_KIND = 12
_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class Pair:
    """One low-light image and its normal-light reference."""

    name: str
    low: Path
    high: Path


@dataclass(frozen=True)
class Dataset:
    """A validated paired dataset; ``root`` is absolute, pairs are sorted by name."""

    root: Path
    layout: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]


def default_dataset_dir() -> Path:
    """Where the embedded synthetic default lives: ``<repo>/datasets/synth`` in a checkout (and
    an editable install); installed from a wheel, ``$XDG_CACHE_HOME/lossbench/datasets/synth``
    (``~/.cache/...``), never inside the installed package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "benchmark").is_dir():
        return root / "datasets" / "synth"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lossbench" / "datasets" / "synth"


def _natural_key(text: str) -> list[object]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def _find_dir(parent: Path | None, name: str) -> Path | None:
    """``parent/name`` matched case-insensitively (an exact-case match wins)."""
    if parent is None or not parent.is_dir():
        return None
    if (parent / name).is_dir():
        return parent / name
    hits = sorted(p for p in parent.iterdir() if p.name.lower() == name.lower() and p.is_dir())
    return hits[0] if hits else None


def _pair_key(stem: str, prefix: str) -> str:
    match = re.match(rf"{prefix}[_-]?(?=\d)", stem, flags=re.IGNORECASE)
    return stem[match.end() :] if match else stem


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: dict[str, list[str]] = {kind: [] for kind in _PROBLEM_ORDER}

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, kind: str, text: str) -> None:
        self.items[kind].append(text)

    def raise_if_any(self, layout: str) -> None:
        total = sum(len(v) for v in self.items.values())
        if not total:
            return
        lines = [f"dataset {self.root} (layout {layout}) has {total} problem(s):"]
        for kind in _PROBLEM_ORDER:
            texts = self.items[kind]
            lines += [f"  - {kind}: {t}" for t in texts[:_MAX_PER_KIND]]
            if len(texts) > _MAX_PER_KIND:
                lines.append(f"  - ... and {len(texts) - _MAX_PER_KIND} more {kind} problem(s)")
        lines.append("Fix or remove these files and run again.")
        raise UserError("\n".join(lines))


def _index(folder: Path, prefix: str, problems: _Problems) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = _pair_key(path.stem, prefix)
        if key in found:
            problems.add(
                "duplicate name",
                f"{problems.rel(found[key])} and {problems.rel(path)} both pair as {key!r}",
            )
            continue
        found[key] = path
    return found


def _detect_layout(root: Path) -> tuple[str, dict[str, tuple[Path | None, Path | None]], list]:
    """Return (layout, split -> (low dir, high dir), missing folder names)."""
    candidates = {}
    for layout, spec in LAYOUTS.items():
        folders, missing = {}, []
        for split, (top, low, high) in spec.items():
            top_dir = _find_dir(root, top)
            dirs = (_find_dir(top_dir, low), _find_dir(top_dir, high))
            missing += [f"{top}/{n}" for n, d in zip((low, high), dirs, strict=True) if d is None]
            folders[split] = dirs
        candidates[layout] = (folders, missing)
    complete = [name for name, (_, missing) in candidates.items() if not missing]
    if len(complete) > 1:
        raise UserError(
            f"dataset {root} matches several layouts ({', '.join(complete)}); "
            "keep one set of split folders"
        )
    if complete:
        return complete[0], *candidates[complete[0]]
    subsets = [d for d in (_find_dir(root, s) for s in LOL_V2_SUBSETS) if d is not None]
    if subsets:
        raise UserError(
            f"dataset {root} looks like the LOL-v2 release, which holds "
            f"{len(subsets)} dataset(s): point --data at one of "
            + ", ".join(str(d) for d in subsets)
        )
    score = {name: 4 - len(missing) for name, (_, missing) in candidates.items()}
    best = max(score.values())
    leaders = [name for name, s in score.items() if s == best]
    if best > 0 and len(leaders) == 1:
        return leaders[0], *candidates[leaders[0]]
    seen = sorted(p.name + "/" for p in root.iterdir() if p.is_dir())[:12]
    raise UserError(
        f"dataset {root}: unknown layout. Looked for lol_v1 (our485/{{low,high}} + "
        "eval15/{low,high}), lol_v2 (Train|Test/{Low,Normal}, e.g. LOL-v2/Real_captured or "
        "LOL-v2/Synthetic) and retinexformer (Train|Test/{input,target}), folder names "
        f"case-insensitive; found folders: {', '.join(seen) or 'none'}"
    )


def _pair_split(split: str, low_dir: Path, high_dir: Path, problems: _Problems) -> list[Pair]:
    lows, highs = _index(low_dir, "low", problems), _index(high_dir, "normal", problems)
    if not lows or not highs:
        problems.add(
            "empty split",
            f"{split} split: {problems.rel(low_dir)}/ has {len(lows)} image(s) and "
            f"{problems.rel(high_dir)}/ has {len(highs)}; both need images",
        )
        return []
    for key in sorted(set(lows) ^ set(highs), key=_natural_key):
        alone, other = (lows[key], high_dir) if key in lows else (highs[key], low_dir)
        problems.add(
            "missing partner", f"{problems.rel(alone)} has no partner in {problems.rel(other)}/"
        )
    return [Pair(k, lows[k], highs[k]) for k in sorted(set(lows) & set(highs), key=_natural_key)]


def _check_files(pairs: list[Pair], problems: _Problems) -> None:
    paths = [p for pair in pairs for p in (pair.low, pair.high)]
    with ThreadPoolExecutor(_THREADS) as pool:
        info = dict(zip(paths, pool.map(inspect_file, paths), strict=True))
    for path in paths:
        if info[path].problem:
            problems.add("unreadable", f"{problems.rel(path)}: {info[path].problem}")
        elif info[path].mode in _GRAY_MODES:
            mode = info[path].mode
            problems.add("grayscale", f"{problems.rel(path)} is grayscale ({mode}) in an RGB split")
    for pair in pairs:
        low, high = problems.rel(pair.low), problems.rel(pair.high)
        a, b = info[pair.low], info[pair.high]
        if a.problem or b.problem or a.mode in _GRAY_MODES or b.mode in _GRAY_MODES:
            continue
        if a.size != b.size:
            problems.add(
                "size mismatch",
                f"{low} is {a.size[0]}x{a.size[1]} but {high} is {b.size[0]}x{b.size[1]}",
            )
        elif (a.mode in _ALPHA_MODES) != (b.mode in _ALPHA_MODES):
            problems.add(
                "channel mismatch",
                f"{low} has {_channels(a.mode)} channels ({a.mode}) but "
                f"{high} has {_channels(b.mode)} ({b.mode})",
            )


def _channels(mode: str) -> int:
    return 4 if mode in _ALPHA_MODES else 3


def discover(root: str | Path) -> Dataset:
    """Detect the layout of a paired dataset folder, pair its files and validate every file.

    Raises:
        UserError: listing every problem found (with file names), or naming the missing folder
            or the layouts looked for.
    """
    given = Path(root).expanduser()
    if not given.exists():
        raise UserError(f"dataset folder {given} does not exist")
    if not given.is_dir():
        raise UserError(f"dataset path {given} is not a folder")
    root = given.resolve()
    layout, folders, missing = _detect_layout(root)
    problems = _Problems(root)
    for name in missing:
        problems.add("missing folder", f"{name}/ is missing")
    splits: dict[str, list[Pair]] = {}
    for split, (low_dir, high_dir) in folders.items():
        found = low_dir is not None and high_dir is not None
        splits[split] = _pair_split(split, low_dir, high_dir, problems) if found else []
    _check_files(splits["train"] + splits["test"], problems)
    problems.raise_if_any(layout)
    return Dataset(root, layout, tuple(splits["train"]), tuple(splits["test"]))


def decode_image(path: Path) -> np.ndarray:
    """Decode an RGB image as stored: HxWx3 ``uint8`` or ``uint16``, no float copy.

    OpenCV ``IMREAD_UNCHANGED`` keeps all 16 bits (Pillow would reduce 16-bit RGB to 8); an
    alpha channel is dropped and BGR is turned into RGB in place, so the decoder's buffer is the
    returned array: a dataset held this way costs its uint8 size, nothing more.

    Raises:
        UserError: naming the file when it is unreadable, truncated, grayscale or of an
            unsupported pixel type.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"image {path} cannot be read ({exc.strerror})") from None
    problem = integrity_problem(data)
    if problem:
        raise UserError(f"image {path}: {problem}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    del data
    if img is None:
        raise UserError(f"image {path} cannot be decoded (corrupt or unsupported file)")
    if img.ndim == 2 or img.shape[2] < 3:
        raise UserError(f"image {path} is grayscale; lossbench needs RGB images")
    if img.dtype not in _SCALE:
        raise UserError(f"image {path} has {img.dtype} pixels; expected 8- or 16-bit integers")
    if img.shape[2] > 3:
        img = np.ascontiguousarray(img[:, :, :3])
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
    return img


_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_float(img: np.ndarray) -> np.ndarray:
    """A decoded image as float32 in [0, 1]: 8-bit / 255, 16-bit / 65535 (float input as is)."""
    scale = _SCALE.get(img.dtype)
    if scale is None:
        return np.ascontiguousarray(img, dtype=np.float32)
    return img.astype(np.float32) / np.float32(scale)


def read_image(path: Path) -> np.ndarray:
    """Read an RGB image as float32 HxWx3 in [0, 1] at its full bit depth
    (:func:`decode_image`, then :func:`to_float`)."""
    return to_float(decode_image(path))


def load_pairs(
    pairs: Sequence[Pair], *, native: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode every pair (threads; OpenCV releases the GIL) -> (low images, high images).

    ``native=True`` keeps each image as stored (uint8 / uint16, :func:`decode_image`): training
    and validation data stay integer until a crop is taken. The default gives float32 in [0, 1].
    """
    paths = [p for pair in pairs for p in (pair.low, pair.high)]
    reader = decode_image if native else read_image
    with ThreadPoolExecutor(_THREADS) as pool:
        images = list(pool.map(reader, paths))
    low, high = images[0::2], images[1::2]
    for pair, a, b in zip(pairs, low, high, strict=True):
        if a.shape != b.shape:
            raise UserError(
                f"pair {pair.name!r}: {pair.low} is {a.shape[1]}x{a.shape[0]} but "
                f"{pair.high} is {b.shape[1]}x{b.shape[0]}"
            )
    return low, high


def split_train_val(pairs: Sequence[Pair], n_val: int) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """Carve a fixed validation subset out of the training pairs.

    The ``n_val`` pairs whose sha256("lossbench-val:" + name) are smallest form the validation
    set: the choice depends only on the pair names, never on the run seed or the order given,
    so it is the same for every recipe and seed. Both returned tuples keep the input order.
    """
    if n_val < 0:
        raise ValueError(f"n_val must be >= 0, got {n_val}")
    if n_val and n_val >= len(pairs):
        raise UserError(
            f"the training split has {len(pairs)} pair(s): cannot hold out {n_val} "
            "for validation and keep at least one for training"
        )

    def rank(pair: Pair) -> str:
        return hashlib.sha256(f"lossbench-val:{pair.name}".encode()).hexdigest()

    chosen = {pair.name for pair in sorted(pairs, key=rank)[:n_val]}
    train = tuple(p for p in pairs if p.name not in chosen)
    val = tuple(p for p in pairs if p.name in chosen)
    return train, val


def manifest_hash(ds: Dataset) -> str:
    """sha256 over the sorted ``(relative path, file sha256)`` of every file of ``ds``.

    File hashes computed by :func:`discover` are reused (keyed by path, size and mtime).
    """
    paths = {p for pair in ds.train + ds.test for p in (pair.low, pair.high)}
    try:
        rows = sorted((p.relative_to(ds.root).as_posix(), file_sha256(p)) for p in paths)
    except OSError as exc:
        raise UserError(f"cannot hash dataset file {exc.filename}: {exc.strerror}") from None
    digest = hashlib.sha256()
    for rel, sha in rows:
        digest.update(f"{rel}\t{sha}\n".encode())
    return digest.hexdigest()
