"""View models and HTML rendering shared by the exported contact sheet (``onmodel export``)
and the web UI (``onmodel serve``); outside ``onmodel.web`` so the export never imports the
server.

Templates get plain, already-formatted values (costs as text, request fields in a fixed order,
colours checked) so that both outputs show an image the same way and a user-edited template can
never reach the database. Where an image's pixels live differs per output: the export embeds
thumbnails and links files beside ``index.html``; the server links its own URLs. That is the one
thing each caller supplies, as a :class:`Links`.

A series may hold 100,000 images, so nothing here reads a whole one: a page shows a window of
the lineage (a :class:`~onmodel.lineage.View`, what it leaves out folded) a page of lines at a
time, a page of cards, and totals the database counts; only the images shown are loaded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jinja2 import TemplateNotFound
from markupsafe import Markup

from onmodel.checkers.base import Verdict
from onmodel.checkview import badge, member_text, members_of, trait_line, traits_of
from onmodel.composer import template_environment
from onmodel.errors import NotFoundError, TemplateError
from onmodel.handles import Character, Image, Reference, Session
from onmodel.lineage import (
    Fold,
    LineageIndex,
    Row,
    View,
    cast_mark,
    cast_text,
    image_casts,
    is_ensemble_of,
    with_images,
)
from onmodel.providers import is_manual
from onmodel.resources import templates_dir
from onmodel.status import ImageStatus, status_mark
from onmodel.store import lineage as lineage_queries
from onmodel.store import listing, queries
from onmodel.store.listing import ImageFilter
from onmodel.store.records import CheckRecord
from onmodel.studio.annotations import normal_tag
from onmodel.thumbnails import CARD_SIZE, MINI_SIZE, THUMBNAIL_SIZES

if TYPE_CHECKING:
    from onmodel.studio import Studio
    from onmodel.studio.members import ShotCast

REQUEST_ORDER = ("expression", "pose", "action", "outfit", "scene", "text")
CAST_FIELDS = ("cast", "set")  # a request's; a card says who is in it by name instead

# How much of a long series one page shows; the rest is a link away, never dropped.
LINEAGE_LINES = 500  # lines of a lineage view per page
WHOLE_LINEAGE = 100  # a lineage up to this size is shown whole by default, nothing folded
CARDS_PER_PAGE = 60  # cards per page, the newest first
ANCESTORS_SHOWN = 20  # ancestors an image page lists at a time (besides the root)
CHILDREN_SHOWN = 50  # children an image page lists
TILES_PER_PAGE = 120  # shots a grid page shows, the newest first
TILE_SIZE = THUMBNAIL_SIZES[1]  # a grid tile's thumbnail: small, to compare many at a glance

# Colours go into style attributes; escaping stops HTML injection but not CSS such as
# ``red;background:url(https://...)``, which would make the "offline" page fetch something.
_SAFE_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,30})$")


class Links(Protocol):
    """Where an output puts an image's file, thumbnails and detail view."""

    def file(self, image: Image) -> str | None: ...

    def thumb(self, image: Image, size: int) -> str | None: ...

    def page(self, image: Image) -> str: ...

    def parent(self, parent_id: int) -> str | None:
        """A link to a parent that is not shown on the same page, if the output has one."""
        ...


class LineageLinks(Links, Protocol):
    """The links of an output that draws a lineage view, folds and all."""

    def fold(self, fold: Fold) -> str | None:
        """A link to a view that shows what ``fold`` leaves out (one started at
        ``fold.open_id``), if the output has one."""
        ...


@dataclass(frozen=True)
class ErrorView:
    type: str
    code: str | None
    message: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class TraitLine:
    """One trait of a check, worded by :func:`onmodel.checkview.trait_line`; ``tone`` (ok,
    drift, or empty for not visible and changed by request) is what a page colours it by."""

    text: str
    tone: str


_TRAIT_TONES = {Verdict.SAME: "ok", Verdict.DRIFTED: "drift"}


@dataclass(frozen=True)
class CheckView:
    """A consistency check as every output shows it: the badge (``text``; ``tone`` for a
    page's CSS class: ok, drift, failed, pending; ``title``, the longer form, for a tooltip)
    and a line per trait, all worded by :mod:`onmodel.checkview`, with what it cost and when
    it was made."""

    id: int
    text: str
    tone: str
    title: str
    version: str  # the checker's: scores of different versions are not comparable
    cost: str
    created: str
    traits: tuple[TraitLine, ...]


