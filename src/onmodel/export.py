"""``onmodel export``: a session as a folder anyone can open — pictures, provenance, lineage.

The folder holds the images under readable names (``000-anchor.png``, ``001-crying.png``...),
copied byte for byte from the blob store (a re-encode would break GPT images' signed C2PA
manifests, so every copy is checked against its digest), ``series.json`` with the full
provenance and lineage, and ``index.html``: a contact sheet that opens from disk with no server
and fetches nothing, because its CSS is inlined and its thumbnails are embedded as data URIs.

An export is all or nothing. It is built in a hidden folder beside the target and renamed into
place only when complete, so a damaged blob, a full disk or Ctrl-C leaves the target exactly as
it was. Replacing an earlier export removes only files this tool provably wrote (the digests in
its ``series.json`` match, and an image's bytes are still in the blob store, so nothing is lost);
everything else in the folder is the user's and is carried over into the new export.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from onmodel import __version__
from onmodel.blobs import BlobIntegrityError, BlobStore, sha256_file
from onmodel.errors import InvalidSlugError, OnmodelError, UsageError
from onmodel.handles import Image, Session
from onmodel.lineage import LineageIndex
from onmodel.presentation import Pages, session_view
from onmodel.slugs import slugify
from onmodel.status import ImageStatus
from onmodel.studio import Studio
from onmodel.thumbnails import THUMBNAIL_MIME, Thumbnailer

SERIES_FORMAT = "onmodel-series"
SERIES_FORMAT_VERSION = 1
INDEX_TEMPLATE = "export/index.html.j2"
INDEX_NAME = "index.html"
MANIFEST_NAME = "series.json"
NAME_WORDS_MAX = 32  # characters of the label kept in a file name
COPY_CHUNK = 1 << 20
# Marks a zip as onmodel's own, so re-exporting may replace it and nothing else is ever replaced.
ZIP_COMMENT = b"onmodel export"

MAX_NAME_BYTES = 255  # a file name on ext4, APFS and NTFS alike


class ExportError(OnmodelError):
    """The export could not be written (a filesystem failure); the target is as it was."""


class ExportFilter(StrEnum):
    ALL = "all"
    STARRED = "starred"


@dataclass(frozen=True)
class ExportedFile:
    image_id: int
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    index: Path
    manifest: Path
    files: list[ExportedFile]
    images: int
    failed: int
    zip_path: Path | None
    kept: list[str]  # the user's own entries, carried over from the folder this export replaced

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "index": str(self.index),
            "manifest": str(self.manifest),
            "images": self.images,
            "failed": self.failed,
            "files": [
                {"image_id": f.image_id, "name": f.name, "sha256": f.sha256, "bytes": f.size}
                for f in self.files
            ],
            "zip": str(self.zip_path) if self.zip_path else None,
            "kept": self.kept,
        }


class _ExportLinks:
    """Originals beside ``index.html``; thumbnails inline, so the page alone still shows all.

    The page is rendered with a placeholder per thumbnail and the thumbnails are streamed into
    the file one at a time: a series of thousands of images never has all of them in memory.
    The placeholder carries a random token, so no note or prompt can forge one.
    """

    def __init__(self, names: dict[int, str], thumbnails: Thumbnailer) -> None:
        self.names = names
        self.thumbnails = thumbnails
        self.prefix = f"onmodel-thumbnail-{secrets.token_hex(16)}-"
        self.placeholder = re.compile(re.escape(self.prefix) + r"(\d+)")
        self.wanted: list[tuple[str, str, int]] = []

    def file(self, image: Image) -> str | None:
        return self.names.get(image.id)

    def thumb(self, image: Image, size: int) -> str | None:
        if image.sha256 is None or image.format is None:
            return None
        self.wanted.append((image.sha256, image.format, size))
        return f"{self.prefix}{len(self.wanted) - 1}"

    def page(self, image: Image) -> str:
        return f"#image-{image.id}"

    def parent(self, parent_id: int) -> str | None:
        return None  # a parent missing from the sheet was filtered out: nothing to link to

    def write(self, html: str, destination: Path) -> str:
        """Write ``html`` with every placeholder replaced by its thumbnail; return the digest."""
        digest = hashlib.sha256()
        with destination.open("wb") as out:

            def emit(data: bytes) -> None:
                digest.update(data)
                out.write(data)

            position = 0
            for match in self.placeholder.finditer(html):
                emit(html[position : match.start()].encode("utf-8"))
                sha256, fmt, size = self.wanted[int(match.group(1))]
                emit(f"data:{THUMBNAIL_MIME};base64,".encode("ascii"))
                emit(base64.b64encode(self.thumbnails.read(sha256, fmt, size)))
                position = match.end()
            emit(html[position:].encode("utf-8"))
        return digest.hexdigest()


def export_session(
    studio: Studio,
    session: str | int | Session | None,
    to: Path,
    *,
    only: ExportFilter | str = ExportFilter.ALL,
    make_zip: bool = False,
) -> ExportResult:
    """Write ``session`` to the folder ``to`` (new, empty, or an earlier export to replace).

    Every refusal (a foreign folder, a changed file the export would replace, a zip onmodel did
    not write) comes before any work, and every failure after it leaves ``to`` and its zip
    exactly as they were.
    """
    chosen = studio.session(session)
    only = _filter(only)
    target = to.expanduser().resolve()
    if len(os.fsencode(target.name)) > MAX_NAME_BYTES - len(".zip"):
        raise UsageError(f"the folder name {target.name[:40]}… is too long for a file system")

    full = chosen.lineage()
    every = studio.lookups.images_by_id(full.order())
    anchor_id = chosen.character.anchor_image_id

    def keep(image: Image) -> bool:
        return only is ExportFilter.ALL or image.starred or image.id == anchor_id

    kept = [every[key] for key in full.prune(lambda key: keep(every[key])).order()]
    ordered = sorted(kept, key=lambda i: (0 if i.id == anchor_id else 1, i.id))
    names = _file_names(ordered, anchor_id)

    earlier = _survey(target, {*names.values(), INDEX_NAME, MANIFEST_NAME}, studio.blobs)
    archive = _zip_destination(target) if make_zip else None

    with _filesystem_errors(target), _staging(target) as staging:
        files = [_copy(image, staging / names[image.id]) for image in ordered if image.id in names]
        links = _ExportLinks(names, Thumbnailer(studio.blobs, studio.paths.thumbnails))
        view = session_view(chosen, links, keep=keep, names=names)
        exported_at = datetime.now(UTC)
        html = Pages(studio.paths.templates).render(
            INDEX_TEMPLATE,
            session=view,
            summary=view.summary,
            only=only.value,
            exported_at=exported_at.strftime("%Y-%m-%d %H:%M UTC"),
            version=__version__,
        )
        index_sha256 = links.write(html, staging / INDEX_NAME)
        series = _series(chosen, full, ordered, names, files, index_sha256, only, exported_at)
        text = json.dumps(series, indent=2, ensure_ascii=False, default=str) + "\n"
        (staging / MANIFEST_NAME).write_text(text, encoding="utf-8")
        with _zip(staging, target.name, [f.name for f in files], archive) as zip_path:
            moved, leftover = _swap(staging, target, earlier)
    if leftover is not None:
        raise ExportError(
            f"exported to {target}, but some of your files there changed while it ran; "
            f"they are in {leftover}"
        )
    return ExportResult(
        directory=target,
        index=target / INDEX_NAME,
        manifest=target / MANIFEST_NAME,
        files=files,
        images=len(ordered),
        failed=sum(i.status in (ImageStatus.FAILED, ImageStatus.INTERRUPTED) for i in ordered),
        zip_path=zip_path,
        kept=moved,
    )


# --------------------------------------------------------------------------- the folder


def _filter(value: ExportFilter | str) -> ExportFilter:
    try:
        return ExportFilter(value)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFilter)
        raise UsageError(f"--only takes one of: {choices} (not {value!r})") from None


@dataclass(frozen=True)
class _Earlier:
    """What the target held before: whether it existed, and what its ``series.json`` recorded."""

    exists: bool
    recorded: dict[str, str]
    blobs: BlobStore

    def wrote(self, path: Path) -> bool:
        """Whether ``path`` is a file the earlier export wrote and that may go without loss.

        Its digest must match the one recorded for its name (a plain file, never a symlink),
        and an image must still be in the blob store: then even a planted ``series.json`` that
        names a user's file with its true digest cannot make the export delete anything
        irreplaceable.
        """
        if path.name == MANIFEST_NAME:
            return True  # the manifest that made the folder an earlier export; written anew
        expected = self.recorded.get(path.name)
        if expected is None or not stat.S_ISREG(path.lstat().st_mode):
            return False
        if path.name != INDEX_NAME and not self.blobs.path_for(expected, path.suffix[1:]).is_file():
            return False
        return sha256_file(path) == expected


def _survey(target: Path, new_names: set[str], blobs: BlobStore) -> _Earlier:
    """Refuse a folder of other things, or one whose files the new export would overwrite.

    A non-empty folder is accepted only when it holds an earlier export's ``series.json``, and
    then only if every entry the new export will replace is one that export wrote, unchanged.
    Entries are taken from the directory listing, never from paths in the manifest, so a
    planted ``series.json`` cannot point anywhere outside the folder.
    """
    if not target.exists():
        return _Earlier(exists=False, recorded={}, blobs=blobs)
    if not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    present = sorted(entry.name for entry in target.iterdir())
    if not present:
        return _Earlier(exists=True, recorded={}, blobs=blobs)
    recorded = _recorded_digests(target / MANIFEST_NAME)
    if recorded is None:
        raise UsageError(
            f"{target} is not empty and holds no earlier onmodel export; "
            "choose a new or empty folder"
        )
    earlier = _Earlier(exists=True, recorded=recorded, blobs=blobs)
    for name in present:
        if name in new_names and not earlier.wrote(target / name):
            raise UsageError(
                f"{target / name} was not written by an earlier export from this data folder "
                "(or was changed since) and the new export would replace it; "
                "move it away or choose another folder"
            )
    return earlier


def _recorded_digests(manifest: Path) -> dict[str, str] | None:
    """The names and digests an export's ``series.json`` says it wrote, or None if it is not one."""
    try:
        if not stat.S_ISREG(manifest.lstat().st_mode):
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != SERIES_FORMAT:
        return None
    files = data.get("files")
    recorded = {
        str(name): digest
        for name, digest in (files.items() if isinstance(files, dict) else ())
        if isinstance(digest, str)
    }
    if isinstance(data.get("index_sha256"), str):
        recorded[INDEX_NAME] = data["index_sha256"]
    return recorded


