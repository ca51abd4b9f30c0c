"""A cast where a user looks at a series from outside it (issue 15): the export holds every
member (series.json's ``cast``, each anchor's file beside the images, the cast at the top of
``index.html``), ``character list`` and the web's characters page count the sessions a
character is cast in beside those it leads (counted for every row at once), and the web's
new-shot form shows a member that cannot be in a shot disabled, with the reason. Made offline
with the preview provider."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from cli_inprocess import run_cli
from onmodel.export import export_session
from onmodel.handles import Session
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp
from test_cast_display import create_cast
from test_web_long import get


@pytest.fixture
def cast_session(studio: Studio) -> Session:
    """Mia (the lead), Rin, Max the creature and the Bedroom set, all in session ``mia``,
    with a shot of the four of them and one of Mia alone."""
    session = create_cast(studio)
    session.shot("playing guitar", with_=["rin", "max"], set_="bedroom")
    session.shot("reading")
    return session


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def visible(html: str) -> str:
    """A page's text as a reader sees it: tags and embedded thumbnails dropped."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


# --------------------------------------------------------------------------- the export


def test_the_export_holds_every_member_with_its_sheet_and_anchor_file(
    studio: Studio, cast_session: Session, tmp_path: Path
) -> None:
    result = export_session(studio, "mia", tmp_path / "ex")
    series = json.loads(result.manifest.read_text(encoding="utf-8"))
    cast = series["cast"]
    assert [(m["slug"], m["name"], m["kind"], m["role"]) for m in cast] == [
        ("mia", "Mia", "character", "lead"),
        ("rin", "Rin", "character", "member"),
        ("max", "Max", "creature", "member"),
        ("bedroom", "Bedroom", "set", "member"),
    ]
    for member in cast:
        character = studio.character(member["slug"])
        assert member["description"] == character.description
        assert member["sheet"] == character.sheet.model_dump(mode="json")
        assert member["anchor_image_id"] == character.anchor_image_id
        anchor = member["anchor"]
        assert anchor["id"] == character.anchor_image_id and anchor["status"] == "succeeded"
        copied = result.directory / anchor["exported_as"]
        assert copied.is_file()
        # byte for byte, and recorded so a later export may replace it
        assert sha256(copied) == anchor["file"]["sha256"] == series["files"][copied.name]
    assert cast[0]["anchor"]["exported_as"] == "000-anchor.png"  # the lead's, as before
    assert {m["anchor"]["exported_as"] for m in cast[1:]} == {
        "cast-rin.png",
        "cast-max.png",
        "cast-bedroom.png",
    }
    # every image a shot sent is in the export: the series' own, or a member's anchor
    anchors = {m["anchor_image_id"] for m in cast}
    images = {image["id"] for image in series["images"]}
    sent = {r["image_id"] for image in series["images"] for r in image["references"]}
    assert sent - images == anchors - {cast[0]["anchor_image_id"]}
    assert sent <= images | anchors


def test_the_export_page_shows_the_cast_at_the_top(
    studio: Studio, cast_session: Session, tmp_path: Path
) -> None:
    result = export_session(studio, "mia", tmp_path / "ex")
    html = result.index.read_text(encoding="utf-8")
    section = html[html.index('<section id="cast"') : html.index("</section>")]
    assert html.index('id="cast"') < html.index('aria-label="Anchor"') < html.index('id="shots"')
    text = visible(section)
    assert text.startswith("Cast Mia lead")
    for name in ("Rin member", "Max (creature) member", "Bedroom (set) member"):
        assert name in text
    for slug in ("rin", "max", "bedroom"):
        anchor_id = studio.character(slug).anchor_image_id
        assert f"anchor #{anchor_id} · cast-{slug}.png" in text
        assert f'id="image-{anchor_id}"' in section  # where a card's reference leads
        assert f'href="cast-{slug}.png"' in section
    assert section.count('<img src="data:image/') == 4  # every anchor, from disk, offline


def test_a_picture_of_someone_no_longer_in_the_cast_still_exports_them(
    studio: Studio, cast_session: Session, tmp_path: Path
) -> None:
    studio.remove_from_cast(cast_session, "rin")
    series = json.loads(
        export_session(studio, "mia", tmp_path / "ex").manifest.read_text(encoding="utf-8")
    )
    roles = {member["slug"]: member["role"] for member in series["cast"]}
    assert roles == {"mia": "lead", "max": "member", "bedroom": "member", "rin": "pictured"}
    assert (tmp_path / "ex" / "cast-rin.png").is_file()


def test_exporting_again_replaces_the_members_files_and_zips_them(
    studio: Studio, cast_session: Session, tmp_path: Path
) -> None:
    export_session(studio, "mia", tmp_path / "ex")
    (tmp_path / "ex" / "notes.txt").write_text("mine", encoding="utf-8")
    again = export_session(studio, "mia", tmp_path / "ex", make_zip=True)
    assert again.kept == ["notes.txt"]  # the members' anchors were the export's own
    assert again.zip_path is not None
    with zipfile.ZipFile(again.zip_path) as bundle:
        names = set(bundle.namelist())
    assert {"ex/cast-rin.png", "ex/cast-max.png", "ex/cast-bedroom.png"} <= names


# --------------------------------------------------------------------------- character list


