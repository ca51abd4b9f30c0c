"""Run the ``onmodel`` command inside the test process, error handling included.

A subprocess costs half a second of start-up; the fuzz tests run hundreds of commands. This goes
through the same ``_run`` the console script does (one-line errors, exit codes), minus the final
``os._exit`` that would end pytest itself. ``ONMODEL_DEBUG`` is set, so an input that reaches
the "unexpected" fallback fails the test with its traceback rather than passing as an error.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from onmodel.cli import app as cli_app


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(home: Path, *args: str) -> Outcome:
    """``onmodel ARGS`` with ``ONMODEL_HOME=home``; returns its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    names = ("ONMODEL_HOME", "COLUMNS", "ONMODEL_DEBUG")
    saved_argv, saved_env = sys.argv, {name: os.environ.get(name) for name in names}
    sys.argv = ["onmodel", *args]
    os.environ.update(ONMODEL_HOME=str(home), COLUMNS="200", ONMODEL_DEBUG="1")
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli_app._run()
            except SystemExit as exc:
                code = exc.code
            finally:
                atexit._run_exitfuncs()  # the studio each command opened is closed
    finally:
        sys.argv = saved_argv
        for name, value in saved_env.items():
            _restore(name, value)
    return Outcome(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def snapshot(home: Path) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Row counts of every table that holds user work, and every file under ``blobs/``."""
    counts: tuple[int, ...] = (0, 0, 0, 0, 0)  # no database yet: nothing stored
    tables = ("character", "session", "image", "image_reference", "batch")
    database = home / "onmodel.db"
    url = os.environ.get("ONMODEL_DATABASE_URL")
    if url:  # the PostgreSQL run (tests/conftest.py): the records are not in home/
        from onmodel.store.database import create_database_engine

        engine = create_database_engine(url)
        try:
            with engine.connect() as conn:
                counts = tuple(
                    conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()
                    for table in tables
                )
        finally:
            engine.dispose()
    elif database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db:
            counts = tuple(
                db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables
            )
    blobs = home / "blobs"
    files = (
        tuple(sorted(str(p.relative_to(home)) for p in blobs.rglob("*"))) if blobs.exists() else ()
    )
    return counts, files


def assert_refused_cleanly(outcome: Outcome) -> None:
    """What every refusal looks like: exit 1 or 2, one line starting ``error:``, no internals."""
    assert outcome.code in (1, 2), outcome
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert outcome.error_lines[0].startswith("error: "), outcome.stderr
    assert not outcome.error_lines[0].startswith("error: unexpected "), outcome.stderr
    assert "Traceback" not in outcome.stderr + outcome.stdout
