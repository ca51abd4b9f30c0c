"""The tables. Only Alembic revisions in ``migrations/`` create or change them.

Images are the lineage: every image row points at its parent, and ``image_reference`` keeps
the ordered list of images that were sent along with the request that made it.

Hiding (``hidden_at``) takes a character, a session or an image out of listings, trees,
exports and pages while its rows, and so every lineage through it, stay; only a purge
(``store.purge``) deletes rows. ``sheet_version`` keeps every model sheet a character has had,
and each image names the one it was made with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class CharacterRow(SQLModel, table=True):
    __tablename__ = "character"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    name: str
    # what the anchor is (``onmodel.kinds``): character, creature, prop or set (revision 0007)
    kind: str = Field(
        default="character", max_length=16, sa_column_kwargs={"server_default": "character"}
    )
    description: str = ""
    sheet: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    anchor_image_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("image.id", use_alter=True, name="fk_character_anchor_image"),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    hidden_at: datetime | None = None  # hidden (deleted until a purge) since then


class SheetVersionRow(SQLModel, table=True):
    """One model sheet a character has had: number 1 is the sheet it was made with, each edit
    adds the next. ``character.sheet`` is a copy of the newest."""

    __tablename__ = "sheet_version"
    __table_args__ = (UniqueConstraint("character_id", "number", name="uq_sheet_version_number"),)

    id: int | None = Field(default=None, primary_key=True)
    character_id: int = Field(foreign_key="character.id")  # found through uq_sheet_version_number
    number: int
    sheet: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class SessionRow(SQLModel, table=True):
    __tablename__ = "session"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    character_id: int = Field(foreign_key="character.id", index=True)
    title: str = ""
    provider: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    instructions: str = ""
    head_image_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("image.id", use_alter=True, name="fk_session_head_image"),
            nullable=True,
        ),
    )
    last_response_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    hidden_at: datetime | None = None  # hidden (deleted until a purge) since then


class SessionMemberRow(SQLModel, table=True):
    """A member of a session's cast besides its lead (``session.character_id``), who shots
    may show (``--with``) or place the scene in (``--set``); revision 0007."""

    __tablename__ = "session_member"

    session_id: int = Field(foreign_key="session.id", primary_key=True)
    character_id: int = Field(foreign_key="character.id", primary_key=True, index=True)
    position: int  # the order members were added in, which listings keep
    added_at: datetime = Field(default_factory=utcnow)


class BatchRow(SQLModel, table=True):
    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    session_id: int | None = Field(default=None, foreign_key="session.id", index=True)
    source_path: str = ""
    spec_hash: str = Field(index=True, max_length=64)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = "pending"
    budget_usd: str | None = None
    counters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The session slug its shots' keys were made with (``batch.expand.shot_key``): a renamed
    # session's batch still finds the shots it made.
    key_slug: str | None = None


class BatchShareRow(SQLModel, table=True):
    """What the workers of one batch share on PostgreSQL (revision 0008): the run they are in
    (``epoch``), the money spent and reserved by all of them, the budget and request spacing
    that hold for all of them. Times are the database server's clock, in seconds since the
    epoch, so machines whose clocks disagree still space their requests evenly."""

    __tablename__ = "batch_share"

    batch_id: int = Field(foreign_key="batch.id", primary_key=True)
    epoch: int = 0
    spent_nusd: int = Field(default=0, sa_type=BigInteger)  # nano-dollars, summed exactly
    reserved_nusd: int = Field(default=0, sa_type=BigInteger)
    unknown_costs: int = 0  # shots whose cost no one could tell (a dead worker's, say)
    budget_nusd: int | None = Field(default=None, sa_type=BigInteger)
    rate_interval: float | None = None  # seconds between two request starts, all workers
    rate_next_at: float = 0.0


class BatchWorkerRow(SQLModel, table=True):
    """A process running a batch (revision 0008). ``seen_at`` is its heartbeat: a worker not
    seen for the lease is dead, and its claims are taken over."""

    __tablename__ = "batch_worker"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    epoch: int
    owner: str = Field(max_length=128)  # the owner token its pending image rows carry
    host: str = Field(max_length=255)
    pid: int
    concurrency: int
    lease: float  # seconds it may go unseen before it counts as dead (ONMODEL_BATCH_LEASE)
    started_at: float
    seen_at: float
    stopped_at: float | None = None
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class BatchClaimRow(SQLModel, table=True):
    """One shot (or check) of a batch's current run, and who makes it (revision 0008).
    ``state`` is ``open``, ``claimed`` or ``done``; ``ix_batch_claim_open`` finds the next open
    one in list order without reading the done ones."""

    __tablename__ = "batch_claim"
    __table_args__ = (Index("ix_batch_claim_open", "batch_id", "state", "position"),)

    batch_id: int = Field(foreign_key="batch.id", primary_key=True)
    shot_key: str = Field(primary_key=True, max_length=128)
    position: int
    state: str = Field(max_length=16)
    worker_id: int | None = Field(default=None, index=True)
    reserved_nusd: int = Field(default=0, sa_type=BigInteger)


class ImageRow(SQLModel, table=True):
    __tablename__ = "image"
    # A session's newest change, and its rows changed after a time, from the index alone
    # (``store.queries.session_stamp``, ``images_changed_since``). ``ix_image_session_id``
    # stays: it lists a session's images in id order without a sort (``session_images_page``).
    # ``ix_image_hidden_session_id`` holds hidden images only (a partial index): they are
    # counted by session from it alone, and found by a purge, without reading shown ones.
    __table_args__ = (
        Index("ix_image_session_id_updated_at", "session_id", "updated_at"),
        Index(
            "ix_image_hidden_session_id",
            "session_id",
            "hidden_at",
            sqlite_where=text("hidden_at IS NOT NULL"),
            postgresql_where=text("hidden_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    character_id: int = Field(foreign_key="character.id", index=True)
    session_id: int | None = Field(default=None, foreign_key="session.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="image.id", index=True)
    # indexed so that deleting an image (a purge) finds the rows that retried it at once
    retry_of_id: int | None = Field(default=None, foreign_key="image.id", index=True)
    kind: str  # anchor, shot, import, edit
    status: str = "pending"  # pending, succeeded, failed, interrupted
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    template_name: str | None = None
    template_hash: str | None = None
    prompt: str = ""
    revised_prompt: str | None = None
    gen_id: str | None = None
    response_id: str | None = None
    previous_response_id: str | None = None
    provider: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    returned: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_categories: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    sha256: str | None = Field(default=None, index=True, max_length=64)
    format: str | None = None
    width: int | None = None
    height: int | None = None
    byte_size: int | None = None
    usage: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cost_usd: str | None = None
    latency_ms: int | None = None
    rating: int | None = None
    starred: bool = False
    note: str = ""
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    shot_key: str | None = Field(default=None, index=True, max_length=64)
    owner: str | None = None  # while pending: the process making it (onmodel.owners)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # Set by every write to the row, growing in commit order within a session
    # (``store.writes.change_time``). The server default exists only because SQLite cannot add
    # a NOT NULL column without one (revision 0003); every insert through the store sets it.
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column_kwargs={"server_default": "1970-01-01 00:00:00"}
    )
    hidden_at: datetime | None = None  # hidden (deleted until a purge) since then
    # The model sheet (``sheet_version.id``) the image was made with, set by the store when
    # the row is recorded; not a REFERENCES column, so that revision 0004 can be undone in
    # place (the store deletes a sheet version only with its character's images).
    sheet_version_id: int | None = None
    # Take ``variation`` of ``variations`` identical requests (a shot list's ``repeat: 3``);
    # both empty for a single shot, and for images made before revision 0005.
    variation: int | None = None
    variations: int | None = None
    # The take a retake loop chose among its siblings (``shot --takes``): the best score.
    picked_at: datetime | None = None


class ImageReferenceRow(SQLModel, table=True):
    __tablename__ = "image_reference"
    __table_args__ = (UniqueConstraint("image_id", "position", name="uq_reference_position"),)

    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id")  # looked up through uq_reference_position
    position: int
    role: str  # anchor, parent, style, extra
    # indexed: a purge asks which requests sent an image, and deleting an image checks it
    ref_image_id: int | None = Field(default=None, foreign_key="image.id", index=True)
    sha256: str = Field(max_length=64)
    format: str


class ImageCastRow(SQLModel, table=True):
    """Who is in a picture: one row per cast member, in the order their anchors were sent
    (revision 0007). Every image has at least one, its own character; a shot of several has
    one per member and its set. Found by member through
    ``ix_image_cast_character_id_image_id`` (``onmodel images --with``)."""

    __tablename__ = "image_cast"
    __table_args__ = (Index("ix_image_cast_character_id_image_id", "character_id", "image_id"),)

    image_id: int = Field(foreign_key="image.id", primary_key=True)
    character_id: int = Field(foreign_key="character.id", primary_key=True)
    position: int
    sheet_version_id: int | None = None  # the member's model sheet when the image was made


class ImageCheckRow(SQLModel, table=True):
    """One consistency check of an image (``onmodel check``, a retake loop's): recorded
    ``pending`` before a paid checker is asked, then ``succeeded`` with its score and
    per-trait results, or ``failed`` with why (revision 0006)."""

    __tablename__ = "image_check"

    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id", index=True)
    # the cast member measured in a shot of several; None: the image's own character
    character_id: int | None = None
    checker: str = Field(max_length=64)
    version: str = Field(max_length=32)
    model: str | None = None
    status: str = "pending"  # pending, succeeded, failed, interrupted
    score: int | None = None  # 0-100
    min_score: int | None = None  # the pass mark it was held to, in a retake loop
    traits: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    summary: str = ""
    returned: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    usage: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cost_usd: str | None = None
    latency_ms: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ImageTagRow(SQLModel, table=True):
    """The illustrator's tags on an image, stored in lower case; found by tag through
    ``ix_image_tag_tag``."""

    __tablename__ = "image_tag"

    image_id: int = Field(foreign_key="image.id", primary_key=True)
    tag: str = Field(primary_key=True, index=True, max_length=64)
