"""What leaves the store: plain, frozen records, one per row, never an ORM object.

An ORM row handed out keeps a tie to its session (lazy loads, accidental writes, "detached"
errors); a record is just the values as they were read, safe to share between threads and
to keep (``sqlite-utils`` hands out dictionaries for the same reason). Field names are the
column names, so a record reads like the row it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlmodel import SQLModel

from onmodel.status import ImageStatus

_Record = TypeVar("_Record")


def record_from(kind: type[_Record], row: SQLModel) -> _Record:
    """``kind``'s fields, read from ``row`` (a status string becomes an :class:`ImageStatus`)."""
    return kind(**{f.name: getattr(row, f.name) for f in fields(kind)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class CharacterRecord:
    id: int
    slug: str
    name: str
    description: str
    sheet: dict[str, Any]
    anchor_image_id: int | None
    created_at: datetime
    updated_at: datetime
    hidden_at: datetime | None = None  # a draft character (not written yet) is not hidden
    kind: str = "character"  # character, creature, prop or set (``onmodel.kinds``)


@dataclass(frozen=True)
class SessionRecord:
    id: int
    slug: str
    character_id: int
    title: str
    provider: str
    model: str
    params: dict[str, Any]
    instructions: str
    head_image_id: int | None
    last_response_id: str | None
    created_at: datetime
    updated_at: datetime
    hidden_at: datetime | None


@dataclass(frozen=True)
class ImageRecord:
    id: int
    character_id: int
    session_id: int | None
    parent_id: int | None
    retry_of_id: int | None
    kind: str
    status: ImageStatus
    request: dict[str, Any]
    template_name: str | None
    template_hash: str | None
    prompt: str
    revised_prompt: str | None
    gen_id: str | None
    response_id: str | None
    previous_response_id: str | None
    provider: str
    model: str
    params: dict[str, Any]
    returned: dict[str, Any]
    error_type: str | None
    error_code: str | None
    error_message: str | None
    error_categories: list[str]
    sha256: str | None
    format: str | None
    width: int | None
    height: int | None
    byte_size: int | None
    usage: dict[str, Any] | None
    cost_usd: str | None
    latency_ms: int | None
    rating: int | None
    starred: bool
    note: str
    batch_id: int | None
    shot_key: str | None
    owner: str | None
    created_at: datetime
    finished_at: datetime | None
    updated_at: datetime  # the row's last change; grows in commit order within a session
    hidden_at: datetime | None
    sheet_version_id: int | None  # the model sheet it was made with (see SheetVersionRecord)
    variation: int | None  # take N of a repeated shot's M (``repeat: M``); None: a single shot
    variations: int | None
    picked_at: datetime | None  # the take a retake loop chose (``shot --takes``)

    def __post_init__(self) -> None:
        if not isinstance(self.status, ImageStatus):
            object.__setattr__(self, "status", ImageStatus(self.status))


@dataclass(frozen=True)
class CheckRecord:
    """One consistency check of an image (see ``checkers``); ``traits`` are the stored
    per-trait results, read with :meth:`onmodel.checkers.base.TraitResult.from_dict`."""

    id: int
    image_id: int
    checker: str
    version: str
    model: str | None
    status: str  # pending, succeeded, failed, interrupted
    score: int | None
    min_score: int | None
    traits: list[dict[str, Any]]
    summary: str
    returned: dict[str, Any]
    usage: dict[str, Any] | None
    cost_usd: str | None
    latency_ms: int | None
    error_type: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None
    character_id: int | None = None  # the member measured in a shot of several (else None)

    @property
    def passed(self) -> bool | None:
        """Whether the image is on model: no trait drifted and the score reached its pass
        mark (None: the check did not finish). A judge can score 95 and still say the hair
        drifted; a lowered mark forgives small shifts, never a drifted trait."""
        if self.status != "succeeded" or self.score is None:
            return None
        from onmodel.checkers.base import DEFAULT_MIN_SCORE, Verdict

        mark = DEFAULT_MIN_SCORE if self.min_score is None else self.min_score
        drifted = any(trait.get("verdict") == Verdict.DRIFTED for trait in self.traits)
        return self.score >= mark and not drifted


@dataclass(frozen=True)
class BatchRecord:
    id: int
    name: str
    session_id: int | None
    source_path: str
    spec_hash: str
    spec: dict[str, Any]
    status: str
    budget_usd: str | None
    counters: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    key_slug: str | None


@dataclass(frozen=True)
class SheetVersionRecord:
    id: int
    character_id: int
    number: int  # 1: the sheet the character was made with; each edit adds the next
    sheet: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ReferenceRecord:
    position: int
    role: str
    sha256: str
    format: str
    ref_image_id: int | None


@dataclass(frozen=True)
class CostTotal:
    """One group of finished images, totalled by the database (``store.costs``): the group's
    values (a model, a character id, a month...), their known cost, and how many images there
    are, ``unknown`` of them of unknown cost (not in the total, never taken as zero)."""

    key: tuple[Any, ...]
    total: Decimal
    images: int
    unknown: int
