"""Lineage reads: one statement each, whatever the depth or the size of the series.

A series is a tree of images linked by ``parent_id``. Walking it a row at a time costs a
query per generation (50,000 of them at the bottom of a 100,000-image series); these read
ids and links with ``WITH RECURSIVE``, which SQLite and PostgreSQL both run, and load whole
rows only for the images a view shows, a chunk of ids at a time. Every recursive query uses
``UNION`` (not ``UNION ALL``), so parent links that form a cycle (a damaged database) end the
recursion instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Engine, Integer, func, select, type_coerce

from onmodel.store.models import ImageRow
from onmodel.store.queries import ID_CHUNK
from onmodel.store.records import ImageRecord

_image = ImageRow.__table__  # type: ignore[attr-defined]


def session_links(
    engine: Engine, session_id: int, anchor_id: int | None
) -> list[tuple[int, int | None, bool]]:
    """``(id, parent_id, hidden)`` of the session's images, of every image outside it that
    one of them descends from (followed to its root), and of the anchor.

    Only the links are read: a 100,000-image session is a few megabytes of ids. Hidden images
    are in it too, flagged, so that their children's lines can still be drawn. Two
    statements: the session's rows by its index, then, from the parents that are not among
    them (usually just the anchor), the images above them by a recursive query. (As one
    ``UNION`` the database sorted 100,000 rows to drop duplicates that cannot occur.)
    """
    # 0 or 1, read as a plain integer: a Boolean's per-row conversion costs a third of the read
    hidden = type_coerce(_image.c.hidden_at.is_not(None), Integer)
    inside = select(_image.c.id, _image.c.parent_id, hidden).where(
        _image.c.session_id == session_id
    )
    with engine.connect() as conn:
        found = {key: (key, parent, bool(flag)) for key, parent, flag in conn.execute(inside)}
        seeds = {parent for _, parent, _ in found.values() if parent is not None}
        seeds.discard(None)
        if anchor_id is not None:
            seeds.add(anchor_id)
        seeds.difference_update(found)
        for start in range(0, len(seeds), ID_CHUNK):
            chunk = sorted(seeds)[start : start + ID_CHUNK]
            above = (
                select(_image.c.id, _image.c.parent_id, hidden.label("hidden"))
                .where(_image.c.id.in_(chunk))
                .cte("above", recursive=True)
            )
            above = above.union(
                select(_image.c.id, _image.c.parent_id, hidden).join(
                    above, _image.c.id == above.c.parent_id
                )
            )
            for key, parent, flag in conn.execute(select(above)):
                found.setdefault(key, (key, parent, bool(flag)))
    return list(found.values())


def ancestor_ids(engine: Engine, image_id: int) -> list[int]:
    """The ids of the image's parent, its parent's parent and so on, oldest first."""
    chain = _chain(image_id)
    with engine.connect() as conn:
        parents: dict[int, int | None] = dict(
            conn.execute(select(chain.c.id, chain.c.parent_id)).all()
        )
    return _path_up(parents, image_id)


def ancestors(engine: Engine, image_id: int) -> list[ImageRecord]:
    """The records of the image's ancestors, oldest first, in one query."""
    chain = _chain(image_id)
    query = select(*_record_columns()).where(_image.c.id.in_(select(chain.c.id)))
    with engine.connect() as conn:
        records = {
            record.id: record for record in (ImageRecord(*row) for row in conn.execute(query))
        }
    parents = {key: record.parent_id for key, record in records.items()}
    return [records[key] for key in _path_up(parents, image_id)]


def _chain(image_id: int) -> Any:
    """The image and its ancestors' ``(id, parent_id)``, one recursive query whatever the
    depth (walking ``parent`` a row at a time cost a query per generation)."""
    chain = (
        select(_image.c.id, _image.c.parent_id)
        .where(_image.c.id == image_id)
        .cte("chain", recursive=True)
    )
    return chain.union(
        select(_image.c.id, _image.c.parent_id).join(chain, _image.c.id == chain.c.parent_id)
    )


def _path_up(parents: dict[int, int | None], image_id: int) -> list[int]:
    """The ancestors' ids, oldest first, rebuilt by following the links: each visited once,
    so parent links that loop (a damaged database) end the path."""
    found: list[int] = []
    seen = {image_id}
    key = parents.get(image_id)
    while key is not None and key in parents and key not in seen:
        found.append(key)
        seen.add(key)
        key = parents[key]
    found.reverse()
    return found


def descendant_count(engine: Engine, image_id: int) -> int:
    """How many images descend from the image (children, their children, ...)."""
    below = select(_image.c.id).where(_image.c.parent_id == image_id).cte("below", recursive=True)
    below = below.union(select(_image.c.id).join(below, _image.c.parent_id == below.c.id))
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(below)).scalar_one())


def descendant_ids(engine: Engine, image_ids: Sequence[int]) -> set[int]:
    """Every image that descends from one of ``image_ids`` (children, their children, ...),
    one recursive query per chunk of ids."""
    found: set[int] = set()
    with engine.connect() as conn:
        for start in range(0, len(image_ids), ID_CHUNK):
            chunk = image_ids[start : start + ID_CHUNK]
            below = select(_image.c.id).where(_image.c.parent_id.in_(chunk))
            below_cte = below.cte("below", recursive=True)
            below_cte = below_cte.union(
                select(_image.c.id).join(below_cte, _image.c.parent_id == below_cte.c.id)
            )
            found.update(conn.execute(select(below_cte.c.id)).scalars())
    return found


def child_counts(engine: Engine, image_ids: Sequence[int]) -> dict[int, int]:
    """How many children each image has, counted by the database (a fork has several)."""
    found = dict.fromkeys(image_ids, 0)
    with engine.connect() as conn:
        for start in range(0, len(image_ids), ID_CHUNK):
            chunk = image_ids[start : start + ID_CHUNK]
            query = (
                select(_image.c.parent_id, func.count())
                .where(_image.c.parent_id.in_(chunk))
                .group_by(_image.c.parent_id)
            )
            found.update((key, int(count)) for key, count in conn.execute(query))
    return found


def images_by_id(engine: Engine, image_ids: Iterable[int]) -> dict[int, ImageRecord]:
    """The records of the given images (those that exist), a chunk of ids per query.

    Read with Core, not the ORM: a view of a long series loads 100,000 records, and the
    ORM's identity map and instances cost several times the query.
    """
    wanted = list(dict.fromkeys(image_ids))
    columns = _record_columns()
    found: dict[int, ImageRecord] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            for row in conn.execute(select(*columns).where(_image.c.id.in_(chunk))):
                record = ImageRecord(*row)
                found[record.id] = record
    return found


def _record_columns() -> list[Any]:
    """The image table's columns in :class:`ImageRecord`'s field order."""
    return [_image.c[f.name] for f in fields(ImageRecord)]
