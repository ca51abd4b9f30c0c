"""Tidying a series from ``onmodel serve`` (issue 13), over real HTTP as a browser's forms
send it: retrying a failed shot, choosing a shot's size, quality and provider, finishing a
ChatGPT shot by uploading its picture, a grid of a session's shots with filters, and the
curation buttons. Each test checks what the user sees and what reached the database."""

from __future__ import annotations

import http.client
import io
import os
import re
import tempfile
import time
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image as PILImage

import test_web_fixtures
from onmodel.capabilities import load_capabilities
from onmodel.errors import InvalidImageError, UsageError
from onmodel.handles import Image
from onmodel.limits import MAX_IMAGE_BYTES
from onmodel.providers import provider_names
from onmodel.status import ImageStatus
from onmodel.web.app import MAX_BODY
from onmodel.web.uploads import CHUNK, read_upload
from test_web import KEY, Reply, call, fresh
from test_web_fixtures import Controls, Series, Served

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series, served

JSON = {"Accept": "application/json"}
OTHER_KEY = "fedcba9876543210fedcba9876543210"


def settled(served: Served, image_id: int) -> str:
    """The image's status once it is no longer pending (the shot runs on a thread)."""
    deadline = time.monotonic() + 30
    while served.studio.image(image_id).status == ImageStatus.PENDING:
        assert time.monotonic() < deadline, f"image {image_id} is still pending"
        time.sleep(0.05)
    return served.studio.image(image_id).status


def card(html: str, image_id: int) -> str:
    """The card of one image on a page."""
    start = html.index(f'id="image-{image_id}"')
    end = html.find("</article>", start)
    return html[start:end]


def options(html: str, name: str) -> list[str]:
    """The values a form's ``<select name=...>`` offers."""
    found = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert found is not None, f"no {name} choice on the page"
    return [unescape(v) for v in re.findall(r'<option value="([^"]*)"', found.group(1))]


def error_of(reply: Reply) -> str:
    return str(reply.json()["error"])


# --------------------------------------------------------------------------- retry


