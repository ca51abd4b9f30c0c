"""Which process owns a pending image row, and whether that process still lives.

A pending row stands for a request being paid for. If its process is killed (SIGKILL, power
loss) nothing ever finishes the row, and ``retry`` must not re-make a shot that a live process
may still deliver. So every process that records pending rows holds an ``flock`` on a file of
its own, ``<home>/locks/owners/<token>.lock``, for its whole life, and writes ``<token>`` into
the rows. The kernel drops the lock when the process dies, however it dies, so a later process
that can take the lock knows the owner is gone — the principle of the batch lock
(``onmodel.batch.lock``), per process instead of per session.

A token is ``host:pid:random``: the pid says who it was, the random part makes it unique even
when pids are reused, and the host says where the lock can be seen. With a database shared by
several machines (``ONMODEL_DATABASE_URL``), another host's token cannot be judged from here,
and is taken to be alive. Without ``fcntl`` (Windows) no owner can be judged either.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import socket
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, owners are never judged
    fcntl = None  # type: ignore[assignment]

_TOKEN = re.compile(r"^(?P<host>[A-Za-z0-9._-]+):(?P<pid>[0-9]+):(?P<nonce>[0-9a-f]{16})$")
_held: dict[Path, str] = {}  # home -> this process's token; its lock descriptor stays open
_guard = threading.Lock()


def owners_dir(home: Path) -> Path:
    return home / "locks" / "owners"


def _host() -> str:
    """The host name reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "localhost"


def owner_token(home: Path) -> str:
    """This process's token for rows it records under ``home``, its lock taken on first use."""
    key = home.resolve()
    with _guard:
        token = _held.get(key)
        if token is None:
            token = f"{_host()}:{os.getpid()}:{secrets.token_hex(8)}"
            _hold(owners_dir(key), token)
            _held[key] = token
        return token


def _hold(directory: Path, token: str) -> None:
    """Create the lock file already locked, and keep it locked until this process ends.

    The file is locked under a temporary name and renamed into place, so no other process
    ever sees an unlocked file under a live owner's name (and deletes it as dead).
    """
    if fcntl is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".new-", dir=directory)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    final = directory / f"{token}.lock"
    os.replace(temporary, final)
    atexit.register(_release, fd, final)


def _release(fd: int, path: Path) -> None:
    """On a clean exit, leave no file behind for a check to sweep (unlink while still held)."""
    path.unlink(missing_ok=True)
    os.close(fd)


def _forget_in_child() -> None:
    """A forked child is another process: it takes a token of its own on first use."""
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def is_owner_alive(home: Path, token: str) -> bool:
    """False only when ``token``'s process is known to have ended; unknown counts as alive."""
    match = _TOKEN.match(token)
    if fcntl is None or match is None or match["host"] != _host():
        return True
    # a missing file was removed by its owner's clean exit, or by a check after its death
    return is_held(owners_dir(home.resolve()) / f"{token}.lock")


def is_held(path: Path) -> bool:
    """True while some process holds an ``flock`` on ``path``; False when free or missing.

    The kernel drops a dead process's locks, SIGKILL included, so "free" means "its holder is
    gone": the batch lock and owner liveness both rest on this.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def forget_owner(home: Path, token: str) -> bool:
    """Delete a dead owner's lock file (True when it was dead); a live owner's is kept.

    A missing file reads as a dead owner, so this changes no verdict: it only keeps the folder
    from filling up with the files of killed processes.
    """
    if is_owner_alive(home, token):  # also for tokens it cannot judge: never a foreign path
        return False
    (owners_dir(home.resolve()) / f"{token}.lock").unlink(missing_ok=True)
    return True


def forget_dead_owners(home: Path) -> int:
    """Delete the lock files of every owner on this host that has ended; returns how many."""
    try:
        names = [entry.name for entry in os.scandir(owners_dir(home.resolve()))]
    except FileNotFoundError:
        return 0
    tokens = (name.removesuffix(".lock") for name in names if name.endswith(".lock"))
    return sum(forget_owner(home, token) for token in tokens)
