"""The local read cache of a remote blob store: verified copies, so code that needs a file
(providers uploading inputs, checkers, thumbnails, exports) gets one.

``HOME/cache/blobs/aa/bb/<sha256>.<ext>``. A copy is named by its digest, so it never goes
stale: it is either the right bytes or damaged, and every use hashes it first, so a damaged
copy (disk fault, hand edit) is dropped and fetched again. Copies are written to a temp file
and renamed, so a crash leaves a whole copy or none. The cache is disposable: deleting the
folder at any time only costs downloads.

It is bounded (``ONMODEL_BLOBS_CACHE_MB``, default :data:`DEFAULT_CAP_MB`; 0 for no bound):
each use touches a copy, and once a process has added a tenth of the cap it evicts the least
recently used copies down to 80 % of the cap, sparing those used in the last minutes (a
provider may be about to read one). The walk that measures the folder runs only then, not on
every fill, so a cache shared by several processes may overshoot by about a tenth each.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from onmodel.blobs import IN_USE_GRACE, TEMP_PREFIX, BlobIntegrityError, blob_name, sha256_bytes
from onmodel.errors import UsageError

DEFAULT_CAP_MB = 10 * 1024
_CHUNK = 1 << 20


def parse_cap(text: str) -> int | None:
    """``ONMODEL_BLOBS_CACHE_MB`` as bytes (None: no bound); empty means the default."""
    if not text:
        return DEFAULT_CAP_MB * 1024 * 1024
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise UsageError(
            f"ONMODEL_BLOBS_CACHE_MB={text[:40]!r} is not a whole number of megabytes "
            "(0 keeps every cached image)"
        )
    return megabytes * 1024 * 1024 or None


class ReadCache:
    def __init__(self, root: Path, cap_bytes: int | None) -> None:
        self.root = root
        self.cap_bytes = cap_bytes
        self._added = 0  # bytes this process filled since it last pruned

    def path_for(self, sha256: str, fmt: str) -> Path:
        return self.root / blob_name(sha256, fmt)

    def get(self, sha256: str, fmt: str) -> Path | None:
        """The cached copy, if present and intact (a damaged one is removed)."""
        path = self.path_for(sha256, fmt)
        try:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return path if self._kept(path, digest.hexdigest() == sha256) else None

    def read(self, sha256: str, fmt: str) -> bytes | None:
        """The cached bytes, if present and intact (a damaged copy is removed)."""
        path = self.path_for(sha256, fmt)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return data if self._kept(path, sha256_bytes(data) == sha256) else None

    def fill(self, sha256: str, fmt: str, data: bytes) -> Path:
        """Keep verified ``data`` (the caller hashed it) as the copy of the blob."""
        return self.fill_stream(sha256, fmt, (data,), source="the bytes stored")

    def fill_stream(self, sha256: str, fmt: str, chunks: Iterable[bytes], *, source: str) -> Path:
        """Write ``chunks`` as the copy, hashing them on the way; they must hash to ``sha256``
        (:class:`BlobIntegrityError` names ``source`` otherwise, and nothing is kept)."""
        path = self.path_for(sha256, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
            if digest.hexdigest() != sha256:
                raise BlobIntegrityError(
                    f"blob {sha256} is damaged: {source} hash to {digest.hexdigest()[:12]}…"
                )
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self._added += size
        if self.cap_bytes is not None and self._added > self.cap_bytes // 10:
            self.prune()
        return path

    def prune(self) -> int:
        """Evict least recently used copies down to 80 % of the cap; the bytes evicted."""
        self._added = 0
        if self.cap_bytes is None:
            return 0
        entries: list[tuple[float, int, str]] = []
        total = 0
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                total += stat.st_size
                entries.append((stat.st_mtime, stat.st_size, path))
        if total <= self.cap_bytes:
            return 0
        spare_since = time.time() - IN_USE_GRACE.total_seconds()
        target = self.cap_bytes * 8 // 10
        evicted = 0
        for mtime, size, path in sorted(entries):
            if total <= target or mtime >= spare_since:
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            total -= size
            evicted += size
        return evicted

    def _kept(self, path: Path, intact: bool) -> bool:
        """Touch an intact copy (it was just used) or drop a damaged one."""
        try:
            if intact:
                os.utime(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        return intact
