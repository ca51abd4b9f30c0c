"""Content-addressed image files, behind one interface with two stores.

Bytes are stored exactly as the provider produced them, never re-encoded, because GPT image
PNGs carry a signed C2PA manifest that any rewrite would break. Records live in the database;
a blob store only knows files (InvokeAI's split of image records from image files).

:class:`Blobs` is the interface the studio, thumbnails, exports and ``onmodel db check`` use.
Two implementations:

* :class:`BlobStore`, a folder (``HOME/blobs/aa/bb/<sha256>.<ext>``): the default, one machine;
* :class:`~onmodel.s3blobs.S3BlobStore`, an S3-compatible bucket (``ONMODEL_BLOBS_URL=
  s3://bucket/prefix``) shared by a team, with a local read cache of verified copies.

:func:`open_blobs` picks one from the setting. Both keep the same promises: a blob is named by
the sha256 of its bytes, checked when written and when read, and a crash never leaves a
partial blob under a real name.
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
from typing import Literal, Protocol

from onmodel.errors import OnmodelError, UsageError

FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "gif": "gif"}
IN_USE_GRACE = timedelta(minutes=10)
"""How long a file stored (or reused) by :meth:`Blobs.put` may wait for the row that refers
to it: an unreferenced file younger than this may belong to a write in progress."""
TEMP_PREFIX = ".tmp-"  # files being written; complete ones are renamed to their blob name
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}\.[A-Za-z0-9]+$")
_CHUNK = 1 << 20


class BlobIntegrityError(OnmodelError):
    """A stored file no longer matches its digest (disk damage or a hand edit), or is gone."""


class BlobMissingError(BlobIntegrityError):
    """A blob a row refers to is not in the store."""


class BlobStoreError(OnmodelError):
    """The blob store cannot be reached or refuses (no such bucket, access denied, time-out)."""


class BlobStoreURLError(UsageError):
    """``ONMODEL_BLOBS_URL`` names no store onmodel knows."""


@dataclass(frozen=True)
class Blob:
    sha256: str
    path: Path  # the local file: the blob itself, or a remote store's cached copy
    size: int


@dataclass(frozen=True)
class StoredFile:
    """One entry of a store's listing (:meth:`Blobs.files`)."""

    name: str  # relative to the store: ``aa/bb/<sha256>.<ext>`` (or a temp file's name)
    temp: bool  # a write in progress, or the leftover of one that was killed
    modified: float  # seconds since the epoch: when it was written or last reused
    size: int


@dataclass(frozen=True)
class Damage:
    """What :meth:`Blobs.check` found wrong with a stored blob."""

    kind: Literal["missing", "damaged"]
    detail: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extension(fmt: str) -> str:
    """The file extension a blob of format ``fmt`` is stored under (``jpeg`` -> ``jpg``)."""
    return FORMAT_EXTENSIONS.get(fmt.lower(), fmt.lower())


def blob_name(sha256: str, fmt: str) -> str:
    """A blob's name inside any store: ``aa/bb/<sha256>.<ext>``, the digest fanned out so no
    folder (or listing page) holds more than a few hundred entries."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension(fmt)}"


def is_blob_name(name: str) -> bool:
    """Whether the last part of ``name`` is a blob's (other files under a store are not ours)."""
    return bool(_BLOB_NAME.match(name.rsplit("/", 1)[-1]))


class Blobs(Protocol):
    """What every blob store offers. Names are :func:`blob_name`; digests are sha256 hex."""

    @property
    def location(self) -> str:
        """Where the store is, for messages: a folder's path or an ``s3://`` URL."""
        ...

    def where(self, name: str) -> str:
        """Where the blob ``name`` is, for messages (a path, or an ``s3://`` URL)."""
        ...

    def path_for(self, sha256: str, fmt: str) -> Path:
        """Where the local file of a blob is, or will be once stored or fetched; no I/O."""
        ...

    def put(self, data: bytes, fmt: str) -> Blob:
        """Store ``data`` once, verified; bytes already stored are not written again but
        marked as just used (see :data:`IN_USE_GRACE`)."""
        ...

    def put_file(self, source: Path, fmt: str) -> Blob: ...

    def read(self, sha256: str, fmt: str) -> bytes:
        """The stored bytes, checked against their digest (:class:`BlobIntegrityError`)."""
        ...

    def local_path(self, sha256: str, fmt: str) -> Path:
        """A local file holding the blob, for code that needs a path (providers, checkers,
        thumbnails, exports). The folder store returns its own file, unchecked, as it always
        has (readers that need proof hash what they read); a remote store returns a cached
        copy whose digest it has just checked, fetched first when absent or damaged."""
        ...

    def exists(self, sha256: str, fmt: str) -> bool: ...

    def size(self, sha256: str, fmt: str) -> int | None:
        """The stored size in bytes, or None when it is not stored."""
        ...

    def verify(self, sha256: str, fmt: str) -> bool:
        """Whether the blob is stored and its bytes still match the digest."""
        ...

    def check(self, name: str, sha256: str) -> Damage | None:
        """What is wrong with the stored blob ``name`` (None when intact): its bytes are read
        from the store itself (never a cache) in chunks and hashed, never held whole."""
        ...

    def files(self) -> Iterator[StoredFile]:
        """Every blob and temp file in the store, streamed (other files are not ours)."""
        ...

    def discard(self, name: str, *, unused_since: float) -> bool:
        """Delete a blob no row refers to, unless written or reused since ``unused_since``;
        True when it was deleted."""
        ...

    def remove_temp(self, name: str) -> None:
        """Delete an abandoned temp file (a store without temp files has none to delete)."""
        ...