@contextmanager
def _filesystem_errors(target: Path) -> Iterator[None]:
    """A full disk or a read-only folder is a clear error, not a traceback."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename else ""
        raise ExportError(f"could not export to {target}: {reason}{where}") from exc


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A hidden folder beside the target (same filesystem, so moving it in is a rename).

    It is removed on any failure; once renamed into place there is nothing left to remove.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        # named apart from the target, whose own name may already be as long as a name can be
        tempfile.mkdtemp(prefix=".export-", suffix=".onmodel-new", dir=target.parent)
    )
    os.chmod(staging, 0o755)  # an export is for sharing; mkdtemp makes folders private
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _swap(staging: Path, target: Path, earlier: _Earlier) -> tuple[list[str], Path | None]:
    """Put the finished export in place of ``target``.

    The earlier folder is renamed aside and the new one renamed in (the earlier one comes back
    if that fails). Then each entry of the earlier folder is removed if the export wrote it and
    it is unchanged (checked again now: the user may have edited it meanwhile), or else moved
    into the new folder. Returns the names moved, and the set-aside folder if something could
    not be moved (a name taken in the new export by then): it is left for the user, not removed.
    """
    if not earlier.exists:
        os.rename(staging, target)
        return [], None
    aside = target.with_name(f".export-{secrets.token_hex(4)}.onmodel-old")
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    moved = []
    for entry in sorted(aside.iterdir()):
        if earlier.wrote(entry):
            entry.unlink()
        elif not os.path.lexists(target / entry.name):
            os.rename(entry, target / entry.name)
            moved.append(entry.name)
    if any(aside.iterdir()):
        return moved, aside
    aside.rmdir()
    return moved, None


def _zip_destination(target: Path) -> Path:
    """``<folder>.zip``, refused up front if it is anything but an earlier onmodel zip.

    Refused rather than overwritten on request: a zip onmodel wrote is recognised and replaced
    without asking, so the only files a flag could clobber are the user's own.
    """
    archive = target.with_name(f"{target.name}.zip")
    if archive.is_dir() and not archive.is_symlink():
        raise UsageError(f"{archive} is a folder, so the zip cannot be written there")
    if os.path.lexists(archive) and not _is_our_zip(archive, target.name):
        raise UsageError(
            f"{archive} exists and was not written by onmodel; "
            "move it away or choose another folder"
        )
    return archive


def _is_our_zip(archive: Path, folder: str) -> bool:
    """An earlier export's zip: our comment, and nothing in it but what its manifest lists."""
    try:
        if not stat.S_ISREG(archive.lstat().st_mode):
            return False
        with zipfile.ZipFile(archive) as bundle:
            if bundle.comment != ZIP_COMMENT:
                return False
            data = json.loads(bundle.read(f"{folder}/{MANIFEST_NAME}"))
            members = set(bundle.namelist())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    files = data.get("files") if isinstance(data, dict) else None
    listed = [*files, INDEX_NAME, MANIFEST_NAME] if isinstance(files, dict) else []
    return members <= {f"{folder}/{name}" for name in listed}


