"""A throwaway PostgreSQL cluster for the test run, started once and given to every test.

The store, batch and web tests run against PostgreSQL as well as SQLite (issue 17): records
shared by a team live there, so a query that only SQLite forgives must fail here, not in a
studio. The cluster is Debian's ``postgresql`` binaries (``scripts/test`` installs them) run
from a temporary directory: ``initdb -A trust`` with no password, listening only on a unix
socket inside that directory, ``fsync=off`` because nothing in it outlives the run.

Migrating a database costs about a second, so one template database is brought to the newest
schema once, through onmodel's own engine set-up, and every test gets a copy of it
(``CREATE DATABASE t_N TEMPLATE onmodel_template`` copies files, a few milliseconds). Each
test's database is dropped when the test ends, so no rows leak from one test to the next.

Without the binaries the PostgreSQL parametrizations are skipped with the reason, unless
``ONMODEL_TEST_REQUIRE_SERVERS=1`` (set by ``scripts/test``, hence CI), where they fail: a CI
run must never pass by silently leaving PostgreSQL out.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TEMPLATE = "onmodel_template"
USER = "onmodel"


def servers_required() -> bool:
    """CI sets this: a missing server is then a failure, never a skip."""
    return os.environ.get("ONMODEL_TEST_REQUIRE_SERVERS", "") == "1"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def _as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: root runs them as the ``postgres`` user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL as postgres")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class Cluster:
    """One running server; ``url(name)`` points SQLAlchemy at a database in it."""

    root: Path
    bin_dir: Path
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@/{database}?host={self.root}"

    def start(self) -> None:
        prefix = _as_server_user()
        if prefix:
            shutil.chown(self.root, user="postgres")
        log = self.root / "log"
        self._run(
            [
                *(*prefix, str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust"),
                *("-U", USER, "--no-sync", "-E", "UTF8", "--locale=C"),
            ]
        )
        options = (
            f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                *(*prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options),
                *("-l", str(log), "-w", "-t", "60", "start"),
            ],
            log=log,
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, RuntimeError):
            subprocess.run(
                [
                    *(*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data)),
                    *("-m", "immediate", "-w", "stop"),
                ],
                check=True,
                capture_output=True,
            )

    def _run(self, command: list[str], log: Path | None = None) -> None:
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            detail = done.stdout + done.stderr
            if log is not None and log.exists():
                detail += log.read_text(errors="replace")
            raise RuntimeError(f"{' '.join(command)} failed:\n{detail}")

    def admin(self, statement: str) -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE refuse to run in one)."""
        import psycopg

        with psycopg.connect(
            host=str(self.root), user=USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_template(self) -> None:
        """The newest schema, migrated once by onmodel itself (opening migrates)."""
        from onmodel.store.database import create_database_engine, upgrade

        self.admin(f"CREATE DATABASE {TEMPLATE}")
        engine = create_database_engine(self.url(TEMPLATE))
        try:
            upgrade(engine)
        finally:
            engine.dispose()

    def fresh_database(self) -> str:
        name = f"t_{next(self.counter)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def drop(self, name: str) -> None:
        # WITH (FORCE) ends connections a test left open (a pooled engine it never disposed)
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def unavailable(reason: str) -> None:
    """Skip, or fail when CI requires the servers."""
    if servers_required():
        pytest.fail(f"ONMODEL_TEST_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """Started at the first test that asks for PostgreSQL, stopped when the run ends."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(
            "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql; "
            "scripts/test does it)"
        )
        raise AssertionError("unreachable")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    # a short path: a unix socket's path must fit in about 100 bytes
    root = Path(tempfile.mkdtemp(prefix="onmodel-pg-"))
    os.chmod(root, 0o755)
    cluster = Cluster(root=root, bin_dir=bin_dir)
    try:
        cluster.start()
        cluster.create_template()
    except Exception as exc:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"could not start a throwaway PostgreSQL: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """A fresh database at the newest schema, dropped when the test ends."""
    name = postgres_cluster.fresh_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop(name)
