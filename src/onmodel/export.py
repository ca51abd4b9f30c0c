"""``onmodel export``: a session as a folder anyone can open — pictures, provenance, lineage.

The folder holds the images under readable names (``000-anchor.png``, ``001-crying.png``...),
copied byte for byte from the blob store (a re-encode would break GPT images' signed C2PA
manifests, so every copy is checked against its digest), ``series.json`` with the full
provenance and lineage, the anchors of the rest of its cast (``cast-rin.png``...: the images a
shot of several sent, listed with each member's model sheet in ``series.json``'s ``cast``), and
``index.html``: a contact sheet that opens from disk with no server
and fetches nothing, because its CSS is inlined and its thumbnails are embedded as data URIs. A
long series continues on ``page-2.html``, ``page-3.html``... (:data:`CARDS_PER_PAGE` shots each),
and its lineage panel shows the head's neighbourhood, with what that leaves out folded.

An export is all or nothing. It is built in a hidden folder beside the target and renamed into
place only when complete, so a damaged blob, a full disk or Ctrl-C leaves the target exactly as
it was. Replacing an earlier export removes only files this tool provably wrote (the digests in
its ``series.json`` match, and an image's bytes are still in the blob store, so nothing is lost);
everything else in the folder is the user's and is carried over into the new export.

It streams, so a series of 100,000 images exports in the memory a few hundred take: the lineage
is read as ids and links (:class:`~onmodel.lineage.LineageIndex`), image records are loaded a
chunk at a time (:func:`~onmodel.lineage.with_images`), each page is written as soon as its
cards are made, thumbnails go into the page file one at a time, and ``series.json`` is written
one image record at a time.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from base64 import b64encode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from onmodel import __version__
from onmodel.blobs import BlobIntegrityError, Blobs, extension, sha256_file
from onmodel.checkview import check_dict
from onmodel.errors import InvalidSlugError, OnmodelError, UsageError
from onmodel.handles import Character, Image, Session
from onmodel.lineage import Fold, LineageIndex, cast_text, image_casts, member_name, with_images
from onmodel.presentation import (
    WHOLE_LINEAGE,
    CharacterView,
    ImageView,
    LineageNode,
    Pages,
    SessionView,
    Summary,
    Totals,
    card_views,
    character_view,
    image_view,
    lineage_lines,
)
from onmodel.slugs import slugify
from onmodel.studio import Studio
from onmodel.thumbnails import THUMBNAIL_MIME, Thumbnailer

SERIES_FORMAT = "onmodel-series"
# 2: each image is listed once with its parent_id, without its ancestry ("lineage") or its
#    children (both follow from the parent ids, and "tree" holds the whole lineage); the pages
#    written are recorded, with their digests, under "pages" (which replaces "index_sha256").
SERIES_FORMAT_VERSION = 2
INDEX_TEMPLATE = "export/index.html.j2"
INDEX_NAME = "index.html"
MANIFEST_NAME = "series.json"
CARDS_PER_PAGE = 200  # shots on a page: a few megabytes of embedded thumbnails
NAV_AROUND = 3  # pages linked on either side of the current one
_PAGE_NAME = re.compile(r"page-[1-9][0-9]*\.html")
NAME_WORDS_MAX = 32  # characters of the label kept in a file name
COPY_CHUNK = 1 << 20
# Marks a zip as onmodel's own, so re-exporting may replace it and nothing else is ever replaced.
ZIP_COMMENT = b"onmodel export"

MAX_NAME_BYTES = 255  # a file name on ext4, APFS and NTFS alike


class ExportError(OnmodelError):
    """The export could not be written (a filesystem failure, or an image gone from the
    database while it ran); the target is as it was."""


class ExportFilter(StrEnum):
    ALL = "all"
    STARRED = "starred"


@dataclass(frozen=True, slots=True)  # one per exported file: a long series has 100,000
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
    pages: list[str]  # index.html, then page-2.html... for a long series

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "index": str(self.index),
            "manifest": str(self.manifest),
            "pages": self.pages,
            "images": self.images,
            "failed": self.failed,
            "files": [
                {"image_id": f.image_id, "name": f.name, "sha256": f.sha256, "bytes": f.size}
                for f in self.files
            ],
            "zip": str(self.zip_path) if self.zip_path else None,
            "kept": self.kept,
        }


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

    plan = _plan(studio, chosen, only)
    earlier = _survey(target, {*plan.names.values(), *plan.pages, MANIFEST_NAME}, studio.blobs)
    archive = _zip_destination(target) if make_zip else None

    with _filesystem_errors(target), _staging(target) as staging:
        exported_at = datetime.now(UTC)
        links = _ExportLinks(plan, Thumbnailer(studio.blobs, studio.paths.thumbnails))
        sheet = _Sheet(
            Pages(studio.paths.templates),
            links,
            staging,
            plan,
            base=_session_base(chosen),
            only=only.value,
            exported_at=exported_at.strftime("%Y-%m-%d %H:%M UTC"),
            version=__version__,
        )
        files = _copy_and_show(studio, plan, links, sheet, staging)
        files += [_copy(anchor, staging / plan.names[anchor.id]) for anchor in plan.cast_files()]
        summary = sheet.totals.summary()
        panel = _lineage_panel(studio, plan, links, chosen.head_image_id)
        pages = sheet.finish(summary, panel, _cast_views(plan, links))
        with (staging / MANIFEST_NAME).open("w", encoding="utf-8") as out:
            _write_json(out, _series(studio, chosen, plan, files, pages, only, exported_at))
            out.write("\n")
        written = [*pages, MANIFEST_NAME]
        with _zip(staging, target.name, [f.name for f in files], written, archive) as zip_path:
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
        images=summary.images,
        failed=summary.failed,
        zip_path=zip_path,
        kept=moved,
        pages=list(pages),
    )


# --------------------------------------------------------------------------- what to write


@dataclass(frozen=True)
class _Plan:
    """What the export writes, settled before anything is written (so every refusal comes
    first): which images, in what order, under which file names, on which page.

    Ids and names only: a 100,000-image series is a few megabytes of them. The records are
    read a chunk at a time, here and again while writing.
    """

    lineage: LineageIndex  # the session's whole lineage (series.json's "tree")
    shown: LineageIndex  # the exported images' lineage: ``lineage`` less what --only left out
    hero: int | None  # the anchor, shown above the cards of the first page
    cards: list[int]  # every other exported image, in the order made (ids ascending)
    names: dict[int, str]  # the file each image with a picture is copied to
    cast: tuple[_Member, ...]  # the session's cast, then whoever else the pictures show

    def exported(self) -> Iterator[int]:
        """Every exported image: the anchor, then the rest in the order they were made."""
        return chain([] if self.hero is None else [self.hero], self.cards)

    @property
    def pages(self) -> list[str]:
        return [_page_name(number) for number in range(1, self._count + 1)]

    def on_pages(self) -> Iterator[list[int]]:
        """The images of each page, in order: the anchor heads the first."""
        for start in range(0, self._count * CARDS_PER_PAGE, CARDS_PER_PAGE):
            cards = self.cards[start : start + CARDS_PER_PAGE]
            yield [self.hero, *cards] if start == 0 and self.hero is not None else cards

    @property
    def _count(self) -> int:
        return max(1, math.ceil(len(self.cards) / CARDS_PER_PAGE))

    def cast_files(self) -> list[Image]:
        """The cast's anchors copied beside the series' own images (none of which they are)."""
        exported = {self.hero, *self.cards}
        return [
            member.anchor
            for member in self.cast
            if member.anchor is not None
            and member.anchor.id in self.names
            and member.anchor.id not in exported
        ]

    def href(self, image_id: int) -> str | None:
        """Where the image's card is (None: not exported). ``cards`` is sorted, so its page
        is found by bisection, without a map of every image. A cast member's anchor is
        shown in the cast on the first page."""
        if image_id == self.hero or any(
            member.anchor is not None and member.anchor.id == image_id for member in self.cast
        ):
            return f"{INDEX_NAME}#image-{image_id}"
        position = bisect.bisect_left(self.cards, image_id)
        if position == len(self.cards) or self.cards[position] != image_id:
            return None
        return f"{_page_name(position // CARDS_PER_PAGE + 1)}#image-{image_id}"


def _page_name(number: int) -> str:
    return INDEX_NAME if number == 1 else f"page-{number}.html"


def _is_page(name: str) -> bool:
    return name == INDEX_NAME or _PAGE_NAME.fullmatch(name) is not None


def _plan(studio: Studio, session: Session, only: ExportFilter) -> _Plan:
    """Read the lineage, then the records a chunk at a time for what the names and the
    ``--only`` filter need, keeping ids and names only; then the cast (a handful of
    characters) and the files its anchors are copied to."""
    lineage = session.lineage()
    anchor_id = session.character.anchor_image_id
    chosen: set[int] = set()
    labels: dict[int, str] = {}  # "crying.png": what a file is named after, but its number
    for image in _each(studio, lineage.order()):
        if only is ExportFilter.ALL or image.starred or image.id == anchor_id:
            chosen.add(image.id)
            if image.succeeded and image.sha256 is not None and image.format is not None:
                labels[image.id] = f"{_name_part(image.label)}.{extension(image.format)}"
    hero = anchor_id if anchor_id in chosen else None
    cards = sorted(chosen - {hero} if hero is not None else chosen)
    names = _file_names([hero, *cards] if hero is not None else cards, labels, anchor_id)
    cast = _cast(studio, session, sorted(chosen))
    for member in cast:
        anchor = member.anchor
        if anchor is not None and anchor.id not in names and anchor.sha256 and anchor.format:
            names[anchor.id] = f"cast-{member.character.slug}.{extension(anchor.format)}"
    whole = len(chosen) == len(lineage)  # nothing left out: no second index of every image
    shown = lineage if whole else lineage.prune(chosen.__contains__)
    return _Plan(lineage, shown, hero, cards, names, cast)


@dataclass(frozen=True)
class _Member:
    """Someone (or somewhere) an export shows: in the session's cast, or in a picture."""

    character: Character
    role: str  # "lead", "member" (of the session's cast) or "pictured" (in a picture only)
    anchor: Image | None  # its anchor, when it has a finished picture to copy


