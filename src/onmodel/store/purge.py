"""Purging: what is hidden is deleted for good, and nothing that something kept still needs.

A purge takes every hidden image, every image of a hidden session and every image of a hidden
character, and those sessions and characters (``plan_purge``); with ``subtree``, also every
image made from one of them (its descendants, and the images whose request sent it), however
deep, each of them listed (``taken``: they were shown, in what stays). Without it, an image
that something kept was made from is reported (``made_from``), so the studio can refuse to
break that image's lineage; when what is purged is a cast member that kept pictures show
(``appearances``), those pictures are what stands in the way. A kept session whose head goes
continues from its head's nearest ancestor that stays (``heads``), worked out with the plan so
a dry run says where.

``execute_purge`` deletes a chunk of images per transaction, newest first: an image is always
newer than its parent and than the images its request sent, so each committed chunk leaves a
database whose every link still holds, and a purge stopped half-way is simply a smaller one.
Each chunk is found through indexed columns (``ix_image_parent_id``, ``ix_image_retry_of_id``,
``ix_image_reference_ref_image_id``, revision 0004), never by a scan per image.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, delete, select, union_all, update

from onmodel.status import ImageStatus
from onmodel.store.lineage import ancestor_ids, descendant_ids
from onmodel.store.models import (
    BatchRow,
    CharacterRow,
    ImageCastRow,
    ImageCheckRow,
    ImageReferenceRow,
    ImageRow,
    ImageTagRow,
    SessionMemberRow,
    SessionRow,
    SheetVersionRow,
)
from onmodel.store.queries import ID_CHUNK
from onmodel.store.writes import change_time

_image = ImageRow.__table__  # type: ignore[attr-defined]
_reference = ImageReferenceRow.__table__  # type: ignore[attr-defined]
_session = SessionRow.__table__  # type: ignore[attr-defined]
_character = CharacterRow.__table__  # type: ignore[attr-defined]
_batch = BatchRow.__table__  # type: ignore[attr-defined]
_tag = ImageTagRow.__table__  # type: ignore[attr-defined]
_sheet = SheetVersionRow.__table__  # type: ignore[attr-defined]
_check = ImageCheckRow.__table__  # type: ignore[attr-defined]
_cast = ImageCastRow.__table__  # type: ignore[attr-defined]
_member = SessionMemberRow.__table__  # type: ignore[attr-defined]

STREAM = 1000  # rows fetched at a time when a whole table is read


@dataclass(frozen=True)
class HeadMove:
    """A kept session whose head is purged, and where it continues (None: its anchor)."""

    session: int
    old: int
    new: int | None


@dataclass(frozen=True)
class Appearance:
    """A purged character (a cast member, say) that pictures which stay still show: purging
    it would take them, and what was made from them, with it."""

    character: int
    images: tuple[int, ...]  # the kept pictures that show it
    sessions: tuple[int, ...]  # where they are
    made_from_them: tuple[int, ...] = ()  # kept images descending from them, not showing it


@dataclass(frozen=True)
class PurgePlan:
    """What a purge deletes, and what stands in its way."""

    images: tuple[int, ...]  # newest first: the order they are deleted in
    hidden_images: int  # of them, how many were hidden one by one
    sessions: tuple[int, ...]
    characters: tuple[int, ...]
    files: tuple[tuple[str, str], ...]  # (sha256, format) of the files no kept row uses
    # an image to delete -> the kept images made from it (as a child, or by sending it)
    made_from: dict[int, tuple[int, ...]] = field(default_factory=dict)
    anchors: tuple[tuple[int, int], ...] = ()  # (image, kept character it is the anchor of)
    pending: tuple[int, ...] = ()  # images to delete that are still pending
    # (image, session or None, character) of the images ``subtree`` adds: shown until now
    taken: tuple[tuple[int, int | None, int], ...] = ()
    heads: tuple[HeadMove, ...] = ()
    appearances: tuple[Appearance, ...] = ()  # only worked out when made_from blocks


def plan_purge(engine: Engine, *, subtree: bool) -> PurgePlan:
    """Everything hidden, and (``subtree``) everything made from it; see the module doc."""
    with engine.connect() as conn:
        characters = set(
            conn.execute(select(_character.c.id).where(_character.c.hidden_at.is_not(None)))
            .scalars()
            .all()
        )
        sessions = set(
            conn.execute(
                select(_session.c.id).where(
                    _session.c.hidden_at.is_not(None)
                    | _session.c.character_id.in_(list(characters))
                )
            )
            .scalars()
            .all()
        )
        hidden = set(
            conn.execute(select(_image.c.id).where(_image.c.hidden_at.is_not(None))).scalars()
        )
        doomed = set(hidden)
        owned = ((_image.c.session_id, sessions), (_image.c.character_id, characters))
        for column, owners in owned:
            for chunk in _chunks(sorted(owners)):
                doomed.update(conn.execute(select(_image.c.id).where(column.in_(chunk))).scalars())
        made_from = _made_from(conn, doomed)
    taken: set[int] = set()
    while subtree and made_from:
        added = {kept for users in made_from.values() for kept in users}
        added |= descendant_ids(engine, sorted(added))
        added -= doomed
        doomed |= added
        taken |= added
        with engine.connect() as conn:
            made_from = _made_from(conn, added, doomed)
    with engine.connect() as conn:
        anchors = tuple(
            (image_id, character_id)
            for chunk in _chunks(sorted(doomed))
            for character_id, image_id in conn.execute(
                select(_character.c.id, _character.c.anchor_image_id).where(
                    _character.c.anchor_image_id.in_(chunk)
                )
            )
            if character_id not in characters
        )
        pending = tuple(
            image_id
            for chunk in _chunks(sorted(doomed))
            for image_id in conn.execute(
                select(_image.c.id).where(
                    _image.c.id.in_(chunk), _image.c.status == ImageStatus.PENDING
                )
            ).scalars()
        )
    return PurgePlan(
        images=tuple(sorted(doomed, reverse=True)),
        hidden_images=len(hidden),
        sessions=tuple(sorted(sessions)),
        characters=tuple(sorted(characters)),
        files=tuple(sorted(_freed_files(engine, doomed))),
        made_from={key: tuple(sorted(users)) for key, users in sorted(made_from.items())},
        anchors=anchors,
        pending=pending,
        taken=_owners(engine, taken),
        heads=_heads(engine, doomed, sessions),
        appearances=_appearances(engine, characters, doomed) if made_from else (),
    )


def _owners(engine: Engine, images: set[int]) -> tuple[tuple[int, int | None, int], ...]:
    """``(image, session, character)`` of each of ``images``, oldest first."""
    found: list[tuple[int, int | None, int]] = []
    with engine.connect() as conn:
        for chunk in _chunks(sorted(images)):
            query = select(_image.c.id, _image.c.session_id, _image.c.character_id).where(
                _image.c.id.in_(chunk)
            )
            found.extend(
                (int(key), session, int(owner)) for key, session, owner in conn.execute(query)
            )
    return tuple(sorted(found))


def _heads(engine: Engine, doomed: set[int], purged: set[int]) -> tuple[HeadMove, ...]:
    """The kept sessions whose head is doomed, each moved to the head's nearest ancestor that
    stays (none: the session continues from its anchor), as hiding a head moves it."""
    moves: list[HeadMove] = []
    with engine.connect() as conn:
        headed = [
            (int(session_id), int(head_id))
            for chunk in _chunks(sorted(doomed))
            for session_id, head_id in conn.execute(
                select(_session.c.id, _session.c.head_image_id).where(
                    _session.c.head_image_id.in_(chunk)
                )
            )
            if session_id not in purged
        ]
    for session_id, head_id in sorted(headed):
        staying = [a for a in ancestor_ids(engine, head_id) if a not in doomed]
        moves.append(HeadMove(session_id, head_id, staying[-1] if staying else None))
    return tuple(moves)


def _appearances(engine: Engine, characters: set[int], doomed: set[int]) -> tuple[Appearance, ...]:
    """The purged characters that kept pictures show (``image_cast``, read through its
    index by member), each with those pictures and the kept images descending from them."""
    shown: dict[int, dict[int, int | None]] = {}
    with engine.connect() as conn:
        for chunk in _chunks(sorted(characters)):
            query = (
                select(_cast.c.character_id, _cast.c.image_id, _image.c.session_id)
                .join(_image, _image.c.id == _cast.c.image_id)
                .where(_cast.c.character_id.in_(chunk))
            )
            for character_id, image_id, session_id in conn.execution_options(
                yield_per=STREAM
            ).execute(query):
                if image_id not in doomed:
                    shown.setdefault(character_id, {})[image_id] = session_id
    found: list[Appearance] = []
    for character_id, images in sorted(shown.items()):
        below = descendant_ids(engine, sorted(images)) - doomed - images.keys()
        found.append(
            Appearance(
                character=character_id,
                images=tuple(sorted(images)),
                sessions=tuple(sorted({s for s in images.values() if s is not None})),
                made_from_them=tuple(sorted(below)),
            )
        )
    return tuple(found)


def _made_from(
    conn: Connection, images: Iterable[int], doomed: set[int] | None = None
) -> dict[int, set[int]]:
    """For each of ``images``, the images outside ``doomed`` (default: ``images``) that were
    made from it: its children, and the images whose request sent it."""
    outside = set(images) if doomed is None else doomed
    found: dict[int, set[int]] = {}
    for chunk in _chunks(sorted(images)):
        children = select(_image.c.parent_id, _image.c.id).where(_image.c.parent_id.in_(chunk))
        senders = select(_reference.c.ref_image_id, _reference.c.image_id).where(
            _reference.c.ref_image_id.in_(chunk)
        )
        for source, user in conn.execute(union_all(children, senders)):
            if user not in outside:
                found.setdefault(source, set()).add(user)
    return found


def _freed_files(engine: Engine, doomed: set[int]) -> set[tuple[str, str]]:
    """The files the doomed images are stored as or sent, less those a kept row still uses
    (as its image or as an input): one pass over each table, streamed."""
    if not doomed:
        return set()
    files: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for chunk in _chunks(sorted(doomed)):
            stored = select(_image.c.sha256, _image.c.format).where(
                _image.c.id.in_(chunk), _image.c.sha256.is_not(None), _image.c.format.is_not(None)
            )
            sent = select(_reference.c.sha256, _reference.c.format).where(
                _reference.c.image_id.in_(chunk)
            )
            files.update((sha256, fmt) for sha256, fmt in conn.execute(union_all(stored, sent)))
        digests = {sha256 for sha256, _ in files}
        users = union_all(
            select(_image.c.sha256, _image.c.id).where(_image.c.sha256.is_not(None)),
            select(_reference.c.sha256, _reference.c.image_id),
        )
        used: set[str] = set()
        for sha256, image_id in conn.execution_options(yield_per=STREAM).execute(users):
            if sha256 in digests and image_id not in doomed:
                used.add(sha256)
    return {(sha256, fmt) for sha256, fmt in files if sha256 not in used}


def execute_purge(engine: Engine, plan: PurgePlan) -> Iterator[int]:
    """Delete what ``plan`` holds (which must not be blocked: nothing kept made from it, no
    kept character's anchor in it); yields how many images each committed chunk deleted."""
    doomed = set(plan.images)
    _let_go(engine, plan, doomed)
    for chunk in _chunks(list(plan.images)):
        with engine.begin() as conn:
            _forget_retries(conn, chunk)
            conn.execute(delete(_tag).where(_tag.c.image_id.in_(chunk)))
            conn.execute(delete(_reference).where(_reference.c.image_id.in_(chunk)))
            conn.execute(delete(_check).where(_check.c.image_id.in_(chunk)))
            conn.execute(delete(_cast).where(_cast.c.image_id.in_(chunk)))
            conn.execute(delete(_image).where(_image.c.id.in_(chunk)))
        yield len(chunk)
    with engine.begin() as conn:
        for chunk in _chunks(list(plan.sessions)):
            conn.execute(delete(_batch).where(_batch.c.session_id.in_(chunk)))
            conn.execute(delete(_member).where(_member.c.session_id.in_(chunk)))
            conn.execute(delete(_session).where(_session.c.id.in_(chunk)))
        for chunk in _chunks(list(plan.characters)):
            # a purged member leaves the casts of the sessions that are kept; the pictures
            # that showed it sent its anchor, so they are gone with it (or the purge was
            # refused: made_from)
            conn.execute(delete(_member).where(_member.c.character_id.in_(chunk)))
            conn.execute(delete(_cast).where(_cast.c.character_id.in_(chunk)))
            conn.execute(delete(_sheet).where(_sheet.c.character_id.in_(chunk)))
            conn.execute(delete(_character).where(_character.c.id.in_(chunk)))


def _let_go(engine: Engine, plan: PurgePlan, doomed: set[int]) -> None:
    """Before any image goes: the sessions and characters that go let go of their heads and
    anchors; a kept session whose head goes moves it where the plan says (``heads``); a
    kept batch whose shots branched from an image that goes forgets it (its next run starts
    from the session's head)."""
    with engine.connect() as conn:
        batches = [
            (batch_id, spec)
            for batch_id, session_id, spec in conn.execute(
                select(_batch.c.id, _batch.c.session_id, _batch.c.spec)
            )
            if session_id not in plan.sessions and spec.get("parent_image_id") in doomed
        ]
    with engine.begin() as conn:
        for chunk in _chunks(list(plan.sessions)):
            conn.execute(
                update(_session).where(_session.c.id.in_(chunk)).values(head_image_id=None)
            )
        for chunk in _chunks(list(plan.characters)):
            conn.execute(
                update(_character).where(_character.c.id.in_(chunk)).values(anchor_image_id=None)
            )
        for move in plan.heads:
            conn.execute(
                update(_session)
                .where(_session.c.id == move.session)
                .values(head_image_id=move.new, last_response_id=None)
            )
        for batch_id, spec in batches:
            conn.execute(
                update(_batch)
                .where(_batch.c.id == batch_id)
                .values(spec={**spec, "parent_image_id": None})
            )


def _forget_retries(conn: Connection, chunk: Sequence[int]) -> None:
    """Kept images that retried one of ``chunk`` no longer point at it (it is going)."""
    kept = conn.execute(
        select(_image.c.id, _image.c.session_id).where(
            _image.c.retry_of_id.in_(chunk), _image.c.id.not_in(chunk)
        )
    ).all()
    if kept:
        now = change_time(conn, [session_id for _, session_id in kept])
        conn.execute(
            update(_image)
            .where(_image.c.id.in_([image_id for image_id, _ in kept]))
            .values(retry_of_id=None, updated_at=now)
        )


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start : start + ID_CHUNK]