def check_view(record: CheckRecord) -> CheckView:
    """A check as shown; one member's row of a shot of several (every check of an image,
    as ``show`` and the image page list them) says whom it measured: "Rin drifted 61"."""
    shown = badge(record)
    members = members_of(record)
    alone = len(members) == 1 and members[0] is record
    return CheckView(
        id=record.id,
        text=member_text(record) if alone else shown.text,
        tone=shown.tone,
        title=shown.title,
        version=record.version,
        cost=format_cost(record.cost_usd, record.status),
        created=format_time(record.created_at),
        traits=tuple(
            TraitLine(trait_line(trait), _TRAIT_TONES.get(trait.verdict, ""))
            for trait in traits_of(record)
        ),
    )


@dataclass(frozen=True)
class ImageView:
    """Everything a card, a lineage node or a detail page shows about one image."""

    id: int
    kind: str
    status: str
    mark: str
    label: str
    is_anchor: bool
    request: tuple[tuple[str, str], ...]
    prompt: str
    revised_prompt: str | None
    gen_id: str | None
    response_id: str | None
    provider: str
    model: str
    params: tuple[tuple[str, str], ...]
    cost: str
    cost_usd: str | None
    width: int | None
    height: int | None
    format: str | None
    byte_size: int | None
    sha256: str | None
    parent_id: int | None
    parent_href: str | None
    session_id: int | None
    retry_of_id: int | None
    starred: bool
    rating: int
    note: str
    error: ErrorView | None
    created: str
    finished: str
    latency_ms: int | None
    references: tuple[str, ...]
    tags: tuple[str, ...]
    manual: bool
    hidden: bool  # left out of pages, listings and exports (shown only where asked for)
    picked: bool  # the take a retake loop chose among its siblings
    check: CheckView | None  # its newest finished check: the badge beside it
    cast: str  # who is in a picture of several ("Mia, Max (creature) · set: Bedroom"), or ""
    cast_mark: str  # the same as a lineage line says it ("+ Max · in Bedroom"), or ""
    file: str | None
    thumb: str | None
    mini: str | None
    page: str
    export_name: str | None = None

    @property
    def rev(self) -> str:
        return row_rev(
            self.status,
            self.starred,
            self.rating,
            self.note,
            self.tags,
            self.sha256,
            self.error,
            self.picked,
            self.check.id if self.check is not None else None,
        )

    @property
    def dimensions(self) -> str:
        return f"{self.width}×{self.height}" if self.width and self.height else ""


@dataclass(frozen=True)
class FoldView:
    """A line of the lineage view standing for images it leaves out (a
    :class:`~onmodel.lineage.Fold`): what they are, and where they are shown."""

    text: str
    href: str | None  # None: the output has no page that shows them
    open_id: int


@dataclass(frozen=True)
class Nesting:
    """The lists of the lineage drawing open between two of its lines: ``columns``
    ``<ol class="chain">`` (each past the first inside a branch of a fork) and, with
    ``fork``, a fork's ``<ol class="branches">`` whose next branch has not begun.

    A page of a long lineage may start and end inside branches; the lists its first line
    needs open are reopened before it, and those its last leaves open are closed after it, so
    each page is whole HTML. Mirrors the lineage macro, which opens a column at a row that
    ``opens``, a fork's branches at a row that ``forks``, and closes them at a ``leaf``.
    """

    columns: int
    fork: bool

    @classmethod
    def before(cls, row: Row) -> Nesting:
        if row.opens:  # the row opens its branch itself, inside the fork's open branches
            return cls(row.depth, row.depth > 0)
        return cls(row.depth + 1, False)

    @classmethod
    def after(cls, row: Row) -> Nesting:
        if not row.leaf:
            return cls(row.depth + 1, row.forks)
        if row.closes_fork:  # the fork ended too: the column it hangs from goes on
            return cls(row.depth, False)
        return cls(row.depth, row.depth > 0)  # the fork's next branch comes

    def __bool__(self) -> bool:
        return self.columns > 0 or self.fork


