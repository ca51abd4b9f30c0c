"""The pictures, seen by a real browser: Debian's Chromium, headless, driven by Playwright.

These tests fail (never skip) when the browser is missing: ``scripts/install-browser``, which
the test command runs, installs it. Each page's screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from onmodel.blobs import sha256_file
from onmodel.export import export_session
from onmodel.studio import Studio
from test_web_fixtures import Controls, Series, Served

pytestmark = pytest.mark.slow  # starts Chromium

CHROMIUM = os.environ.get("ONMODEL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

ALL_IMAGES = """() => [...document.images].map(i => ({
    id: i.dataset.imageId || null, w: i.naturalWidth, complete: i.complete,
    src: i.getAttribute('src').slice(0, 40)}))"""
LINEAGE = """() => Object.fromEntries([...document.querySelectorAll('li.node')].map(
    li => [li.dataset.imageId, li.dataset.parentId]))"""

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series, served


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install-browser (the README's test command "
            "does), or set ONMODEL_TEST_CHROMIUM to a Chromium binary"
        )
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


class Watched:
    """A page whose script errors, console errors (CSP violations among them) and requests
    to anywhere it should not go are all recorded, so a test can insist there were none."""

    def __init__(self, page: Page, allowed: tuple[str, ...]) -> None:
        self.page = page
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith(allowed):
                request_route.continue_()
            else:
                self.outside.append(url)
                request_route.abort()

        page.route("**/*", route)

    def clean(self) -> None:
        assert self.errors == []
        assert self.outside == []


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    contexts = []

    def make(*allowed: str) -> Watched:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        return Watched(context.new_page(), allowed)

    yield make
    for context in contexts:
        context.close()


def every_image_renders(page: Page, at_least: int) -> list[dict[str, Any]]:
    page.wait_for_load_state("load")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    images: list[dict[str, Any]] = page.evaluate(ALL_IMAGES)
    assert len(images) >= at_least
    broken = [i for i in images if i["w"] == 0]
    assert broken == [], f"images that did not render: {broken}"
    return images


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")  # a sticky header would land mid-page
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def parents_shown(page: Page) -> dict[int, int | None]:
    found: dict[str, str] = page.evaluate(LINEAGE)
    return {int(k): int(v) if v else None for k, v in found.items()}


# --------------------------------------------------------------------------- the export


def test_exported_contact_sheet_opens_from_disk_with_no_network(
    new_page: Any, studio: Studio, series: Series, tmp_path: Path
) -> None:
    studio.annotate_image(series.guitar, starred=True, rating=4, note="the keeper")
    result = export_session(studio, series.session, tmp_path / "export")
    watched = new_page("file:", "data:")
    page = watched.page
    page.goto(result.index.as_uri())

    images = every_image_renders(page, at_least=8)  # anchor + 3 shots, and 4 lineage thumbnails
    succeeded = {series.anchor, series.crying, series.guitar, series.branch}
    assert {int(i["id"]) for i in images if i["id"]} == succeeded
    assert parents_shown(page) == series.parents

    failed = page.locator(f"#image-{series.failed}")
    expect(failed).to_contain_text("Your request was rejected by the safety system.")
    expect(failed).to_contain_text("moderation_blocked")

    prompt = page.locator(f"#image-{series.crying} details.prompt")
    expect(prompt.locator("pre")).not_to_be_visible()
    prompt.locator("summary").click()
    expect(prompt.locator("pre")).to_be_visible()
    expect(prompt.locator("pre")).to_contain_text("Expression: crying")
    expect(page.locator(f"#image-{series.guitar}")).to_contain_text("the keeper")
    shoot(page, "export-index")

    # every original link points at a byte-identical file beside index.html, and opens
    hrefs: list[str] = page.eval_on_selector_all("a.frame", "els => els.map(e => e.href)")
    assert len(hrefs) == 4
    for href in hrefs:
        path = Path(href.removeprefix("file://"))
        assert path.parent == result.directory
        assert sha256_file(path) in {f.sha256 for f in result.files}
    original = new_page("file:").page
    original.goto(hrefs[1])
    assert original.evaluate("() => document.images[0].naturalWidth") > 0
    watched.clean()


# --------------------------------------------------------------------------- the web UI


def test_served_pages_render_every_image(new_page: Any, served: Served, series: Series) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page

    page.goto(f"{served.url}/")
    every_image_renders(page, at_least=1)
    expect(page.locator(f'a[data-session="{series.session}"]')).to_be_visible()
    shoot(page, "web-index")

    page.goto(f"{served.url}/sessions/{series.session}")
    images = every_image_renders(page, at_least=8)
    assert {int(i["id"]) for i in images if i["id"]} == {
        series.anchor,
        series.crying,
        series.guitar,
        series.branch,
    }
    assert parents_shown(page) == series.parents
    expect(page.locator(f"#image-{series.failed}")).to_contain_text("moderation_blocked")
    shoot(page, "web-session")

    page.goto(f"{served.url}/images/{series.guitar}")
    every_image_renders(page, at_least=4)
    path = page.eval_on_selector_all(
        "[data-lineage-path] a[data-image-id]", "els => els.map(e => +e.dataset.imageId)"
    )
    assert path == [series.anchor, series.crying, series.guitar]
    shoot(page, "web-image")
    watched.clean()


def test_starring_rating_and_notes_persist_to_the_database(
    new_page: Any, served: Served, series: Series
) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    card = f"#image-{series.crying}"

    page.locator(f"{card} button[data-action=star]").click()
    expect(page.locator(f"{card} button[data-action=star]")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.locator(f"{card} button[data-rating='4']").click()
    expect(page.locator(f"{card} .rating button.on")).to_have_count(4)
    page.locator(f"{card} textarea[name=note]").fill("Keep the tears, lose the hat")
    page.locator(f"{card} button[data-action=note]").click()
    expect(page.locator(f"{card} .saved")).to_have_text("saved ✓")

    with Studio.open(served.home) as other:  # a separate connection: it reached the database
        row = other.image(series.crying).row
        assert (row.starred, row.rating, row.note) == (True, 4, "Keep the tears, lose the hat")

    page.reload()
    expect(page.locator(f"{card} button[data-action=star]")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator(f"{card} textarea[name=note]")).to_have_value(
        "Keep the tears, lose the hat"
    )
    expect(page.locator(f'li.node[data-image-id="{series.crying}"] .starred-mark')).to_be_visible()
    page.locator(card).scroll_into_view_if_needed()
    shoot(page, "web-annotated")
    watched.clean()


def test_a_branch_started_from_the_form_appears_in_the_tree(
    new_page: Any, served: Served, series: Series, controls: Controls
) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    page.evaluate("() => { window.sameDocument = true; }")
    controls.hold()

    page.locator(f"#image-{series.crying} .js-branch").click()
    expect(page.locator("#from-image")).to_have_value(str(series.crying))
    page.fill("#shot-form input[name=expression]", "laughing")
    page.fill("#shot-form input[name=scene]", "beach at sunset")
    page.click("#shot-form button[type=submit]")

    pending = page.locator('#cards .card[data-status="pending"]')
    expect(pending).to_have_count(1)
    new_id = int(pending.get_attribute("data-image-id") or 0)
    assert served.studio.image(new_id).row.parent_id == series.crying
    expect(page.locator(f'li.node[data-image-id="{new_id}"]')).to_have_attribute(
        "data-parent-id", str(series.crying)
    )
    shoot(page, "web-branch-pending")

    controls.release()
    card = page.locator(f"#image-{new_id}")
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    page.wait_for_function(f"() => document.querySelector('#image-{new_id} img')?.naturalWidth > 0")
    expect(card).to_contain_text("laughing")
    expect(card.locator("h3 .badge")).to_have_text("head")  # the head moved to the new shot...
    expect(page.locator(f"#image-{series.branch} h3 .badge")).to_have_count(0)  # ...off this
    node = page.locator(f'#lineage li.node[data-image-id="{new_id}"]')
    expect(node).to_have_attribute("data-parent-id", str(series.crying))
    expect(node.locator("img.mini")).to_be_visible()
    assert page.evaluate("() => window.sameDocument") is True  # no reload happened

    image = served.studio.image(new_id)
    assert image.succeeded and image.row.parent_id == series.crying
    assert "Expression: laughing" in image.prompt and "Scene: beach at sunset" in image.prompt
    every_image_renders(page, at_least=10)
    card.scroll_into_view_if_needed()
    shoot(page, "web-branch-done")
    watched.clean()


def test_branching_from_an_image_page_lands_on_its_session(
    new_page: Any, served: Served, series: Series
) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/images/{series.branch}")
    page.fill("#shot-form input[name=pose]", "waving")
    page.click("#shot-form button[type=submit]")
    page.wait_for_url(f"**/sessions/{series.session}#image-*")
    new_id = int(page.url.rsplit("-", 1)[1])
    expect(page.locator(f"#image-{new_id}")).to_have_attribute(
        "data-status", "succeeded", timeout=20_000
    )
    assert served.studio.image(new_id).row.parent_id == series.branch
    expect(page.locator(f'li.node[data-image-id="{new_id}"]')).to_have_attribute(
        "data-parent-id", str(series.branch)
    )
    watched.clean()


def test_a_shot_made_elsewhere_appears_without_a_reload(
    new_page: Any, served: Served, series: Series
) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    page.evaluate("() => { window.sameDocument = true; }")
    made = served.studio.session(series.session).shot(expression="surprised")  # as the CLI would
    card = page.locator(f"#image-{made.id}")
    expect(card).to_have_attribute("data-status", "succeeded", timeout=15_000)
    page.wait_for_function(
        f"() => document.querySelector('#image-{made.id} img')?.naturalWidth > 0"
    )
    expect(page.locator(f'li.node[data-image-id="{made.id}"]')).to_have_attribute(
        "data-parent-id", str(series.branch)
    )
    assert page.evaluate("() => window.sameDocument") is True
    watched.clean()


LONG_LABEL = (
    "walking home through the old market at dusk with a paper lantern, a cat on her "
    "shoulder and a bag of oranges, past the bakery that sells the round bread " + "z" * 90
)
UNCUT = """(selector) => [...document.querySelectorAll(selector)].filter(
    e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
        || getComputedStyle(e).textOverflow === 'ellipsis').map(e => e.textContent)"""
INSIDE = """([inner, outer]) => {
    const a = document.querySelector(inner).getBoundingClientRect();
    const b = document.querySelector(outer).getBoundingClientRect();
    return a.width > 0 && a.left >= b.left && a.right <= b.right;
}"""


def test_lineage_labels_wrap_and_keep_their_id_and_head_marker(
    new_page: Any, served: Served, series: Series
) -> None:
    """A long request is shown whole in the lineage panel, wrapped: nothing is cut with an
    ellipsis or left past the panel's edge, the id stays on one line, and the head marker
    stays beside it (issue 13)."""
    made = served.studio.session(series.session).shot(LONG_LABEL)
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    node = f'#lineage li.node[data-image-id="{made.id}"]'
    expect(page.locator(f"{node} .label")).to_contain_text(f"#{made.id} {LONG_LABEL}")
    assert page.evaluate(UNCUT, "#lineage .node-text .label, #lineage .num") == []
    for part in (".num", ".head-tag", ".label"):
        assert page.evaluate(INSIDE, [f"{node} {part}", ".lineage-panel"]), part
    expect(page.locator(f"{node} .head-tag")).to_be_visible()
    id_box = page.locator(f"{node} .num").bounding_box()
    assert id_box is not None and id_box["height"] < 30  # "#N" on one line, not broken
    page.locator(node).scroll_into_view_if_needed()
    shoot(page, "web-long-label")
    watched.clean()


def test_retry_on_a_failed_card_adds_the_new_image_without_a_reload(
    new_page: Any, served: Served, series: Series, monkeypatch: pytest.MonkeyPatch
) -> None:
    import test_web_fixtures

    monkeypatch.setattr(test_web_fixtures, "FAIL_WORD", "no longer refused")
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    page.evaluate("() => { window.sameDocument = true; }")
    page.locator(f"#image-{series.failed} button[data-action=retry]").click()
    retried = page.locator("#cards .card", has_text=f"retry of #{series.failed}")
    expect(retried).to_have_attribute("data-status", "succeeded", timeout=20_000)
    new_id = int(retried.get_attribute("data-image-id") or 0)
    assert served.studio.image(new_id).retry_of_id == series.failed
    expect(page.locator(f'li.node[data-image-id="{new_id}"]')).to_have_attribute(
        "data-parent-id", str(series.guitar)
    )
    assert page.evaluate("() => window.sameDocument") is True
    watched.clean()


def test_hide_from_a_card_and_unhide_from_the_grid(
    new_page: Any, served: Served, series: Series
) -> None:
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/sessions/{series.session}")
    page.evaluate("() => { window.sameDocument = true; }")
    card = page.locator(f"#image-{series.branch}")
    card.locator(".more-actions summary").click()
    card.locator("button[data-action=hide]").click()
    expect(card).to_have_count(0)
    expect(page.locator(f'li.node[data-image-id="{series.branch}"]')).to_have_count(0)
    assert page.evaluate("() => window.sameDocument") is True

    page.click("a[data-grid]")
    images = every_image_renders(page, at_least=3)  # the anchor, and two finished shots
    assert {int(i["id"]) for i in images} == {series.anchor, series.crying, series.guitar}
    tiles = page.locator(".tile")
    expect(tiles).to_have_count(4)  # and the failed one
    shoot(page, "web-grid")
    page.check("input[name=hidden]")
    page.click(".grid-filters button[type=submit]")
    expect(tiles).to_have_count(2)  # the anchor, and the hidden shot
    page.locator(f"#image-{series.branch} button[data-action=unhide]").click()
    expect(page.locator(f"#image-{series.branch}")).to_have_count(0)
    page.goto(f"{served.url}/sessions/{series.session}/grid")
    expect(page.locator(f"#image-{series.branch}")).to_have_count(1)
    with Studio.open(served.home) as other:
        assert series.branch in [image.id for image in other.session_images(series.session)]
    watched.clean()


def test_a_chatgpt_shot_is_finished_by_uploading_its_picture(
    new_page: Any, served: Served, series: Series, tmp_path: Path
) -> None:
    waiting = served.studio.session(series.session).shot(pose="sitting", provider="chatgpt")
    picture = tmp_path / "from chatgpt.png"
    with Studio.open(served.home) as other:  # any real picture will do: the guitar shot's
        picture.write_bytes(other.image(series.guitar).read_bytes())
    watched = new_page(served.url, "data:")
    page = watched.page
    page.goto(f"{served.url}/images/{waiting.id}")
    expect(page.locator("pre[data-message=shot]")).to_have_text(waiting.messages[-1])
    page.set_input_files("input[name=picture]", str(picture))
    page.click(".js-upload button[type=submit]")
    expect(page.locator(f'.detail img[src="/files/{waiting.id}"]')).to_be_visible(timeout=20_000)
    every_image_renders(page, at_least=2)
    assert served.studio.image(waiting.id).status == "succeeded"
    shoot(page, "web-chatgpt-attached")

    # a file that is not a picture is refused in a sentence, on the page
    again = served.studio.session(series.session).shot(pose="waving", provider="chatgpt")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    page.goto(f"{served.url}/images/{again.id}")
    page.set_input_files("input[name=picture]", str(notes))
    page.click(".js-upload button[type=submit]")
    expect(page.locator(".js-upload .form-error")).to_contain_text(
        "notes.txt is not a readable image"
    )
    assert watched.outside == []
    assert all("400 (Bad Request)" in error for error in watched.errors)  # the refusal's own