def open_blobs(url: str, home: Path, *, cache_mb: str = "") -> Blobs:
    """The store ``url`` names (``ONMODEL_BLOBS_URL``): empty means the folder ``home/blobs``;
    ``s3://bucket/prefix`` an S3-compatible bucket, with its read cache in ``home/cache/blobs``
    bounded by ``cache_mb`` (``ONMODEL_BLOBS_CACHE_MB``).

    boto3 is imported only here, only for an ``s3://`` URL, so a local studio never pays for it.
    """
    if not url:
        return BlobStore(home / "blobs")
    if url.lower().startswith("s3://"):
        from onmodel.s3blobs import S3BlobStore

        return S3BlobStore.from_url(url, cache_root=home / "cache" / "blobs", cache_mb=cache_mb)
    shown = url if len(url) <= 80 else url[:77] + "..."
    raise BlobStoreURLError(
        f"ONMODEL_BLOBS_URL={shown!r} is not a blob store: leave it unset for the folder "
        "under ONMODEL_HOME, or give s3://bucket/prefix"
    )


class BlobStore:
    """The folder store: ``root/aa/bb/<sha256>.<ext>``, one machine's files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def where(self, name: str) -> str:
        return str(self.root / name)

    def path_for(self, sha256: str, fmt: str) -> Path:
        return self.root / blob_name(sha256, fmt)

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
        write_verified(path, data, sha256)
        return Blob(sha256=sha256, path=path, size=len(data))

    def put_file(self, source: Path, fmt: str) -> Blob:
        return self.put(source.read_bytes(), fmt)

    def read(self, sha256: str, fmt: str) -> bytes:
        """The stored bytes, checked against their digest."""
        path = self.path_for(sha256, fmt)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(f"blob {sha256} is missing from {self.root}") from None
        if sha256_bytes(data) != sha256:
            raise BlobIntegrityError(f"blob {sha256} is damaged: its bytes no longer match")
        return data

    def local_path(self, sha256: str, fmt: str) -> Path:
        return self.path_for(sha256, fmt)

    def exists(self, sha256: str, fmt: str) -> bool:
        return self.path_for(sha256, fmt).is_file()

    def size(self, sha256: str, fmt: str) -> int | None:
        try:
            return self.path_for(sha256, fmt).stat().st_size
        except FileNotFoundError:
            return None

    def verify(self, sha256: str, fmt: str) -> bool:
        path = self.path_for(sha256, fmt)
        return path.is_file() and sha256_file(path) == sha256

    def check(self, name: str, sha256: str) -> Damage | None:
        try:
            intact = sha256_file(self.root / name) == sha256
        except FileNotFoundError:
            return Damage("missing", "the file is missing")
        except OSError as exc:
            return Damage("damaged", f"the file cannot be read ({exc.strerror})")
        return None if intact else Damage("damaged", "the file no longer matches its digest")

    def files(self) -> Iterator[StoredFile]:
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                temp = name.startswith(TEMP_PREFIX)
                if not (temp or _BLOB_NAME.match(name)):
                    continue
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:  # finished (renamed) or removed since it was listed
                    continue
                relative = path.relative_to(self.root).as_posix()
                yield StoredFile(relative, temp, stat.st_mtime, stat.st_size)

    def discard(self, name: str, *, unused_since: float) -> bool:
        """Delete a file no row refers to, unless it was written or reused since ``unused_since``.

        A writer stores a file (or touches it, see :meth:`put`) before the row that refers to
        it is committed, so a young file may be about to be referenced. The file is moved aside
        before its age is read: a :meth:`put` after that finds no file and writes its own, and
        one before it left the file young, so it is moved back. True when it was deleted.
        """
        path = self.root / name
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

    def remove_temp(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)  # nobody reuses a temp file


def write_verified(path: Path, data: bytes, sha256: str) -> None:
    """Write ``data`` to ``path`` so that it appears whole or not at all: a temp file in the
    same folder, fsync, read back and hashed, renamed, the folder fsynced."""
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