def _cast(studio: Studio, session: Session, exported: list[int]) -> tuple[_Member, ...]:
    """The session's lead and members in order, then everyone else in an exported picture
    (a shot branched from another session's, say), by id: read as distinct ids for the whole
    export, then the characters and their anchors in a query each."""
    members = session.members
    roles = {session.character_id: "lead", **{m.id: "member" for m in members}}
    others = studio.lookups.characters_pictured(exported) - roles.keys()
    found = {
        session.character_id: session.character,
        **{m.id: m for m in members},
        **(studio.lookups.characters_by_id(sorted(others)) if others else {}),
    }
    order = [*roles, *sorted(others)]
    anchor_ids = [found[key].anchor_image_id for key in order if key in found]
    anchors = studio.lookups.images_by_id([key for key in anchor_ids if key is not None])

    def finished(character: Character) -> Image | None:
        key = character.anchor_image_id
        anchor = anchors.get(key) if key is not None else None
        return anchor if anchor is not None and anchor.succeeded else None

    return tuple(
        _Member(found[key], roles.get(key, "pictured"), finished(found[key]))
        for key in order
        if key in found
    )


def _file_names(
    ordered: list[int], labels: dict[int, str], anchor_id: int | None
) -> dict[int, str]:
    """``000-anchor.png`` then ``001-crying.png``...: sortable, and numbered only for files."""
    with_files = [image_id for image_id in ordered if image_id in labels]
    width = max(3, len(str(len(with_files))))
    first = 0 if with_files and with_files[0] == anchor_id else 1
    return {
        image_id: f"{number:0{width}d}-{labels[image_id]}"
        for number, image_id in enumerate(with_files, start=first)
    }