def test_a_failed_shot_has_a_retry_button_that_makes_a_new_image(
    served: Served,
    series: Series,
    controls: Controls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = call(served, "GET", f"/sessions/{series.session}").text
    retry = f'action="/images/{series.failed}/retry"'
    assert retry in card(page, series.failed)
    assert "/retry" not in card(page, series.guitar)  # a finished image is branched, not retried
    assert retry in call(served, "GET", f"/images/{series.failed}").text
    version = re.search(r'data-version="([^"]+)"', page)
    assert version is not None

    monkeypatch.setattr(test_web_fixtures, "FAIL_WORD", "no longer refused")
    before = len(served.studio.session_images(series.session))
    controls.hold()
    path = f"/images/{series.failed}/retry"
    reply = call(served, "POST", path, form={"key": KEY}, headers=JSON)
    assert reply.status == 202, reply.text
    data = reply.json()
    new_id = int(str(data["id"]))
    assert new_id != series.failed and data["retry_of"] == series.failed
    assert data["status"] == "pending" and 'data-status="pending"' in str(data["html"])
    again = call(served, "POST", path, form={"key": KEY}, headers=JSON)  # a double click
    assert again.status == 202 and again.json()["id"] == new_id
    controls.release()

    assert settled(served, new_id) == ImageStatus.SUCCEEDED
    with fresh(served) as other:
        made = other.image(new_id)
        assert made.retry_of_id == series.failed and made.parent_id == series.guitar
        assert len(other.session_images(series.session)) == before + 1
    poll = call(served, "GET", f"/api/sessions/{series.session}?v={version.group(1)}").json()
    sent = {item["id"]: item for item in poll["images"]}  # type: ignore[union-attr]
    assert sent[new_id]["status"] == "succeeded"
    assert f"retry of #{series.failed}" in sent[new_id]["html"]

    # without JavaScript the form posts and lands on the new card
    plain = call(served, "POST", path, form={"key": OTHER_KEY})
    assert plain.status == 303
    landed = re.fullmatch(rf"/sessions/{series.session}#image-(\d+)", plain.headers["location"])
    assert landed is not None and int(landed.group(1)) not in (series.failed, new_id)
    settled(served, int(landed.group(1)))


def test_a_retry_the_library_refuses_is_a_readable_400(served: Served, series: Series) -> None:
    before = len(served.studio.session_images(series.session))
    done = call(served, "POST", f"/images/{series.guitar}/retry", form={"key": KEY}, headers=JSON)
    assert done.status == 400 and "only failed shots are retried" in error_of(done)
    page = call(served, "POST", f"/images/{series.guitar}/retry", form={"key": KEY})
    assert page.status == 400 and "only failed shots are retried" in page.text
    assert "Traceback" not in page.text
    anchor = call(served, "POST", f"/images/{series.anchor}/retry", form={"key": KEY})
    assert anchor.status == 400
    bad = call(served, "POST", f"/images/{series.failed}/retry", form={"key": "x"}, headers=JSON)
    assert bad.status == 400 and "reload the page" in error_of(bad)
    foreign = call(
        served,
        "POST",
        f"/images/{series.failed}/retry",
        form={"key": KEY},
        headers={"Origin": "http://attacker.example"},
        same_origin=False,
    )
    assert foreign.status == 403
    assert len(served.studio.session_images(series.session)) == before


# --------------------------------------------------------------------------- shot choices


def test_the_shot_forms_offer_size_quality_and_provider(served: Served, series: Series) -> None:
    session = served.studio.session(series.session)
    capability = load_capabilities(served.studio.paths.models_file).find(session.model)
    assert capability is not None
    for path in (f"/sessions/{series.session}", f"/images/{series.guitar}"):
        html = call(served, "GET", path).text
        assert options(html, "size") == ["", *capability.sizes]
        assert options(html, "quality") == ["", *capability.qualities]
        assert options(html, "provider") == provider_names()
        chosen = re.search(r'<option value="([^"]+)" selected>[^<]*\(drawn offline', html)
        assert chosen is not None and chosen.group(1) == session.provider


def test_a_shot_is_made_with_the_size_quality_and_provider_chosen(
    served: Served, series: Series, controls: Controls
) -> None:
    form = {
        "session": series.session,
        "key": KEY,
        "pose": "waving",
        "size": "1536x1024",
        "quality": "low",
    }
    controls.hold()
    reply = call(served, "POST", "/shots", form=form, headers=JSON)
    assert reply.status == 202, reply.text
    made = int(str(reply.json()["id"]))
    with fresh(served) as other:  # what was asked for is recorded before the provider is
        asked = other.image(made).params
        assert (asked["size"], asked["quality"]) == ("1536x1024", "low")
    controls.release()
    assert settled(served, made) == ImageStatus.SUCCEEDED
    done = served.studio.image(made)
    assert done.width is not None and done.height is not None
    assert done.width / done.height == pytest.approx(1.5, abs=0.01)  # drawn smaller, as 3:2

    manual = {"session": series.session, "key": OTHER_KEY, "pose": "sitting", "provider": "chatgpt"}
    reply = call(served, "POST", "/shots", form=manual, headers=JSON)
    assert reply.status == 202, reply.text
    served.app.runner.join(30)
    pasted = served.studio.image(int(str(reply.json()["id"])))
    assert pasted.provider == "chatgpt" and pasted.status == ImageStatus.PENDING  # for the picture


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("size", "7x7", "the size of a gpt-image-2 image is one of auto, 1024x1024"),
        ("quality", "ultra", "the quality of a gpt-image-2 image is one of low, medium"),
        (
            "provider",
            "nope",
            "the provider is one of chatgpt, comfyui, flux, gemini, openai-images",
        ),
        ("size", "x" * 500, "not 'xxxxxxxx"),
    ],
)
def test_a_choice_the_form_never_offered_is_refused_with_the_choices(
    served: Served, series: Series, field: str, value: str, said: str
) -> None:
    before = len(served.studio.session_images(series.session))
    form = {"session": series.session, "key": KEY, "pose": "waving", field: value}
    reply = call(served, "POST", "/shots", form=form, headers=JSON)
    assert reply.status == 400 and said in error_of(reply)
    assert len(error_of(reply)) < 300
    page = call(served, "POST", "/shots", form=form)  # without JavaScript: an error page
    assert page.status == 400 and unescape(said) in unescape(page.text)
    assert len(served.studio.session_images(series.session)) == before


# --------------------------------------------------------------------------- the grid

TILE = re.compile(r'<li class="tile[^"]*" id="image-(\d+)"')


def tiles(html: str) -> list[int]:
    return [int(i) for i in TILE.findall(html)]


