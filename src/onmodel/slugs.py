"""Names users type on the command line: short, lowercase, unambiguous."""

from __future__ import annotations

import re
import unicodedata

from onmodel.errors import InvalidSlugError

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def slugify(name: str) -> str:
    """``"Mia Chen (v2)"`` -> ``"mia-chen-v2"``; accents are folded, other scripts dropped."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:64].rstrip("-")
    if not slug:
        raise InvalidSlugError(
            f"cannot make a name from {name!r}: use letters or digits, or pass --slug"
        )
    return slug


def check_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug) or slug.isdigit():
        raise InvalidSlugError(
            f"invalid slug {slug!r}: use 1-64 lowercase letters, digits and dashes, "
            "starting with a letter or digit, and not only digits"
        )
    return slug