def _each(studio: Studio, ids: Iterable[int]) -> Iterator[Image]:
    """The images ``ids`` names, loaded a chunk at a time; one gone from the database since
    the export began is an error, never a silent gap."""
    for image_id, image in with_images(ids, _itself, studio.lookups.images_by_id):
        if image is None:
            raise _gone(image_id)
        yield image


def _itself(image_id: int) -> int:
    return image_id


def _gone(image_id: int) -> ExportError:
    return ExportError(f"image {image_id} is gone from the database; export again")


def _pages(studio: Studio, plan: _Plan) -> Iterator[list[Image]]:
    """The images of each page, in order, loaded a page at a time; one gone from the
    database since the export began is an error, never a silent gap."""
    for ids in plan.on_pages():
        found = studio.lookups.images_by_id(ids)
        if missing := [image_id for image_id in ids if image_id not in found]:
            raise _gone(missing[0])
        yield [found[image_id] for image_id in ids]


def _copy_and_show(
    studio: Studio, plan: _Plan, links: _ExportLinks, sheet: _Sheet, staging: Path
) -> list[ExportedFile]:
    """Copy each image's file and add its card to the sheet, a page of records at a time (its
    references, tags and newest checks read in a query each with them)."""
    files = []
    for number, images in enumerate(_pages(studio, plan), start=1):
        for image in images:
            if (name := plan.names.get(image.id)) is not None:
                files.append(_copy(image, staging / name))
        cards = card_views(studio, images, links)
        sheet.add(number, [replace(card, export_name=plan.names.get(card.id)) for card in cards])
    return files


