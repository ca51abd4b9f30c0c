"""Reads that are one SQL statement instead of a loop of them, kept behind the store.

Written with SQLAlchemy Core, and only with SQL that SQLite and PostgreSQL both run
(``WITH RECURSIVE``), so callers never see a dialect.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from onmodel.store.models import ImageRow


def ancestor_rows(db: Session, parent_id: int) -> list[ImageRow]:
    """The row of ``parent_id`` and of each image above it, oldest first.

    One recursive query, whatever the depth (walking ``parent`` one row at a time cost a query
    per generation). ``UNION``, not ``UNION ALL``: on a damaged database whose parent links
    form a cycle it stops when no new row turns up, instead of recursing forever; the order
    is then rebuilt by following the links, which visits each row once.
    """
    table = ImageRow.__table__  # type: ignore[attr-defined]
    chain = select(table.c.id, table.c.parent_id).where(table.c.id == parent_id)
    chain_cte = chain.cte("chain", recursive=True)
    step = select(table.c.id, table.c.parent_id).join(
        chain_cte, table.c.id == chain_cte.c.parent_id
    )
    chain_cte = chain_cte.union(step)
    rows = db.scalars(select(ImageRow).where(table.c.id.in_(select(chain_cte.c.id)))).all()
    by_id = {row.id: row for row in rows}
    found: list[ImageRow] = []
    next_id: int | None = parent_id
    while next_id is not None and (row := by_id.pop(next_id, None)) is not None:
        found.append(row)
        next_id = row.parent_id
    return list(reversed(found))