@dataclass(frozen=True)
class LineageNode:
    """One line of the lineage view, as drawn: its :class:`~onmodel.lineage.Row`, and the
    image it shows, or the fold it stands for, or neither (an image gone from the database
    since the lineage was read, still drawn so the lines around it stay in place).

    The view is a flat list, one of these per line in drawing order, and the template opens
    and closes lists from the row's markers: a recursive macro would nest one call per fork
    (and Jinja has Python's recursion limit). ``lead`` and ``tail`` (see :class:`Nesting`)
    are set on the first and last lines of a page that starts or ends inside branches.
    """

    image: ImageView | None
    line: Row  # a drawing row of the lineage, not a database row
    fold: FoldView | None = None
    lead: Nesting | None = None
    tail: Nesting | None = None

    @property
    def row(self) -> Row:
        """The name the templates use for :attr:`line`."""
        return self.line

    @property
    def parent_id(self) -> int | None:
        return self.line.parent_id


@dataclass(frozen=True)
class Swatch:
    label: str
    colour: str


@dataclass(frozen=True)
class CharacterView:
    id: int
    slug: str
    name: str
    kind: str  # character, creature, prop or set (onmodel.kinds)
    description: str
    traits: tuple[tuple[str, str], ...]
    swatches: tuple[Swatch, ...]
    anchor_id: int | None


@dataclass(frozen=True)
class Summary:
    images: int
    succeeded: int
    failed: int
    pending: int
    starred: int | None  # None: not counted
    cost: str


@dataclass(frozen=True)
class LineageWindow:
    """What a session page's lineage panel shows, as ``onmodel tree`` takes it: the head's
    neighbourhood by default; from ``start`` (or the root) when any of ``start``, ``depth``,
    ``limit`` or ``everything`` is given (see :meth:`LineageIndex.window`); and of those
    lines, page ``page`` (:data:`LINEAGE_LINES` a page)."""

    start: int | None = None
    depth: int | None = None
    limit: int | None = None
    everything: bool = False
    page: int = 1

    @property
    def chosen(self) -> bool:
        """Whether anything but the head's neighbourhood was asked for."""
        return (
            self.start is not None
            or self.depth is not None
            or self.limit is not None
            or self.everything
        )


@dataclass(frozen=True)
class CardsWindow:
    """Which page of a session's cards: the newest (neither bound), the page older than
    ``before``, or the page newer than ``after`` (``after=0``: the oldest). Keyset paging, by
    id: each page costs the same whatever the size of the series."""

    before: int | None = None
    after: int | None = None


@dataclass
class SessionView:
    """A session as a page shows it: its cards (``images``) and lineage lines; on a page of a
    long series, the paging around them."""

    slug: str
    title: str
    provider: str
    model: str
    head_id: int | None
    character: CharacterView
    images: list[ImageView] = field(default_factory=list)
    cast: str = ""  # with members: everyone its shots may show ("Mia, Rin · set: Bedroom")
    lineage: list[LineageNode] = field(default_factory=list)
    lineage_size: int = 0  # images in the whole lineage (what ``lineage`` is a window of)
    first_line: int = 0  # the position of ``lineage[0]`` among the view's lines
    more_lines: bool = False  # the view goes on after ``lineage``
    older: bool = False  # the session has cards older than ``images``
    newer: bool = False  # ...and newer ones


def row_rev(
    status: str,
    starred: bool,
    rating: int,
    note: str,
    tags: tuple[str, ...],
    sha256: str | None,
    error: ErrorView | None,
    picked: bool,
    check_id: int | None,
) -> str:
    """Changes whenever a card would look different, so pages replace only stale cards (a
    check is finished once, so a new badge is a new check id)."""
    state = [str(status), starred, rating, note, tags, sha256, error, picked, check_id]
    return hashlib.sha1(repr(state).encode(), usedforsecurity=False).hexdigest()[:12]


def _error_view(image: Image) -> ErrorView | None:
    if image.error_type is None and not image.error_message:
        return None
    return ErrorView(
        type=image.error_type or "error",
        code=image.error_code,
        message=image.error_message or "",
        categories=image.error_categories,
    )


# --------------------------------------------------------------------------- building views