# --------------------------------------------------------------------------- the pages


class _ExportLinks:
    """Originals beside the pages; thumbnails inline, so a page alone still shows everything;
    an image's card on whichever page holds it.

    A page is rendered with a placeholder per thumbnail, and the thumbnails are streamed into
    the file one at a time as it is written (:meth:`write`): a series of thousands of images
    never has all of them in memory. The placeholder names the thumbnail itself, so nothing is
    kept per image; it carries a random token, so no note or prompt can forge one.
    """

    def __init__(self, plan: _Plan, thumbnails: Thumbnailer) -> None:
        self.plan = plan
        self.thumbnails = thumbnails
        self.prefix = f"onmodel-thumbnail-{secrets.token_hex(16)}-"
        self.placeholder = re.compile(re.escape(self.prefix) + r"(\d+)-([a-z0-9]+)-([0-9a-f]{64})")

    def file(self, image: Image) -> str | None:
        return self.plan.names.get(image.id)

    def thumb(self, image: Image, size: int) -> str | None:
        if image.sha256 is None or image.format is None:
            return None
        return f"{self.prefix}{size}-{image.format}-{image.sha256}"

    def page(self, image: Image) -> str:
        return self.plan.href(image.id) or f"#image-{image.id}"

    def parent(self, parent_id: int) -> str | None:
        return self.plan.href(parent_id)  # None: filtered out, nothing to link to

    def fold(self, fold: Fold) -> str | None:
        """The card of the first image folded: the export has cards, not lineage views."""
        return self.plan.href(fold.first_id)

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
                size, fmt, sha256 = match.groups()
                emit(f"data:{THUMBNAIL_MIME};base64,".encode("ascii"))
                emit(b64encode(self.thumbnails.read(sha256, fmt, int(size))))
                position = match.end()
            emit(html[position:].encode("utf-8"))
        return digest.hexdigest()


@dataclass(frozen=True)
class PageLink:
    number: int
    href: str


@dataclass(frozen=True)
class PageInfo:
    """Where a page sits in the sheet, for its heading and its navigation."""

    number: int
    count: int
    first: int  # the position of its first card among all cards, from 1
    last: int
    cards: int  # cards on all pages
    links: list[PageLink | None]  # the first, the last and those around this one; None: a gap

    @property
    def previous(self) -> str | None:
        return _page_name(self.number - 1) if self.number > 1 else None

    @property
    def next(self) -> str | None:
        return _page_name(self.number + 1) if self.number < self.count else None


def _page_info(number: int, count: int, cards: int) -> PageInfo:
    near = range(max(1, number - NAV_AROUND), min(count, number + NAV_AROUND) + 1)
    links: list[PageLink | None] = []
    for page in sorted({1, count, *near}):
        if links and links[-1] is not None and page > links[-1].number + 1:
            links.append(None)
        links.append(PageLink(page, _page_name(page)))
    first = (number - 1) * CARDS_PER_PAGE + 1
    return PageInfo(
        number, count, min(first, cards), min(first + CARDS_PER_PAGE - 1, cards), cards, links
    )


