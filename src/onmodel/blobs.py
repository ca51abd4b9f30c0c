"""Content-addressed image files: ``blobs/aa/bb/<sha256>.<ext>``.

Bytes are stored exactly as the provider produced them, never re-encoded, because GPT image
PNGs carry a signed C2PA manifest that any rewrite would break. Records live in the database;
this module only knows files (InvokeAI's split of image records from image files).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from onmodel.errors import OnmodelError

FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "gif": "gif"}


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
        """
        sha256 = sha256_bytes(data)
        path = self.path_for(sha256, fmt)
        if path.exists() and path.stat().st_size == len(data) and sha256_file(path) == sha256:
            return Blob(sha256=sha256, path=path, size=len(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
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
