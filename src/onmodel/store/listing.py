"""A filtered listing of images, newest first, a page at a time, and the tags it shows.

``onmodel images`` may look through 100,000 images for the starred ones with a tag: each page
is one statement, keyset-paged by id (the next page starts below the last id seen, never at
an OFFSET that reads every row before it), so the last page costs what the first does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine, Text, cast, func, or_, select

from onmodel.status import ImageStatus
from onmodel.store.models import (
    CharacterRow,
    ImageCastRow,
    ImageRow,
    ImageTagRow,
    SessionMemberRow,
    SessionRow,
)
from onmodel.store.queries import ID_CHUNK, hidden_characters, hidden_sessions, record_columns
from onmodel.store.records import ImageRecord

_image = ImageRow.__table__  # type: ignore[attr-defined]
_tag = ImageTagRow.__table__  # type: ignore[attr-defined]
_session = SessionRow.__table__  # type: ignore[attr-defined]
_character = CharacterRow.__table__  # type: ignore[attr-defined]
_cast = ImageCastRow.__table__  # type: ignore[attr-defined]
_member = SessionMemberRow.__table__  # type: ignore[attr-defined]

FAILED = (ImageStatus.FAILED, ImageStatus.INTERRUPTED)  # what `--failed` lists: to be retried


@dataclass(frozen=True)
class ImageFilter:
    """Which images a listing holds. Every condition given must hold.

    ``hidden`` lists the images hidden one by one (what a purge would remove with them);
    otherwise hidden images are left out, and so, without a session, are the images of
    hidden sessions and characters. ``search`` looks in what the user wrote about an image:
    its request (pose, scene, free text...) and its note, ignoring case.
    """

    session_id: int | None = None
    starred: bool = False
    failed: bool = False
    tag: str | None = None
    search: str | None = None
    hidden: bool = False
    with_ids: tuple[int, ...] = ()


def images_page(
    engine: Engine, wanted: ImageFilter, *, before_id: int | None, limit: int
) -> list[ImageRecord]:
    """Up to ``limit`` images matching ``wanted`` with ids below ``before_id`` (None: from the
    newest), newest first.

    With ``with_ids``, the page is read from ``ix_image_cast_character_id_image_id``: the
    first member's pictures, newest first, each further member a lookup on the same index
    and each image one by its key, so a page costs its own size even when the member is in
    ten pictures of 100,000 (a scan of the image table would read them all to find ten).
    """
    query = select(*record_columns()).where(*_conditions(wanted))
    key = _image.c.id
    for position, character_id in enumerate(wanted.with_ids):
        member = _cast.alias(f"cast_{position}")
        if position == 0:
            key = member.c.image_id  # the order the index holds: no sort, no scan
        query = query.join(
            member, (member.c.image_id == _image.c.id) & (member.c.character_id == character_id)
        )
    if before_id is not None:
        query = query.where(key < before_id)
    query = query.order_by(key.desc()).limit(limit)
    with engine.connect() as conn:
        return [ImageRecord(*row) for row in conn.execute(query)]


def _conditions(wanted: ImageFilter) -> list[Any]:
    image = _image
    found: list[Any] = [
        image.c.hidden_at.is_not(None) if wanted.hidden else image.c.hidden_at.is_(None)
    ]
    if wanted.session_id is not None:
        found.append(image.c.session_id == wanted.session_id)
    elif not wanted.hidden:
        found.append(
            or_(image.c.session_id.is_(None), image.c.session_id.not_in(hidden_sessions()))
        )
        found.append(image.c.character_id.not_in(hidden_characters()))
    if wanted.starred:
        found.append(image.c.starred.is_(True))
    if wanted.failed:
        found.append(image.c.status.in_(FAILED))
    if wanted.tag is not None:
        found.append(image.c.id.in_(select(_tag.c.image_id).where(_tag.c.tag == wanted.tag)))
    if wanted.search:
        # The request is stored as JSON text, where anything but printable ASCII is escaped:
        # it is searched for as JSON would write it.
        as_json = json.dumps(wanted.search)[1:-1]
        found.append(
            or_(
                cast(image.c.request, Text).icontains(as_json, autoescape=True),
                image.c.note.icontains(wanted.search, autoescape=True),
            )
        )
    return found


def tags_of(engine: Engine, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """The tags of each image, in alphabetical order (an image without tags: an empty list),
    a chunk of ids per query."""
    found: dict[int, list[str]] = {image_id: [] for image_id in image_ids}
    with engine.connect() as conn:
        for start in range(0, len(image_ids), ID_CHUNK):
            query = (
                select(_tag.c.image_id, _tag.c.tag)
                .where(_tag.c.image_id.in_(image_ids[start : start + ID_CHUNK]))
                .order_by(_tag.c.image_id, _tag.c.tag)
            )
            for image_id, tag in conn.execute(query):
                found[image_id].append(tag)
    return found


def session_slugs(engine: Engine, session_ids: Sequence[int]) -> dict[int, str]:
    """The slug of each session (hidden or not), a chunk of ids per query."""
    return _slugs(engine, _session, session_ids)


def character_slugs(engine: Engine, character_ids: Sequence[int]) -> dict[int, str]:
    """The slug of each character (hidden or not), a chunk of ids per query."""
    return _slugs(engine, _character, character_ids)


def _slugs(engine: Engine, table: Any, ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            query = select(table.c.id, table.c.slug).where(
                table.c.id.in_(ids[start : start + ID_CHUNK])
            )
            found.update((key, slug) for key, slug in conn.execute(query))
    return found


class SessionCount(NamedTuple):
    """How many shown sessions a character leads, and in how many more it is cast."""

    led: int
    cast: int


def session_counts(engine: Engine, character_ids: Sequence[int]) -> dict[int, SessionCount]:
    """Each character's :class:`SessionCount`, counted by the database: two ``GROUP BY``
    statements per chunk of ids, however many characters are listed (``character list``
    asked once per character). Only shown sessions count, as ``session list`` lists them: not
    hidden, nor led by a hidden character."""
    led: dict[int, int] = {}
    cast_in: dict[int, int] = {}
    shown = _shown_session()
    with engine.connect() as conn:
        for start in range(0, len(character_ids), ID_CHUNK):
            chunk = character_ids[start : start + ID_CHUNK]
            leads = (
                select(_session.c.character_id, func.count())
                .where(_session.c.character_id.in_(chunk), shown)
                .group_by(_session.c.character_id)
            )
            led.update((int(key), int(n)) for key, n in conn.execute(leads))
            members = (
                select(_member.c.character_id, func.count())
                .join(_session, _session.c.id == _member.c.session_id)
                .where(_member.c.character_id.in_(chunk), shown)
                .group_by(_member.c.character_id)
            )
            cast_in.update((int(key), int(n)) for key, n in conn.execute(members))
    return {key: SessionCount(led.get(key, 0), cast_in.get(key, 0)) for key in character_ids}


def sessions_cast_in(engine: Engine, character_ids: Sequence[int]) -> dict[int, list[int]]:
    """The shown sessions whose cast has each character besides their lead, in id order, a
    chunk of ids per query (the web's list of characters names them all)."""
    found: dict[int, list[int]] = {key: [] for key in character_ids}
    shown = _shown_session()
    with engine.connect() as conn:
        for start in range(0, len(character_ids), ID_CHUNK):
            query = (
                select(_member.c.character_id, _member.c.session_id)
                .join(_session, _session.c.id == _member.c.session_id)
                .where(_member.c.character_id.in_(character_ids[start : start + ID_CHUNK]), shown)
                .order_by(_member.c.character_id, _member.c.session_id)
            )
            for character_id, session_id in conn.execute(query):
                found[int(character_id)].append(int(session_id))
    return found


def _shown_session() -> Any:
    """A session ``session list`` lists: not hidden, nor led by a hidden character."""
    return _session.c.hidden_at.is_(None) & _session.c.character_id.not_in(hidden_characters())


def characters_pictured(engine: Engine, image_ids: Sequence[int]) -> set[int]:
    """Everyone in any of these pictures besides its own character (``image_cast``), read
    as distinct ids, a chunk of images per query: an export names its whole cast without
    holding each picture's."""
    found: set[int] = set()
    with engine.connect() as conn:
        for start in range(0, len(image_ids), ID_CHUNK):
            query = (
                select(_cast.c.character_id)
                .where(_cast.c.image_id.in_(image_ids[start : start + ID_CHUNK]))
                .distinct()
            )
            found.update(int(key) for key in conn.execute(query).scalars())
    return found