def _session_base(session: Session) -> SessionView:
    """The session as every page shows it, before its cards and lineage are added."""
    members = session.members
    lead = character_view(session.character)
    return SessionView(
        slug=session.slug,
        title=session.title,
        provider=session.provider,
        model=session.model,
        head_id=session.head_image_id,
        character=lead,
        cast=cast_text([lead, *members]) if members else "",
    )


class _Sheet:
    """``index.html`` and its pages, written as their cards are made.

    A page is rendered and written as soon as its cards are added, so one page of views is
    held at a time. ``index.html`` shows the totals and the lineage panel, so it is written
    last; its cards (the first page's) are held until then.
    """

    def __init__(
        self,
        pages: Pages,
        links: _ExportLinks,
        staging: Path,
        plan: _Plan,
        *,
        base: SessionView,
        **context: Any,
    ) -> None:
        self.pages = pages
        self.links = links
        self.staging = staging
        self.plan = plan
        self.base = base
        self.context = context
        self.totals = Totals()
        self.first: list[ImageView] = []  # index.html's images: the anchor and the first cards
        self.written: dict[str, str] = {}  # page name -> digest

    def add(self, number: int, views: list[ImageView]) -> None:
        """Page ``number``'s images, in order."""
        for view in views:
            self.totals.add(view)
        if number == 1:
            self.first = views
        else:
            self._write(number, views)

    def finish(
        self, summary: Summary, lineage: list[LineageNode], cast: list[CastView]
    ) -> dict[str, str]:
        """Write ``index.html``; return every page's digest, first page first."""
        hero = self.first[0] if self.first and self.first[0].id == self.plan.hero else None
        cards = self.first[1:] if hero is not None else self.first
        self._write(1, cards, anchor=hero, summary=summary, lineage=lineage, cast=cast)
        return {name: self.written[name] for name in self.plan.pages}

    def _write(
        self,
        number: int,
        cards: list[ImageView],
        *,
        anchor: ImageView | None = None,
        summary: Summary | None = None,
        lineage: list[LineageNode] | None = None,
        cast: list[CastView] | None = None,
    ) -> None:
        html = self.pages.render(
            INDEX_TEMPLATE,
            session=replace(self.base, images=cards, lineage=lineage or []),
            anchor=anchor,
            summary=summary,
            cast=cast or [],
            page=_page_info(number, len(self.plan.pages), len(self.plan.cards)),
            **self.context,
        )
        name = _page_name(number)
        self.written[name] = self.links.write(html, self.staging / name)


@dataclass(frozen=True)
class CastView:
    """A member as the first page's cast shows it: name (with its kind), role, anchor."""

    label: str  # "Max (creature)"
    role: str  # lead, member, pictured
    character: CharacterView
    anchor: ImageView | None


def _cast_views(plan: _Plan, links: _ExportLinks) -> list[CastView]:
    """The cast for ``index.html``: shown when a series is more than its lead alone."""
    if len(plan.cast) < 2:
        return []
    return [
        CastView(
            label=member_name(member.character),
            role=member.role,
            character=character_view(member.character),
            anchor=None
            if member.anchor is None
            else image_view(
                member.anchor,
                links,
                export_name=plan.names.get(member.anchor.id),
                references=(),
                tags=(),
                checks={},
                casts={},
            ),
        )
        for member in plan.cast
    ]


def _lineage_panel(
    studio: Studio, plan: _Plan, links: _ExportLinks, head_id: int | None
) -> list[LineageNode]:
    """The lineage panel of ``index.html``, as the session page shows it by default: the
    whole lineage while it is short, else the head's neighbourhood with the rest folded (each
    fold linking to the card of its first image), so a series of any length draws a few
    dozen lines."""
    whole = len(plan.shown) <= WHOLE_LINEAGE
    view = plan.shown.window(head_id, everything=whole)
    lines, _ = lineage_lines(view, links, studio.lookups.images_by_id)
    return lines


