"""Long sessions at the store (issue 12): counted by COUNT, listed a page at a time, polled
through a stamp; every change to an image moves its ``updated_at``; the batch's key lookup
and the pages read through their indexes; ``session list`` and ``session show`` as a user
sees them.

The query plans are checked on small tables: without ``ANALYZE`` statistics (onmodel runs
none) SQLite's planner picks the same plan whatever a table's size, so the plan seen here is
the one a 100,000-image session gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from cli_inprocess import run_cli
from onmodel.handles import Session
from onmodel.providers import FACTORIES
from onmodel.sheet import ShotRequest
from onmodel.status import ImageStatus
from onmodel.store import queries, writes
from onmodel.store.batches import interrupt_pending, key_records
from onmodel.store.database import SCHEMA_HEAD, create_database_engine, upgrade
from onmodel.store.models import ImageReferenceRow, ImageRow
from onmodel.store.records import ImageRecord
from onmodel.store.rows import insert_rows, update_row
from onmodel.store.stale import reconcile_stale
from onmodel.studio import Studio
from test_batch_support import REFUSE_WORD, FakeImages, make_session, png

# ------------------------------------------------------------------ helpers


def add_images(
    studio: Studio,
    session: Session,
    count: int,
    *,
    status: ImageStatus = ImageStatus.SUCCEEDED,
    key_prefix: str | None = None,
) -> list[int]:
    """``count`` rows in the session, written as a batch's would be (no provider call)."""
    with studio.engine.begin() as conn:
        first = conn.execute(text("SELECT COALESCE(MAX(id), 0) + 1 FROM image")).scalar_one()
        ids = list(range(first, first + count))
        insert_rows(
            conn,
            ImageRow,
            [
                {
                    "id": image_id,
                    "character_id": session.character_id,
                    "session_id": session.id,
                    "kind": "shot",
                    "status": status,
                    "request": {"pose": f"pose {image_id}"},
                    "provider": "preview",
                    "model": "gpt-image-2",
                    "shot_key": f"{key_prefix}{image_id}" if key_prefix else None,
                }
                for image_id in ids
            ],
        )
    return ids


def record(studio: Studio, image_id: int) -> ImageRecord:
    found = queries.image(studio.engine, image_id)
    assert found is not None
    return found


