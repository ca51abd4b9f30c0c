"""Recognise image bytes: their format and size, or a clear refusal.

Used for files users import or attach and for what providers return, so a broken payload is
caught before it is stored as if it were a picture.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from onmodel.errors import InvalidImageError, UsageError
from onmodel.limits import MAX_IMAGE_BYTES, read_bounded

ACCEPTED_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
# Four times the largest image any supported model makes (3840x2160), and more than a 48-megapixel
# phone photo: larger ones are refused before decoding, so a small file declaring 20000x20000
# pixels (a decompression bomb) cannot make onmodel allocate gigabytes.
MAX_PIXELS = 64_000_000
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
        with warnings.catch_warnings():
            # the size is checked below before decoding; Pillow's own two-line warning is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
                _check_pixels(width, height, source)
                img.load()
    except Image.DecompressionBombError:
        raise InvalidImageError(
            f"{source} declares more than {MAX_PIXELS // 1_000_000} megapixels; refused"
        ) from None
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            f"{source} is not a readable image (not PNG, JPEG, WebP or GIF data)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{source} is not a readable image ({exc})") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise InvalidImageError(f"{source} is a {fmt or 'unknown'} image; use png, jpeg or webp")
    return ImageInfo(format=ACCEPTED_FORMATS[fmt], width=width, height=height)


def _check_pixels(width: int, height: int, source: str) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            f"{source} is {width}x{height} pixels, more than the "
            f"{MAX_PIXELS // 1_000_000} megapixels onmodel accepts; scale it down first"
        )


def load_decoders() -> None:
    """Load Pillow and its common decoders (PNG, JPEG, GIF) now rather than on the first image."""
    from PIL import Image

    Image.preinit()


INPUT_FORMATS = frozenset({"png", "jpeg", "webp"})
"""What the image APIs take as input images: the formats a user's anchor or reference may be."""


def read_image_file(path: Path) -> tuple[bytes, ImageInfo]:
    """A user's image file, read with a size bound (``/dev/zero`` must not fill memory), in a
    format the image APIs take as an input."""
    try:
        data = read_bounded(path, MAX_IMAGE_BYTES, "image")
    except UsageError as exc:
        raise InvalidImageError(str(exc)) from None
    info = inspect_bytes(data, source=str(path))
    if info.format not in INPUT_FORMATS:
        raise InvalidImageError(f"{path} is a {info.format} image; use png, jpeg or webp")
    return data, info