# --------------------------------------------------------------------------- series.json


@dataclass(frozen=True)
class _Each:
    """A JSON array (or, ``keyed``, an object of ``(key, value)`` pairs) written a member at a
    time by :func:`_write_json`, so a member list of any length is never held as text."""

    members: Iterable[Any]
    keyed: bool = False


def _write_json(out: TextIO, value: Any, level: int = 0) -> None:
    """What ``json.dumps(value, indent=2, ensure_ascii=False, default=str)`` writes, with
    every :class:`_Each` in ``value`` written member by member."""
    if not isinstance(value, _Each):
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        out.write(text.replace("\n", "\n" + "  " * level))  # JSON text has no raw newlines
        return
    opening, closing = "{}" if value.keyed else "[]"
    inner = "\n" + "  " * (level + 1)
    out.write(opening)
    empty = True
    for member in value.members:
        out.write(inner if empty else "," + inner)
        empty = False
        if value.keyed:
            key, member = member
            out.write(json.dumps(key, ensure_ascii=False) + ": ")
        _write_json(out, member, level + 1)
    out.write(closing if empty else "\n" + "  " * level + closing)


def _series(
    studio: Studio,
    session: Session,
    plan: _Plan,
    files: list[ExportedFile],
    pages: dict[str, str],
    only: ExportFilter,
    exported_at: datetime,
) -> _Each:
    """The machine-readable record: everything ``onmodel show --json`` knows, per image.

    Each image is listed once, with its true ``parent_id`` (an image whose parent was filtered
    out keeps it); ``tree`` maps every image of the lineage, exported or not, to its children,
    so any image's ancestry back to the anchor follows. What the export wrote comes first, so
    a later export reads it without reading the images.
    """
    lineage = plan.lineage
    parents = sorted(key for key in lineage.order() if lineage.children(key))
    return _Each(
        [
            ("format", SERIES_FORMAT),
            ("format_version", SERIES_FORMAT_VERSION),
            ("onmodel_version", __version__),
            ("exported_at", exported_at.isoformat()),
            ("only", only.value),
            # What this export wrote, by digest: a later export replaces only files that match.
            ("files", _Each(((f.name, f.sha256) for f in files), keyed=True)),
            ("pages", pages),
            ("character", session.character.to_dict()),
            ("session", session.to_dict()),
            # Everyone the series shows, each with its model sheet and its anchor's record
            # and file, which the images' "references" name by id.
            ("cast", _cast_records(studio, plan)),
            # The whole lineage as a flat map (parent id -> child ids), exported or not: flat,
            # because a long series is a deep chain that nested JSON could not hold.
            (
                "tree",
                _Each(
                    [
                        ("root_image_id", lineage.roots[0]),
                        (
                            "children",
                            _Each(((str(k), lineage.children(k)) for k in parents), keyed=True),
                        ),
                        ("exported", _Each(sorted(plan.exported()))),
                    ],
                    keyed=True,
                ),
            ),
            ("images", _Each(_records(studio, plan))),
        ],
        keyed=True,
    )


def _records(studio: Studio, plan: _Plan) -> Iterator[dict[str, Any]]:
    """Every exported image's entry with who is in it (``cast``) and every check of it
    (oldest first, each with its per-trait results, as ``onmodel show --json`` lists them),
    a page of images at a time, their references, casts and checks read for the page."""
    for images in _pages(studio, plan):
        checks = studio.checks_of([image.id for image in images])
        references = studio.references_of(images)
        casts = image_casts(images)
        for image in images:
            record = image.to_dict(references[image.id], casts[image.id])
            listed = [check_dict(check) for check in checks.get(image.id, [])]
            yield {**_record(record, plan.names.get(image.id)), "checks": listed}


def _cast_records(studio: Studio, plan: _Plan) -> list[dict[str, Any]]:
    """series.json's ``cast``: each member as ``character show --json`` has it, its role,
    and its anchor's entry as the images have theirs (its references read in one query)."""
    anchors = [member.anchor for member in plan.cast if member.anchor is not None]
    references = studio.references_of(anchors)
    casts = image_casts(anchors, [member.character for member in plan.cast])
    listed = []
    for member in plan.cast:
        anchor = member.anchor
        entry = None
        if anchor is not None:
            record = anchor.to_dict(references[anchor.id], casts[anchor.id])
            entry = _record(record, plan.names.get(anchor.id))
        listed.append({**member.character.to_dict(), "role": member.role, "anchor": entry})
    return listed


