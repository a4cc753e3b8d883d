"""Byte-level checks of image files: completeness, a decodable header, and a cached sha256.

Every file is read once as bytes. PNG files are walked chunk by chunk with their CRCs up to
``IEND`` (truncation and corruption show without inflating the pixels); JPEG files must end with
the EOI marker (OpenCV silently decodes a truncated JPEG as grey) and are decoded once by
Pillow, as are other formats. The sha256 of those bytes is kept for :func:`file_sha256`.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


@dataclass(frozen=True)
class FileInfo:
    """What :func:`inspect_file` found: a problem, or Pillow's (width, height) and mode."""

    problem: str | None = None
    size: tuple[int, int] = (0, 0)  # (width, height)
    mode: str = ""


def integrity_problem(data: bytes) -> str | None:
    """Cheap structural check of an encoded image; ``None`` when it looks complete."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        pos = 8
        while pos + 12 <= len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            end = pos + 12 + length
            if end > len(data):
                break
            ctype = data[pos + 4 : pos + 8]
            if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
                return f"corrupt PNG (bad CRC in chunk {ctype.decode('latin-1')!r})"
            if ctype == b"IEND":
                return None
            pos = end
        return "truncated PNG (no IEND chunk)"
    if data.startswith(b"\xff\xd8\xff"):
        return None if data.rstrip(b"\x00").endswith(b"\xff\xd9") else "truncated JPEG (no EOI)"
    if data.startswith((b"BM", b"II*\x00", b"MM\x00*")):
        return None
    return "not a PNG, JPEG, BMP or TIFF image"


def file_sha256(path: Path) -> str:
    """sha256 (hex) of the file's bytes, cached by (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


def inspect_file(path: Path) -> FileInfo:
    """Read ``path`` once: hash it, check its structure, read its header."""
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        return FileInfo(problem=f"cannot be read ({exc.strerror})")
    _HASHES[(str(path), st.st_size, st.st_mtime_ns)] = hashlib.sha256(data).hexdigest()
    problem = integrity_problem(data)
    if problem:
        return FileInfo(problem=problem)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if not data.startswith(b"\x89PNG"):
                im.load()  # JPEG/BMP/TIFF: decode once, catches what the byte checks cannot
            return FileInfo(size=im.size, mode=im.mode)
    except Exception as exc:  # Pillow raises many exception types for broken files
        return FileInfo(problem=f"cannot be decoded ({exc})")
