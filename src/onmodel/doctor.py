"""``onmodel db check``: do the records and the image files still agree?

A killed process can leave a row ``pending`` forever, a blob no row refers to, or a ``.tmp-``
file from a write it never finished; disks damage files. The check finds all of these, and with
``fix`` repairs what is safe to repair:

* stale pending rows are marked ``interrupted`` (so ``retry`` takes them);
* unreferenced blobs and ``.tmp-`` files are deleted once older than ``grace`` — younger ones
  may belong to a write in progress whose row is not committed yet.

It never deletes or rewrites a file a row refers to: a missing or damaged one is reported,
since only the user can say where a good copy is.

A purge (``studio.curation``) deletes rows and then, through :func:`discard_unreferenced`,
the files they leave unreferenced, by the same rules: only files no row refers to, and only
once older than ``grace``.

The referenced files are read from the database in one streamed query and the connection is
closed before any file is hashed, so a long check holds no transaction open (which would stop
SQLite from checkpointing its WAL under a running batch). Files are hashed in chunks, never
read whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from onmodel.blobs import IN_USE_GRACE, BlobStore, sha256_file
from onmodel.owners import forget_dead_owners
from onmodel.store import queries
from onmodel.store.stale import find_stale, reconcile_stale

_STREAM = 1000  # rows fetched at a time from the referenced-files query

FindingKind = Literal["missing", "damaged", "orphan", "temp", "stale"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong, and whether the check repaired it."""

    kind: FindingKind
    subject: str  # a file's path, or "image N"
    detail: str
    fixed: bool = False

    def line(self) -> str:
        state = "fixed" if self.fixed else "problem"
        return f"{state}: {self.kind} {self.subject}: {self.detail}"


@dataclass
class CheckReport:
    """What ``check_store`` found; ``healthy`` once nothing is left unrepaired."""

    blobs_verified: int = 0
    files_scanned: int = 0
    young_files_kept: int = 0  # unreferenced but within the grace period: maybe being written
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "blobs_verified": self.blobs_verified,
            "files_scanned": self.files_scanned,
            "young_files_kept": self.young_files_kept,
            "problems": len(self.problems),
            "findings": [asdict(f) for f in self.findings],
        }


def check_store(
    engine: Engine,
    blobs: BlobStore,
    home: Path,
    *,
    fix: bool = False,
    grace: timedelta = IN_USE_GRACE,
) -> CheckReport:
    """Verify every referenced blob, find unreferenced and temp files and stale pending rows.

    With ``fix``, mark stale rows interrupted and delete unreferenced and temp files older than
    ``grace``. The referenced set is read before the folder is scanned, so a file referenced by
    a row committed in between is young (written or touched just before) and is kept.
    """
    report = CheckReport()
    referenced = _referenced_files(engine, blobs)
    _verify(engine, referenced, report)
    unused_since = time.time() - grace.total_seconds()
    _sweep(blobs, referenced, report, fix=fix, unused_since=unused_since)
    _stale_rows(engine, home, report, fix=fix)
    return report


@dataclass(frozen=True)
class Discarded:
    """What :func:`discard_unreferenced` did: files deleted (and their bytes), and files kept
    because a row refers to them again or they are younger than the grace period."""

    files: int
    bytes: int
    kept: int


def discard_unreferenced(
    engine: Engine,
    blobs: BlobStore,
    files: Iterable[tuple[str, str]],
    *,
    grace: timedelta = IN_USE_GRACE,
) -> Discarded:
    """Delete those of ``files`` (``(sha256, format)``) that no row refers to any more, as
    ``check_store(fix=True)`` deletes an orphan: the referenced set is read first, so a file
    a row committed since refers to is young and kept; a file gone already is not counted."""
    referenced = _referenced_files(engine, blobs)
    unused_since = time.time() - grace.total_seconds()
    deleted = size = kept = 0
    for sha256, fmt in files:
        path = blobs.path_for(sha256, fmt)
        if str(path) in referenced:
            kept += 1
            continue
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            continue
        if _delete(blobs, path, temp=False, unused_since=unused_since):
            deleted += 1
            size += length
        else:
            kept += 1
    return Discarded(files=deleted, bytes=size, kept=kept)


