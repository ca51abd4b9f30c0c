"""Small previews of stored images, derived on demand and cached by content.

Originals are never touched: they may carry a signed C2PA manifest that any re-encode would
break, so thumbnails are the only images onmodel ever derives. A thumbnail is named by the
original's sha256 and the requested size, which makes the cache self-validating (new bytes mean a
new digest, hence a new name) and safe to delete at any time.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, features

from onmodel.blobs import Blobs
from onmodel.errors import InvalidImageError, UsageError

# A handful of sizes, not any number: the web UI takes the size from the URL, and an open-ended
# size would let one page fill the cache with a thumbnail per pixel width.
THUMBNAIL_SIZES: tuple[int, ...] = (96, 192, 480, 960)
CARD_SIZE = 480
MINI_SIZE = 96

# WebP keeps transparency (GPT images may have a transparent background) at a fraction of PNG's
# size; Pillow builds without libwebp fall back to PNG rather than failing.
_FORMAT, _EXTENSION, _MIME = (
    ("WEBP", "webp", "image/webp") if features.check("webp") else ("PNG", "png", "image/png")
)
THUMBNAIL_MIME = _MIME


class Thumbnailer:
    """Thumbnails of blobs under ``root`` (the data folder's ``thumbnails/``).

    The original is read through the blob store's interface (:meth:`Blobs.local_path`): the
    folder store's own file, or a remote store's verified local copy. Thumbnails stay local
    on every machine: small, derived, and made again where missing."""

    def __init__(self, blobs: Blobs, root: Path) -> None:
        self.blobs = blobs
        self.root = root

    def path_for(self, sha256: str, size: int) -> Path:
        return self.root / sha256[:2] / f"{sha256}-{size}.{_EXTENSION}"

    def get(self, sha256: str, fmt: str, size: int) -> Path:
        """The thumbnail's path, made now if it is not cached yet.

        The file is written under a temporary name and renamed, so two requests racing for the
        same thumbnail (the web server is threaded) both end with a whole file.
        """
        if size not in THUMBNAIL_SIZES:
            allowed = ", ".join(str(s) for s in THUMBNAIL_SIZES)
            raise UsageError(f"thumbnail size {size} is not one of {allowed}")
        target = self.path_for(sha256, size)
        if target.is_file():
            return target
        source = self.blobs.local_path(sha256, fmt)
        if not source.is_file():
            raise InvalidImageError(f"the file of blob {sha256[:12]} is missing: {source}")
        data = render_thumbnail(source, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    def read(self, sha256: str, fmt: str, size: int) -> bytes:
        return self.get(sha256, fmt, size).read_bytes()


def render_thumbnail(source: Path, size: int) -> bytes:
    """Fit the image inside ``size`` x ``size`` (never enlarging), upright, alpha kept."""
    try:
        with PILImage.open(source) as opened:
            opened.draft("RGB", (size, size))  # JPEG decodes at a reduced scale: much faster
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise InvalidImageError(f"cannot read {source} to make a thumbnail: {exc}") from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    if _FORMAT == "WEBP":
        image.save(out, format="WEBP", quality=82, method=4)
    else:
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()