def list_json(home: Path) -> dict[str, Any]:
    outcome = run_cli(home, "character", "list", "--json")
    assert outcome.code == 0, outcome.stderr
    return {entry["slug"]: entry for entry in json.loads(outcome.stdout)}


def test_character_list_counts_the_sessions_a_member_is_cast_in(
    studio: Studio, cast_session: Session
) -> None:
    studio.start_session("rin", provider="preview", with_=["bedroom"])
    home = studio.paths.home
    rows = {
        line.split()[1]: line
        for line in run_cli(home, "character", "list").stdout.splitlines()
        if line.startswith("│")
    }
    assert "│ 1 " in rows["mia"] and "cast" not in rows["mia"]
    assert "│ 1 (+1 cast) " in rows["rin"]
    assert "│ 0 (+1 cast) " in rows["max"]
    assert "│ 0 (+2 cast) " in rows["bedroom"]
    counts = {slug: entry["session_counts"] for slug, entry in list_json(home).items()}
    assert counts == {
        "mia": {"led": 1, "cast": 0},
        "rin": {"led": 1, "cast": 1},
        "max": {"led": 0, "cast": 1},
        "bedroom": {"led": 0, "cast": 2},
    }
    studio.hide_session(cast_session)  # a hidden session counts no more, as session list
    assert list_json(home)["max"]["session_counts"] == {"led": 0, "cast": 0}


@pytest.fixture
def every_statement() -> Iterator[list[str]]:
    """Every SQL statement any engine runs (the CLI opens its own studio)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


def test_character_list_reads_the_same_statements_for_4_characters_as_for_16(
    studio: Studio, cast_session: Session, every_statement: list[str]
) -> None:
    home = studio.paths.home
    spent = []
    for size in (4, 16):
        for number in range(len(studio.characters()), size):
            name = f"Extra {number}"
            studio.create_character(name, prompt="a tall man in a coat")
            studio.start_session(name.lower().replace(" ", "-"), provider="preview")
        for args in (("character", "list"), ("character", "list", "--json")):
            every_statement.clear()
            outcome = run_cli(home, *args)
            assert outcome.code == 0, outcome.stderr
            spent.append(len(every_statement))
        assert len(list_json(home)) == size
    assert spent[:2] == spent[2:], spent


# --------------------------------------------------------------------------- the web


def character_card(html: str, slug: str) -> str:
    start = html.index(f'data-character="{slug}"')
    return html[start : html.index("</article>", start)]


def test_the_characters_page_lists_the_sessions_a_member_is_cast_in(
    studio: Studio, cast_session: Session
) -> None:
    page = get(GalleryApp(studio), "/")
    assert page.status == 200
    rin = character_card(page.text, "rin")
    assert "No sessions yet" not in rin
    assert "sessions: 0 (+1 cast)" in visible(rin)
    assert 'href="/sessions/mia"' in rin and "in the cast" in visible(rin)
    assert "sessions: 1" in visible(character_card(page.text, "mia"))


def test_the_characters_page_never_suggests_a_set_lead_a_session(studio: Studio) -> None:
    studio.create_character("Mia", prompt="a girl with red hair and green eyes")
    studio.create_character("Bedroom", prompt="a cosy bedroom", kind="set")
    page = get(GalleryApp(studio), "/")
    bedroom = visible(character_card(page.text, "bedroom"))
    assert "session new bedroom" not in bedroom
    assert "onmodel session cast add bedroom" in bedroom
    assert "onmodel session new CHARACTER --with bedroom" in bedroom
    assert "No sessions yet: onmodel session new mia" in visible(character_card(page.text, "mia"))


def test_the_characters_page_costs_the_same_statements_for_more_characters(
    studio: Studio, cast_session: Session, every_statement: list[str]
) -> None:
    app = GalleryApp(studio)
    spent = []
    for size in (4, 12):
        for number in range(len(studio.characters()), size):
            studio.create_character(f"Extra {number}", prompt="a tall man in a coat")
        every_statement.clear()
        assert get(app, "/").text.count('<article class="character"') == size
        spent.append(len(every_statement))
    assert spent[0] == spent[1], spent


def test_the_shot_form_disables_a_member_that_cannot_be_in_a_shot(
    studio: Studio, cast_session: Session
) -> None:
    studio.create_character("Pip", prompt="a small bird", kind="creature", provider="chatgpt")
    studio.add_to_cast(cast_session, ["pip"])
    studio.hide_character("max")
    app = GalleryApp(studio)
    form = get(app, "/sessions/mia").text
    inputs = dict(re.findall(r'<input type="checkbox" name="with:([^"]+)" value="1"([^>]*)>', form))
    assert inputs["rin"] == ""  # usable
    assert "disabled" in inputs["max"] and "disabled" in inputs["pip"]
    labels = visible(form[form.index("cast-choices") : form.index("</fieldset>")])
    assert "Max (creature) · hidden: unhide it to put it in a shot" in labels
    assert "Pip (creature) · no anchor yet" in labels
    assert "Rin ·" not in labels

    studio.unhide_character("max")
    studio.hide_character("bedroom")
    form = get(app, "/sessions/mia").text
    option = re.search(r'<option value="bedroom"([^>]*)>([^<]*)</option>', form)
    assert option is not None
    assert "disabled" in option[1] and "hidden: unhide it" in option[2]