def image_view(
    image: Image,
    links: Links,
    *,
    export_name: str | None = None,
    references: Sequence[Reference] | None = None,
    tags: Sequence[str] | None = None,
    checks: Mapping[int, CheckRecord] | None = None,
    casts: Mapping[int, ShotCast] | None = None,
) -> ImageView:
    """``references``, ``tags``, ``checks`` (newest checks by image id, as
    :meth:`Studio.latest_checks` reads them) and ``casts`` (by image id, as
    :func:`~onmodel.lineage.image_casts` reads them) when the caller has read them already
    (for many images at once, or none: an ancestor's link shows none of them); otherwise they
    are read here."""
    error = _error_view(image)
    latest = (image.studio.latest_checks([image.id]) if checks is None else checks).get(image.id)
    cast = (image_casts([image]) if casts is None else casts).get(image.id)
    everyone = cast.everyone if cast is not None else ()
    asked = image.request.model_dump()
    request = tuple((key, str(asked[key])) for key in REQUEST_ORDER if asked.get(key)) + tuple(
        (str(k), str(v))
        for k, v in sorted(asked.items())
        if k not in REQUEST_ORDER and k not in CAST_FIELDS and v
    )
    has_file = image.succeeded and image.sha256 is not None and image.format is not None
    return ImageView(
        id=image.id,
        kind=image.kind,
        status=image.status,
        mark=status_mark(image.status),
        label=image.label,
        is_anchor=image.kind in ("anchor", "import"),
        request=request,
        prompt=image.prompt,
        revised_prompt=image.revised_prompt,
        gen_id=image.gen_id,
        response_id=image.response_id,
        provider=image.provider,
        model=image.model,
        params=tuple((str(k), _plain(v)) for k, v in sorted(image.params.items())),
        cost=format_cost(image.cost_usd, image.status),
        cost_usd=image.cost_usd,
        width=image.width,
        height=image.height,
        format=image.format,
        byte_size=image.byte_size,
        sha256=image.sha256,
        parent_id=image.parent_id,
        parent_href=links.parent(image.parent_id) if image.parent_id is not None else None,
        session_id=image.session_id,
        retry_of_id=image.retry_of_id,
        starred=image.starred,
        rating=image.rating or 0,
        note=image.note,
        error=error,
        created=format_time(image.created_at),
        finished=format_time(image.finished_at),
        latency_ms=image.latency_ms,
        references=tuple(
            f"{r.role} #{r.image_id}" if r.image_id else f"{r.role} {r.sha256[:12]}"
            for r in (image.references if references is None else references)
        ),
        tags=tuple(image.studio.list_tags([image.id])[image.id] if tags is None else tags),
        manual=image.status == ImageStatus.PENDING and is_manual(image.provider),
        hidden=image.hidden_at is not None,
        picked=image.picked_at is not None,
        check=check_view(latest) if latest is not None else None,
        cast=cast_text(everyone) if is_ensemble_of(everyone, image.character_id) else "",
        cast_mark=cast_mark(everyone, image.character_id),
        file=links.file(image) if has_file else None,
        thumb=links.thumb(image, CARD_SIZE) if has_file else None,
        mini=links.thumb(image, MINI_SIZE) if has_file else None,
        page=links.page(image),
        export_name=export_name,
    )


def character_view(character: Character) -> CharacterView:
    sheet = character.sheet
    traits = tuple(
        (label, value)
        for label, value in (
            ("style", sheet.style),
            ("species", sheet.species),
            ("hair", sheet.hair),
            ("build", sheet.build),
            ("outfit", sheet.outfit),
            ("always", "; ".join(sheet.must_keep)),
            ("never", "; ".join(sheet.avoid)),
        )
        if value
    )
    named = [("hair", sheet.hair_color), ("eyes", sheet.eye_color), ("skin", sheet.skin_color)]
    named += [("outfit", c) for c in sheet.outfit_colors]
    named += [("palette", c) for c in sheet.palette]
    swatches: list[Swatch] = []
    seen: set[str] = set()  # a palette usually repeats the hair or outfit colour: show it once
    for label, colour in named:
        colour = colour.strip()
        if colour and _SAFE_COLOUR.match(colour) and colour.lower() not in seen:
            seen.add(colour.lower())
            swatches.append(Swatch(label, colour))
    return CharacterView(
        id=character.id,
        slug=character.slug,
        name=character.name,
        kind=character.kind,
        description=character.description,
        traits=traits,
        swatches=tuple(swatches),
        anchor_id=character.anchor_image_id,
    )


