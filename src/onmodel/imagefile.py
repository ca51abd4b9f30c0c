"""Recognise image bytes: their format and size, or a clear refusal.

Used for files users import or attach and for what providers return, so a broken payload is
caught before it is stored as if it were a picture.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from onmodel.errors import InvalidImageError

ACCEPTED_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # png, jpeg, webp, gif
    width: int
    height: int

    @property
    def mime(self) -> str:
        return MIME_TYPES[self.format]


def inspect_bytes(data: bytes, *, source: str = "image") -> ImageInfo:
    """Decode fully (``verify`` alone misses truncated data) and report what it is."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidImageError(f"{source} is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            img.load()
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{source} is not a readable image ({exc})") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise InvalidImageError(f"{source} is a {fmt or 'unknown'} image; use png, jpeg or webp")
    return ImageInfo(format=ACCEPTED_FORMATS[fmt], width=width, height=height)


def load_decoders() -> None:
    """Load Pillow and its common decoders (PNG, JPEG, GIF) now rather than on the first image."""
    from PIL import Image

    Image.preinit()


def read_image_file(path: Path) -> tuple[bytes, ImageInfo]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidImageError(f"{path}: no such file") from exc
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror})") from exc
    return data, inspect_bytes(data, source=str(path))
