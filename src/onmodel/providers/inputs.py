"""The images a provider sends and the image it gets back, checked the same way by every one.

Input images are checked against the digest the studio recorded, so that ``sent_params`` can
promise exactly what was uploaded; a returned image is decoded and checked here, so that a broken
payload is a provider failure in the provider's wording rather than something the studio
discovers later. Nothing here needs an SDK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from onmodel.providers.base import InputImage, ProviderError

__all__ = ["decode_image", "read_input", "sent_images"]


def read_input(item: InputImage) -> bytes:
    """The bytes of one input image, checked against the digest the studio recorded.

    The studio verified the blob when it planned the shot; checking again here is what lets
    ``sent_params`` promise that the image with this sha256 is exactly what was uploaded.
    """
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ProviderError(
            f"cannot read the {item.role} image {item.path}: {exc.strerror or exc}",
            kind="invalid_request",
        ) from exc
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise ProviderError(
            f"the {item.role} image {item.path} changed since it was recorded "
            f"(expected sha256 {item.sha256[:12]}…)",
            kind="invalid_request",
        )
    return data


def sent_images(inputs: Sequence[InputImage]) -> list[dict[str, str]]:
    """How ``sent_params`` records uploaded images: role and digest, in upload order."""
    return [{"role": item.role, "sha256": item.sha256} for item in inputs]


def decode_image(b64: str | None, *, source: str) -> tuple[bytes, str]:
    """Decode a base64 image from an answer and make sure it is a picture; return bytes, format.

    Checked here rather than left to the studio so that a broken payload is a provider failure
    (kind ``bad_response``) with the provider's wording, even for callers outside the studio.
    """
    from onmodel.errors import InvalidImageError
    from onmodel.imagefile import inspect_bytes

    if not b64:
        raise ProviderError(f"{source} contained no image data", kind="bad_response")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(f"{source} is not valid base64 ({exc})", kind="bad_response") from exc
    try:
        info = inspect_bytes(data, source=source)
    except InvalidImageError as exc:
        # inspect_bytes' own text names an in-memory buffer; say what the user can act on.
        raise ProviderError(
            f"{source} is not a readable image ({len(data):,} bytes that PNG, JPEG or WebP "
            "decoders refuse)",
            kind="bad_response",
        ) from exc
    return data, info.format
