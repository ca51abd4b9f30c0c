"""``onmodel export``: a session as a folder anyone can open — pictures, provenance, lineage.

The folder holds the images under readable names (``000-anchor.png``, ``001-crying.png``...),
copied byte for byte from the blob store (a re-encode would break GPT images' signed C2PA
manifests, so every copy is checked against its digest), ``series.json`` with the full
provenance and lineage, and ``index.html``: a contact sheet that opens from disk with no server
and fetches nothing, because its CSS is inlined and its thumbnails are embedded as data URIs.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from onmodel import __version__
from onmodel.blobs import BlobIntegrityError, sha256_file
from onmodel.errors import InvalidSlugError, UsageError
from onmodel.handles import Image, Session, TreeNode
from onmodel.slugs import slugify
from onmodel.startup import start_up_finished
from onmodel.studio import Studio
from onmodel.thumbnails import THUMBNAIL_MIME, Thumbnailer
from onmodel.web.views import Pages, prune, session_view, walk

SERIES_FORMAT = "onmodel-series"
SERIES_FORMAT_VERSION = 1
INDEX_TEMPLATE = "export/index.html.j2"
NAME_WORDS_MAX = 32  # characters of the label kept in a file name


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
        }


class _ExportLinks:
    """Originals beside ``index.html``; thumbnails inline, so the page alone still shows all."""

    def __init__(self, names: dict[int, str], thumbnails: Thumbnailer) -> None:
        self.names = names
        self.thumbnails = thumbnails

    def file(self, image: Image) -> str | None:
        return self.names.get(image.id)

    def thumb(self, image: Image, size: int) -> str | None:
        if image.row.sha256 is None or image.row.format is None:
            return None
        data = self.thumbnails.read(image.row.sha256, image.row.format, size)
        return f"data:{THUMBNAIL_MIME};base64,{base64.b64encode(data).decode('ascii')}"

    def page(self, image: Image) -> str:
        return f"#image-{image.id}"

    def parent(self, parent_id: int) -> str | None:
        return None  # a parent missing from the sheet was filtered out: nothing to link to


def export_session(
    studio: Studio,
    session: str | int | Session | None,
    to: Path,
    *,
    only: ExportFilter | str = ExportFilter.ALL,
    make_zip: bool = False,
) -> ExportResult:
    """Write ``session`` to the folder ``to`` (new, empty, or an earlier export to replace)."""
    start_up_finished()  # a large session's export is long work
    chosen = studio.session(session)
    only = _filter(only)
    target = to.expanduser().resolve()
    _prepare(target)

    full_tree = chosen.tree()
    anchor_id = chosen.character.row.anchor_image_id

    def keep(image: Image) -> bool:
        return only is ExportFilter.ALL or image.row.starred or image.id == anchor_id

    kept = walk(prune(full_tree, keep))
    ordered = sorted(kept, key=lambda i: (0 if i.id == anchor_id else 1, i.id))
    names = _file_names(ordered, anchor_id)

    files = [_copy(image, target / names[image.id]) for image in ordered if image.id in names]
    thumbnails = Thumbnailer(studio.blobs, studio.paths.thumbnails)
    view = session_view(chosen, _ExportLinks(names, thumbnails), keep=keep, names=names)
    exported_at = datetime.now(UTC)

    manifest = target / "series.json"
    series = _series(chosen, full_tree, ordered, names, files, only, exported_at)
    _write_text(manifest, json.dumps(series, indent=2, ensure_ascii=False, default=str) + "\n")

    index = target / "index.html"
    html = Pages(studio.paths.templates).render(
        INDEX_TEMPLATE,
        session=view,
        summary=view.summary,
        only=only.value,
        exported_at=exported_at.strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )
    _write_text(index, html)

    zip_path = _zip(target, [f.name for f in files]) if make_zip else None
    return ExportResult(
        directory=target,
        index=index,
        manifest=manifest,
        files=files,
        images=len(ordered),
        failed=sum(i.status in ("failed", "interrupted") for i in ordered),
        zip_path=zip_path,
    )


# --------------------------------------------------------------------------- the folder


def _filter(value: ExportFilter | str) -> ExportFilter:
    try:
        return ExportFilter(value)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFilter)
        raise UsageError(f"--only takes one of: {choices} (not {value!r})") from None


def _prepare(target: Path) -> None:
    """Refuse to mix an export into a folder of other things; replace an earlier export.

    Only the files an earlier export listed in its ``series.json`` are removed, so anything the
    user added to the folder by hand survives.
    """
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    if not target.exists():
        target.mkdir(parents=True)
        return
    if not any(target.iterdir()):
        return
    previous = _previous_export(target / "series.json")
    if previous is None:
        raise UsageError(
            f"{target} is not empty and holds no earlier onmodel export; "
            "choose a new or empty folder"
        )
    for name in [*previous, "index.html", "series.json"]:
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            (target / name).unlink(missing_ok=True)


def _previous_export(manifest: Path) -> list[str] | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != SERIES_FORMAT:
        return None
    files = data.get("files", {})
    return [str(name) for name in files] if isinstance(files, dict) else []


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
    """Copy the stored bytes exactly, and prove it by hashing the copy."""
    assert image.sha256 is not None
    data = image.read_bytes()  # checked against the recorded digest on the way in
    _write_bytes(destination, data)
    if sha256_file(destination) != image.sha256:
        raise BlobIntegrityError(f"the copy of image {image.id} at {destination} does not match")
    return ExportedFile(image.id, destination.name, image.sha256, len(data))


def _series(
    session: Session,
    full_tree: TreeNode,
    ordered: list[Image],
    names: dict[int, str],
    files: list[ExportedFile],
    only: ExportFilter,
    exported_at: datetime,
) -> dict[str, Any]:
    """The machine-readable record: everything ``onmodel show --json`` knows, per image.

    Parent links are the true ones; an image whose parent was filtered out keeps its real
    ``parent_id`` and its whole ``lineage`` (ids back to the anchor).
    """
    parents: dict[int, int | None] = {}
    children: dict[int, list[int]] = {}
    for node in _nodes(full_tree):
        children[node.image.id] = [c.image.id for c in node.children]
        for child in node.children:
            parents[child.image.id] = node.image.id
    exported = {i.id for i in ordered}

    def ancestry(image_id: int) -> list[int]:
        chain = [image_id]
        while (parent := parents.get(chain[-1])) is not None:
            chain.append(parent)
        return list(reversed(chain))

    images = []
    for image in ordered:
        record = image.to_dict()
        record["file"] = {**record["file"], "path": names.get(image.id)}
        record["exported_as"] = names.get(image.id)
        record["lineage"] = ancestry(image.id)
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
            "root_image_id": full_tree.image.id,
            "children": {str(k): v for k, v in sorted(children.items()) if v},
            "exported": sorted(exported),
        },
        "images": images,
        "files": {f.name: f.sha256 for f in files},
    }


def _nodes(root: TreeNode) -> list[TreeNode]:
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.children)
    return found


def _zip(target: Path, file_names: list[str]) -> Path:
    """``<folder>.zip`` beside the folder, holding it as one top-level directory.

    Images are stored, not deflated: PNG, JPEG and WebP are compressed already, and storing
    keeps every byte identical inside the archive too.
    """
    archive = target.with_name(f"{target.name}.zip")
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as bundle:
            for name in file_names:
                bundle.write(target / name, f"{target.name}/{name}", zipfile.ZIP_STORED)
            for name in ("index.html", "series.json"):
                bundle.write(target / name, f"{target.name}/{name}", zipfile.ZIP_DEFLATED)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, archive)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return archive


def _write_bytes(path: Path, data: bytes) -> None:
    """Whole files only: written beside the target, then renamed over it."""
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, 0o644)  # an export is for sharing; mkstemp makes files private
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))
