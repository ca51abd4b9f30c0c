"""The local web UI as a plain WSGI application: browse, annotate, branch, watch shots finish.

A dozen routes do not need a framework: the standard library parses forms and speaks WSGI, and
Jinja (already a dependency) renders the pages. Pages work without JavaScript (forms post and
redirect); ``static/app.js`` only makes them nicer (no reloads, live updates).

The server holds the keys to a paid API, so it guards itself like one: requests must name a
host it serves (so a DNS-rebinding page cannot talk to it), and state-changing POSTs must come
from its own origin (so another site cannot star, annotate or spend through a user's browser).
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from onmodel.checkview import check_dict
from onmodel.errors import InvalidImageError, NotFoundError, OnmodelError, UsageError
from onmodel.handles import Image, Session
from onmodel.imagefile import MIME_TYPES
from onmodel.limits import MAX_ID, MAX_IMAGE_BYTES
from onmodel.lineage import Fold, LineageIndex, cast_text, image_casts
from onmodel.presentation import (
    REQUEST_ORDER,
    WHOLE_LINEAGE,
    CardsWindow,
    GridFilter,
    ImageLineage,
    LineageWindow,
    Pages,
    SessionView,
    card_views,
    character_view,
    check_view,
    grid_view,
    image_lineage,
    image_view,
    session_view,
)
from onmodel.status import ImageStatus
from onmodel.store.records import CheckRecord
from onmodel.studio import Studio
from onmodel.thumbnails import THUMBNAIL_MIME, THUMBNAIL_SIZES, Thumbnailer
from onmodel.web.cache import SessionCache
from onmodel.web.forms import shot_choices
from onmodel.web.jobs import ShotRunner, TooBusyError
from onmodel.web.uploads import read_upload

MAX_BODY = 256 * 1024
# A picture uploaded to finish a ChatGPT shot may be as large as any image onmodel takes, and
# the form's few other fields come with it; only that route takes such a body (body_limit).
MAX_UPLOAD_BODY = MAX_IMAGE_BYTES + 64 * 1024
UPLOAD_PATH = re.compile(r"^/images/(?P<id>[0-9]+)/attach$")
RATINGS = {str(n): n for n in range(6)}
THUMBNAILS = {str(size): size for size in THUMBNAIL_SIZES}
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(css|js|svg|png|ico)$")
STATIC_TYPES = {
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]
# What a session page's address may choose (see LineageWindow, CardsWindow); pagers keep them.
LINEAGE_CHOICES = ("from", "depth", "limit", "all", "page")
CARD_CHOICES = ("before", "after")
GRID_CHOICES = ("starred", "failed", "tag", "hidden")  # what a grid page's pager keeps
CHANGES_SENT = 100  # changed cards a poll sends; more, and the page reloads instead

StartResponse = Callable[..., Any]


class HttpError(Exception):
    """A request refused for how it was sent (its framing, not its content), with the status
    that tells the client what to fix."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    path: str
    query: dict[str, str]
    _form: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        raw = environ.get("PATH_INFO", "/") or "/"
        # WSGI hands the path over as latin-1 decoded bytes; undo that to get real UTF-8 text.
        path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        return cls(environ, environ.get("REQUEST_METHOD", "GET").upper(), path, query)

    def header(self, name: str) -> str:
        return str(self.environ.get("HTTP_" + name.upper().replace("-", "_"), ""))

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.header("Accept")

    def body_length(self) -> int:
        """The declared size of the body, refused before a byte of it is read: a negative or
        garbled length cannot be trusted, and an oversized one need not be waited for."""
        declared = str(self.environ.get("CONTENT_LENGTH") or "").strip()
        if not declared:
            return 0
        if not _is_digits(declared):
            raise HttpError(
                HTTPStatus.BAD_REQUEST,
                f"Content-Length must be a number of bytes, not {_shown(declared)}",
            )
        limit = body_limit(self.method, self.path)
        length = _up_to(declared, limit)
        if length is None:
            too_big = (
                f"a picture is at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB"
                if limit == MAX_UPLOAD_BODY
                else f"a request body holds at most {MAX_BODY} bytes"
            )
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, too_big)
        return length

    def form(self) -> dict[str, str]:
        """The POSTed fields, from a urlencoded form or a JSON object."""
        if self._form is not None:
            return self._form
        body = self._body()
        kind = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                data = json.loads(body or b"{}")
            except ValueError as exc:
                raise UsageError("the request body is not valid JSON") from exc
            if not isinstance(data, dict):
                raise UsageError("send a JSON object")
            fields = {str(k): "" if v is None else str(v) for k, v in data.items()}
        else:
            parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            fields = {k: v[-1] for k, v in parsed.items()}
        self._form = fields
        return fields

    def _body(self) -> bytes:
        """Exactly the declared bytes; a client that stopped sending early is told so rather
        than having half a form acted on."""
        length = self.body_length()
        body: bytes = self.environ["wsgi.input"].read(length) if length else b""
        if len(body) < length:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the request body is shorter than declared")
        return body


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), headers=[("Cache-Control", "no-store")])

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        return cls(status, body, "application/json", [("Cache-Control", "no-store")])

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A redirect to ``location``, percent-encoded: a slug may be ミア, and a header
        holds ASCII only."""
        return cls(
            HTTPStatus.SEE_OTHER, b"", headers=[("Location", quote(location, safe="/?#=&%:"))]
        )


Handler = Callable[[Request, re.Match[str]], Response]


class _WebLinks:
    """The server's own URLs for an image's file, thumbnails and page, and a fold's view."""

    def file(self, image: Image) -> str | None:
        return f"/files/{image.id}"

    def thumb(self, image: Image, size: int) -> str | None:
        return f"/thumbs/{image.id}/{size}"

    def page(self, image: Image) -> str:
        return f"/images/{image.id}"

    def parent(self, parent_id: int) -> str | None:
        return f"/images/{parent_id}"

    def fold(self, fold: Fold) -> str | None:
        return f"?from={fold.open_id}"  # the same session page, its lineage started there