def test_the_grid_shows_the_shots_small_beside_the_anchor_with_filters(
    served: Served, series: Series
) -> None:
    slug = series.session
    page = call(served, "GET", f"/sessions/{slug}")
    assert f'href="/sessions/{slug}/grid"' in page.text
    shots = [series.crying, series.guitar, series.branch, series.failed]
    grid = call(served, "GET", f"/sessions/{slug}/grid")
    assert grid.status == 200
    assert tiles(grid.text) == [series.anchor, *shots]  # the anchor first, then oldest first
    assert 'class="tile status-succeeded is-anchor"' in grid.text
    assert f'src="/thumbs/{series.guitar}/192"' in grid.text

    served.studio.annotate_image(series.guitar, starred=True)
    served.studio.tag_image(series.branch, ["Keeper"])
    assert tiles(call(served, "GET", f"/sessions/{slug}/grid?starred=1").text) == [
        series.anchor,
        series.guitar,
    ]
    assert tiles(call(served, "GET", f"/sessions/{slug}/grid?failed=1").text) == [
        series.anchor,
        series.failed,
    ]
    tagged = call(served, "GET", f"/sessions/{slug}/grid?tag=KEEPER").text
    assert tiles(tagged) == [series.anchor, series.branch]
    assert '<span class="tag">keeper</span>' in tagged
    assert 'name="tag" value="KEEPER"' in tagged  # the filter form shows what was asked
    none = call(served, "GET", f"/sessions/{slug}/grid?starred=1&failed=1").text
    assert tiles(none) == [series.anchor] and "No shots match here." in none
    bad = call(served, "GET", f"/sessions/{slug}/grid?starred=maybe")
    assert bad.status == 400 and "starred must be 1 or 0" in bad.text


def test_hiding_takes_an_image_off_the_pages_and_the_grid_shows_it_again(
    served: Served, series: Series
) -> None:
    slug = series.session
    page = call(served, "GET", f"/sessions/{slug}").text
    version = re.search(r'data-version="([^"]+)"', page)
    assert version is not None
    assert f'action="/images/{series.branch}/hide"' in card(page, series.branch)
    assert "/hide" not in card(page, series.anchor)  # the anchor stays: another one first

    reply = call(
        served, "POST", f"/images/{series.branch}/hide", form={"hidden": "1"}, headers=JSON
    )
    assert reply.status == 200 and reply.json() == {"id": series.branch, "hidden": True}
    with fresh(served) as other:
        assert series.branch not in [i.id for i in other.session_images(slug)]
    poll = call(served, "GET", f"/api/sessions/{slug}?v={version.group(1)}").json()
    assert poll["gone"] == [series.branch]  # the open page takes its card off
    assert f'data-image-id="{series.branch}"' not in str(poll["lineage"])
    page = call(served, "GET", f"/sessions/{slug}").text
    assert f'id="image-{series.branch}"' not in page
    assert f'data-image-id="{series.branch}"' not in page
    assert series.branch not in tiles(call(served, "GET", f"/sessions/{slug}/grid").text)

    hidden = call(served, "GET", f"/sessions/{slug}/grid?hidden=1").text
    assert tiles(hidden) == [series.anchor, series.branch]
    assert 'data-action="unhide"' in hidden
    detail = call(served, "GET", f"/images/{series.branch}").text
    assert "hidden: left out of pages" in detail and 'data-action="unhide"' in detail

    grid = f"{served.url}/sessions/{slug}/grid?hidden=1"
    back = call(
        served,
        "POST",
        f"/images/{series.branch}/hide",
        form={"hidden": "0"},
        headers={"Referer": grid},
    )
    assert back.status == 303  # back to the grid it was on, filters and all
    assert back.headers["location"] == f"/sessions/{slug}/grid?hidden=1#image-{series.branch}"
    assert series.branch in tiles(call(served, "GET", f"/sessions/{slug}/grid").text)
    assert f'data-image-id="{series.branch}"' in call(served, "GET", f"/sessions/{slug}").text

    anchor = call(served, "POST", f"/images/{series.anchor}/hide", form={}, headers=JSON)
    assert anchor.status == 400 and "anchor" in error_of(anchor)