def _file_names(ordered: list[Image], anchor_id: int | None) -> dict[int, str]:
    """``000-anchor.png`` then ``001-crying.png``...: sortable, and numbered only for files."""
    names: dict[int, str] = {}
    with_files = [i for i in ordered if i.succeeded and i.path is not None]
    width = max(3, len(str(len(with_files))))
    number = 0 if with_files and with_files[0].id == anchor_id else 1
    for image in with_files:
        assert image.path is not None
        names[image.id] = f"{number:0{width}d}-{_name_part(image.label)}{image.path.suffix}"
        number += 1
    return names


def _name_part(label: str) -> str:
    """The label's first part ("crying" of "crying, tears..."), short enough to scan."""
    try:
        slug = slugify(label.split(",")[0])
    except InvalidSlugError:
        return "image"
    if len(slug) <= NAME_WORDS_MAX:
        return slug
    cut = slug[:NAME_WORDS_MAX]
    return cut.rsplit("-", 1)[0] if "-" in cut else cut


def _copy(image: Image, destination: Path) -> ExportedFile:
    """Copy the stored bytes exactly, hashing them on the way through.

    Streamed in chunks, so a large image is never held whole, and hashed as written, so the
    copy is proven identical to the recorded digest without reading anything twice.
    """
    source = image.path
    assert source is not None and image.sha256 is not None
    what = f"image {image.id} ({destination.name}) cannot be exported"
    try:
        reader = source.open("rb")
    except FileNotFoundError:
        raise BlobIntegrityError(f"{what}: its file is missing from the store: {source}") from None
    digest = hashlib.sha256()
    size = 0
    with reader, destination.open("xb") as writer:
        for chunk in iter(lambda: reader.read(COPY_CHUNK), b""):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != image.sha256:
        raise BlobIntegrityError(f"{what}: its stored file is damaged (digest mismatch): {source}")
    return ExportedFile(image.id, destination.name, image.sha256, size)