def unusable(member: Character, anchor: Image | None) -> str:
    """Why ``member`` cannot be in a shot now ('' when it can), as a form says it beside the
    name: the planner refuses a member without a finished anchor, and a hidden one."""
    if member.hidden_at is not None:
        return f"hidden: unhide it to put it in a shot (onmodel character unhide {member.slug})"
    if anchor is None:
        return "no anchor yet: give it one (onmodel character anchor IMAGE)"
    if not anchor.succeeded:
        return f"its anchor (#{anchor.id}) is {anchor.status}: retry it first"
    return ""


def card_views(
    studio: Studio, images: Sequence[Image], links: Links, known: Sequence[Character] = ()
) -> list[ImageView]:
    """The cards of ``images``, their references, tags, newest checks and casts read in a
    query or two each (not one per card; the ``known`` characters, the session's lead, are
    not read again); a parent whose card is among them is a jump on the page, not a new
    page."""
    ids = [image.id for image in images]
    found = queries.references_of(studio.engine, ids)
    tagged = studio.list_tags(ids)
    latest = studio.latest_checks(ids)
    casts = image_casts(images, known)
    views = [
        image_view(
            image,
            links,
            references=[Reference.from_row(r) for r in found[image.id]],
            tags=tagged[image.id],
            checks=latest,
            casts=casts,
        )
        for image in images
    ]
    shown = {view.id for view in views}
    return [
        replace(view, parent_href=f"#image-{view.parent_id}") if view.parent_id in shown else view
        for view in views
    ]


def lineage_lines(
    view: View,
    links: LineageLinks,
    load: Callable[[list[int]], Mapping[int, Image]],
    *,
    skip: int = 0,
    lines: int | None = None,
    known: Sequence[Character] = (),
) -> tuple[list[LineageNode], bool]:
    """Lines ``skip`` to ``skip + lines`` of ``view`` as drawn (every line without
    ``lines``), and whether more follow.

    Only the images of those lines are loaded (``load``: a chunk of ids per call, with the
    casts of each chunk, the ``known`` characters not read again), so a page of a
    100,000-image lineage costs what a page of a short one does, plus laying out the lines
    skipped. Folds link where ``links.fold`` says; a page that starts or ends inside branches
    carries the lists to reopen and close (:class:`Nesting`).
    """
    end = None if lines is None else skip + lines + 1  # one more: whether the view goes on
    rows = list(itertools.islice(view.rows(), skip, end))
    more = lines is not None and len(rows) > lines
    if more:
        rows.pop()
    nodes: list[LineageNode] = []
    casts: dict[int, ShotCast] = {}  # of the lines' images: a page's, at most

    def loaded(ids: list[int]) -> Mapping[int, Image]:
        found = load(ids)
        casts.update(image_casts(found.values(), known))
        return found

    for row, image in with_images(rows, _row_key, loaded):
        if isinstance(row.key, Fold):
            folded = FoldView(row.key.describe(), links.fold(row.key), row.key.open_id)
            nodes.append(LineageNode(None, row, fold=folded))
        elif image is None:
            nodes.append(LineageNode(None, row))
        else:
            # a line shows no references, tags or checks (the cards do): none are read
            shown = image_view(image, links, references=(), tags=(), checks={}, casts=casts)
            nodes.append(LineageNode(shown, row))
    if nodes:
        nodes[0] = replace(nodes[0], lead=Nesting.before(rows[0]) or None)
        nodes[-1] = replace(nodes[-1], tail=Nesting.after(rows[-1]) or None)
    return nodes, more


def _row_key(row: Row) -> int | Fold:
    return row.key