class Statements:
    """The SQL a block runs, and SQLite's plan for each."""

    def __init__(self, studio: Studio) -> None:
        self.engine = studio.engine
        self.seen: list[tuple[str, Any]] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._grab)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._grab)

    def _grab(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.startswith("EXPLAIN"):
            self.seen.append((statement, params))

    def plans(self) -> list[str]:
        """Each statement's plan, its steps joined by `` | ``."""
        found = []
        with self.engine.connect() as conn:
            for statement, params in self.seen:
                steps = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
                found.append(" | ".join(step[-1] for step in steps))
        return found


@pytest.fixture
def session(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> Session:
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: FakeImages())
    return make_session(studio)


# ------------------------------------------------------------------ updated_at


@pytest.mark.sqlite_only("migrates an old SQLite file of its own")
def test_the_upgrade_gives_existing_rows_their_last_known_change(tmp_path: Path) -> None:
    from alembic import command

    from onmodel.store.database import _alembic_config

    engine = create_database_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(
            text(
                "INSERT INTO character (id, slug, name, description, sheet, created_at,"
                " updated_at) VALUES (1, 'mia', 'Mia', '', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        for image_id, finished in ((1, "'2026-01-02 10:00:00.000000'"), (2, "NULL")):
            conn.execute(
                text(
                    "INSERT INTO image (id, character_id, kind, status, request, prompt,"
                    " provider, model, params, returned, error_categories, starred, note,"
                    f" created_at, finished_at) VALUES ({image_id}, 1, 'shot', 'succeeded',"
                    " '{}', 'p', 'preview', 'm', '{}', '{}', '[]', 0, '',"
                    f" '2026-01-01 09:00:00.000000', {finished})"
                )
            )
    assert upgrade(engine).current == SCHEMA_HEAD
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, updated_at FROM image ORDER BY id")).all()
        indexes = {
            name
            for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type='index'"))
        }
    assert rows == [(1, "2026-01-02 10:00:00.000000"), (2, "2026-01-01 09:00:00.000000")]
    assert "ix_image_session_id_updated_at" in indexes
    assert "ix_image_reference_image_id" not in indexes


def test_every_kind_of_change_moves_updated_at_and_the_stamp(
    studio: Studio, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write that changes an image row: a poll from the stamp before it finds the image."""

    def changes(image_id: Callable[[], int]) -> int:
        """Run the change; check it moved the row's time, the stamp, and shows in a poll."""
        stamp = studio.session_stamp(session)
        found = image_id()
        assert studio.session_stamp(session) != stamp
        assert found in [i.id for i in studio.images_changed_since(session, stamp, 50)]
        return found

    anchor = record(studio, session.character.anchor_image_id or 0)  # imported: no session
    assert anchor.updated_at == anchor.created_at == anchor.finished_at
    shot = changes(lambda: session.shot(pose="waving").id)  # recorded and finished
    created = record(studio, shot)
    assert created.updated_at == created.finished_at and created.updated_at >= created.created_at

    def annotate(**values: Any) -> Callable[[], int]:
        def run() -> int:
            before = record(studio, shot).updated_at
            studio.annotate_image(shot, **values)
            assert record(studio, shot).updated_at > before
            return shot

        return run

    changes(annotate(starred=True))
    changes(annotate(rating=4))
    changes(annotate(note="keep this one"))

    failed = changes(lambda: _failed_shot(studio, session))
    assert record(studio, failed).status is ImageStatus.FAILED
    assert record(studio, failed).updated_at > record(studio, failed).created_at  # marked
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: FakeImages(refuse=None))
    retried = changes(lambda: studio.retry(failed).id)
    assert record(studio, retried).retry_of_id == failed

    manual = changes(
        lambda: studio.shot(session, ShotRequest(pose="sitting"), provider="chatgpt").id
    )
    before = record(studio, manual).updated_at
    assert before > record(studio, manual).created_at  # its sent parameters, recorded
    picture = studio.paths.home / "saved.png"
    picture.write_bytes(png("saved", (32, 32)))
    assert changes(lambda: studio.attach(manual, picture).id) == manual
    assert record(studio, manual).updated_at > before

    killed = _pending_without_owner(studio, session)  # its process is gone: taken over
    before = record(studio, killed).updated_at
    assert changes(lambda: reconcile_stale(studio.engine, studio.paths.home, [killed])[0])
    assert record(studio, killed).status is ImageStatus.INTERRUPTED
    assert record(studio, killed).updated_at > before

    abandoned = _pending_without_owner(studio, session, shot_key="batch-key")

    def interrupt() -> int:  # a batch run giving up on the rows a killed run left
        assert interrupt_pending(studio.engine, session_id=session.id) == 1
        return abandoned

    changes(interrupt)
    assert record(studio, abandoned).status is ImageStatus.INTERRUPTED


def _failed_shot(studio: Studio, session: Session) -> int:
    from onmodel.errors import GenerationError

    with pytest.raises(GenerationError) as failure:
        session.shot(pose=f"{REFUSE_WORD} pose")
    assert failure.value.image_id is not None
    return failure.value.image_id


def _pending_without_owner(studio: Studio, session: Session, shot_key: str | None = None) -> int:
    """A pending row whose process is gone (recorded before owners existed)."""
    plan = studio.plan_shot(session, ShotRequest(pose="waving"))
    image_id = studio.record(replace(plan, shot_key=shot_key))
    with studio.engine.begin() as conn:
        update_row(conn, ImageRow, image_id, {"owner": None})
    return image_id


def test_a_session_s_changes_take_strictly_later_times_even_when_the_clock_does_not(
    studio: Studio, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writes in one microsecond, or a clock stepped back: each change still comes after
    the ones before it, so a poll asking for "after the last one I saw" misses none."""
    shot = session.shot(pose="waving").id
    latest = record(studio, shot).updated_at
    stuck = latest - timedelta(hours=1)
    monkeypatch.setattr(writes, "utcnow", lambda: stuck)
    times = []
    for rating in (1, 2, 3):
        stamp = studio.session_stamp(session)
        studio.annotate_image(shot, rating=rating)
        times.append(record(studio, shot).updated_at)
        assert [i.id for i in studio.images_changed_since(session, stamp, 10)] == [shot]
    assert times == sorted(set(times)) and times[0] > latest
    assert times[1] - times[0] == timedelta(microseconds=1)


# ------------------------------------------------------------------ counts, pages, polls


def test_counts_come_from_the_database(studio: Studio, session: Session) -> None:
    other = studio.start_session("mia", title="empty", provider="preview")
    add_images(studio, session, 7)
    add_images(studio, session, 2, status=ImageStatus.FAILED)
    assert studio.image_counts([session, other]) == {session.id: 9, other.id: 0}
    assert queries.session_image_counts(studio.engine) == {session.id: 9}
    assert studio.status_counts(session) == {"succeeded": 7, "failed": 2}
    assert studio.status_counts(other) == {}


def test_pages_walk_every_image_once_in_either_direction(studio: Studio, session: Session) -> None:
    ids = add_images(studio, session, 23)
    forward = [i.id for i in studio.iter_session_images(session, page_size=5)]
    assert forward == ids
    backward: list[int] = []
    after: int | None = None
    while page := queries.session_images_page(
        studio.engine, session.id, after_id=after, limit=4, newest_first=True
    ):
        backward.extend(r.id for r in page)
        after = page[-1].id
    assert backward == ids[::-1]
    assert [i.id for i in studio.recent_images(session, 3)] == ids[-3:]


def test_a_poll_sends_only_what_changed_and_nothing_when_nothing_did(
    studio: Studio, session: Session
) -> None:
    ids = add_images(studio, session, 5)
    stamp = studio.session_stamp(session)
    assert studio.session_stamp(session) == stamp  # nothing changed: same stamp
    assert studio.images_changed_since(session, stamp, 10) == []
    studio.annotate_image(ids[3], starred=True)
    studio.annotate_image(ids[1], note="later")
    assert [i.id for i in studio.images_changed_since(session, stamp, 10)] == [ids[3], ids[1]]
    assert len(studio.images_changed_since(session, "", 100)) == 5  # no stamp: everything
    assert queries.stamp_change_time("not a stamp") is None
    assert queries.session_stamp(studio.engine, 10**9) == ""


def test_a_stamp_follows_the_session_row_too(studio: Studio, session: Session) -> None:
    stamp = studio.session_stamp(session)
    session.shot(pose="waving")  # moves the head
    moved = studio.session_stamp(session)
    assert moved != stamp and moved.split(".")[3] == str(studio.session(session.id).head_image_id)


# ------------------------------------------------------------------ query plans


@pytest.mark.sqlite_only("reads SQLite's query plans")
def test_the_batch_key_lookup_reads_the_key_index_in_chunks(
    studio: Studio, session: Session
) -> None:
    ids = add_images(studio, session, 30, key_prefix="key-")
    add_images(studio, studio.start_session("mia", provider="preview"), 3, key_prefix="key-")
    wanted = [f"key-{i}" for i in ids] + [f"missing-{n}" for n in range(1100)]
    with Statements(studio) as statements:
        found = key_records(studio.engine, session.id, wanted)
    assert sorted(found) == sorted(f"key-{i}" for i in ids)  # not the other session's rows
    plans = statements.plans()
    assert len(plans) == 3  # 1,130 keys in chunks of 500
    for plan in plans:
        assert "USING INDEX ix_image_shot_key (shot_key=?)" in plan, plan
        assert "ix_image_session_id" not in plan, plan


@pytest.mark.sqlite_only("reads SQLite's query plans")
def test_stamp_poll_and_pages_read_their_indexes(studio: Studio, session: Session) -> None:
    ids = add_images(studio, session, 10)
    with Statements(studio) as statements:
        stamp = queries.session_stamp(studio.engine, session.id)
    (plan,) = statements.plans()
    assert "SEARCH session USING INTEGER PRIMARY KEY" in plan
    assert plan.count("USING COVERING INDEX ix_image_session_id (session_id=?)") == 2, plan
    assert "COVERING INDEX ix_image_session_id_updated_at (session_id=?)" in plan, plan

    since = queries.stamp_change_time(stamp)
    with Statements(studio) as statements:
        queries.images_changed_since(studio.engine, session.id, since, 10)
        queries.session_images_page(
            studio.engine, session.id, after_id=ids[5], limit=3, newest_first=False
        )
        queries.session_images_page(
            studio.engine, session.id, after_id=ids[5], limit=3, newest_first=True
        )
        queries.session_image_counts(studio.engine, [session.id])
    changed, forward, backward, counts = statements.plans()
    assert changed == (
        "SEARCH image USING INDEX ix_image_session_id_updated_at (session_id=? AND updated_at>?)"
    )
    assert forward == "SEARCH image USING INDEX ix_image_session_id (session_id=? AND rowid>?)"
    assert backward == "SEARCH image USING INDEX ix_image_session_id (session_id=? AND rowid<?)"
    assert counts == "SEARCH image USING COVERING INDEX ix_image_session_id (session_id=?)"


@pytest.mark.sqlite_only("reads SQLite's query plans")
def test_references_are_read_through_the_unique_position_index(
    studio: Studio, session: Session
) -> None:
    """Which is why revision 0003 dropped the separate index on ``image_id``."""
    shot = session.shot(pose="waving")
    with Statements(studio) as statements:
        queries.references_of(studio.engine, [shot.id])
    (plan,) = statements.plans()
    assert plan == (
        "SEARCH image_reference USING INDEX sqlite_autoindex_image_reference_1 (image_id=?)"
    )
    assert "image_id" not in {
        index.columns[0].name
        for index in ImageReferenceRow.__table__.indexes  # type: ignore[attr-defined]
    }


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def long_session(studio: Studio, session: Session) -> Iterator[Session]:
    add_images(studio, session, 27)
    add_images(studio, session, 3, status=ImageStatus.FAILED)
    add_images(studio, session, 2, status=ImageStatus.PENDING)
    studio.use_session(session)
    yield session


def test_session_list_counts_images(studio: Studio, long_session: Session) -> None:
    studio.start_session("mia", title="empty", slug="empty", provider="preview")
    home = studio.paths.home
    listed = json.loads(run_cli(home, "session", "list", "--json").stdout)
    assert {s["slug"]: s["images"] for s in listed} == {"week": 32, "empty": 0}
    table = run_cli(home, "session", "list").stdout
    week = next(line for line in table.splitlines() if " week " in line)
    assert " 32 " in week


def test_session_show_summarises_and_folds_the_older_images(
    studio: Studio, long_session: Session
) -> None:
    home = studio.paths.home
    out = run_cli(home, "session", "show").stdout
    assert "images: 32 — 27 succeeded, 3 failed, 2 pending" in out
    assert "… 12 earlier images (onmodel session show week --all)" in out
    listed = _listed_ids(out)
    assert len(listed) == 20 and listed == sorted(listed)
    assert listed[-1] == max(i.id for i in studio.iter_session_images(long_session))

    limited = run_cli(home, "session", "show", "--limit", "5").stdout
    assert "… 27 earlier images" in limited and len(_listed_ids(limited)) == 5

    everything = run_cli(home, "session", "show", "week", "--all").stdout
    assert "earlier image" not in everything
    assert _listed_ids(everything) == [i.id for i in studio.iter_session_images(long_session)]


def test_session_show_json_honours_limit_and_all(studio: Studio, long_session: Session) -> None:
    home = studio.paths.home
    every = [i.id for i in studio.iter_session_images(long_session)]
    default = json.loads(run_cli(home, "session", "show", "--json").stdout)
    assert default["image_count"] == 32
    assert default["status_counts"] == {"succeeded": 27, "failed": 3, "pending": 2}
    assert [i["id"] for i in default["images"]] == every[-20:]
    limited = json.loads(run_cli(home, "session", "show", "--json", "--limit", "2").stdout)
    assert [i["id"] for i in limited["images"]] == every[-2:]
    written = run_cli(home, "session", "show", "--json", "--all").stdout
    data = json.loads(written)
    assert [i["id"] for i in data["images"]] == every
    # written piece by piece, yet exactly what json.dumps writes for the whole
    assert written == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_session_show_of_a_session_without_images(studio: Studio, session: Session) -> None:
    home = studio.paths.home
    out = run_cli(home, "session", "show", "week")
    assert out.code == 0 and "images: none yet" in out.stdout
    data = json.loads(run_cli(home, "session", "show", "week", "--json").stdout)
    assert data["images"] == [] and data["image_count"] == 0


def _listed_ids(out: str) -> list[int]:
    return [int(line.split()[0][1:]) for line in out.splitlines() if line.startswith("  #")]


def test_stamp_times_round_trip_exactly() -> None:
    moment = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
    stamp = f"1.2.{(moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)}.0.0"
    assert queries.stamp_change_time(stamp) == moment
