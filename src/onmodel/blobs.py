"""Content-addressed image files: ``blobs/aa/bb/<sha256>.<ext>``.

Bytes are stored exactly as the provider produced them, never re-encoded, because GPT image
PNGs carry a signed C2PA manifest that any rewrite would break. Records live in the database;
this module only knows files (InvokeAI's split of image records from image files).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from onmodel.errors import OnmodelError

FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "gif": "gif"}
IN_USE_GRACE = timedelta(minutes=10)
"""How long a file stored (or reused) by :meth:`BlobStore.put` may wait for the row that refers
to it: an unreferenced file younger than this may belong to a write in progress."""
TEMP_PREFIX = ".tmp-"  # files being written; complete ones are renamed to their blob name
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}\.[A-Za-z0-9]+$")


class BlobIntegrityError(OnmodelError):
    """A stored file no longer matches its digest (disk damage or a hand edit)."""


@dataclass(frozen=True)
class Blob:
    sha256: str
    path: Path
    size: int


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, fmt: str) -> Path:
        ext = FORMAT_EXTENSIONS.get(fmt.lower(), fmt.lower())
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.{ext}"

    def put(self, data: bytes, fmt: str) -> Blob:
        """Store ``data`` once; a second put of the same bytes finds the file already there.

        The file appears under its final name only when complete (temp file in the same
        directory, fsync, rename, fsync of the directory), so a crash at any point leaves either
        no file or the whole verified file — never a partial one under a real name.

        A file found already there is touched: until a row refers to it, it looks unused, and
        :meth:`discard` leaves recently touched files alone.
        """
        sha256 = sha256_bytes(data)
        path = self.path_for(sha256, fmt)
        if _reusable(path, sha256, len(data)):
            return Blob(sha256=sha256, path=path, size=len(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            written = sha256_file(tmp)
            if written != sha256:
                raise BlobIntegrityError(f"write to {tmp} came back as {written}, not {sha256}")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return Blob(sha256=sha256, path=path, size=len(data))

    def put_file(self, source: Path, fmt: str) -> Blob:
        return self.put(source.read_bytes(), fmt)

    def read(self, sha256: str, fmt: str) -> bytes:
        """The stored bytes, checked against their digest."""
        data = self.path_for(sha256, fmt).read_bytes()
        if sha256_bytes(data) != sha256:
            raise BlobIntegrityError(f"blob {sha256} is damaged: its bytes no longer match")
        return data

    def verify(self, sha256: str, fmt: str) -> bool:
        path = self.path_for(sha256, fmt)
        return path.is_file() and sha256_file(path) == sha256

    def files(self) -> Iterator[StoredFile]:
        """Every blob and temp file under the root, streamed (other files are not ours)."""
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                temp = name.startswith(TEMP_PREFIX)
                if temp or _BLOB_NAME.match(name):
                    yield StoredFile(Path(directory, name), temp)

    def discard(self, path: Path, *, unused_since: float) -> bool:
        """Delete a file no row refers to, unless it was written or reused since ``unused_since``.

        A writer stores a file (or touches it, see :meth:`put`) before the row that refers to
        it is committed, so a young file may be about to be referenced. The file is moved aside
        before its age is read: a :meth:`put` after that finds no file and writes its own, and
        one before it left the file young, so it is moved back. True when it was deleted.
        """
        aside = path.with_name(f"{TEMP_PREFIX}discard-{path.name}")
        try:
            os.rename(path, aside)
            if aside.stat().st_mtime >= unused_since:
                os.replace(aside, path)  # same bytes as any file a put wrote meanwhile
                return False
            aside.unlink()
        except FileNotFoundError:  # another check got there first
            return False
        return True


@dataclass(frozen=True)
class StoredFile:
    path: Path
    temp: bool  # a write in progress, or the leftover of one that was killed


def _reusable(path: Path, sha256: str, size: int) -> bool:
    """The complete file is already stored; it is touched so that it counts as in use."""
    try:
        if path.stat().st_size != size or sha256_file(path) != sha256:
            return False
        os.utime(path)
    except FileNotFoundError:  # never stored, or discarded just now: write it
        return False
    return True


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX only; other systems skip it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