def session_view(
    session: Session,
    links: LineageLinks,
    *,
    index: LineageIndex | None = None,
    window: LineageWindow = LineageWindow(),
    cards: CardsWindow = CardsWindow(),
) -> SessionView:
    """A page of the session: a page of its cards (the anchor with the oldest), and a page of
    the lines of its lineage ``window``, with what that leaves out folded (by default the
    head's neighbourhood, or the whole lineage while it is short).

    ``index`` is the session's lineage if the caller has it (a server keeps it between
    requests); otherwise it is read here. Images from other sessions that a shot here
    branched from are in the lineage: without them it would have a hole. Reads the same few
    statements whatever the size of the series.
    """
    studio = session.studio
    index = session.lineage() if index is None else index
    whole = not window.chosen and len(index) <= WHOLE_LINEAGE
    try:
        view = index.window(
            session.head_image_id,
            start=window.start,
            depth=window.depth,
            limit=window.limit,
            everything=window.everything or whole,
        )
    except KeyError:
        raise NotFoundError(
            f"image {window.start} is not in session {session.slug}'s lineage"
        ) from None
    shown, older, newer = _card_page(session, cards)
    loaded = {image.id: image for image in shown}

    def load(ids: list[int]) -> dict[int, Image]:
        loaded.update(studio.lookups.images_by_id([key for key in ids if key not in loaded]))
        return {key: loaded[key] for key in ids if key in loaded}

    character = session.character
    lines, more = lineage_lines(
        view,
        links,
        load,
        skip=(window.page - 1) * LINEAGE_LINES,
        lines=LINEAGE_LINES,
        known=[character],
    )
    anchor_id = character.anchor_image_id
    if not older and anchor_id is not None and anchor_id not in {i.id for i in shown}:
        shown = [*load([anchor_id]).values(), *shown]  # the oldest page starts with it
    views = card_views(studio, shown, links, [character])
    on_page = {card.id for card in views}
    return SessionView(
        slug=session.slug,
        title=session.title,
        provider=session.provider,
        model=session.model,
        head_id=session.head_image_id,
        character=character_view(character),
        images=views,
        lineage=[_jump(node, on_page) for node in lines],
        lineage_size=len(index),
        first_line=(window.page - 1) * LINEAGE_LINES,
        more_lines=more,
        older=older,
        newer=newer,
    )


def _jump(node: LineageNode, on_page: set[int]) -> LineageNode:
    """A line whose image has a card on the page links to the card, not to a new page."""
    if node.image is None or node.image.id not in on_page:
        return node
    return replace(node, image=replace(node.image, page=f"#image-{node.image.id}"))


@dataclass(frozen=True)
class GridFilter:
    """Which of a session's shots a grid shows: all, or only those that are starred, failed
    (or interrupted: what a retry takes), carry a tag, or (``hidden``) were hidden."""

    starred: bool = False
    failed: bool = False
    tag: str | None = None
    hidden: bool = False

    def matching(self, session: Session) -> ImageFilter:
        """The store's listing filter for the session (the tag as tags are kept)."""
        tag = normal_tag(self.tag) if self.tag is not None else None
        return ImageFilter(
            session_id=session.id,
            starred=self.starred,
            failed=self.failed,
            tag=tag,
            hidden=self.hidden,
        )


@dataclass(frozen=True)
class GridTile:
    image: ImageView
    src: str | None  # the tile's thumbnail; None: no file (failed, pending)


@dataclass(frozen=True)
class GridView:
    """A page of a session's shots as small tiles beside its anchor (the character's
    current one, on every page: what each shot is compared with), newest page first; each
    page read by id from where the last one ended (``before``), as the cards are."""

    slug: str
    title: str
    character: CharacterView
    anchor: GridTile | None
    tiles: list[GridTile]
    older: int | None  # where the next, older, page starts (``?before=``); None: no more
    newer: bool  # pages newer than this one exist


def grid_view(
    session: Session, links: Links, chosen: GridFilter, *, before: int | None = None
) -> GridView:
    """The page of the session's shots ``chosen`` holds that comes before image ``before``
    (None: the newest), oldest first: one statement for the page (the store's listing),
    one for its tags, one for its checks, two for its casts, whatever the size of the
    series."""
    studio = session.studio
    records = listing.images_page(
        studio.engine,
        chosen.matching(session),
        before_id=before,
        limit=TILES_PER_PAGE + 1,  # one more: whether there are older ones
    )
    older = len(records) > TILES_PER_PAGE
    images = [Image(studio, record) for record in reversed(records[:TILES_PER_PAGE])]
    character = session.character
    anchor = character.anchor
    ids = [image.id for image in images]
    tagged = studio.list_tags(ids)
    latest = studio.latest_checks([*ids, anchor.id] if anchor is not None else ids)
    casts = image_casts(images, [character])  # the anchor shows its character alone

    def tile(image: Image, tags: Sequence[str]) -> GridTile:
        view = image_view(image, links, references=(), tags=tags, checks=latest, casts=casts)
        return GridTile(view, links.thumb(image, TILE_SIZE) if view.thumb else None)

    return GridView(
        slug=session.slug,
        title=session.title,
        character=character_view(character),
        anchor=tile(anchor, ()) if anchor is not None else None,
        tiles=[tile(image, tagged[image.id]) for image in images],
        older=images[0].id if older else None,
        newer=before is not None,
    )


