"""The store: migrations, engine settings, and the content-addressed blob files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from onmodel.blobs import BlobStore, sha256_bytes
from onmodel.errors import DatabaseTooNewError
from onmodel.store.database import create_database_engine, schema_state, upgrade
from onmodel.studio import Studio


def test_migrations_bring_an_empty_database_to_head(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'new.db'}")
    assert schema_state(engine).current is None
    state = upgrade(engine)
    assert state.up_to_date and state.current == state.head
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    assert {"character", "session", "image", "image_reference", "batch"} <= tables


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        with pytest.raises(Exception, match="FOREIGN KEY"):
            conn.execute(
                text(
                    "INSERT INTO session (slug, character_id, title, provider, model,"
                    " params, instructions, created_at, updated_at) VALUES "
                    "('x', 999, '', 'preview', 'gpt-image-2', '{}', '', "
                    "'2026-01-01', '2026-01-01')"
                )
            )


def test_a_database_from_a_newer_onmodel_is_refused(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(DatabaseTooNewError, match="newer version"):
        schema_state(engine)


def test_database_url_from_the_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere" / "records.db"
    monkeypatch.setenv("ONMODEL_DATABASE_URL", f"sqlite:///{target}")
    with Studio.open(tmp_path / "home") as studio:
        assert studio.characters() == []
    assert target.exists()
    assert not (tmp_path / "home" / "onmodel.db").exists()


def test_blob_round_trip_is_byte_exact_and_verified(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
    blob = store.put(data, "png")
    digest = sha256_bytes(data)
    assert blob.sha256 == digest
    assert blob.path == tmp_path / "blobs" / digest[:2] / digest[2:4] / f"{digest}.png"
    assert store.read(digest, "png") == data
    assert store.verify(digest, "png")


def test_the_same_image_stored_twice_is_one_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first = store.put(b"same bytes", "png")
    second = store.put(b"same bytes", "png")
    assert first.path == second.path
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def test_a_damaged_blob_is_detected(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob = store.put(b"original", "png")
    blob.path.write_bytes(b"tampered")
    assert not store.verify(blob.sha256, "png")
    with pytest.raises(Exception, match="damaged"):
        store.read(blob.sha256, "png")


def test_a_failure_mid_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path / "blobs")

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"half written", "png")
    leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert leftovers == []


def test_schema_head_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from onmodel.store.database import SCHEMA_HEAD, _alembic_config

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


def test_core_row_writes_fill_in_what_the_models_would(studio: Studio) -> None:
    """The per-shot writes go through Core statements; the rows must be the ORM's rows."""
    from onmodel.store.models import ImageRow
    from onmodel.store.rows import insert_row, update_row

    character = studio.create_character("Mia", prompt="a girl", provider="preview")
    required = {
        "character_id": character.id,
        "kind": "shot",
        "provider": "preview",
        "model": "gpt-image-2",
    }
    expected = ImageRow(**required)  # what the ORM would have stored for the same values
    with studio.engine.begin() as conn:
        image_id = insert_row(conn, ImageRow, required)
        assert update_row(conn, ImageRow, image_id, {"note": "kept", "usage": {"x": 1}}) == 1
        assert update_row(conn, ImageRow, image_id + 999, {"note": "nobody"}) == 0
    stored = studio.image(image_id).row
    for name in ("status", "request", "params", "returned", "error_categories", "starred"):
        assert getattr(stored, name) == getattr(expected, name), name
    assert stored.note == "kept" and stored.usage == {"x": 1}
    assert stored.created_at is not None and stored.id == image_id


def test_upgrading_a_0001_database_keeps_its_pending_row_and_judges_it_stale(
    tmp_path: Path,
) -> None:
    """A row left pending by an onmodel before owners existed becomes retryable."""
    from alembic import command

    from onmodel.store.database import SCHEMA_HEAD, _alembic_config
    from onmodel.store.stale import find_stale, reconcile_stale

    engine = create_database_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO character (id, slug, name, description, sheet, created_at,"
                " updated_at) VALUES (1, 'mia', 'Mia', '', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO image (id, character_id, kind, status, request, prompt, provider,"
                " model, params, returned, error_categories, starred, note, created_at)"
                " VALUES (7, 1, 'shot', 'pending', '{}', 'p', 'openai-images', 'gpt-image-2',"
                " '{}', '{}', '[]', 0, '', '2026-01-01')"
            )
        )
    assert upgrade(engine).current == SCHEMA_HEAD
    assert (tmp_path / "old.db.before-0001.bak").exists()
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, owner FROM image WHERE id = 7")).one()
    assert tuple(row) == ("pending", None)
    assert [r.image_id for r in find_stale(engine, tmp_path)] == [7]
    assert reconcile_stale(engine, tmp_path) == [7]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM image WHERE id = 7")).scalar() == (
            "interrupted"
        )


def test_storing_bytes_already_there_touches_the_file(tmp_path: Path) -> None:
    """A reused file must look in use, so a check does not discard it before its row exists."""
    store = BlobStore(tmp_path / "blobs")
    path = store.put(b"reused", "png").path
    os.utime(path, (1_000_000, 1_000_000))
    assert store.put(b"reused", "png").path == path
    assert path.stat().st_mtime > 1_000_000