def _referenced_files(engine: Engine, blobs: BlobStore) -> dict[str, str]:
    """Each file some row refers to (as its image or as a request's input) -> its digest.

    Paths are kept as strings: for 100,000 files that is 30 MB, against 56 MB as ``Path``s.
    """
    files = queries.stored_files(engine, _STREAM)
    return {str(blobs.path_for(sha256, fmt)): sha256 for sha256, fmt in files}


def _verify(engine: Engine, referenced: Mapping[str, str], report: CheckReport) -> None:
    bad: dict[str, tuple[FindingKind, str, str]] = {}  # digest -> kind, path, what is wrong
    for path, sha256 in referenced.items():
        try:
            intact = sha256_file(Path(path)) == sha256
        except FileNotFoundError:
            bad[sha256] = ("missing", path, "the file is missing")
            continue
        except OSError as exc:
            bad[sha256] = ("damaged", path, f"the file cannot be read ({exc.strerror})")
            continue
        report.blobs_verified += 1
        if not intact:
            bad[sha256] = ("damaged", path, "the file no longer matches its digest")
    users = _users(engine, bad)
    for sha256, (kind, path, what) in bad.items():
        report.findings.append(Finding(kind, path, f"{what}; used by {users[sha256]}"))


def _users(engine: Engine, digests: Iterable[str]) -> dict[str, str]:
    """The rows that refer to each digest, described for a person (two queries in all)."""
    wanted = list(digests)
    images, inputs = queries.digest_users(engine, wanted)
    return {d: _describe(sorted(set(images[d])), sorted(set(inputs[d]))) for d in wanted}


def _describe(images: list[int], inputs: list[int]) -> str:
    parts = []
    if images:
        parts.append("image " + ", ".join(map(str, images)))
    if inputs:
        parts.append("the request of image " + ", ".join(map(str, inputs)))
    return " and ".join(parts)


def _sweep(
    blobs: BlobStore,
    referenced: Mapping[str, str],
    report: CheckReport,
    *,
    fix: bool,
    unused_since: float,
) -> None:
    """Temp files and unreferenced blobs: reported, and with ``fix`` deleted once old enough."""
    for stored in blobs.files():
        report.files_scanned += 1
        if not stored.temp and str(stored.path) in referenced:
            continue
        try:
            young = stored.path.stat().st_mtime >= unused_since
        except FileNotFoundError:  # finished (renamed) or removed since it was listed
            continue
        if young:
            report.young_files_kept += 1
            continue
        kind: FindingKind = "temp" if stored.temp else "orphan"
        if not fix:
            detail = "a write that never finished" if stored.temp else "no row refers to it"
            report.findings.append(Finding(kind, str(stored.path), detail))
        elif _delete(blobs, stored.path, temp=stored.temp, unused_since=unused_since):
            report.findings.append(Finding(kind, str(stored.path), "deleted", fixed=True))
        else:
            report.young_files_kept += 1  # reused by a writer while it was being checked


def _delete(blobs: BlobStore, path: Path, *, temp: bool, unused_since: float) -> bool:
    if not temp:
        return blobs.discard(path, unused_since=unused_since)
    path.unlink(missing_ok=True)  # nobody reuses a temp file: an old one is abandoned
    return True


def _stale_rows(engine: Engine, home: Path, report: CheckReport, *, fix: bool) -> None:
    if fix:
        stale = reconcile_stale(engine, home)
        forget_dead_owners(home)  # also those of killed processes that left no pending row
    else:
        stale = [row.image_id for row in find_stale(engine, home)]
    for image_id in stale:
        detail = (
            f"marked interrupted; run it again with: onmodel retry {image_id}"
            if fix
            else "pending, but the process that made the request has ended"
        )
        report.findings.append(Finding("stale", f"image {image_id}", detail, fixed=fix))
