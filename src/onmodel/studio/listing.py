"""The filtered listing of images ``onmodel images`` shows: newest first, a page at a time.

Each listed image comes with what a listing shows beside it and the image handle does not
hold (its session's slug, its tags, whether it is hidden, who is in it), read for a whole page
in one query each: a listing costs the same few queries per page whatever its length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onmodel.handles import Character, Image
from onmodel.kinds import is_subject
from onmodel.store import listing
from onmodel.store.cast import cast_of
from onmodel.store.listing import ImageFilter
from onmodel.studio.annotations import normal_tag

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

PAGE = 500  # images read per statement while a listing streams


@dataclass(frozen=True)
class ListedImage:
    image: Image
    session: str | None  # its session's slug; None for a character's anchor
    tags: tuple[str, ...]
    hidden_at: datetime | None
    cast: tuple[Character, ...]  # who is in it: figures in order, then the set

    @property
    def ensemble(self) -> bool:
        """Whether the picture shows more than its own character (someone else, a set)."""
        return any(member.id != self.image.character_id for member in self.cast)

    @property
    def subjects(self) -> list[str]:
        """The slugs of who (and what) is in the picture, in order, without its set."""
        return [member.slug for member in self.cast if is_subject(member.kind)]

    @property
    def set(self) -> str | None:
        """The slug of the set the picture takes place in, if it has one."""
        return next((member.slug for member in self.cast if not is_subject(member.kind)), None)

    def to_dict(self) -> dict[str, Any]:
        """What ``onmodel images --json`` writes for each image (``onmodel show --json``
        has everything else)."""
        image = self.image
        return {
            "id": image.id,
            "session": self.session,
            "character_id": image.character_id,
            "kind": image.kind,
            "status": image.status,
            "label": image.label,
            "parent_id": image.parent_id,
            "starred": image.starred,
            "rating": image.rating,
            "note": image.note,
            "tags": list(self.tags),
            "cast": self.subjects,
            "set": self.set,
            "provider": image.provider,
            "model": image.model,
            "cost_usd": image.cost_usd,
            "file": str(image.path) if image.path else None,
            "created_at": image.created_at.isoformat(),
            "hidden_at": self.hidden_at.isoformat() if self.hidden_at else None,
        }


def iter_images(studio: Studio, wanted: ImageFilter, *, limit: int | None) -> Iterator[ListedImage]:
    """The images ``wanted`` holds, newest first, at most ``limit`` (None: all), read
    :data:`PAGE` at a time (each page from the last id of the one before)."""
    if wanted.tag is not None:
        wanted = replace(wanted, tag=normal_tag(wanted.tag))
    engine = studio.engine
    before: int | None = None
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        records = listing.images_page(engine, wanted, before_id=before, limit=size)
        if not records:
            return
        ids = [record.id for record in records]
        tags = listing.tags_of(engine, ids)
        sessions = {record.session_id for record in records if record.session_id is not None}
        slugs = listing.session_slugs(engine, sorted(sessions))
        casts = cast_of(engine, ids)
        members = studio.lookups.characters_by_id({m for found in casts.values() for m in found})
        for record in records:
            yield ListedImage(
                image=Image(studio, record),
                session=slugs.get(record.session_id) if record.session_id else None,
                tags=tuple(tags[record.id]),
                hidden_at=record.hidden_at,
                cast=tuple(members[m] for m in casts.get(record.id, ()) if m in members),
            )
        before = records[-1].id
        if left is not None:
            left -= len(records)
        if len(records) < size:
            return