def test_the_tables_and_the_migrations_agree(tmp_path: Path) -> None:
    """A model change without its Alembic revision (or the reverse) shows up here, not in
    a user's database: autogenerate finds nothing to add between the head and the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import onmodel.store.models  # noqa: F401 - registers the tables on SQLModel.metadata
    from onmodel.store.database import create_database_engine, upgrade

    engine = create_database_engine(f"sqlite:///{tmp_path / 'head.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert differences == []


@pytest.mark.sqlite_only("builds a revision-0003 SQLite file and checks its backup copy")
def test_upgrading_a_0003_database_gives_each_image_the_sheet_it_was_made_with(
    tmp_path: Path,
) -> None:
    """Revision 0004: sheets could not change before it, so each character's sheet becomes its
    version 1, every image's; batches remember their session's slug; nothing is hidden."""
    from alembic import command

    from onmodel.store.database import _alembic_config

    home = tmp_path / "home"
    engine = create_database_engine(f"sqlite:///{home / 'onmodel.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        for character_id, slug, sheet in ((1, "mia", '{"hair": "red"}'), (2, "rin", "{}")):
            conn.execute(
                text(
                    "INSERT INTO character (id, slug, name, description, sheet, created_at,"
                    " updated_at) VALUES (:id, :slug, :slug, '', :sheet, '2026-01-01',"
                    " '2026-01-01')"
                ),
                {"id": character_id, "slug": slug, "sheet": sheet},
            )
        conn.execute(
            text(
                "INSERT INTO session (id, slug, character_id, title, provider, model, params,"
                " instructions, created_at, updated_at) VALUES (1, 'week', 1, '', 'preview',"
                " 'gpt-image-2', '{}', '', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO batch (id, name, session_id, source_path, spec_hash, spec, status,"
                " counters, created_at, updated_at) VALUES (1, 'monday', 1, '', 'h', '{}',"
                " 'completed', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        for image_id, character_id in ((7, 1), (8, 2), (9, 1)):
            conn.execute(
                text(
                    "INSERT INTO image (id, character_id, kind, status, request, prompt,"
                    " provider, model, params, returned, error_categories, starred, note,"
                    " created_at) VALUES (:id, :character, 'shot', 'succeeded', '{}', 'p',"
                    " 'preview', 'gpt-image-2', '{}', '{}', '[]', 0, '', '2026-01-01')"
                ),
                {"id": image_id, "character": character_id},
            )
    engine.dispose()
    with Studio.open(home) as studio:  # upgrades it
        first = studio.sheet_of(7)
        assert first is not None and (first.number, first.sheet.hair) == (1, "red")
        assert [v.number for v in studio.sheet_history("rin")] == [1]
        rin = studio.sheet_of(8)
        assert rin is not None and rin.sheet.hair == ""
        assert [v.images for v in studio.sheet_history("mia")] == [2]
        assert [c.slug for c in studio.characters()] == ["mia", "rin"]
        assert [item.image.id for item in studio.images()] == [9, 8, 7]
        with studio.engine.connect() as conn:
            assert conn.execute(text("SELECT key_slug FROM batch")).scalar() == "week"
    assert (home / "onmodel.db.before-0003.bak").exists()


@pytest.mark.sqlite_only("reads SQLite's query plans")
def test_hidden_images_and_a_purges_links_are_read_from_indexes(studio: Studio) -> None:
    """Hidden images are counted from an index of their own (a partial one, which holds them
    alone); shown ones are paged as before; a purge finds what was made from an image, or
    retried it, by index."""
    from sqlalchemy import select

    from onmodel.store import queries
    from onmodel.store.listing import ImageFilter, images_page
    from onmodel.store.purge import _made_from
    from test_session_paging import Statements, add_images

    studio.create_character("Mia", prompt="a girl", provider="preview")
    session = studio.start_session("mia", provider="preview")
    ids = add_images(studio, session, 6)
    studio.hide_images(ids[:2])
    engine = studio.engine
    with Statements(studio) as statements:
        assert queries.hidden_image_counts(engine, [session.id]) == {session.id: 2}
        shown = ImageFilter(session_id=session.id)
        page = images_page(engine, shown, before_id=ids[5], limit=2)
        assert [r.id for r in page] == [ids[4], ids[3]]
        with engine.connect() as conn:
            _made_from(conn, ids)
            image = queries.ImageRow.__table__  # type: ignore[attr-defined]
            conn.execute(select(image.c.id).where(image.c.retry_of_id.in_(ids))).all()
    counts, listed, made_from, retries = statements.plans()
    assert counts.startswith(
        "SEARCH image USING COVERING INDEX ix_image_hidden_session_id (session_id=?"
    )
    # the shown listing reads the session's index in id order, a page at a time
    assert listed == "SEARCH image USING INDEX ix_image_session_id (session_id=? AND rowid<?)"
    assert "ix_image_parent_id (parent_id=?)" in made_from
    assert "ix_image_reference_ref_image_id (ref_image_id=?)" in made_from
    assert "ix_image_retry_of_id (retry_of_id=?)" in retries
