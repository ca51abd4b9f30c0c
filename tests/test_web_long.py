"""The web pages of a long series (issue 12), as a user meets them: a session page shows the
head's neighbourhood with the rest of the lineage folded, and a page of cards; every image is
a fold's link or a page away, never dropped; an image page lists a bounded ancestry and pages
through the rest; the poll answers "unchanged" from the session's stamp and otherwise sends
only the cards that changed. Each request reads the same statements at any size.

The app is called in-process (no socket) on series written straight into the database, shaped
as a studio's grow: half the images on a main line, the rest in branches of 1-20 off it. No
test asserts on time: the machine is shared.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import event

from onmodel.handles import Session
from onmodel.presentation import ANCESTORS_SHOWN, CARDS_PER_PAGE, TILES_PER_PAGE
from onmodel.status import ImageStatus
from onmodel.store.models import ImageRow, SessionRow
from onmodel.store.rows import insert_rows, update_row
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp
from test_web_fixtures import Series

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series

LONG = 2_500
NODE = re.compile(r'<li class="node[^"]*" data-image-id="(\d+)" data-parent-id="(\d*)"')
FOLD = re.compile(r'<li class="fold" data-open-id="(\d+)"[^>]*>\s*<a class="[^"]*" href="([^"]+)"')


@dataclass(frozen=True)
class Grown:
    session: Session
    anchor: int
    ids: list[int]  # the session's images, in id order
    parents: dict[int, int]  # every image's parent (the anchor has none)
    head: int  # the end of the main line: the deepest image


def grow(studio: Studio, name: str, size: int, seed: int = 12) -> Grown:
    """A session of ``size`` images below a real anchor: a main line of half of them, each
    made from the last, and branches of 1-20 hanging off main-line images."""
    character = studio.create_character(name, prompt=f"{name}, a girl", provider="preview")
    session = character.start_session(provider="preview")
    anchor = character.anchor
    assert anchor is not None
    rng = random.Random(seed)
    with studio.engine.connect() as conn:
        first = int(conn.exec_driver_sql("SELECT MAX(id) FROM image").scalar_one()) + 1
    parents: dict[int, int] = {}
    main = [anchor.id]
    for image_id in range(first, first + size // 2):
        parents[image_id] = main[-1]
        main.append(image_id)
    next_id = first + size // 2
    while next_id < first + size:
        parent = rng.choice(main)
        for _ in range(min(rng.randint(1, 20), first + size - next_id)):
            parents[next_id] = parent
            parent = next_id
            next_id += 1
    rows = [
        {
            "id": image_id,
            "character_id": character.id,
            "session_id": session.id,
            "parent_id": parent_id,
            "kind": "shot",
            "status": ImageStatus.SUCCEEDED.value,
            "request": {"expression": f"step {image_id}"},
            "provider": "preview",
            "model": "",
        }
        for image_id, parent_id in parents.items()
    ]
    with studio.engine.begin() as conn:
        insert_rows(conn, ImageRow, rows)
        update_row(conn, SessionRow, session.id, {"head_image_id": main[-1]})
    return Grown(studio.session(session.id), anchor.id, sorted(parents), parents, main[-1])


@pytest.fixture
def long(studio: Studio) -> Grown:
    return grow(studio, "Rin", LONG)


@dataclass
class Reply:
    status: int
    text: str

    def json(self) -> dict[str, Any]:
        data = json.loads(self.text)
        assert isinstance(data, dict)
        return data


def get(app: GalleryApp, path: str) -> Reply:
    """A GET through the WSGI app, as the server would make it."""
    path, _, query = unescape(path).partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []
    body = b"".join(app(environ, lambda line, headers, *_: status.append(line)))
    return Reply(int(status[0].split()[0]), body.decode("utf-8"))


def panel(html: str) -> str:
    """The lineage panel of a session page."""
    start = html.index('<div id="lineage">')
    return html[start : html.index('<section aria-label="Shots">', start)]


def cards(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<article class="card[^"]*"\s+id="image-(\d+)"', html)]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a (?:class="[^"]*" )?href="([^"]+)" rel="{rel}"', html)
    return unescape(found.group(1)) if found else None


class Balance(HTMLParser):
    """Checks that every list and item a page opens it closes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.wrong: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("ol", "li", "div"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ol", "li", "div") and (not self.open or self.open.pop() != tag):
            self.wrong.append(tag)


def balanced(html: str) -> bool:
    check = Balance()
    check.feed(html)
    return not check.wrong and not check.open


@pytest.fixture
def statements(studio: Studio) -> Iterator[list[str]]:
    """Every SQL statement the studio's engine runs while the test does."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(studio.engine, "before_cursor_execute", count)
    yield seen
    event.remove(studio.engine, "before_cursor_execute", count)


# --------------------------------------------------------------------------- the session page


def test_a_long_series_page_shows_the_head_and_folds_the_rest(studio: Studio, long: Grown) -> None:
    app = GalleryApp(studio)
    page = get(app, f"/sessions/{long.session.slug}")
    assert page.status == 200
    assert len(page.text) < 400_000  # the whole series was 3 MB of HTML at 1,000 images
    lineage = panel(page.text)
    assert balanced(lineage)
    nodes = dict(NODE.findall(lineage))
    assert len(nodes) <= 60
    assert nodes[str(long.head)] == str(long.parents[long.head])
    head_line = lineage[lineage.index(f'data-image-id="{long.head}"') :]
    assert "head-tag" in head_line[: head_line.index("</a>")]
    folds = FOLD.findall(lineage)
    assert folds and all(href == f"?from={open_id}" for open_id, href in folds)
    assert "images folded" in lineage and f"{LONG + 1:,} images in all" in lineage
    # the newest cards, oldest of them first, and a way to the older ones
    assert cards(page.text) == long.ids[-CARDS_PER_PAGE:]
    older = f"/sessions/{long.session.slug}?before={long.ids[-CARDS_PER_PAGE]}"
    assert link(page.text, "next") == older

    # each fold's link opens what it folded: a lineage that starts there
    for open_id, href in folds:
        opened = get(app, f"/sessions/{long.session.slug}{href}")
        assert opened.status == 200
        lines = panel(opened.text)
        assert NODE.findall(lines)[0] == (open_id, "")  # the top of the view...
        assert f"from #{long.parents[int(open_id)]}</span>" in lines  # ...not a root
        assert "around the head" in opened.text


def test_paging_reaches_every_image_exactly_once(studio: Studio, long: Grown) -> None:
    app = GalleryApp(studio)
    slug = long.session.slug
    every = [long.anchor, *long.ids]

    # the whole lineage, a page of lines at a time: each page whole HTML, nothing folded
    seen: Counter[int] = Counter()
    parents: dict[int, int | None] = {}
    path: str | None = f"/sessions/{slug}?all=1"
    pages = 0
    while path is not None:
        html = get(app, path).text
        lineage = panel(html)
        assert balanced(lineage), path
        assert '<li class="fold"' not in lineage
        for image_id, parent_id in NODE.findall(lineage):
            seen[int(image_id)] += 1
            parents[int(image_id)] = int(parent_id) if parent_id else None
        path = link(lineage, "next")
        pages += 1
    assert pages == -(-len(every) // 500)
    assert sorted(seen) == every and set(seen.values()) == {1}
    assert parents == {long.anchor: None, **long.parents}

    # the cards, from the newest page back through the older ones, and forward again
    def walk(start: str, rel: str) -> list[int]:
        found: list[int] = []
        at: str | None = start
        while at is not None:
            html = get(app, at).text
            found += cards(html)
            at = link(html, rel)
        return found

    backwards = walk(f"/sessions/{slug}", "next")
    assert sorted(backwards) == every and len(backwards) == len(every)
    forwards = walk(f"/sessions/{slug}?after=0", "prev")
    assert forwards[0] == long.anchor and sorted(forwards) == every
    assert len(forwards) == len(every)


def test_lineage_choices_are_honoured_and_checked(studio: Studio, long: Grown) -> None:
    app = GalleryApp(studio)
    slug = long.session.slug
    deep = get(app, f"/sessions/{slug}?from={long.anchor}&depth=1").text
    nodes = NODE.findall(panel(deep))
    assert nodes[0] == (str(long.anchor), "")
    assert {parent for _, parent in nodes[1:]} == {str(long.anchor)}  # a generation below
    assert FOLD.findall(panel(deep))  # and what is deeper, folded
    limited = panel(get(app, f"/sessions/{slug}?limit=5").text)
    assert len(NODE.findall(limited)) == 5 and FOLD.findall(limited)
    assert get(app, f"/sessions/{slug}?from=abc").status == 400
    assert get(app, f"/sessions/{slug}?depth=-1").status == 400
    assert get(app, f"/sessions/{slug}?from=999999").status == 404
    other = grow(studio, "Mia", 10)
    assert get(app, f"/sessions/{slug}?from={other.head}").status == 404


# --------------------------------------------------------------------------- the grid


def test_the_grid_pages_through_a_long_series_beside_the_anchor(
    studio: Studio, long: Grown
) -> None:
    app = GalleryApp(studio)
    slug = long.session.slug
    for image_id in long.ids[::7]:
        studio.annotate_image(image_id, starred=True)
    for choice, wanted in (("", long.ids), ("?starred=1", long.ids[::7])):
        seen: list[int] = []
        path: str | None = f"/sessions/{slug}/grid{choice}"
        while path is not None:
            html = get(app, path).text
            shown = [int(i) for i in re.findall(r'<li class="tile[^"]*" id="image-(\d+)"', html)]
            assert shown[0] == long.anchor  # on every page, to compare with
            assert len(shown) <= TILES_PER_PAGE + 1
            seen += shown[1:]
            path = link(html, "next")
        assert sorted(seen) == wanted and len(seen) == len(wanted), choice


# --------------------------------------------------------------------------- the image page


def test_an_image_page_bounds_its_ancestry_and_pages_through_the_rest(
    studio: Studio, long: Grown
) -> None:
    app = GalleryApp(studio)
    ancestors = []
    key: int | None = long.parents[long.head]
    while key is not None:
        ancestors.append(key)
        key = long.parents.get(key)
    ancestors.reverse()
    page = get(app, f"/images/{long.head}").text
    path = [int(i) for i in re.findall(r'<a href="/images/(\d+)" data-image-id', page)]
    assert path == [long.anchor, *ancestors[-ANCESTORS_SHOWN:], long.head]
    hidden = len(ancestors) - ANCESTORS_SHOWN - 1
    assert f'href="?ancestors=2" title="Earlier ancestors">… {hidden:,} more</a>' in page

    listed: Counter[int] = Counter()
    number = 1
    while True:
        data = get(app, f"/api/images/{long.head}?ancestors={number}").json()
        ancestry = data["ancestry"]
        assert ancestry["count"] == len(ancestors) and ancestry["page"] == number
        assert len(ancestry["ids"]) <= ANCESTORS_SHOWN
        listed.update(ancestry["ids"])
        if number == ancestry["pages"]:
            break
        assert ancestry["root"] == long.anchor
        number += 1
    assert sorted(listed) == ancestors and set(listed.values()) == {1}

    root = get(app, f"/api/images/{long.anchor}").json()
    assert root["ancestry"]["count"] == 0 and root["descendants"] == LONG
    assert root["children"]["ids"] == sorted(k for k, p in long.parents.items() if p == long.anchor)


# --------------------------------------------------------------------------- the poll


def test_the_poll_answers_from_the_stamp_and_sends_only_what_changed(
    studio: Studio, long: Grown, statements: list[str]
) -> None:
    app = GalleryApp(studio)
    slug = long.session.slug
    page = get(app, f"/sessions/{slug}").text
    version = re.search(r'data-version="([^"]+)"', page)
    assert version is not None
    poll = f"/api/sessions/{slug}?head={long.head}&v="

    statements.clear()
    assert get(app, poll + version.group(1)).json() == {
        "version": version.group(1),
        "unchanged": True,
    }
    assert len(statements) <= 3  # the session and its stamp; no image read

    starred = long.ids[len(long.ids) // 3]  # a card on no page the user has open
    studio.annotate_image(starred, starred=True)
    state = get(app, poll + version.group(1)).json()
    assert state["version"] != version.group(1) and not state.get("unchanged")
    assert [item["id"] for item in state["images"]] == [starred]
    assert "starred-mark" in state["images"][0]["html"]
    assert f'data-image-id="{long.head}"' in state["lineage"]
    assert f'href="/sessions/{slug}?all=1">everything</a>' in state["lineage"]  # the page's
    assert "data-summary" in state["summary"]
    assert get(app, poll + state["version"]).json()["unchanged"]

    # a client far behind reloads instead of receiving a flood
    assert get(app, f"/api/sessions/{slug}?v=").json() == {
        "version": state["version"],
        "reload": True,
    }


def test_when_the_head_moves_the_poll_sends_both_heads_cards(
    studio: Studio, series: Series
) -> None:
    app = GalleryApp(studio)
    page = get(app, f"/sessions/{series.session}").text
    version = re.search(r'data-version="([^"]+)"', page)
    assert version is not None and f'data-head="{series.branch}"' in page
    made = studio.session(series.session).shot(expression="surprised")  # as the CLI would
    state = get(
        app, f"/api/sessions/{series.session}?head={series.branch}&v={version.group(1)}"
    ).json()
    assert state["head"] == made.id
    sent = {item["id"]: item for item in state["images"]}
    assert set(sent) == {series.branch, made.id}
    assert '<span class="badge">head</span>' in sent[made.id]["html"]
    assert '<span class="badge">head</span>' not in sent[series.branch]["html"]
    assert sent[made.id]["rev"].endswith("-head")
    assert not sent[series.branch]["rev"].endswith("-head")


def test_requests_read_the_same_statements_at_any_size(
    studio: Studio, statements: list[str]
) -> None:
    """No query per image or per generation: a series ten times longer costs the same
    statements (the lineage's ids come in one, the images shown in one)."""
    costs = []
    for name, size in (("Ann", 300), ("Bea", 3_000)):
        grown = grow(studio, name, size)
        app = GalleryApp(studio)
        slug = grown.session.slug
        counted = []
        for path in (
            f"/sessions/{slug}",  # cold: the lineage and totals are read
            f"/sessions/{slug}",  # warm: kept while the stamp holds
            f"/sessions/{slug}?all=1",  # a page of lines: one read of their images
            f"/sessions/{slug}/grid",
            f"/sessions/{slug}/grid?failed=1&tag=keeper",
            f"/images/{grown.head}",
            f"/api/images/{grown.head}",
        ):
            statements.clear()
            assert get(app, path).status == 200, path
            counted.append(len(statements))
        costs.append(counted)
    assert costs[0] == costs[1], costs
