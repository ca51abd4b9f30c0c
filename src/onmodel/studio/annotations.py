"""The illustrator's own marks on an image: a star, a rating, a note, tags.

Annotations are judgement, not provenance, so they may change on any image whatever its
status; the generation record itself is never touched. Tags are kept in lower case, so
``Keeper`` and ``keeper`` are one tag, found by either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from onmodel.errors import UsageError
from onmodel.handles import Image
from onmodel.limits import check_text
from onmodel.store import listing, writes

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

MAX_NOTE_LENGTH = 10_000  # a note, not a document
MAX_TAG_LENGTH = 64  # what the tag column holds


def annotate(
    studio: Studio,
    image: Image,
    *,
    starred: bool | None = None,
    rating: int | None = None,
    note: str | None = None,
) -> Image:
    """See :meth:`Studio.annotate_image`."""
    if rating is not None and not 0 <= rating <= 5:
        raise UsageError(f"a rating is 1 to 5 (0 clears it), not {rating}")
    if note is not None:
        check_text(note, "the note", max_length=MAX_NOTE_LENGTH)
    values: dict[str, Any] = {}
    if starred is not None:
        values["starred"] = starred
    if rating is not None:
        values["rating"] = rating or None
    if note is not None:
        values["note"] = note.strip()
    if values:
        writes.update_image(studio.engine, image.id, values)
    return studio.image(image.id)


def tag(studio: Studio, image: Image, tags: Iterable[str], *, remove: bool) -> list[str]:
    """See :meth:`Studio.tag_image`."""
    wanted = sorted({normal_tag(text) for text in tags})
    if not wanted:
        raise UsageError("name at least one tag")
    writes.change_tags(studio.engine, image.id, wanted, remove=remove)
    return listing.tags_of(studio.engine, [image.id])[image.id]


def normal_tag(text: str) -> str:
    """A tag as stored: one line, trimmed, in lower case."""
    found = text.strip().lower()
    if not found:
        raise UsageError("a tag cannot be empty")
    return check_text(found, "a tag", max_length=MAX_TAG_LENGTH, multiline=False)