def test_tags_head_and_anchor_from_a_card(served: Served, series: Series) -> None:
    slug = series.session
    path = f"/images/{series.crying}"
    tagged = call(served, "POST", f"{path}/tags", form={"add": "Keeper, tears "}, headers=JSON)
    assert tagged.status == 200
    assert '<li class="tag">keeper' in str(tagged.json()["html"])
    assert served.studio.tags(series.crying) == ["keeper", "tears"]
    untagged = call(served, "POST", f"{path}/tags", form={"remove": "tears"}, headers=JSON)
    assert untagged.status == 200 and served.studio.tags(series.crying) == ["keeper"]
    page = call(served, "GET", f"/sessions/{slug}").text
    assert '<li class="tag">keeper' in card(page, series.crying)
    empty = call(served, "POST", f"{path}/tags", form={"add": " , "}, headers=JSON)
    assert empty.status == 400 and "at least one tag" in error_of(empty)

    assert f'action="{path}/head"' in card(page, series.crying)
    assert f'action="/images/{series.branch}/head"' not in card(page, series.branch)  # the head
    head = call(served, "POST", f"{path}/head", form={}, headers=JSON)
    assert head.status == 200 and head.json() == {"session": slug, "head": series.crying}
    page = call(served, "GET", f"/sessions/{slug}").text
    assert f'data-head="{series.crying}"' in page
    assert '<span class="badge">head</span>' in card(page, series.crying)
    failed = call(served, "POST", f"/images/{series.failed}/head", form={}, headers=JSON)
    assert failed.status == 400

    anchor = call(served, "POST", f"/images/{series.guitar}/anchor", form={}, headers=JSON)
    assert anchor.status == 200 and anchor.json()["anchor"] == series.guitar
    with fresh(served) as other:
        assert other.session(slug).character.anchor_image_id == series.guitar
    index = call(served, "GET", "/").text
    assert f'data-image-id="{series.guitar}"' in index  # the character is shown by its anchor
    grid = call(served, "GET", f"/sessions/{slug}/grid").text
    assert tiles(grid)[0] == series.guitar  # the grid compares the shots with the new anchor


# --------------------------------------------------------------------------- ChatGPT, finished


BOUNDARY = "onmodel-test-boundary-7f3a"


def multipart(fields: dict[str, str], filename: str, data: bytes) -> bytes:
    """A body as a browser's upload form sends it."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="picture"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def upload(
    served: Served, image_id: int, body: bytes, *, json: bool = False, length: int | None = None
) -> Reply:
    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    headers = {
        "Host": served.host,
        "Origin": served.url,
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(len(body) if length is None else length),
        **(JSON if json else {}),
    }
    try:
        connection.request("POST", f"/images/{image_id}/attach", body=body, headers=headers)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def png(size: tuple[int, int], noisy: bool = False) -> bytes:
    """A PNG; ``noisy`` ones barely compress (1000x1000: about 3 MB)."""
    width, height = size
    pixels = os.urandom(width * height * 3) if noisy else bytes(width * height * 3)
    out = io.BytesIO()
    PILImage.frombytes("RGB", size, pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def made(served: Served, series: Series) -> Image:
    """A ChatGPT shot waiting for its picture, as the shot call returned it (with the
    messages the CLI prints)."""
    image = served.studio.session(series.session).shot(pose="sitting", provider="chatgpt")
    assert image.status == ImageStatus.PENDING and image.messages
    return image


@pytest.fixture
def waiting(made: Image) -> int:
    return made.id


def test_a_pending_chatgpt_shot_shows_the_messages_to_paste(
    served: Served, series: Series, made: Image
) -> None:
    waiting = made.id
    session = served.studio.session(series.session)
    page = call(served, "GET", f"/images/{waiting}").text
    assert f"Finish #{waiting} in ChatGPT" in page
    shown = dict(re.findall(r'<pre class="paste" data-message="(\w+)">(.*?)</pre>', page, re.S))
    assert unescape(shown["shot"]) == made.messages[-1]  # as the CLI printed it
    assert unescape(shown["primer"]) == session.instructions  # once, when a chat starts
    assert f'href="/files/{series.anchor}" download="rin-anchor.png"' in page
    assert 'enctype="multipart/form-data"' in page and 'name="picture"' in page
    cards = call(served, "GET", f"/sessions/{series.session}").text
    assert f'href="/images/{waiting}#finish"' in card(cards, waiting)


def test_uploading_the_picture_finishes_the_shot(
    served: Served, series: Series, waiting: int
) -> None:
    picture = png((1000, 1000), noisy=True)  # over the 256 KiB any other form may send
    assert len(picture) > 2 * MAX_BODY
    body = multipart({"gen_id": "gen_from_chatgpt"}, "rin at the park.png", picture)
    reply = upload(served, waiting, body)
    assert reply.status == 303, reply.text
    assert reply.headers["location"] == f"/images/{waiting}"
    with fresh(served) as other:
        done = other.image(waiting)
        assert done.status == ImageStatus.SUCCEEDED and done.gen_id == "gen_from_chatgpt"
        assert done.read_bytes() == picture
        assert done.returned["source"] == "rin at the park.png"
    page = call(served, "GET", f"/images/{waiting}").text
    assert "Finish #" not in page and f'src="/files/{waiting}"' in page

    # the same form again: the shot is finished, and the page says so
    again = upload(served, waiting, body, json=True)
    assert again.status == 400 and "pending chatgpt shots only" in error_of(again)
    # no other route takes a body that large
    shots = call(served, "POST", "/shots", form={"text": "x" * (MAX_BODY + 10)}, headers=JSON)
    assert shots.status == 413


def test_a_file_that_is_not_a_picture_is_refused_in_a_sentence(
    served: Served, waiting: int, capfd: pytest.CaptureFixture[str]
) -> None:
    body = multipart({}, "notes.txt", b"these are my notes, not a picture\n")
    reply = upload(served, waiting, body)
    assert reply.status == 400
    assert "notes.txt is not a readable image" in unescape(reply.text)
    assert "onmodel-upload-" not in reply.text and "Traceback" not in reply.text
    as_json = upload(served, waiting, body, json=True)
    assert as_json.status == 400 and error_of(as_json).startswith("notes.txt is not a readable")
    nothing = upload(served, waiting, multipart({}, "", b""), json=True)
    assert nothing.status == 400 and "choose the picture" in error_of(nothing)
    assert served.studio.image(waiting).status == ImageStatus.PENDING
    assert "Traceback" not in capfd.readouterr().err


def test_a_picture_too_large_is_refused_before_it_is_read(served: Served, waiting: int) -> None:
    declared = MAX_IMAGE_BYTES + 1024 * 1024  # said, not sent: the server does not wait for it
    reply = upload(served, waiting, b"", json=True, length=declared)
    assert reply.status == 413 and error_of(reply) == "a picture is at most 64 MB"
    assert served.studio.image(waiting).status == ImageStatus.PENDING


def test_an_upload_waits_in_a_file_never_whole_in_memory(
    served: Served, waiting: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server keeps a body larger than a form in a temporary file as it arrives (closed,
    and so removed, once the request is answered), and the form's parts are read from it a
    chunk at a time."""
    import onmodel.web.server
    import onmodel.web.uploads

    spools: list[Any] = []
    real_spool = tempfile.TemporaryFile

    def spool(*args: Any, **kwargs: Any) -> Any:
        made = real_spool(*args, **kwargs)
        spools.append(made)
        return made

    reads: list[int] = []
    real_read = onmodel.web.uploads._Body._more

    def more(body: Any) -> bool:
        reads.append(len(body.buffer))
        return bool(real_read(body))

    monkeypatch.setattr(onmodel.web.server.tempfile, "TemporaryFile", spool)
    monkeypatch.setattr(onmodel.web.uploads._Body, "_more", more)
    picture = png((1000, 1000), noisy=True)
    assert upload(served, waiting, multipart({}, "big.png", picture)).status == 303
    assert len(spools) == 1
    deadline = time.monotonic() + 30  # closed by the worker once the answer is written
    while not spools[0].closed:
        assert time.monotonic() < deadline, "the body's file was never closed"
        time.sleep(0.05)
    assert len(reads) > len(picture) // CHUNK  # a chunk at a time...
    assert max(reads) < 2 * CHUNK  # ...never more than two held


