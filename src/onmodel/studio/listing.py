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

from onmodel.handles import Image
from onmodel.lineage import cast_dicts, image_casts
from onmodel.store import listing
from onmodel.store.listing import ImageFilter
from onmodel.studio.annotations import normal_tag

if TYPE_CHECKING:
    from onmodel.studio.core import Studio
    from onmodel.studio.members import ShotCast

PAGE = 500  # images read per statement while a listing streams


@dataclass(frozen=True)
class ListedImage:
    image: Image
    session: str | None  # its session's slug; None for a character's anchor
    tags: tuple[str, ...]
    hidden_at: datetime | None
    cast: ShotCast  # who is in it: figures in order, then the set

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
            "cast": cast_dicts(self.cast),
            "provider": image.provider,
            "model": image.model,
            "cost_usd": image.cost_usd,
            "file": image.stored_at,
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
        images = [Image(studio, record) for record in records]
        casts = image_casts(images)
        for image in images:
            record = image.row
            yield ListedImage(
                image=image,
                session=slugs.get(record.session_id) if record.session_id else None,
                tags=tuple(tags[record.id]),
                hidden_at=record.hidden_at,
                cast=casts[record.id],
            )
        before = records[-1].id
        if left is not None:
            left -= len(records)
        if len(records) < size:
            return