def _series(
    session: Session,
    full: LineageIndex,
    ordered: list[Image],
    names: dict[int, str],
    files: list[ExportedFile],
    index_sha256: str,
    only: ExportFilter,
    exported_at: datetime,
) -> dict[str, Any]:
    """The machine-readable record: everything ``onmodel show --json`` knows, per image.

    Parent links are the true ones; an image whose parent was filtered out keeps its real
    ``parent_id`` and its whole ``lineage`` (ids back to the anchor).
    """
    children = {key: full.children(key) for key in full.order()}
    exported = {i.id for i in ordered}
    images = []
    for image in ordered:
        record = image.to_dict()
        record["file"] = {**record["file"], "path": names.get(image.id)}
        record["exported_as"] = names.get(image.id)
        record["lineage"] = [*full.ancestors(image.id), image.id]
        record["children"] = children.get(image.id, [])
        images.append(record)

    return {
        "format": SERIES_FORMAT,
        "format_version": SERIES_FORMAT_VERSION,
        "onmodel_version": __version__,
        "exported_at": exported_at.isoformat(),
        "only": only.value,
        "character": session.character.to_dict(),
        "session": session.to_dict(),
        # The whole lineage as a flat map (parent id -> child ids), exported or not: flat,
        # because a long series is a deep chain that nested JSON could not hold.
        "tree": {
            "root_image_id": full.roots[0],
            "children": {str(k): v for k, v in sorted(children.items()) if v},
            "exported": sorted(exported),
        },
        "images": images,
        # What this export wrote, by digest: a later export replaces only files that match.
        "files": {f.name: f.sha256 for f in files},
        "index_sha256": index_sha256,
    }


@contextmanager
def _zip(
    staging: Path, folder: str, file_names: list[str], archive: Path | None
) -> Iterator[Path | None]:
    """Build ``<folder>.zip`` under a temporary name; rename it in once the body succeeds.

    It holds the folder as one top-level directory, and only what the export wrote, never the
    user's files. Images are stored, not deflated: PNG, JPEG and WebP are compressed already,
    and storing keeps every byte identical inside the archive too.
    """
    if archive is None:
        yield None
        return
    fd, tmp_name = tempfile.mkstemp(prefix=".export-", suffix=".onmodel-new", dir=archive.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as bundle:
            bundle.comment = ZIP_COMMENT
            for name in file_names:
                bundle.write(staging / name, f"{folder}/{name}", zipfile.ZIP_STORED)
            for name in (INDEX_NAME, MANIFEST_NAME):
                bundle.write(staging / name, f"{folder}/{name}", zipfile.ZIP_DEFLATED)
        os.chmod(tmp_name, 0o644)  # an export is for sharing; mkstemp makes files private
        yield archive
        os.replace(tmp_name, archive)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