def test_the_upload_form_reads_any_browsers_parts() -> None:
    """Parts in any order, a field beside the file, a name with a path, a boundary split
    across reads; a file over the limit, a missing end and a foreign body are refused."""
    data = bytes(range(256)) * 300  # every byte value, CR and LF and "--" among them
    body = multipart({"gen_id": "g1", "other": "é"}, "C:\\Users\\me\\pic.png", data)
    with tempfile.TemporaryDirectory() as folder:
        found = read_upload(
            TrickleReader(body),
            len(body),
            f"multipart/form-data; boundary={BOUNDARY}",
            Path(folder),
            file_field="picture",
            max_file=len(data),
        )
        assert found.fields == {"gen_id": "g1", "other": "é"}
        assert found.filename == "pic.png" and found.file is not None
        assert found.file.read_bytes() == data
        kind = f"multipart/form-data; boundary={BOUNDARY}"
        with pytest.raises(InvalidImageError, match="larger than"):
            read_upload(
                io.BytesIO(body), len(body), kind, Path(folder), file_field="picture", max_file=10
            )
        with pytest.raises(UsageError, match="cut short"):
            read_upload(
                io.BytesIO(body[:-40]),
                len(body) - 40,
                kind,
                Path(folder),
                file_field="picture",
                max_file=len(data),
            )
        with pytest.raises(UsageError, match="multipart/form-data"):
            read_upload(
                io.BytesIO(b"a=1"),
                3,
                "application/x-www-form-urlencoded",
                Path(folder),
                file_field="picture",
                max_file=10,
            )


class TrickleReader(io.BufferedIOBase):
    """A stream that answers each read with at most 7 bytes, so markers straddle reads."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size: int | None = -1) -> bytes:
        return self.data.read(min(7, size if size is not None and size >= 0 else 7))