def _record(record: dict[str, Any], name: str | None) -> dict[str, Any]:
    """An image's entry: ``onmodel show --json``'s ``record``, with the file it was exported
    as."""
    return {**record, "file": {**record["file"], "path": name}, "exported_as": name}


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
    files: dict[str, str]  # the image files it wrote, by name: their digests
    pages: dict[str, str]  # the pages it wrote (index.html, page-2.html...)
    blobs: Blobs

    def wrote(self, path: Path) -> bool:
        """Whether ``path`` is a file the earlier export wrote and that may go without loss.

        Its digest must match the one recorded for its name (a plain file, never a symlink),
        and an image must still be in the blob store: then even a planted ``series.json`` that
        names a user's file with its true digest cannot make the export delete anything
        irreplaceable (pages excepted, and only under a page's name).
        """
        if path.name == MANIFEST_NAME:
            return True  # the manifest that made the folder an earlier export; written anew
        page = self.pages.get(path.name)
        expected = page if page is not None else self.files.get(path.name)
        if expected is None or not stat.S_ISREG(path.lstat().st_mode):
            return False
        if page is None and not self.blobs.exists(expected, path.suffix[1:]):
            return False
        return sha256_file(path) == expected


def _survey(target: Path, new_names: set[str], blobs: Blobs) -> _Earlier:
    """Refuse a folder of other things, or one whose files the new export would overwrite.

    A non-empty folder is accepted only when it holds an earlier export's ``series.json``, and
    then only if every entry the new export will replace is one that export wrote, unchanged.
    Entries are taken from the directory listing, never from paths in the manifest, so a
    planted ``series.json`` cannot point anywhere outside the folder.
    """
    if not target.exists():
        return _Earlier(exists=False, files={}, pages={}, blobs=blobs)
    if not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    present = sorted(entry.name for entry in target.iterdir())
    if not present:
        return _Earlier(exists=True, files={}, pages={}, blobs=blobs)
    recorded = _recorded(target / MANIFEST_NAME)
    if recorded is None:
        raise UsageError(
            f"{target} is not empty and holds no earlier onmodel export; "
            "choose a new or empty folder"
        )
    earlier = _Earlier(exists=True, files=recorded[0], pages=recorded[1], blobs=blobs)
    for name in present:
        if name in new_names and not earlier.wrote(target / name):
            raise UsageError(
                f"{target / name} was not written by an earlier export from this data folder "
                "(or was changed since) and the new export would replace it; "
                "move it away or choose another folder"
            )
    return earlier


def _recorded(manifest: Path) -> tuple[dict[str, str], dict[str, str]] | None:
    """The image files and pages an export's ``series.json`` says it wrote, with their
    digests, or None if it is not one."""
    try:
        if not stat.S_ISREG(manifest.lstat().st_mode):
            return None
        with manifest.open(encoding="utf-8") as handle:
            return _recorded_in(handle)
    except (OSError, ValueError):
        return None


def _recorded_in(handle: TextIO) -> tuple[dict[str, str], dict[str, str]] | None:
    """:func:`_recorded` of an open manifest (a file, or a member of a zip).

    Read member by member (:func:`_json_members`), and only as far as what the export wrote,
    which this version writes first: a manifest of format 1 listed every image's whole
    ancestry, hundreds of megabytes for a long series, and is read through in bounded memory.
    Format 1 recorded its one page as ``index_sha256``.
    """
    data = _json_members(
        handle, {"format", "files", "pages", "index_sha256"}, enough={"format", "files", "pages"}
    )
    if data.get("format") != SERIES_FORMAT:
        return None

    def digests(value: Any) -> dict[str, str]:
        pairs = value.items() if isinstance(value, dict) else ()
        return {str(name): digest for name, digest in pairs if isinstance(digest, str)}

    pages = digests(data.get("pages"))
    if isinstance(data.get("index_sha256"), str):
        pages[INDEX_NAME] = data["index_sha256"]
    return digests(data.get("files")), {k: v for k, v in pages.items() if _is_page(k)}


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_READ_CHARS = 1 << 16


