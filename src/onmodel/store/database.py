"""Engine set-up and migrations: the only place that knows which database is underneath.

Opening a database always brings it to the newest schema (as ``llm`` does), so the code never
meets an old table layout; a database stamped by a newer onmodel is refused instead of being
half-understood.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from onmodel.errors import DatabaseTooNewError, DatabaseUnavailableError
from onmodel.resources import migrations_dir

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every pooled connection gets WAL, enforced foreign keys and a busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_database_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # a plain postgresql:// URL means psycopg 3 (the 'team' extra), not SQLAlchemy's
        # default psycopg2, which onmodel does not install
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        # every connection in UTC, the time the rows are written in: a month or a day the
        # database works out (``store.costs``) is then the same wherever the server runs
        return create_engine(
            parsed, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}
        )
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    _serialize_writes(engine)
    return engine


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _serialize_writes(engine: Engine) -> None:
    """Let one thread at a time write, queued in Python rather than by SQLite's busy handler.

    SQLite allows one writer; another thread that tries meets SQLITE_BUSY and its busy handler
    sleeps 1, 2, 5, 10 ... 100 ms before looking again, however soon the writer finishes. A
    batch's threads write constantly (a pending row per request, a finished row per image), so
    those sleeps added tens of milliseconds to requests. A lock taken at a transaction's first
    write and released when it commits or rolls back hands the turn over at once; other
    processes still meet the busy timeout as before.
    """
    lock = threading.RLock()

    def before_write(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not conn.info.get("writing") and statement.lstrip().upper().startswith(_WRITES):
            lock.acquire()
            conn.info["writing"] = True

    def after_transaction(conn: Any) -> None:
        if conn.info.pop("writing", False):
            lock.release()

    event.listen(engine, "before_cursor_execute", before_write)
    event.listen(engine, "commit", after_transaction)
    event.listen(engine, "rollback", after_transaction)


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


SCHEMA_HEAD = "0008"
"""The newest revision in ``migrations/``; a test keeps it equal to Alembic's own head.

Every command opens the database, and loading Alembic's script directory costs about 0.2 s:
an up-to-date database (the usual case) is recognised from this constant alone.
"""


def _stamped_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def schema_state(engine: Engine) -> SchemaState:
    """Where the database stands against the code's migrations, without changing anything."""
    if _stamped_revision(engine) == SCHEMA_HEAD:
        return SchemaState(current=SCHEMA_HEAD, head=SCHEMA_HEAD)
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    assert head is not None, "migrations/ holds no revision"
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None and current != head:
        try:
            script.get_revision(current)
        except Exception as exc:
            raise DatabaseTooNewError(
                f"the database is at schema revision {current}, which this onmodel does not "
                "know: it was written by a newer version; upgrade onmodel to use it"
            ) from exc
    return SchemaState(current=current, head=head)


def upgrade(engine: Engine) -> SchemaState:
    """Apply pending revisions; an existing SQLite file is copied aside first."""
    try:
        state = schema_state(engine)
    except OperationalError as exc:  # the first connection: a studio's server may be away
        url = engine.url.difference_update_query(["password"])  # libpq takes one there too
        where = url.render_as_string(hide_password=True)
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise DatabaseUnavailableError(f"cannot open the database {where}: {reason}") from exc
    if state.up_to_date:
        return state
    if state.current is not None:
        _backup_sqlite(engine, state.current)
    from alembic import command

    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return schema_state(engine)


def _backup_sqlite(engine: Engine, revision: str) -> None:
    """``VACUUM INTO`` takes a consistent copy even while the WAL holds recent writes."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    target = Path(f"{database}.before-{revision}.bak")
    target.unlink(missing_ok=True)
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM INTO ?", (str(target),))


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
