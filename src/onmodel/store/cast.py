"""A session's cast and who is in each picture, read and written a set of ids at a time.

A session's lead is ``session.character_id``; ``session_member`` holds the others, in the
order they were added. ``image_cast`` says who is in each picture (revision 0007): read for a
page of images in one query per chunk of ids, and searched by member (``store.listing``,
``onmodel images --with``) through ``ix_image_cast_character_id_image_id``, never by a scan of
the image table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, delete, select

from onmodel.store.models import ImageCastRow, SessionMemberRow, utcnow
from onmodel.store.queries import ID_CHUNK
from onmodel.store.rows import insert_rows

_member = SessionMemberRow.__table__  # type: ignore[attr-defined]
_cast = ImageCastRow.__table__  # type: ignore[attr-defined]


def session_members(engine: Engine, session_id: int) -> list[int]:
    """The session's members besides its lead, in the order they were added."""
    query = (
        select(_member.c.character_id)
        .where(_member.c.session_id == session_id)
        .order_by(_member.c.position)
    )
    with engine.connect() as conn:
        return [int(found) for found in conn.execute(query).scalars()]


def add_members(engine: Engine, session_id: int, character_ids: Sequence[int]) -> list[int]:
    """Add these members after the session's others, each once; the ones newly added."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(_member.c.character_id, _member.c.position).where(
                _member.c.session_id == session_id
            )
        ).all()
        present = {int(row.character_id) for row in rows}
        position = max((int(row.position) for row in rows), default=-1) + 1
        new = [each for each in dict.fromkeys(character_ids) if each not in present]
        now = utcnow()
        insert_rows(
            conn,
            SessionMemberRow,
            [
                {
                    "session_id": session_id,
                    "character_id": each,
                    "position": position + offset,
                    "added_at": now,
                }
                for offset, each in enumerate(new)
            ],
        )
    return new


def remove_member(engine: Engine, session_id: int, character_id: int) -> bool:
    """Take a member out of the session's cast (the pictures they are in keep them)."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(_member).where(
                _member.c.session_id == session_id, _member.c.character_id == character_id
            )
        )
    return bool(result.rowcount)


def cast_of(engine: Engine, image_ids: Iterable[int]) -> dict[int, list[int]]:
    """Who is in each of these images (character ids in the order their anchors were sent),
    by image id: one query per chunk of ids."""
    ids = sorted(set(image_ids))
    found: dict[int, list[int]] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            query = (
                select(_cast.c.image_id, _cast.c.character_id)
                .where(_cast.c.image_id.in_(chunk))
                .order_by(_cast.c.image_id, _cast.c.position)
            )
            for image_id, character_id in conn.execute(query):
                found.setdefault(int(image_id), []).append(int(character_id))
    return found


def sessions_with_member(engine: Engine, character_id: int) -> list[int]:
    """The sessions whose cast names this character besides their lead."""
    query = select(_member.c.session_id).where(_member.c.character_id == character_id)
    with engine.connect() as conn:
        return [int(found) for found in conn.execute(query).scalars()]