class _JsonReader:
    """JSON text read from a file a value at a time (each decoded whole by the standard
    decoder), so a document is never held whole."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.text = ""
        self.at = 0
        self.decoder = json.JSONDecoder()

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end)."""
        while True:
            match = _WHITESPACE.match(self.text, self.at)
            assert match is not None  # the pattern matches the empty string
            self.at = match.end()
            if self.at < len(self.text):
                return self.text[self.at]
            if not self._more():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} in JSON")
        self.at += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                found, end = self.decoder.raw_decode(self.text, self.at)
            except json.JSONDecodeError:
                # read as much again: a long value costs linear time, not a retry per chunk
                if not self._more(len(self.text)):
                    raise
                continue
            if end == len(self.text) and self._more():
                continue  # a number may go on in the text not read yet
            self.at = end
            return found

    def skip_array(self) -> None:
        """Read past an array an item at a time."""
        self.take("[")
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            self.value()
            if self.peek() == "]":
                self.at += 1
                return
            self.take(",")

    def _more(self, chars: int = 0) -> bool:
        chunk = self.handle.read(max(chars, _READ_CHARS))
        self.text = self.text[self.at :] + chunk
        self.at = 0
        return bool(chunk)


def _json_members(handle: TextIO, wanted: set[str], *, enough: set[str]) -> dict[str, Any]:
    """The ``wanted`` members of the JSON object in ``handle``, read until those in
    ``enough`` are found (or the object ends). Arrays not wanted are read an item at a time
    and dropped."""
    reader = _JsonReader(handle)
    found: dict[str, Any] = {}
    reader.take("{")
    if reader.peek() == "}":
        return found
    while not enough <= found.keys():
        key = reader.value()
        if not isinstance(key, str):
            raise ValueError("a JSON object's key is not a string")
        reader.take(":")
        if key in wanted:
            found[key] = reader.value()
        elif reader.peek() == "[":
            reader.skip_array()
        else:
            reader.value()
        if reader.peek() == "}":
            break
        reader.take(",")
    return found


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
            with bundle.open(f"{folder}/{MANIFEST_NAME}") as member:
                recorded = _recorded_in(io.TextIOWrapper(member, encoding="utf-8"))
            members = set(bundle.namelist())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    if recorded is None:
        return False
    files, pages = recorded
    return members <= {f"{folder}/{name}" for name in [*files, *pages, MANIFEST_NAME]}


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
    what = f"image {image.id} ({destination.name}) cannot be exported"
    try:
        source = image.path  # through the blob store: a remote one's verified local copy
    except BlobIntegrityError as exc:
        raise BlobIntegrityError(f"{what}: {exc}") from None
    assert source is not None and image.sha256 is not None
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


@contextmanager
def _zip(
    staging: Path, folder: str, images: list[str], others: list[str], archive: Path | None
) -> Iterator[Path | None]:
    """Build ``<folder>.zip`` under a temporary name; rename it in once the body succeeds.

    It holds the folder as one top-level directory, and only what the export wrote, never the
    user's files. Images are stored, not deflated: PNG, JPEG and WebP are compressed already,
    and storing keeps every byte identical inside the archive too. The pages and
    ``series.json`` (``others``) are deflated.
    """
    if archive is None:
        yield None
        return
    fd, tmp_name = tempfile.mkstemp(prefix=".export-", suffix=".onmodel-new", dir=archive.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as bundle:
            bundle.comment = ZIP_COMMENT
            for name in images:
                bundle.write(staging / name, f"{folder}/{name}", zipfile.ZIP_STORED)
            for name in others:
                bundle.write(staging / name, f"{folder}/{name}", zipfile.ZIP_DEFLATED)
        os.chmod(tmp_name, 0o644)  # an export is for sharing; mkstemp makes files private
        yield archive
        os.replace(tmp_name, archive)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
