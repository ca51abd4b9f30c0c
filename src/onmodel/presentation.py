"""View models and HTML rendering shared by the exported contact sheet (``onmodel export``)
and the web UI (``onmodel serve``); outside ``onmodel.web`` so the export never imports the
server.

Templates get plain, already-formatted values (costs as text, request fields in a fixed order,
colours checked) so that both outputs show an image the same way and a user-edited template can
never reach the database. Where an image's pixels live differs per output: the export embeds
thumbnails and links files beside ``index.html``; the server links its own URLs. That is the one
thing each caller supplies, as a :class:`Links`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from jinja2 import TemplateNotFound
from markupsafe import Markup

from onmodel.composer import template_environment
from onmodel.errors import TemplateError
from onmodel.handles import Character, Image, Reference, Session
from onmodel.lineage import Row
from onmodel.providers import is_manual
from onmodel.resources import templates_dir
from onmodel.status import ImageStatus, status_mark
from onmodel.store.queries import references_of
from onmodel.thumbnails import CARD_SIZE, MINI_SIZE

REQUEST_ORDER = ("expression", "pose", "action", "outfit", "scene", "text")

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


@dataclass(frozen=True)
class ErrorView:
    type: str
    code: str | None
    message: str
    categories: tuple[str, ...]


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
    manual: bool
    file: str | None
    thumb: str | None
    mini: str | None
    page: str
    export_name: str | None = None

    @property
    def rev(self) -> str:
        return row_rev(self.status, self.starred, self.rating, self.note, self.sha256, self.error)

    @property
    def dimensions(self) -> str:
        return f"{self.width}×{self.height}" if self.width and self.height else ""


@dataclass(frozen=True)
class LineageNode:
    """One image of the lineage view, as drawn: its :class:`~onmodel.lineage.Row`.

    The view is a flat list, one of these per image in drawing order, and the template opens
    and closes columns from the row's markers: a recursive macro would nest one call per fork
    (and Jinja has Python's recursion limit).
    """

    image: ImageView
    line: Row  # a drawing row of the lineage, not a database row

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
    starred: int
    cost: str


@dataclass
class SessionView:
    slug: str
    title: str
    provider: str
    model: str
    head_id: int | None
    character: CharacterView
    images: list[ImageView] = field(default_factory=list)
    lineage: list[LineageNode] = field(default_factory=list)

    @property
    def summary(self) -> Summary:
        return summarise(self.images)

    @property
    def version(self) -> str:
        return _version([(v.id, v.rev) for v in self.images], self.head_id)


def row_rev(
    status: str,
    starred: bool,
    rating: int,
    note: str,
    sha256: str | None,
    error: ErrorView | None,
) -> str:
    """Changes whenever a card would look different, so pages replace only stale cards."""
    state = [str(status), starred, rating, note, sha256, error]  # str: an ImageStatus's value
    return hashlib.sha1(repr(state).encode(), usedforsecurity=False).hexdigest()[:12]


def session_version(session: Session) -> str:
    """:attr:`SessionView.version` straight from the rows: what a poll compares, cheaply
    (no references, thumbnails or templates), before deciding whether to render anything."""
    images = session.tree().walk()
    parts = [
        (
            image.id,
            row_rev(
                image.status,
                image.starred,
                image.rating or 0,
                image.note,
                image.sha256,
                _error_view(image),
            ),
        )
        for image in images
    ]
    return _version(parts, session.studio.session(session.id).head_image_id)


def _version(parts: list[tuple[int, str]], head_id: int | None) -> str:
    data = json.dumps([sorted(parts), head_id]).encode()
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16]


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
) -> ImageView:
    """``references`` when the caller has read them already (for many images at once);
    otherwise they are read here."""
    error = _error_view(image)
    asked = image.request.model_dump()
    request = tuple((key, str(asked[key])) for key in REQUEST_ORDER if asked.get(key)) + tuple(
        (str(k), str(v)) for k, v in sorted(asked.items()) if k not in REQUEST_ORDER and v
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
        manual=image.status == ImageStatus.PENDING and is_manual(image.provider),
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
        description=character.description,
        traits=traits,
        swatches=tuple(swatches),
        anchor_id=character.anchor_image_id,
    )


def session_view(
    session: Session,
    links: Links,
    *,
    keep: Callable[[Image], bool] | None = None,
    names: dict[int, str] | None = None,
) -> SessionView:
    """The session's images (anchor first, then in the order they were asked for) and lineage.

    Images from other sessions that a shot here branched from are included: without them the
    lineage would have a hole.
    """
    whole = session.lineage()
    every = session.studio.lookups.images_by_id(whole.order())
    shown = whole.prune(lambda key: keep(every[key])) if keep is not None else whole
    ordered = sorted(
        (every[key] for key in shown.order()),
        key=lambda i: (0 if i.kind in ("anchor", "import") else 1, i.id),
    )
    references = references_of(session.studio.engine, [image.id for image in ordered])
    views = {
        image.id: image_view(
            image,
            links,
            export_name=(names or {}).get(image.id),
            references=[Reference.from_row(r) for r in references[image.id]],
        )
        for image in ordered
    }
    for key, view in views.items():  # a parent on the same page is a jump, not a new page
        if view.parent_id in views:
            views[key] = replace(view, parent_href=f"#image-{view.parent_id}")
    character = session.character
    return SessionView(
        slug=session.slug,
        title=session.title,
        provider=session.provider,
        model=session.model,
        head_id=session.studio.session(session.id).head_image_id,
        character=character_view(character),
        images=[views[image.id] for image in ordered],
        lineage=[
            LineageNode(views[row.key], row) for row in shown.rows() if isinstance(row.key, int)
        ],
    )


def summarise(images: Iterable[ImageView]) -> Summary:
    listed = list(images)
    total = Decimal(0)
    unknown = 0
    for view in listed:
        if view.status not in (ImageStatus.SUCCEEDED, ImageStatus.FAILED):
            continue
        if view.cost_usd is None:
            unknown += 1 if view.status == ImageStatus.SUCCEEDED else 0
            continue
        try:
            total += Decimal(view.cost_usd)
        except InvalidOperation:
            unknown += 1
    cost = "free" if total == 0 and not unknown else _dollars(total)
    if unknown:
        cost += f" + {unknown} unknown"
    return Summary(
        images=len(listed),
        succeeded=sum(v.status == ImageStatus.SUCCEEDED for v in listed),
        failed=sum(v.status in (ImageStatus.FAILED, ImageStatus.INTERRUPTED) for v in listed),
        pending=sum(v.status == ImageStatus.PENDING for v in listed),
        starred=sum(v.starred for v in listed),
        cost=cost,
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
