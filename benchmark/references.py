"""The project's bibliography (``recipes/references.bib``): reading it and citing from it.

Recipes name their papers as BibTeX keys (``references: [yang2021s3net]``), every loss class
names its own in a ``references`` attribute, and the metrics, the dataset and the network have
the fixed keys below. This module only reads the one ``.bib`` file the repository keeps; it
parses the plain subset of BibTeX that file uses (``@type{key, field = {...}, ...}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from benchmark.errors import UserError, did_you_mean
from benchmark.resources import recipes_dir

#: recipes/references.bib of the checkout, or the wheel's copy (benchmark.resources)
BIB_PATH: Path = recipes_dir() / "references.bib"

#: what every lossbench number rests on besides the recipe: metric -> keys
METRIC_REFERENCES: dict[str, tuple[str, ...]] = {
    "PSNR/SSIM (scikit-image conventions)": ("wang2004ssim", "vanderwalt2014skimage"),
    "LPIPS (AlexNet, v0.1)": ("zhang2018lpips", "krizhevsky2012alexnet"),
    "GT-mean rescaling": ("cai2023retinexformer",),
}
#: the dataset the protocol is defined on (LOL) and the network every recipe trains
DATASET_REFERENCES: tuple[str, ...] = ("wei2018retinexnet",)
NETWORK_REFERENCES: tuple[str, ...] = ("ronneberger2015unet",)
#: lossbench itself: every ``cite`` output starts with it
SELF_REFERENCE = "lossbench"

_ENTRY_START = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,")


def parse_bib(text: str) -> dict[str, str]:
    """Split BibTeX text into ``{key: the entry's full text}``, in file order.

    Raises:
        ValueError: an entry whose braces do not close, or a key that appears twice.
    """
    entries: dict[str, str] = {}
    pos = 0
    while (match := _ENTRY_START.search(text, pos)) is not None:
        depth, start = 0, text.index("{", match.start())
        for i in range(start, len(text)):  # noqa: B007 - i is the closing brace after the loop
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
        else:
            raise ValueError(f"entry '{match.group(2)}' has no closing brace")
        key = match.group(2)
        if key in entries:
            raise ValueError(f"key '{key}' appears twice")
        entries[key] = text[match.start() : i + 1]
        pos = i + 1
    return entries


@lru_cache(maxsize=1)
def bibliography() -> dict[str, str]:
    """The repository's bibliography, ``{key: entry text}``."""
    try:
        return parse_bib(BIB_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{BIB_PATH}: cannot read the bibliography ({exc})") from None


def unknown_key_message(key: str) -> str:
    """Why ``key`` is not a citation key, with a suggestion."""
    return (f"'{key}' is not a key of recipes/references.bib{did_you_mean(key, bibliography())}"
            " (add the paper's BibTeX entry there and cite its key)")


def field(entry: str, name: str) -> str:
    """One field of an entry's text (braces and line breaks flattened), or ''."""
    match = re.search(rf"\b{name}\s*=\s*\{{", entry, flags=re.IGNORECASE)
    if match is None:
        return ""
    depth, start = 1, match.end()
    for i in range(start, len(entry)):
        depth += {"{": 1, "}": -1}.get(entry[i], 0)
        if depth == 0:
            return " ".join(entry[start:i].replace("{", "").replace("}", "").split())
    return ""


def short_citation(key: str) -> str:
    """``Author et al. (year)`` for a key: how tables and listings name a paper briefly."""
    entry = bibliography().get(key, "")
    authors = [a.strip() for a in field(entry, "author").split(" and ") if a.strip()]
    year = field(entry, "year")
    if not authors:
        title = field(entry, "title")
        return f"{title} ({year})" if title else key
    first = authors[0].split(",")[0].strip()
    more = " et al." if len(authors) > 2 else (f" and {authors[1].split(',')[0]}"
                                               if len(authors) == 2 else "")
    return f"{first}{more} ({year})"


def bibtex(keys: Iterable[str]) -> str:
    """The BibTeX entries of ``keys`` (first occurrence order, each once), blank-line separated.

    Raises:
        UserError: a key the bibliography does not hold.
    """
    bib = bibliography()
    out: list[str] = []
    for key in dict.fromkeys(keys):
        if key not in bib:
            raise UserError(unknown_key_message(key))
        out.append(bib[key])
    return "\n\n".join(out) + ("\n" if out else "")


def common_keys() -> list[str]:
    """Keys every lossbench result cites: metrics, dataset, network."""
    keys = [k for group in METRIC_REFERENCES.values() for k in group]
    return keys + list(DATASET_REFERENCES) + list(NETWORK_REFERENCES)


def needs_url_package(text: str) -> bool:
    """Whether BibTeX ``text`` uses ``\\url`` (the document then needs the url package or
    hyperref)."""
    return "\\url{" in text


__all__ = ["BIB_PATH", "DATASET_REFERENCES", "METRIC_REFERENCES", "NETWORK_REFERENCES",
           "SELF_REFERENCE", "bibliography", "bibtex", "common_keys", "field",
           "needs_url_package", "parse_bib", "short_citation", "unknown_key_message"]