def _card_page(session: Session, cards: CardsWindow) -> tuple[list[Image], bool, bool]:
    """The page of the session's images ``cards`` asks for, oldest first, and whether there
    are older and newer ones; read by id from the index, a page at a time."""
    newest_first = cards.after is None
    records = queries.session_images_page(
        session.studio.engine,
        session.id,
        after_id=cards.before if newest_first else cards.after,
        limit=CARDS_PER_PAGE + 1,  # one more: whether there are more that way
        newest_first=newest_first,
    )
    beyond = len(records) > CARDS_PER_PAGE
    records = records[:CARDS_PER_PAGE]
    if newest_first:
        records.reverse()
        older, newer = beyond, cards.before is not None
    else:
        older, newer = bool(cards.after), beyond
    return [Image(session.studio, record) for record in records], older, newer


def session_summary(session: Session) -> Summary:
    """The session's totals as its page shows them: its images counted by the database
    (statuses by ``GROUP BY``, the cost of the finished ones as ``onmodel cost`` reports it),
    never a whole series loaded; and the character's anchor the page starts with, when it is
    in no session (a shot promoted to anchor is counted with its session already)."""
    studio = session.studio
    costs = studio.cost(session)
    totals = Totals(studio.status_counts(session), costs.total, costs.unknown, starred=None)
    anchor = session.character.anchor
    if anchor is not None and anchor.session_id is None:
        totals.add(anchor)
    return totals.summary()


class Totalled(Protocol):
    """What a total reads of an image: an :class:`ImageView` or an :class:`Image` alike."""

    @property
    def status(self) -> str: ...

    @property
    def cost_usd(self) -> str | None: ...

    @property
    def starred(self) -> bool: ...


class Totals:
    """Totals built up an image at a time: the export's, which adds its cards as it writes
    them (a filtered session: only the database cannot count it), and the session page's,
    which starts from the database's counts. Counts and a running cost only, never the
    images, so 100,000 cards hold what three do.

    Costs follow ``onmodel cost``: a finished image (succeeded or failed, either may have
    been billed) without a known cost is counted as unknown, never taken as free.
    """

    def __init__(
        self,
        statuses: Mapping[str, int] | None = None,
        cost: Decimal = Decimal(0),
        unknown: int = 0,
        *,
        starred: int | None = 0,
    ) -> None:
        self.statuses: Counter[str] = Counter(statuses or {})
        self.cost = cost
        self.unknown = unknown
        self.starred = starred  # None: not counted (the chip is left out)

    def add(self, image: Totalled) -> None:
        self.statuses[image.status] += 1
        if self.starred is not None:
            self.starred += image.starred
        if image.status not in (ImageStatus.SUCCEEDED, ImageStatus.FAILED):
            return  # nothing was billed (yet) for a pending or interrupted image
        if image.cost_usd is None:
            self.unknown += 1
            return
        try:
            self.cost += Decimal(image.cost_usd)
        except InvalidOperation:
            self.unknown += 1

    def summary(self) -> Summary:
        counts = self.statuses
        return Summary(
            images=sum(counts.values()),
            succeeded=counts[ImageStatus.SUCCEEDED],
            failed=counts[ImageStatus.FAILED] + counts[ImageStatus.INTERRUPTED],
            pending=counts[ImageStatus.PENDING],
            starred=self.starred,
            cost=_cost_text(self.cost, self.unknown),
        )


def _cost_text(total: Decimal, unknown: int) -> str:
    """A total as the chips show it: unknown costs are counted, never taken as zero."""
    cost = "free" if total == 0 and not unknown else _dollars(total)
    return f"{cost} + {unknown} unknown" if unknown else cost


