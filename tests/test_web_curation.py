"""Tidying a series from ``onmodel serve`` (issue 13), over real HTTP as a browser's forms
send it: retrying a failed shot, choosing a shot's size, quality and provider, finishing a
ChatGPT shot by uploading its picture, a grid of a session's shots with filters, and the
curation buttons. Each test checks what the user sees and what reached the database."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest

import test_web_fixtures
from onmodel.capabilities import load_capabilities
from onmodel.providers import provider_names
from onmodel.status import ImageStatus
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
        ("provider", "nope", "the provider is one of chatgpt, openai-images"),
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