@dataclass(frozen=True)
class _Nav:
    """Where a session page's pagers lead, each keeping what else the page was asked for."""

    earlier_lines: str | None
    later_lines: str | None
    head: str | None  # back to the head's neighbourhood, when another window is shown
    everything: str | None  # the whole lineage, a page of lines at a time
    newer: str | None
    older: str | None
    newest: str | None
    oldest: str | None


class GalleryApp:
    """The WSGI application. ``allowed_hosts`` (``host:port`` values) guards the Host header;
    ``None`` accepts any, for ``--allow-remote``."""

    def __init__(
        self,
        studio: Studio,
        *,
        allowed_hosts: Iterable[str] | None = None,
        max_running: int = 4,
    ) -> None:
        self.studio = studio
        self.pages = Pages(studio.paths.templates)
        # Each rendered shot form gets a fresh idempotency key (see onmodel.web.jobs).
        self.pages.env.globals["new_key"] = lambda: secrets.token_hex(16)
        self.thumbnails = Thumbnailer(studio.blobs, studio.paths.thumbnails)
        self.runner = ShotRunner(studio, max_running=max_running)
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self.links = _WebLinks()
        self.cache = SessionCache(studio)
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/$"), self.index),
            ("GET", re.compile(r"^/sessions/(?P<slug>[^/]+)$"), self.session_page),
            ("GET", re.compile(r"^/sessions/(?P<slug>[^/]+)/grid$"), self.grid_page),
            ("GET", re.compile(r"^/images/(?P<id>[0-9]+)$"), self.image_page),
            ("GET", re.compile(r"^/files/(?P<id>[0-9]+)$"), self.file),
            ("GET", re.compile(r"^/thumbs/(?P<id>[0-9]+)/(?P<size>[0-9]+)$"), self.thumb),
            ("GET", re.compile(r"^/static/(?P<name>[^/]+)$"), self.static),
            ("GET", re.compile(r"^/api/sessions/(?P<slug>[^/]+)$"), self.session_state),
            ("GET", re.compile(r"^/api/images/(?P<id>[0-9]+)$"), self.image_json),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/annotate$"), self.annotate),
            ("POST", re.compile(r"^/shots$"), self.new_shot),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/retry$"), self.retry),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/tags$"), self.tag),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/hide$"), self.hide),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/head$"), self.move_head),
            ("POST", re.compile(r"^/images/(?P<id>[0-9]+)/anchor$"), self.promote_anchor),
            ("POST", UPLOAD_PATH, self.attach),
        ]

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = Request.from_environ(environ)
        try:
            response = self._guard(request) or self._dispatch(request)
        except HttpError as exc:
            response = self._error(request, exc.status, str(exc))
        except NotFoundError as exc:
            response = self._error(request, HTTPStatus.NOT_FOUND, str(exc))
        except TooBusyError as exc:
            response = self._error(request, HTTPStatus.TOO_MANY_REQUESTS, str(exc))
        except UsageError as exc:
            response = self._error(request, HTTPStatus.BAD_REQUEST, str(exc))
        except OnmodelError as exc:
            response = self._error(request, HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            message = f"unexpected {type(exc).__name__}: {exc}"
            response = self._error(request, HTTPStatus.INTERNAL_SERVER_ERROR, message)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *SECURITY_HEADERS,
            *response.headers,
        ]
        reason = HTTPStatus(response.status).phrase
        start_response(f"{response.status} {reason}", headers)
        return [b""] if request.method == "HEAD" else [response.body]

    def _dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: list[str] = []
        for verb, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if verb == method:
                return handler(request, match)
            allowed.append(verb)
        if allowed:
            response = self._error(request, HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
            response.headers.append(("Allow", ", ".join(sorted(set(allowed)))))
            return response
        raise NotFoundError(f"nothing at {request.path}")

    def _guard(self, request: Request) -> Response | None:
        """Refuse foreign Host headers (DNS rebinding), cross-origin POSTs (CSRF), and bodies
        that are malformed or too large, whatever the route."""
        host = request.header("Host").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return self._error(
                request, HTTPStatus.MISDIRECTED_REQUEST, f"this server does not answer {host!r}"
            )
        if request.method not in ("GET", "HEAD") and not _same_origin(request, host):
            return self._error(request, HTTPStatus.FORBIDDEN, "cross-origin request refused")
        request.body_length()
        return None

    def _error(self, request: Request, status: int, message: str) -> Response:
        if request.wants_json or request.path.startswith("/api/"):
            return Response.json({"error": message}, status)
        html = self.pages.render(
            "web/error.html.j2", status=status, reason=HTTPStatus(status).phrase, message=message
        )
        return Response.html(html, status)

    # ------------------------------------------------------------------ pages

    def index(self, request: Request, match: re.Match[str]) -> Response:
        """Every character with its anchor, the sessions it leads (with their shots) and
        those it is cast in: read for all the characters at once, a few statements however
        many there are."""
        studio = self.studio
        found = studio.characters()
        sessions = studio.sessions()
        counts = studio.image_counts(sessions)
        by_id = {session.id: session for session in sessions}
        led: dict[int, list[Session]] = {}
        for session in sessions:
            led.setdefault(session.character_id, []).append(session)
        cast_in = studio.lookups.sessions_cast_in(found)
        anchor_ids = [c.anchor_image_id for c in found if c.anchor_image_id is not None]
        anchors = studio.lookups.images_by_id(anchor_ids)
        characters = []
        for character in found:
            key = character.anchor_image_id
            anchor = anchors.get(key) if key is not None else None
            characters.append(
                {
                    "character": character_view(character),
                    # a frame shows its picture alone: no cast, references, tags or checks
                    "anchor": image_view(
                        anchor, self.links, references=(), tags=(), checks={}, casts={}
                    )
                    if anchor
                    else None,
                    "sessions": [
                        {"session": s, "images": counts[s.id]} for s in led.get(character.id, [])
                    ],
                    "cast_in": [by_id[k] for k in cast_in[character.id] if k in by_id],
                }
            )
        current = self.studio.current_session()
        return Response.html(
            self.pages.render(
                "web/index.html.j2",
                characters=characters,
                current=current.slug if current else None,
            )
        )

    def session_page(self, request: Request, match: re.Match[str]) -> Response:
        """A page of the session: the lineage window and page of cards its address asks for
        (the head's neighbourhood and the newest cards by default), and its totals."""
        session = self.studio.session(_session_ref(match["slug"]))
        stamp = self.studio.session_stamp(session)  # before what it stands for (see cache)
        view = self._session_view(session, self.cache.lineage(session, stamp), request.query)
        if members := session.members:
            view = replace(view, cast=cast_text([view.character, *members]))
        head = view.head_id
        branchable = [v for v in view.images if v.status == ImageStatus.SUCCEEDED]
        return Response.html(
            self.pages.render(
                "web/session.html.j2",
                session=view,
                summary=self.cache.summary(session, stamp),
                version=stamp,
                nav=_nav(request.query, view),
                branchable=branchable,
                head_listed=head is None or any(v.id == head for v in branchable),
                fields=REQUEST_ORDER,
                choices=shot_choices(self.studio, session),
            )
        )

    def _session_view(
        self, session: Session, index: LineageIndex, query: Mapping[str, str]
    ) -> SessionView:
        return session_view(
            session,
            self.links,
            index=index,
            window=_lineage_window(query),
            cards=_cards_window(query),
        )

    def grid_page(self, request: Request, match: re.Match[str]) -> Response:
        """A page of the session's shots as small tiles beside the anchor, filtered as the
        address asks (``starred``, ``failed``, ``tag``, ``hidden``), older pages by
        ``before``."""
        session = self.studio.session(_session_ref(match["slug"]))
        query = request.query
        tag = query.get("tag", "").strip()
        chosen = GridFilter(
            starred=_flag(query.get("starred", ""), "starred"),
            failed=_flag(query.get("failed", ""), "failed"),
            tag=tag or None,
            hidden=_flag(query.get("hidden", ""), "hidden"),
        )
        before = query.get("before")
        grid = grid_view(
            session, self.links, chosen, before=_row_id(before, "image") if before else None
        )
        path = f"/sessions/{session.slug}/grid"
        kept = {k: v for k, v in query.items() if k in GRID_CHOICES and v}
        older = {**kept, "before": str(grid.older)} if grid.older is not None else None
        return Response.html(
            self.pages.render(
                "web/grid.html.j2",
                grid=grid,
                chosen=chosen,
                newest=(f"{path}?{urlencode(kept)}" if kept else path) if grid.newer else None,
                older=f"{path}?{urlencode(older)}" if older is not None else None,
            )
        )

    def image_page(self, request: Request, match: re.Match[str]) -> Response:
        """Everything about one image: its card, lineage, every check of it with the result
        of each trait (oldest first), and the forms that act on it."""
        image = self.studio.image(_row_id(match["id"], "image"))
        character = self.studio.character(image.character_id)
        sessions = self.studio.sessions(character)
        own = self.studio.session(image.session_id) if image.session_id else None
        into = own or (sessions[0] if sessions else None)  # the form's session at first
        casts = image_casts([image])  # who is in it: its card and its record both say
        view = image_view(image, self.links, casts=casts)
        anchor = character.anchor if view.manual else None  # the file a new chat starts with
        return Response.html(
            self.pages.render(
                "web/image.html.j2",
                img=view,
                primer=own.instructions if view.manual and own is not None else "",
                anchor=image_view(anchor, self.links, tags=(), casts={})
                if anchor is not None
                else None,
                max_upload=MAX_IMAGE_BYTES,
                character=character_view(character),
                family=image_lineage(image, self.links, _page(request.query, "ancestors")),
                checks=[check_view(record) for record in self._checks(image)],
                sessions=sessions,
                own_session=own,
                record=json.dumps(
                    image.to_dict(cast=casts[image.id]), indent=2, ensure_ascii=False, default=str
                ),
                fields=REQUEST_ORDER,
                choices=shot_choices(self.studio, into) if into is not None else None,
            )
        )

    # ------------------------------------------------------------------ files

    def file(self, request: Request, match: re.Match[str]) -> Response:
        """The original, exactly as stored; its digest is a perfect ETag."""
        image = self.studio.image(_row_id(match["id"], "image"))
        if image.sha256 is None or image.format is None:
            raise NotFoundError(f"image {image.id} has no file ({image.status})")
        etag = f'"{image.sha256}"'
        caching = [("ETag", etag), ("Cache-Control", "private, max-age=31536000, immutable")]
        if request.header("If-None-Match") == etag:
            return Response(HTTPStatus.NOT_MODIFIED, b"", headers=caching)
        data = image.read_bytes()
        mime = MIME_TYPES.get(image.format, "application/octet-stream")
        return Response(200, data, mime, caching)

    def thumb(self, request: Request, match: re.Match[str]) -> Response:
        size = THUMBNAILS.get(match["size"])
        if size is None:
            raise NotFoundError(f"no thumbnail size {_shown(match['size'])}")
        image = self.studio.image(_row_id(match["id"], "image"))
        if image.sha256 is None or image.format is None:
            raise NotFoundError(f"image {image.id} has no file ({image.status})")
        etag = f'"{image.sha256}-{size}"'
        caching = [("ETag", etag), ("Cache-Control", "private, max-age=31536000, immutable")]
        if request.header("If-None-Match") == etag:
            return Response(HTTPStatus.NOT_MODIFIED, b"", headers=caching)
        data = self.thumbnails.read(image.sha256, image.format, size)
        return Response(200, data, THUMBNAIL_MIME, caching)

    def static(self, request: Request, match: re.Match[str]) -> Response:
        name = match["name"]
        if not STATIC_NAME.match(name):
            raise NotFoundError(f"no static file {name!r}")
        for root in (self.studio.paths.templates, self.pages.packaged_dir):
            path = root / "web" / "static" / name
            if path.is_file():
                kind = STATIC_TYPES[name.rsplit(".", 1)[1]]
                return Response(200, path.read_bytes(), kind, [("Cache-Control", "no-cache")])
        raise NotFoundError(f"no static file {name!r}")

    # ------------------------------------------------------------------ live data

    def session_state(self, request: Request, match: re.Match[str]) -> Response:
        """What the session page polls: nothing but the stamp when ``v`` (the page's) is
        current; else the cards that changed since, the ids of the images hidden since
        (``gone``: they leave the page), the lineage panel and the totals.

        The page sends its own address's choices (which lineage window, which cards) and its
        head, whose card changes look when the head moves on. Cards are rendered here with
        the same macros as the page, so the page only swaps elements and never needs a
        template of its own. More changes than :data:`CHANGES_SENT`: the page reloads.
        """
        session = self.studio.session(_session_ref(match["slug"]))
        stamp = self.studio.session_stamp(session)  # before what it stands for (see cache)
        seen = request.query.get("v", "")
        if seen == stamp:
            return Response.json({"version": stamp, "unchanged": True})
        changed = self.studio.images_changed_since(session, seen, CHANGES_SENT)
        if len(changed) >= CHANGES_SENT:
            return Response.json({"version": stamp, "reload": True})
        head = session.head_image_id
        shown = request.query.get("head")
        was = _row_id(shown, "image") if shown else None
        if was != head:  # the old head's card loses its badge, the new one's gains it
            known = {image.id for image in changed}
            missing = [key for key in (was, head) if key is not None and key not in known]
            changed += self.studio.lookups.images_by_id(missing).values()
        index = self.cache.lineage(session, stamp)  # the session's shown images, as of now
        view = self._session_view(session, index, request.query)
        template = "web/_gallery.html.j2"
        shown_now = sorted((i for i in changed if i.id in index), key=lambda image: image.id)
        cards = card_views(self.studio, shown_now, self.links)
        return Response.json(
            {
                "version": stamp,
                "head": head,
                "gone": sorted({image.id for image in changed if image.id not in index}),
                "images": [
                    {
                        "id": v.id,
                        "status": v.status,
                        "rev": v.rev + ("-head" if v.id == head else ""),  # as the card's
                        "html": self.pages.render_macro(template, "card", v, "web", head),
                    }
                    for v in cards
                ],
                "lineage": self.pages.render_macro(
                    template, "lineage_panel", view, _nav(request.query, view)
                ),
                "summary": self.pages.render_macro(
                    template, "chips", self.cache.summary(session, stamp)
                ),
                "branchable": [
                    {"id": v.id, "label": f"#{v.id} {v.label}"}
                    for v in cards
                    if v.status == ImageStatus.SUCCEEDED
                ],
            }
        )

    def image_json(self, request: Request, match: re.Match[str]) -> Response:
        """The image's record, with its lineage bounded as on its page: a page of ancestors
        (``?ancestors=N``), its first children, and counts of the rest."""
        image = self.studio.image(_row_id(match["id"], "image"))
        family = image_lineage(image, self.links, _page(request.query, "ancestors"))
        checks = [check_dict(record) for record in self._checks(image)]
        return Response.json({**image.to_dict(), **_lineage_json(family), "checks": checks})

    def _checks(self, image: Image) -> list[CheckRecord]:
        """Every check of the image, oldest first."""
        return self.studio.checks_of([image.id]).get(image.id, [])

    # ------------------------------------------------------------------ changes

    def annotate(self, request: Request, match: re.Match[str]) -> Response:
        form = request.form()
        starred = _flag(form["starred"], "starred") if "starred" in form else None
        rating = _rating(form["rating"]) if "rating" in form else None
        note = form.get("note")
        image_id = _row_id(match["id"], "image")
        image = self.studio.annotate_image(image_id, starred=starred, rating=rating, note=note)
        if request.wants_json:
            return Response.json({"image": image.to_dict(), "html": self._card(image)})
        back = self._back(request, image)
        return Response.redirect(back)

    def tag(self, request: Request, match: re.Match[str]) -> Response:
        """Add the tags of ``add`` (comma-separated), or take the tag ``remove`` off."""
        form = request.form()
        image_id = _row_id(match["id"], "image")
        removed = form.get("remove")
        if removed is not None:
            self.studio.tag_image(image_id, [removed], remove=True)
        else:
            self.studio.tag_image(
                image_id, [t for t in form.get("add", "").split(",") if t.strip()]
            )
        image = self.studio.image(image_id)
        if request.wants_json:
            return Response.json({"image": image.to_dict(), "html": self._card(image)})
        return Response.redirect(self._back(request, image))

    def hide(self, request: Request, match: re.Match[str]) -> Response:
        """Hide the image (``hidden=1``) or show it again (``hidden=0``)."""
        hidden = _flag(request.form().get("hidden", "1"), "hidden")
        image_id = _row_id(match["id"], "image")
        change = self.studio.hide_images if hidden else self.studio.unhide_images
        (image,) = change([image_id])
        if request.wants_json:
            return Response.json({"id": image.id, "hidden": hidden})
        return Response.redirect(self._back(request, image))

    def move_head(self, request: Request, match: re.Match[str]) -> Response:
        """Make the image its session's head: the next shot continues from it."""
        image = self.studio.image(_row_id(match["id"], "image"))
        if image.session_id is None:
            raise UsageError(f"image {image.id} is in no session: it cannot be a session's head")
        session = self.studio.move_head(image.session_id, image)
        if request.wants_json:
            return Response.json({"session": session.slug, "head": session.head_image_id})
        return Response.redirect(self._back(request, image))

    def promote_anchor(self, request: Request, match: re.Match[str]) -> Response:
        """Make the image its character's anchor; earlier shots keep the one they used."""
        image = self.studio.image(_row_id(match["id"], "image"))
        character = self.studio.promote_anchor(image)
        if request.wants_json:
            return Response.json({"character": character.slug, "anchor": image.id})
        return Response.redirect(self._back(request, image))

    def attach(self, request: Request, match: re.Match[str]) -> Response:
        """Finish a pending ChatGPT shot with the picture the user saved from the app, as
        ``onmodel attach`` does: the form's body (kept in a file by the server) is read a
        chunk at a time, its picture written to a temporary folder under the name the
        browser gave it, and handed to :meth:`Studio.attach`."""
        image = self.studio.image(_row_id(match["id"], "image"))
        kind = str(request.environ.get("CONTENT_TYPE", ""))
        with tempfile.TemporaryDirectory(prefix="onmodel-upload-") as folder:
            upload = read_upload(
                request.environ["wsgi.input"],
                request.body_length(),
                kind,
                Path(folder),
                file_field="picture",
                max_file=MAX_IMAGE_BYTES,
            )
            if upload.file is None or not upload.filename:
                raise UsageError("choose the picture ChatGPT made, then attach it")
            gen_id = upload.fields.get("gen_id", "").strip() or None
            try:
                done = self.studio.attach(image, upload.file, gen_id=gen_id)
            except InvalidImageError as exc:  # said of the user's file, not of our copy
                raise InvalidImageError(
                    str(exc).replace(str(upload.file), upload.filename)
                ) from None
        if request.wants_json:
            return Response.json({"id": done.id, "status": done.status, "html": self._card(done)})
        return Response.redirect(f"/images/{done.id}")

    def new_shot(self, request: Request, match: re.Match[str]) -> Response:
        """Plan now (so a mistake is reported on the spot), generate in the background."""
        form = request.form()
        key = form.get("key", "").strip().lower()
        session_ref = form.get("session", "").strip()
        session = self.studio.session(_session_ref(session_ref) if session_ref else None)
        image_id = self.runner.find(key)
        warnings: tuple[str, ...] = ()
        if image_id is None:
            fields = {name: _field(form.get(name, "")) for name in REQUEST_ORDER}
            from_text = form.get("from", "").strip()
            from_image = _row_id(from_text, "image") if from_text else None
            choices = shot_choices(self.studio, session)
            provider, params = choices.chosen(form)
            joining, place = choices.cast(form)
            # Through the session, as the CLI and the library plan: a form left empty is
            # refused (EmptyRequestError) instead of paying for "the same character".
            plan = session.plan(
                fields["text"],
                pose=fields["pose"],
                outfit=fields["outfit"],
                expression=fields["expression"],
                scene=fields["scene"],
                action=fields["action"],
                with_=joining,
                set_=place,
                from_image=from_image,
                provider=provider,
                params=params,
            )
            warnings = plan.warnings
            image_id = self.runner.start(plan, key)
        image = self.studio.image(image_id)
        if request.wants_json:
            return Response.json(
                {
                    "id": image.id,
                    "status": image.status,
                    "session": session.slug,
                    "warnings": list(warnings),
                    "html": self._card(image, session),
                },
                HTTPStatus.ACCEPTED,
            )
        return Response.redirect(f"/sessions/{session.slug}#image-{image.id}")

    def retry(self, request: Request, match: re.Match[str]) -> Response:
        """Run a failed or interrupted shot again, as a new image, in the background (see
        :meth:`ShotRunner.retry`); its card joins the page with the poll."""
        form = request.form()
        failed = self.studio.image(_row_id(match["id"], "image"))
        image = self.studio.image(self.runner.retry(failed, form.get("key", "").strip().lower()))
        assert image.session_id is not None  # the runner retries only images in a session
        session = self.studio.session(image.session_id)
        if request.wants_json:
            return Response.json(
                {
                    "id": image.id,
                    "status": image.status,
                    "session": session.slug,
                    "retry_of": failed.id,
                    "html": self._card(image, session),
                },
                HTTPStatus.ACCEPTED,
            )
        return Response.redirect(f"/sessions/{session.slug}#image-{image.id}")

    def _card(self, image: Image, session: Session | None = None) -> str:
        view = image_view(image, self.links)
        head = None
        if session is None and image.session_id is not None:
            session = self.studio.session(image.session_id)
        if session is not None:
            head = self.studio.session(session.id).head_image_id
        return self.pages.render_macro("web/_gallery.html.j2", "card", view, "web", head)

    def _back(self, request: Request, image: Image) -> str:
        """Where a form without JavaScript returns to: the page it came from, if it is ours,
        with what its address chose (an older page of cards, a grid's filters)."""
        referer = urlsplit(request.header("Referer"))
        if referer.netloc.lower() == request.header("Host").lower() and referer.path:
            query = f"?{referer.query}" if referer.query else ""
            return f"{referer.path}{query}#image-{image.id}"
        return f"/images/{image.id}"


def body_limit(method: str, path: str) -> int:
    """The most a request's body may hold: a picture on the upload route, a small form
    anywhere else (so no other route can be sent 64 MB). The server asks too, to know how
    much of a body to wait for, and whether to keep it in a file rather than in memory."""
    if method == "POST" and UPLOAD_PATH.match(path):
        return MAX_UPLOAD_BODY
    return MAX_BODY


def _lineage_window(query: Mapping[str, str]) -> LineageWindow:
    """The lineage a session page's address asks for: ``from``, ``depth``, ``limit`` and
    ``all`` as ``onmodel tree`` takes them, and ``page``."""
    start = query.get("from")
    depth = query.get("depth")
    limit = query.get("limit")
    return LineageWindow(
        start=_row_id(start, "image") if start else None,
        depth=_count(depth, "depth") if depth else None,
        limit=_count(limit, "limit") if limit else None,
        everything=_flag(query.get("all", ""), "all"),
        page=_page(query, "page"),
    )


def _cards_window(query: Mapping[str, str]) -> CardsWindow:
    before = query.get("before")
    after = query.get("after")
    return CardsWindow(
        before=_row_id(before, "image") if before else None,
        after=_count(after, "after") if after and not before else None,
    )


def _nav(query: Mapping[str, str], view: SessionView) -> _Nav:
    """The pagers' links: lines of the lineage by page, cards by the ids at their ends."""
    path = f"/sessions/{view.slug}"  # the poll, too, draws the panel of this page
    page = _page(query, "page")
    chosen = _lineage_window(query).chosen
    folded = not chosen and view.lineage_size > WHOLE_LINEAGE
    ids = [v.id for v in view.images if v.session_id is not None]
    return _Nav(
        earlier_lines=_href(path, query, page=page - 1 if page > 2 else None) if page > 1 else None,
        later_lines=_href(path, query, page=page + 1) if view.more_lines else None,
        head=_href(path, query, **dict.fromkeys(LINEAGE_CHOICES)) if chosen else None,
        everything=_href(path, query, all=1, page=None) if folded else None,
        newer=_href(path, query, after=max(ids), before=None) if view.newer and ids else None,
        older=_href(path, query, before=min(ids), after=None) if view.older and ids else None,
        newest=_href(path, query, before=None, after=None) if view.newer else None,
        oldest=_href(path, query, before=None, after=0) if view.older else None,
    )


def _href(path: str, query: Mapping[str, str], **changes: int | None) -> str:
    """``path`` with the page's choices, ``changes`` made (None: dropped)."""
    chosen = {k: v for k, v in query.items() if k in LINEAGE_CHOICES + CARD_CHOICES}
    for key, value in changes.items():
        if value is None:
            chosen.pop(key, None)
        else:
            chosen[key] = str(value)
    return f"{path}?{urlencode(chosen)}" if chosen else path


def _lineage_json(family: ImageLineage) -> dict[str, Any]:
    """What ``/api/images/<id>`` says of an image's lineage: ids, bounded, and counts."""
    return {
        "ancestry": {
            "count": family.ancestors,
            "page": family.page,
            "pages": family.pages,
            "root": family.root.id if family.root is not None else None,
            "older": family.older,
            "ids": [v.id for v in family.shown],
            "newer": family.newer,
        },
        "children": {
            "ids": [v.id for v in family.children],
            "more": family.more_children,
        },
        "descendants": family.descendants,
    }


def _same_origin(request: Request, host: str) -> bool:
    """Browsers name the page a request comes from; it must be one of ours.

    ``Sec-Fetch-Site`` and ``Origin`` are set by every current browser on a cross-site POST;
    ``Referer`` covers older ones. A request with none of them is not from a browser page (curl,
    a script), so there is no victim whose browser could be borrowed.
    """
    site = request.header("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        return False
    scheme = request.environ.get("wsgi.url_scheme", "http")
    expected = f"{scheme}://{host}"
    origin = request.header("Origin")
    if origin:
        return origin.lower() == expected
    referer = request.header("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return True


def _flag(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no", ""):
        return False
    raise UsageError(f"{what} must be 1 or 0, not {_shown(value)}")


def _rating(value: str) -> int:
    text = value.strip() or "0"
    if text not in RATINGS:
        raise UsageError(f"a rating is a number from 1 to 5 (0 clears it), not {_shown(value)}")
    return RATINGS[text]


def _count(text: str, what: str) -> int:
    """A number of things from an address (0 or more), checked like an id."""
    if not _is_digits(text):
        raise UsageError(f"{what} is a number such as 12, not {_shown(text)}")
    found = _up_to(text, MAX_ID)
    return MAX_ID if found is None else found  # more than any series holds: all of it


def _page(query: Mapping[str, str], name: str) -> int:
    """A page number from an address (1, the first, when absent)."""
    text = query.get(name)
    return max(1, _count(text, name)) if text else 1


def _row_id(text: str, what: str) -> int:
    """An id from a URL or form, checked here so no number reaches the database that SQLite
    cannot hold (it would overflow into a 500, not a 404)."""
    if not _is_digits(text):
        raise UsageError(f"{what} ids are numbers such as 12, not {_shown(text)}")
    row_id = _up_to(text, MAX_ID)
    if row_id is None:
        raise NotFoundError(f"no {what} {_shown(text)}")
    return row_id


def _session_ref(ref: str) -> str | int:
    """A slug, or an id checked like an image's when the studio would read it as one (any
    ``str.isdigit`` text; slugs are never all digits)."""
    return _row_id(ref, "session") if ref.isdigit() else ref


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``int()`` also takes signs, spaces, underscores and other scripts'
    digits, and ``str.isdigit`` even superscripts that ``int()`` then refuses."""
    return text.isascii() and text.isdigit()


def _up_to(digits: str, limit: int) -> int | None:
    """``digits`` as a number, or None above ``limit``; a huge one is never converted, as
    ``int()`` refuses more than 4,300 digits."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        return None
    return int(significant)


def _shown(text: str) -> str:
    """User input quoted in a one-line error, cut short so a huge value cannot flood it."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _field(value: str) -> str:
    """One line, as the form's inputs are; its length is checked with the rest of the request."""
    return " ".join(value.split())