@dataclass(frozen=True)
class ImageLineage:
    """An image's place in its series, bounded however deep it is: the root, a page of
    :data:`ANCESTORS_SHOWN` ancestors (the nearest by default) with counts of those left out
    on either side, and its first :data:`CHILDREN_SHOWN` children."""

    ancestors: int  # all of them
    page: int
    pages: int
    root: ImageView | None  # the oldest ancestor, when the page does not reach it
    older: int  # ancestors left out between the root and ``shown``
    shown: list[ImageView]  # oldest first
    newer: int  # ancestors left out between ``shown`` and the image (on earlier pages)
    children: list[ImageView]
    child_counts: dict[int, int]  # of each child shown: its own children
    more_children: int  # children not listed
    descendants: int  # images made from this one, at any depth


def image_lineage(image: Image, links: Links, page: int = 1) -> ImageLineage:
    """Page ``page`` of the image's ancestry (1: the nearest), and its children. The ancestor
    ids come from one recursive query; only the images listed are loaded."""
    studio = image.studio
    engine = studio.engine
    ancestor_ids = image.ancestor_ids()
    pages = max(1, -(-len(ancestor_ids) // ANCESTORS_SHOWN))
    page = min(max(page, 1), pages)
    end = len(ancestor_ids) - (page - 1) * ANCESTORS_SHOWN
    start = max(0, end - ANCESTORS_SHOWN)
    root_id = ancestor_ids[0] if start > 0 else None
    wanted = ([root_id] if root_id is not None else []) + ancestor_ids[start:end]
    loaded = studio.lookups.images_by_id(wanted)
    listed = studio.children(image, limit=CHILDREN_SHOWN)
    all_children = lineage_queries.child_counts(engine, [image.id])[image.id]
    views = {
        key: image_view(found, links, references=(), tags=(), checks={}, casts={})
        for key, found in loaded.items()
    }
    return ImageLineage(
        ancestors=len(ancestor_ids),
        page=page,
        pages=pages,
        root=views.get(root_id) if root_id is not None else None,
        older=start - 1 if root_id is not None else 0,
        shown=[views[key] for key in ancestor_ids[start:end] if key in views],
        newer=len(ancestor_ids) - end,
        children=[
            image_view(child, links, references=(), tags=(), checks={}, casts={})
            for child in listed
        ],
        child_counts=lineage_queries.child_counts(engine, [child.id for child in listed]),
        more_children=all_children - len(listed),
        descendants=lineage_queries.descendant_count(engine, image.id) if listed else 0,
    )


# --------------------------------------------------------------------------- formatting


def format_cost(cost: str | None, status: str = ImageStatus.SUCCEEDED) -> str:
    if cost is None:
        return "—" if status == ImageStatus.PENDING else "unknown"
    try:
        amount = Decimal(cost)
    except InvalidOperation:
        return cost
    return "free" if amount == 0 else _dollars(amount)


def _dollars(amount: Decimal) -> str:
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M")


def format_bytes(size: int | None) -> str:
    if not size:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- rendering


class Pages:
    """The HTML templates: the user's folder first, then the packaged ``templates/``.

    Autoescaping is on (unlike the prompt composer's environment, which must emit text exactly
    as written) and rendering is sandboxed and strict, like every template onmodel runs.
    """

    def __init__(self, user_dir: Path | None = None) -> None:
        self.packaged_dir = templates_dir()
        self.user_dir = user_dir
        self.env = template_environment(user_dir, autoescape=True)
        self.env.filters["bytes"] = format_bytes
        self.env.globals["asset"] = self.asset

    def render(self, name: str, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {name!r} not found") from exc

    def render_macro(self, name: str, macro: str, *args: Any) -> str:
        """One macro of a template, for the fragments the web UI sends to a live page."""
        module = self.env.get_template(name).module
        return str(getattr(module, macro)(*args))

    def asset(self, name: str) -> Markup:
        """A static file's text, for inlining into a page that must stand alone."""
        loader = self.env.loader
        assert loader is not None
        try:
            source, _, _ = loader.get_source(self.env, name)
        except TemplateNotFound as exc:
            raise TemplateError(f"asset {name!r} not found") from exc
        return Markup(source)  # our own CSS file, inlined on purpose: not user input
