"""``onmodel serve`` over real HTTP: pages, files, thumbnails, annotations, branching, and the
guards (loopback only, own Host only, same-origin POSTs only)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from PIL import Image as PILImage

from onmodel.blobs import sha256_bytes
from onmodel.errors import UsageError
from onmodel.studio import Studio
from onmodel.thumbnails import THUMBNAIL_SIZES, Thumbnailer
from onmodel.web.server import allowed_hosts, check_host, is_loopback
from test_web_fixtures import Controls, Series, Served

KEY = "0123456789abcdef0123456789abcdef"

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series, served


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def call(
    served: Served,
    method: str,
    path: str,
    *,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    same_origin: bool = True,
) -> Reply:
    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    sent = {"Host": served.host}
    if same_origin and method == "POST":
        sent["Origin"] = served.url
    sent.update(headers or {})
    body = urlencode(form).encode() if form is not None else None
    if body is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def fresh(served: Served) -> Studio:
    """A second studio on the same folder: proves a change reached the database."""
    return Studio.open(served.home)


# --------------------------------------------------------------------------- the guards


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.5"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert is_loopback(host)
    check_host(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "[2001:db8::1]"])
def test_other_hosts_need_allow_remote(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UsageError, match="--allow-remote"):
        check_host(host, allow_remote=False)
    check_host(host, allow_remote=True)


def test_serve_refuses_a_public_address_with_one_line_and_exit_2(isolated_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "onmodel", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to serve on 0.0.0.0")
    assert done.stderr.count("\n") == 1
    assert not isolated_home.exists()  # refused before the data folder was even opened


def test_allowed_hosts_are_loopback_names_on_the_bound_port() -> None:
    assert allowed_hosts("127.0.0.1", 8765) == {
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
    }


def test_foreign_host_header_is_refused(served: Served, series: Series) -> None:
    reply = call(served, "GET", "/", headers={"Host": "attacker.example:80"})
    assert reply.status == 421
    assert call(served, "GET", "/", headers={"Host": served.host}).status == 200
    port = served.host.split(":")[1]
    assert call(served, "GET", "/", headers={"Host": f"localhost:{port}"}).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Referer": "http://attacker.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_origin_posts_are_refused(
    served: Served, series: Series, headers: dict[str, str]
) -> None:
    reply = call(
        served,
        "POST",
        f"/images/{series.crying}/annotate",
        form={"starred": "1"},
        headers=headers,
        same_origin=False,
    )
    assert reply.status == 403
    assert not served.studio.image(series.crying).row.starred


def test_scripts_without_browser_headers_may_post(served: Served, series: Series) -> None:
    reply = call(
        served,
        "POST",
        f"/images/{series.crying}/annotate",
        form={"starred": "1"},
        headers={"Accept": "application/json"},
        same_origin=False,
    )
    assert reply.status == 200
    assert served.studio.image(series.crying).row.starred


# --------------------------------------------------------------------------- pages and files


def test_pages_show_characters_sessions_and_every_image(served: Served, series: Series) -> None:
    index = call(served, "GET", "/")
    assert index.status == 200
    assert "Rin" in index.text and f'href="/sessions/{series.session}"' in index.text
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["x-frame-options"] == "DENY"

    page = call(served, "GET", f"/sessions/{series.session}")
    assert page.status == 200
    for image_id in series.parents:
        assert f'id="image-{image_id}"' in page.text
    links = dict(
        re.findall(r'<li class="node[^"]*" data-image-id="(\d+)" data-parent-id="(\d*)"', page.text)
    )
    assert {int(k): int(v) if v else None for k, v in links.items()} == series.parents
    assert "Your request was rejected by the safety system." in page.text
    assert "http://" not in page.text and "https://" not in page.text

    detail = call(served, "GET", f"/images/{series.guitar}")
    assert detail.status == 200
    path = re.findall(r'<a href="/images/(\d+)" data-image-id', detail.text)
    assert [int(i) for i in path] == [series.anchor, series.crying, series.guitar]
    assert f'data-child-id="{series.failed}"' in detail.text


def test_originals_are_served_byte_for_byte_with_an_etag(served: Served, series: Series) -> None:
    image = served.studio.image(series.crying)
    reply = call(served, "GET", f"/files/{series.crying}")
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    assert sha256_bytes(reply.body) == image.sha256
    assert reply.headers["etag"] == f'"{image.sha256}"'
    again = call(
        served, "GET", f"/files/{series.crying}", headers={"If-None-Match": reply.headers["etag"]}
    )
    assert again.status == 304 and again.body == b""
    assert call(served, "GET", f"/files/{series.failed}").status == 404
    assert call(served, "GET", "/files/999").status == 404


def test_thumbnails_are_derived_on_demand_and_cached(served: Served, series: Series) -> None:
    image = served.studio.image(series.guitar)
    assert image.sha256 is not None and image.path is not None
    original = image.path.read_bytes()
    cache = served.home / "thumbnails"
    assert not list(cache.rglob(f"{image.sha256}-96.*"))
    reply = call(served, "GET", f"/thumbs/{series.guitar}/96")
    assert reply.status == 200 and reply.headers["content-type"].startswith("image/")
    made = list(cache.rglob(f"{image.sha256}-96.*"))
    assert len(made) == 1 and made[0].read_bytes() == reply.body
    stamp = made[0].stat().st_mtime_ns
    assert call(served, "GET", f"/thumbs/{series.guitar}/96").body == reply.body
    assert made[0].stat().st_mtime_ns == stamp
    with PILImage.open(made[0]) as thumb:
        assert max(thumb.size) <= 96
    assert image.path.read_bytes() == original  # the original is never touched
    assert call(served, "GET", f"/thumbs/{series.guitar}/97").status == 404


def test_thumbnailer_keeps_transparency_and_refuses_odd_sizes(
    studio: Studio, tmp_path: Path
) -> None:
    from onmodel.blobs import BlobStore

    picture = PILImage.new("RGBA", (300, 200), (255, 0, 0, 0))
    picture.paste((0, 0, 255, 255), (100, 50, 200, 150))
    source = tmp_path / "alpha.png"
    picture.save(source)
    blobs = BlobStore(tmp_path / "blobs")
    blob = blobs.put(source.read_bytes(), "png")
    thumbs = Thumbnailer(blobs, tmp_path / "thumbs")
    path = thumbs.get(blob.sha256, "png", THUMBNAIL_SIZES[0])
    with PILImage.open(path) as thumb:
        assert thumb.size == (96, 64)
        assert thumb.mode == "RGBA" and thumb.getpixel((0, 0))[3] == 0
    with pytest.raises(UsageError):
        thumbs.get(blob.sha256, "png", 100)
    assert sha256_bytes(blobs.path_for(blob.sha256, "png").read_bytes()) == blob.sha256


def test_static_files_cannot_escape_their_folder(served: Served) -> None:
    assert call(served, "GET", "/static/app.js").status == 200
    assert call(served, "GET", "/static/style.css").headers["content-type"].startswith("text/css")
    for path in ("/static/..%2F..%2Fonmodel.db", "/static/.hidden.js", "/static/x.py"):
        assert call(served, "GET", path).status == 404


def test_errors_are_pages_or_json(served: Served, series: Series) -> None:
    missing = call(served, "GET", "/sessions/nope")
    assert missing.status == 404 and "no session" in missing.text
    api = call(served, "GET", "/api/sessions/nope")
    assert api.status == 404 and "no session" in str(api.json()["error"])
    assert call(served, "POST", "/").status == 405
    assert call(served, "GET", "/nowhere").status == 404


# --------------------------------------------------------------------------- changes


def test_star_rating_and_note_persist(served: Served, series: Series) -> None:
    path = f"/images/{series.crying}/annotate"
    json_accept = {"Accept": "application/json"}
    assert call(served, "POST", path, form={"starred": "1"}, headers=json_accept).status == 200
    assert call(served, "POST", path, form={"rating": "4"}, headers=json_accept).status == 200
    reply = call(served, "POST", path, form={"note": "  best tears  "}, headers=json_accept)
    assert reply.status == 200 and 'data-rev="' in str(reply.json()["html"])
    with fresh(served) as other:
        row = other.image(series.crying).row
        assert (row.starred, row.rating, row.note) == (True, 4, "best tears")
    call(served, "POST", path, form={"rating": "0", "starred": "0"}, headers=json_accept)
    row = served.studio.image(series.crying).row
    assert (row.starred, row.rating) == (False, None)
    bad = call(served, "POST", path, form={"rating": "7"}, headers=json_accept)
    assert bad.status == 400 and "1 to 5" in str(bad.json()["error"])


def test_forms_work_without_javascript(served: Served, series: Series) -> None:
    page = f"{served.url}/sessions/{series.session}"
    reply = call(
        served,
        "POST",
        f"/images/{series.guitar}/annotate",
        form={"starred": "1"},
        headers={"Referer": page},
    )
    assert reply.status == 303
    assert reply.headers["location"] == f"/sessions/{series.session}#image-{series.guitar}"
    assert served.studio.image(series.guitar).row.starred


def test_a_branch_from_the_form_runs_in_the_background(
    served: Served, series: Series, controls: Controls
) -> None:
    before = len(served.studio.session_images(series.session))
    controls.hold()
    form = {
        "session": series.session,
        "key": KEY,
        "from": str(series.crying),
        "expression": "laughing",
        "scene": "beach",
    }
    started = time.monotonic()
    reply = call(served, "POST", "/shots", form=form, headers={"Accept": "application/json"})
    assert time.monotonic() - started < 10
    assert reply.status == 202, reply.text
    data = reply.json()
    new_id = int(str(data["id"]))
    assert data["status"] == "pending" and 'data-status="pending"' in str(data["html"])
    pending = served.studio.image(new_id)
    assert pending.status == "pending" and pending.row.parent_id == series.crying

    # the same form sent twice is the same shot, not a second paid one
    again = call(served, "POST", "/shots", form=form, headers={"Accept": "application/json"})
    assert again.status == 202 and again.json()["id"] == new_id

    state = call(served, "GET", f"/api/sessions/{series.session}").json()
    version = str(state["version"])
    assert call(served, "GET", f"/api/sessions/{series.session}?v={version}").json()["unchanged"]

    controls.release()
    deadline = time.monotonic() + 30
    while served.studio.image(new_id).status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    done = served.studio.image(new_id)
    assert done.status == "succeeded" and done.row.parent_id == series.crying
    assert "Expression: laughing" in done.prompt

    state = call(served, "GET", f"/api/sessions/{series.session}?v={version}").json()
    assert state.get("unchanged") is None
    cards = {item["id"]: item for item in state["images"]}  # type: ignore[union-attr]
    assert cards[new_id]["status"] == "succeeded"
    assert f'data-image-id="{new_id}" data-parent-id="{series.crying}"' in str(state["lineage"])
    # one more image, though the form was posted twice
    assert len(served.studio.session_images(series.session)) == before + 1


def test_a_shot_that_cannot_be_planned_is_refused_on_the_spot(
    served: Served, series: Series
) -> None:
    before = len(served.studio.session_images(series.session))
    accept = {"Accept": "application/json"}
    base = {"session": series.session, "key": KEY, "expression": "sad"}
    failed = call(
        served, "POST", "/shots", form={**base, "from": str(series.failed)}, headers=accept
    )
    assert failed.status == 400 and "finished image" in str(failed.json()["error"])
    badkey = call(served, "POST", "/shots", form={**base, "key": "../../x"}, headers=accept)
    assert badkey.status == 400
    for bad in ("a\x00b", "\x1b]0;pwned\x07"):  # what PostgreSQL cannot store, a terminal obeys
        control = call(served, "POST", "/shots", form={**base, "pose": bad}, headers=accept)
        assert control.status == 400 and "control character" in str(control.json()["error"])
    note = call(
        served,
        "POST",
        f"/images/{series.crying}/annotate",
        form={"note": "a\x00b"},
        headers=accept,
    )
    assert note.status == 400 and "control character" in str(note.json()["error"])
    assert len(served.studio.session_images(series.session)) == before


def test_a_failed_background_shot_shows_its_error(
    served: Served, series: Series, controls: Controls
) -> None:
    form = {"session": series.session, "key": KEY, "text": "EXPLODE now"}
    reply = call(served, "POST", "/shots", form=form, headers={"Accept": "application/json"})
    assert reply.status == 202
    new_id = int(str(reply.json()["id"]))
    deadline = time.monotonic() + 30
    while served.studio.image(new_id).status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.studio.image(new_id).status == "failed"
    page = call(served, "GET", f"/sessions/{series.session}")
    card = page.text[page.text.index(f'id="image-{new_id}"') :]
    assert "moderation_blocked" in card[:4000]


def test_a_form_sent_many_times_at_once_records_one_shot(
    served: Served, series: Series, controls: Controls
) -> None:
    """The request records the pending row itself, under a lock: no second paid shot."""
    from concurrent.futures import ThreadPoolExecutor

    before = len(served.studio.session_images(series.session))
    controls.hold()
    form = {"session": series.session, "key": KEY, "pose": "jumping"}
    accept = {"Accept": "application/json"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(
            pool.map(lambda _: call(served, "POST", "/shots", form=form, headers=accept), range(6))
        )
    assert {reply.status for reply in replies} == {202}
    assert len({reply.json()["id"] for reply in replies}) == 1
    controls.release()
    assert len(served.studio.session_images(series.session)) == before + 1


def test_an_empty_shot_form_is_refused_and_records_nothing(served: Served, series: Series) -> None:
    """As in the CLI and the library: a shot must ask for something; nothing is paid for."""
    before = len(served.studio.session_images(series.session))
    form = {"session": series.session, "key": "e" * 32}
    reply = call(served, "POST", "/shots", form=form, headers={"Accept": "application/json"})
    assert reply.status == 400, reply.text
    assert "--same" in reply.text or "ask" in reply.text.lower()
    assert len(served.studio.session_images(series.session)) == before


def test_a_form_sent_without_javascript_returns_to_a_unicode_session(
    served: Served, series: Series
) -> None:
    """The redirect after a shot names the session's page percent-encoded: a header holds
    ASCII only, and a slug such as ミア is not."""
    character = served.studio.create_character("ミア", prompt="a girl", provider="preview")
    session = served.studio.start_session(character, provider="preview")
    form = {"session": session.slug, "key": "f" * 32, "pose": "waving"}
    reply = call(served, "POST", "/shots", form=form)
    assert reply.status == 303, reply.text
    location = reply.headers["location"]
    assert location.isascii() and location.startswith(f"/sessions/{quote(session.slug)}#image-")
    page = call(served, "GET", location.split("#")[0])
    assert page.status == 200 and "ミア" in page.text
