"""What finished images cost, totalled by the database with ``GROUP BY``: no row per image
leaves it, however long the series.

Costs are stored as decimal text (``"0.180061"``); summed as floating-point numbers they would
drift. Each is turned into a whole number of ten-billionths of a dollar (:data:`SCALE`) before
the sum, which the database then adds exactly as integers (SQLite's 64-bit integers hold
$922 million of them; PostgreSQL's sum of ``BIGINT`` is exact at any size). The one step that
passes through a floating-point number on SQLite, reading the text, is rounded back to the
whole unit, which is exact for any cost of up to 15 significant digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import BigInteger, Engine, Numeric, case, cast, extract, func, select

from onmodel.status import ImageStatus
from onmodel.store.models import ImageCheckRow, ImageRow
from onmodel.store.records import CostTotal

SCALE = 10**10  # costs are summed in units of 1e-10 dollar
FINISHED = (ImageStatus.SUCCEEDED, ImageStatus.FAILED)  # what was (or may have been) billed

Grouping = Literal["model", "character", "session", "month"]

_image = ImageRow.__table__  # type: ignore[attr-defined]
_check = ImageCheckRow.__table__  # type: ignore[attr-defined]


def _group_columns(by: Grouping, *, checks: bool = False) -> list[Any]:
    """The values a grouping totals by. A session's group also names its character, so the
    images in no session (characters' anchors) are totalled per character; a month is the
    year and month (UTC) when the image finished. A check is grouped by its image, but by
    its own model (or checker) and month."""
    if by == "model" and checks:
        return [func.coalesce(_check.c.model, _check.c.checker)]
    if by == "month" and checks:
        moment = func.coalesce(_check.c.finished_at, _check.c.created_at)
        return [extract("year", moment), extract("month", moment)]
    if by == "model":
        return [case((_image.c.model == "", _image.c.provider), else_=_image.c.model)]
    if by == "character":
        return [_image.c.character_id]
    if by == "session":
        return [_image.c.session_id, _image.c.character_id]
    moment = func.coalesce(_image.c.finished_at, _image.c.created_at)
    return [extract("year", moment), extract("month", moment)]


def cost_totals(
    engine: Engine,
    by: Grouping,
    *,
    session_id: int | None = None,
    anchors_of: int | None = None,
) -> list[CostTotal]:
    """The finished images' costs by ``by``, in key order: of one session, of one character's
    images that are in no session (``anchors_of``: its anchors), or of every image."""
    groups = _group_columns(by)
    query = _totalled(groups, _image.c.cost_usd).where(_image.c.status.in_(FINISHED))
    return _read_totals(engine, _scoped(query, session_id, anchors_of), len(groups))


def check_cost_totals(
    engine: Engine,
    by: Grouping,
    *,
    session_id: int | None = None,
    anchors_of: int | None = None,
) -> list[CostTotal]:
    """What paid consistency checks (a vision judge) cost, grouped as :func:`cost_totals`
    groups images (each check counted where its image is); free checks are left out, so
    ``images`` counts paid checks. Checks interrupted before an answer were not billed."""
    groups = _group_columns(by, checks=True)
    query = (
        _totalled(groups, _check.c.cost_usd)
        .select_from(_check.join(_image, _image.c.id == _check.c.image_id))
        .where(
            _check.c.status.in_(FINISHED),
            (_check.c.cost_usd.is_(None)) | (_check.c.cost_usd != "0"),
        )
    )
    return _read_totals(engine, _scoped(query, session_id, anchors_of), len(groups))


def _totalled(groups: list[Any], cost: Any) -> Any:
    """Sum, row count and priced-row count of ``cost`` by ``groups``, exactly (see SCALE)."""
    units = cast(func.round(cast(cost, Numeric) * SCALE), BigInteger)
    return (
        select(*groups, func.sum(units), func.count(), func.count(cost))
        .group_by(*groups)
        .order_by(*groups)
    )


def _scoped(query: Any, session_id: int | None, anchors_of: int | None) -> Any:
    if session_id is not None:
        query = query.where(_image.c.session_id == session_id)
    if anchors_of is not None:
        query = query.where(_image.c.character_id == anchors_of, _image.c.session_id.is_(None))
    return query


def _read_totals(engine: Engine, query: Any, width: int) -> list[CostTotal]:
    found: list[CostTotal] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            key: Sequence[Any] = row[:width]
            units_sum, images, known = row[width:]
            found.append(
                CostTotal(
                    key=tuple(_plain(value) for value in key),
                    total=_dollars(units_sum or 0),
                    images=int(images),
                    unknown=int(images) - int(known),
                )
            )
    return found


def _dollars(units: int | Decimal) -> Decimal:
    """``1800610000`` units -> ``Decimal("0.180061")``: no trailing zeros, no exponent."""
    amount = Decimal(units) / SCALE
    return amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()


def _plain(value: Any) -> Any:
    """A year or month comes back as a Decimal from PostgreSQL's ``EXTRACT``: a whole number."""
    return int(value) if isinstance(value, Decimal) else value
