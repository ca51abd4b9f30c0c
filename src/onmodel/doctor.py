"""``onmodel db check``: do the records and the image files still agree?

It checks either blob store through :class:`~onmodel.blobs.Blobs`: the folder under the home,
or an S3-compatible bucket (``ONMODEL_BLOBS_URL``), whose objects are streamed and hashed and
whose listing is read a page at a time.

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
read whole. The referenced set is the one thing held in memory (a short name per blob); the
store's listing is streamed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from onmodel.blobs import IN_USE_GRACE, Blobs, blob_name
from onmodel.owners import forget_dead_owners
from onmodel.store import queries
from onmodel.store.stale import find_stale, reconcile_stale

_STREAM = 1000  # rows fetched at a time from the referenced-files query
_CHECK_THREADS = 8  # blobs read and hashed at once by the full check

FindingKind = Literal["missing", "damaged", "orphan", "temp", "stale"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong, and whether the check repaired it."""

    kind: FindingKind
    subject: str  # a file's path or an s3:// URL, or "image N"
    detail: str
    fixed: bool = False

    def line(self) -> str:
        state = "fixed" if self.fixed else "problem"
        return f"{state}: {self.kind} {self.subject}: {self.detail}"


@dataclass
class CheckReport:
    """What ``check_store`` found; ``healthy`` once nothing is left unrepaired."""

    quick: bool = False  # existence only (--quick): blobs_found counts, nothing was hashed
    blobs_verified: int = 0
    blobs_found: int = 0
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
            "quick": self.quick,
            "blobs_verified": self.blobs_verified,
            "blobs_found": self.blobs_found,
            "files_scanned": self.files_scanned,
            "young_files_kept": self.young_files_kept,
            "problems": len(self.problems),
            "findings": [asdict(f) for f in self.findings],
        }


def check_store(
    engine: Engine,
    blobs: Blobs,
    home: Path,
    *,
    fix: bool = False,
    grace: timedelta = IN_USE_GRACE,
    quick: bool = False,
) -> CheckReport:
    """Verify every referenced blob, find unreferenced and temp files and stale pending rows.

    With ``fix``, mark stale rows interrupted and delete unreferenced and temp files older than
    ``grace``. The referenced set is read before the store is listed, so a file referenced by
    a row committed in between is young (written or touched just before) and is kept.

    ``quick`` only checks that each referenced blob is in the store's listing, which the sweep
    reads anyway, instead of hashing every byte: seconds for a bucket of 100,000 images where
    the full check downloads them all.
    """
    report = CheckReport(quick=quick)
    referenced = _referenced_files(engine)
    if not quick:
        _verify(engine, blobs, referenced, report)
    unused_since = time.time() - grace.total_seconds()
    present = _sweep(blobs, referenced, report, fix=fix, unused_since=unused_since, quick=quick)
    if quick:
        _absent(engine, blobs, referenced, present, report)
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
    blobs: Blobs,
    files: Iterable[tuple[str, str]],
    *,
    grace: timedelta = IN_USE_GRACE,
) -> Discarded:
    """Delete those of ``files`` (``(sha256, format)``) that no row refers to any more, as
    ``check_store(fix=True)`` deletes an orphan: the referenced set is read first, so a file
    a row committed since refers to is young and kept; a file gone already is not counted."""
    referenced = _referenced_files(engine)
    unused_since = time.time() - grace.total_seconds()
    deleted = size = kept = 0
    for sha256, fmt in files:
        name = blob_name(sha256, fmt)
        if name in referenced:
            kept += 1
            continue
        length = blobs.size(sha256, fmt)
        if length is None:
            continue
        if blobs.discard(name, unused_since=unused_since):
            deleted += 1
            size += length
        else:
            kept += 1
    return Discarded(files=deleted, bytes=size, kept=kept)


def _referenced_files(engine: Engine) -> dict[str, str]:
    """Each blob some row refers to (as its image or as a request's input), by its name in the
    store (``aa/bb/<sha256>.<ext>``) -> its digest.

    Names are kept as short strings: for 100,000 files about 25 MB, against 56 MB as ``Path``s.
    """
    files = queries.stored_files(engine, _STREAM)
    return {blob_name(sha256, fmt): sha256 for sha256, fmt in files}


def _verify(
    engine: Engine, blobs: Blobs, referenced: Mapping[str, str], report: CheckReport
) -> None:
    """Hash every referenced blob, :data:`_CHECK_THREADS` at a time: a bucket answers each
    GET after a round trip, and hashing releases the GIL, so threads keep the network (or
    the disk) busy. Work is submitted a window at a time, never all 100,000 futures at once.
    """
    bad: dict[str, tuple[FindingKind, str, str]] = {}  # digest -> kind, where, what is wrong
    items = iter(referenced.items())
    with ThreadPoolExecutor(_CHECK_THREADS, thread_name_prefix="db-check") as pool:
        while window := list(islice(items, _CHECK_THREADS * 16)):
            damages = pool.map(lambda item: blobs.check(*item), window)
            for (name, sha256), damage in zip(window, damages, strict=True):
                if damage is None or damage.kind == "damaged":
                    report.blobs_verified += 1
                if damage is not None:
                    bad[sha256] = (damage.kind, blobs.where(name), damage.detail)
    _report_bad(engine, bad, report)


def _absent(
    engine: Engine,
    blobs: Blobs,
    referenced: Mapping[str, str],
    present: set[str],
    report: CheckReport,
) -> None:
    """``quick``: the referenced blobs the listing did not show."""
    bad: dict[str, tuple[FindingKind, str, str]] = {
        sha256: ("missing", blobs.where(name), "the file is missing")
        for name, sha256 in referenced.items()
        if name not in present
    }
    _report_bad(engine, bad, report)


def _report_bad(
    engine: Engine, bad: Mapping[str, tuple[FindingKind, str, str]], report: CheckReport
) -> None:
    users = _users(engine, bad)
    for sha256, (kind, where, what) in bad.items():
        report.findings.append(Finding(kind, where, f"{what}; used by {users[sha256]}"))


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
    blobs: Blobs,
    referenced: Mapping[str, str],
    report: CheckReport,
    *,
    fix: bool,
    unused_since: float,
    quick: bool,
) -> set[str]:
    """Temp files and unreferenced blobs: reported, and with ``fix`` deleted once old enough.

    Returns the referenced names the listing showed when ``quick`` (else an empty set: the
    full check has read each one already)."""
    present: set[str] = set()
    for stored in blobs.files():
        report.files_scanned += 1
        if not stored.temp and stored.name in referenced:
            if quick:
                present.add(stored.name)
                report.blobs_found += 1
            continue
        if stored.modified >= unused_since:
            report.young_files_kept += 1
            continue
        kind: FindingKind = "temp" if stored.temp else "orphan"
        where = blobs.where(stored.name)
        if not fix:
            detail = "a write that never finished" if stored.temp else "no row refers to it"
            report.findings.append(Finding(kind, where, detail))
        elif _delete(blobs, stored.name, temp=stored.temp, unused_since=unused_since):
            report.findings.append(Finding(kind, where, "deleted", fixed=True))
        else:
            report.young_files_kept += 1  # reused by a writer while it was being checked
    return present


def _delete(blobs: Blobs, name: str, *, temp: bool, unused_since: float) -> bool:
    if not temp:
        return blobs.discard(name, unused_since=unused_since)
    blobs.remove_temp(name)  # nobody reuses a temp file: an old one is abandoned
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
