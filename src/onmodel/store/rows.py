"""Row writes as single Core statements, for the writes every generation makes.

Each shot writes its pending row (with its references) before the request and finishes it
after. Through the ORM's unit of work (a validated model instance, a flush, an identity-map
lookup) each of those writes cost 1.5 to 3 ms of CPU; a batch's request threads wait for that
time, and for the GIL while others spend it. A Core statement on the same table costs about
0.3 ms. Missing values get the model's own defaults, so a row written here is exactly the row
the ORM would have written, and reads keep using the models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Connection, insert, text, update
from sqlmodel import SQLModel


def insert_row(conn: Connection, model: type[SQLModel], values: Mapping[str, Any]) -> int:
    """Insert one row of ``model``'s table and return its new id."""
    result = conn.execute(insert(_table(model)), _with_defaults(model, values))
    key = result.inserted_primary_key
    assert key is not None and key[0] is not None
    return int(key[0])


def insert_rows(conn: Connection, model: type[SQLModel], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert several rows of one table in one statement (executemany)."""
    if rows:
        conn.execute(insert(_table(model)), [_with_defaults(model, row) for row in rows])
        if conn.dialect.name == "postgresql" and any("id" in row for row in rows):
            _advance_id_sequence(conn, _table(model).name)


def _advance_id_sequence(conn: Connection, table: str) -> None:
    """Move PostgreSQL's id sequence past ids given explicitly, as SQLite does by itself.

    SQLite numbers the next row after the largest id in the table; PostgreSQL's sequence knows
    nothing of ids it did not hand out, so the next plain insert would take one already used
    and fail on the primary key.
    """
    quoted = conn.dialect.identifier_preparer.quote(table)
    conn.execute(
        text(
            "SELECT setval(pg_get_serial_sequence(:table, 'id'),"
            f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {quoted}), false)"
        ),
        {"table": table},
    )


def update_row(
    conn: Connection, model: type[SQLModel], row_id: int, values: Mapping[str, Any]
) -> int:
    """Set ``values`` on the row with id ``row_id``; the number of rows changed (0 or 1)."""
    table = _table(model)
    result = conn.execute(update(table).where(table.c.id == row_id).values(dict(values)))
    return int(result.rowcount)


def _table(model: type[SQLModel]) -> Any:
    return model.__table__  # type: ignore[attr-defined]


def _with_defaults(model: type[SQLModel], values: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(values)
    for name, default in _defaults(model).items():
        if name not in row:
            row[name] = default()
    return row


@cache
def _defaults(model: type[SQLModel]) -> dict[str, Callable[[], Any]]:
    """Each field's default as a factory, as the model's constructor would fill it in."""
    defaults: dict[str, Callable[[], Any]] = {}
    for name, info in model.model_fields.items():
        if name == "id":
            continue
        if info.default_factory is not None:
            defaults[name] = info.default_factory  # type: ignore[assignment]
        elif info.default is not PydanticUndefined:
            defaults[name] = _constant(info.default)
    return defaults


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value
