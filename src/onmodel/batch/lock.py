"""One batch run per session at a time, enforced by the operating system.

The lock is what lets a run treat every ``pending`` batch row of its session as abandoned: only
the holder of the lock can have live requests, and the kernel releases an ``flock`` when its
process dies — even by SIGKILL — so a crash never leaves a stale lock behind to clear by hand.

It is a file in the onmodel home, so it guards runs on one machine. With
``ONMODEL_DATABASE_URL`` pointing several machines at one database, run a session's batches
from one machine at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onmodel.errors import OnmodelError
from onmodel.owners import is_held

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not guarded
    fcntl = None  # type: ignore[assignment]


class BatchBusyError(OnmodelError):
    """Another batch run holds the session; running both could pay for a shot twice."""


def lock_path(home: Path, session_id: int) -> Path:
    return home / "locks" / f"session-{session_id}.lock"


class SessionLock:
    """The session's batch lock as an object, so its release can wait for stray threads.

    A run that gives up on requests in flight (Ctrl-C twice, SIGTERM) returns at once, but in a
    process that keeps living those requests still finish and record their images; the lock is
    released only after them, so no new run can make the same shots meanwhile.
    """

    def __init__(self, home: Path, session_id: int, session_slug: str) -> None:
        self.path = lock_path(home, session_id)
        self.slug = session_slug
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or fail at once naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise BatchBusyError(
                    f"another batch is running on session {self.slug!r} (pid {holder}); "
                    "wait for it to finish or stop it first"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Closing the descriptor releases the flock (the kernel does it on any exit too)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def release_after(self, threads: list[threading.Thread]) -> None:
        """Release once ``threads`` have ended, from a daemon thread (so exit never waits)."""

        def wait_then_release() -> None:
            for thread in threads:
                thread.join()
            self.release()

        threading.Thread(target=wait_then_release, name="onmodel-batch-lock", daemon=True).start()


@contextmanager
def session_lock(home: Path, session_id: int, session_slug: str) -> Iterator[None]:
    """Hold the session's batch lock for the block, or fail at once naming the holder."""
    lock = SessionLock(home, session_id, session_slug)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def is_locked(home: Path, session_id: int) -> bool:
    """True while some process holds the session's batch lock (a run is live)."""
    return is_held(lock_path(home, session_id))
