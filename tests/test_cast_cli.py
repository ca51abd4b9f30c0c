"""A cast from the command line (issue 15): creatures, props and sets made, listed and shown by
kind; a session's cast started, listed and changed; ``images --with`` finding every picture a
member is in, across sessions, a page at a time from the ``image_cast`` index.

Shots of several are made through the library (the ``shot`` command's own options are tested
beside it); everything here is what the user types and reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from cli_inprocess import Outcome, assert_refused_cleanly, run_cli, snapshot
from onmodel.handles import Image
from onmodel.studio import Studio
from test_session_paging import Statements


def ok(home: Path, *args: str) -> str:
    outcome = run_cli(home, *args)
    assert outcome.code == 0, outcome
    return outcome.stdout


def as_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "--json"))


def refused(home: Path, *args: str) -> Outcome:
    """A refusal that leaves every table and file as it was."""
    before = snapshot(home)
    outcome = run_cli(home, *args)
    assert_refused_cleanly(outcome)
    assert snapshot(home) == before
    return outcome


def listed_ids(out: str) -> list[int]:
    return [int(line.split()[0][1:]) for line in out.splitlines() if line.startswith("#")]


def line_of(out: str, image: Image) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"#{image.id} "))


@pytest.fixture
def home(studio: Studio) -> Path:
    """Mia and Rin (characters), Max (a creature) and Bedroom (a set), all with anchors."""
    studio.create_character("Mia", prompt="a girl with red hair and green eyes", provider="preview")
    studio.create_character("Rin", prompt="a boy with black hair and blue eyes", provider="preview")
    studio.create_character("Max", prompt="a small brown dog", kind="creature", provider="preview")
    studio.create_character("Bedroom", prompt="a cosy bedroom", kind="set", provider="preview")
    return studio.paths.home


# ------------------------------------------------------------------ kinds


def test_new_and_import_take_a_kind_and_list_and_show_say_it(
    studio: Studio, isolated_home: Path, tmp_path: Path
) -> None:
    home = isolated_home
    ok(home, "character", "new", "Mia", "--prompt", "a girl with red hair")
    out = ok(home, "character", "new", "Max", "--kind", "creature", "--prompt", "a brown dog")
    assert out.startswith("created creature max")
    sheet = tmp_path / "bedroom.yaml"
    sheet.write_text("layout: bed under the window\nfixed_objects: [desk, green rug]\n")
    made = as_json(
        home,
        *("character", "new", "Bedroom", "--kind", "set", "--prompt", "a cosy bedroom"),
        *("--sheet", str(sheet)),
    )
    assert made["kind"] == "set" and made["sheet"]["layout"] == "bed under the window"
    anchor = studio.character("mia").anchor
    assert anchor is not None and anchor.path is not None
    out = ok(home, "character", "import", "Guitar", str(anchor.path), "--kind", "prop")
    assert out.startswith("imported prop guitar")

    table = ok(home, "character", "list")
    kinds = {line.split()[1]: line.split()[3] for line in table.splitlines() if "│" in line}
    assert kinds == {"mia": "character", "max": "creature", "bedroom": "set", "guitar": "prop"}
    assert [c["slug"] for c in as_json(home, "character", "list", "--kind", "set")] == ["bedroom"]
    assert {c["slug"]: c["kind"] for c in as_json(home, "character", "list")}["max"] == "creature"
    only = ok(home, "character", "list", "--kind", "creature")
    assert "max" in only and "mia" not in only and "bedroom" not in only
    ok(home, "character", "hide", "guitar")
    assert ok(home, "character", "list", "--kind", "prop").strip() == (
        "no props yet: onmodel character new NAME --kind prop --prompt '...'"
    )

    shown = ok(home, "character", "show", "bedroom")
    assert "kind: set" in shown
    assert "  layout: bed under the window" in shown
    assert "  fixed_objects: desk, green rug" in shown
    assert "  lighting: -" in shown  # a set's place, even what is still to be written
    assert shown.count("layout:") == 1
    assert "kind: creature" in ok(home, "character", "show", "max")
    assert "lighting" not in ok(home, "character", "show", "max")
    assert as_json(home, "character", "show", "max")["kind"] == "creature"


def test_an_unknown_kind_is_one_line_and_writes_nothing(isolated_home: Path) -> None:
    home = isolated_home
    ok(home, "character", "new", "Mia", "--prompt", "a girl with red hair")
    for args in (
        ("character", "new", "Smaug", "--kind", "dragon", "--prompt", "a dragon"),
        ("character", "list", "--kind", "dragon"),
    ):
        outcome = refused(home, *args)
        assert outcome.code == 2
        assert "unknown kind 'dragon'" in outcome.stderr and "creature" in outcome.stderr
    assert [c["slug"] for c in as_json(home, "character", "list")] == ["mia"]


# ------------------------------------------------------------------ a session's cast


def test_session_new_with_members_and_the_cast_listed(home: Path) -> None:
    out = ok(home, "session", "new", "mia", "--title", "week", "--with", "rin", "--with", "max")
    assert out.startswith("started session week for mia with rin, max")
    table = ok(home, "session", "cast")
    assert table.startswith("cast of week:")
    rows = [line.split("│")[1:-1] for line in table.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row[:3]] for row in rows] == [
        ["mia", "lead", "character"],
        ["rin", "member", "character"],
        ["max", "member", "creature"],
    ]
    assert all(row[3].strip().startswith("#") for row in rows)  # each has its anchor
    cast = as_json(home, "session", "cast", "week")
    assert [(m["slug"], m["role"], m["kind"], m["ready"]) for m in cast] == [
        ("mia", "lead", "character", True),
        ("rin", "member", "character", True),
        ("max", "member", "creature", True),
    ]
    assert as_json(home, "session", "show")["members"] == ["rin", "max"]
    assert as_json(home, "session", "list")[0]["members"] == ["rin", "max"]
    assert "cast: mia (lead), rin, max (creature)\n" in ok(home, "session", "show")


def test_session_cast_add_and_remove(home: Path) -> None:
    ok(home, "session", "new", "mia", "--title", "week")
    ok(home, "session", "new", "rin", "--title", "day")  # now the current session
    out = ok(home, "session", "cast", "add", "max", "bedroom", "--session", "week")
    assert out.splitlines() == [
        "added to week: max, bedroom",
        "cast: mia (lead), max (creature), bedroom (set)",
    ]
    assert ok(home, "session", "cast", "add", "max", "-s", "week").startswith(
        "nothing added: already in the cast of week"
    )
    assert as_json(home, "session", "cast")[1:] == []  # the current session, day: Rin alone
    assert "add more: onmodel session cast add NAME... --session day" in ok(home, "session", "cast")
    assert ok(home, "session", "cast", "add", "max").startswith("added to day: max")
    out = ok(home, "session", "cast", "remove", "max", "--session", "week")
    assert out.splitlines() == [
        "removed from week: max (the pictures it is in keep it)",
        "cast: mia (lead), bedroom (set)",
    ]
    after = as_json(home, "session", "cast", "remove", "max")  # JSON: the cast afterwards
    assert [m["slug"] for m in after] == ["rin"]
    assert as_json(home, "session", "show", "week")["members"] == ["bedroom"]


def test_a_member_without_an_anchor_is_marked(home: Path, studio: Studio) -> None:
    studio.create_character("Pip", prompt="a small bird", kind="creature", provider="chatgpt")
    ok(home, "session", "new", "mia", "--with", "pip")
    out = ok(home, "session", "cast")
    row = next(line for line in out.splitlines() if "pip" in line)
    assert "none yet" in row
    assert "cannot be in a shot yet" in out
    pip = as_json(home, "session", "cast")[1]
    assert (pip["slug"], pip["ready"], pip["anchor_status"]) == ("pip", False, None)


def test_a_hidden_member_is_marked(home: Path, studio: Studio) -> None:
    ok(home, "session", "new", "mia", "--with", "max")
    assert "cannot be in a shot" not in ok(home, "session", "cast")
    studio.hide_character("max")
    out = ok(home, "session", "cast")
    assert "member, hidden" in next(line for line in out.splitlines() if "max" in line)
    assert "max cannot be in a shot yet: hidden: unhide it to put it in a shot" in out
    max_ = as_json(home, "session", "cast")[1]
    assert (max_["hidden"], max_["ready"], max_["anchor_status"]) == (True, False, "succeeded")


def test_cast_mistakes_are_one_line_and_change_nothing(home: Path) -> None:
    for args in (
        ("session", "new", "mia", "--with", "nobody"),
        ("session", "new", "mia", "--with", "rin", "--with", "mia"),
    ):
        refused(home, *args)
    assert as_json(home, "session", "list") == []
    ok(home, "session", "new", "mia", "--title", "week", "--with", "rin")
    for args, says in (
        (("session", "cast", "add", "nobody"), "no character 'nobody'"),
        (("session", "cast", "add", "rin", "nobody"), "no character 'nobody'"),
        (("session", "cast", "add", "mia"), "already the lead"),
        (("session", "cast", "add"), "name who to add"),
        (("session", "cast", "remove", "max"), "not in the cast"),
        (("session", "cast", "remove", "mia"), "a session keeps its lead"),
        (("session", "cast", "remove"), "name one member to remove"),
        (("session", "cast", "remove", "rin", "max"), "name one member to remove"),
        (("session", "cast", "week", "day"), "name one session"),
        (("session", "cast", "week", "--session", "week"), "name one session"),
        (("session", "cast", "nowhere"), "no session 'nowhere'"),
        (("session", "cast", "add", "max", "--session", "nowhere"), "no session 'nowhere'"),
    ):
        assert says in refused(home, *args).stderr, args
    assert as_json(home, "session", "show")["members"] == ["rin"]


# ------------------------------------------------------------------ images --with


@pytest.fixture
def series(home: Path, studio: Studio) -> dict[str, Image]:
    """Shots with and without Max, in two sessions."""
    week = studio.start_session("mia", title="week", provider="preview", with_=["max", "rin"])
    walk = studio.start_session("rin", title="walk", provider="preview", with_=["max", "bedroom"])
    return {
        "alone": week.shot("reading"),
        "guitar": week.shot("playing guitar", with_=["rin", "max"]),
        "park": walk.shot("in the park", with_=["max"]),
        "rin": walk.shot("sleeping", set_="bedroom"),
        "fetch": week.shot("playing fetch", with_=["max"]),
    }


def test_images_with_finds_every_picture_a_member_is_in(
    home: Path, studio: Studio, series: dict[str, Image]
) -> None:
    max_anchor = studio.character("max").anchor_image_id
    found = listed_ids(ok(home, "images", "--with", "max"))
    expected = [series[name].id for name in ("fetch", "park", "guitar")] + [max_anchor]
    assert found == expected  # across both sessions, newest first, and not the others
    assert listed_ids(ok(home, "images", "--with", "max", "--with", "rin")) == [
        series["park"].id,  # Rin's own session
        series["guitar"].id,
    ]
    assert listed_ids(ok(home, "images", "walk", "--with", "max")) == [series["park"].id]
    assert listed_ids(ok(home, "images", "--with", "bedroom", "--search", "sleep")) == [
        series["rin"].id
    ]
    studio.annotate_image(series["guitar"], starred=True)
    assert listed_ids(ok(home, "images", "--with", "Max", "--starred")) == [series["guitar"].id]
    studio.hide_images([series["park"]])
    assert series["park"].id not in listed_ids(ok(home, "images", "--with", "max"))
    assert listed_ids(ok(home, "images", "--with", "max", "--hidden")) == [series["park"].id]
    assert ok(home, "images", "--with", "bedroom", "--starred").strip() == "no images match"

    out = ok(home, "images", "--with", "max", "--limit", "1")
    assert listed_ids(out) == [series["fetch"].id]
    assert "… more: onmodel images --with max --limit 2" in out  # the filter kept

    for args in (("images", "--with", "nobody"), ("images", "--with", "max", "--with", "x")):
        assert "no character" in refused(home, *args).stderr


def test_a_listed_picture_says_who_is_in_it(
    home: Path, studio: Studio, series: dict[str, Image]
) -> None:
    out = ok(home, "images")
    assert line_of(out, series["guitar"]).endswith("+ Rin, Max")  # who joined Mia
    assert line_of(out, series["rin"]).endswith("in Bedroom")
    assert "+" not in line_of(out, series["alone"])  # its own character alone: nothing more
    max_anchor = studio.character("max").anchor
    assert max_anchor is not None and "+" not in line_of(out, max_anchor)
    listed = {item["id"]: item for item in as_json(home, "images", "--with", "max")}
    assert [(m["slug"], m["kind"]) for m in listed[series["park"].id]["cast"]] == [
        ("rin", "character"),
        ("max", "creature"),
    ]
    (sleeping,) = as_json(home, "images", "walk", "--search", "sleep")
    assert [m["slug"] for m in sleeping["cast"]] == ["rin", "bedroom"]  # figures, then the set


def test_session_show_json_reads_casts_a_chunk_at_a_time(
    home: Path, studio: Studio, series: dict[str, Image]
) -> None:
    seen: list[str] = []

    def grab(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", grab)  # the command opens its own engine
    try:
        shown = as_json(home, "session", "show", "week", "--all")
    finally:
        event.remove(Engine, "before_cursor_execute", grab)
    casts = {image["id"]: [m["slug"] for m in image["cast"]] for image in shown["images"]}
    assert casts[series["guitar"].id] == ["mia", "rin", "max"]
    assert casts[series["alone"].id] == ["mia"]
    assert len(shown["images"]) == 3
    assert sum("FROM image_cast" in statement for statement in seen) == 1  # not one per image


def test_images_with_streams_a_page_at_a_time_from_the_cast_index(
    home: Path, studio: Studio, series: dict[str, Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.studio import listing

    week = studio.session("week")
    more = [week.shot(f"fetch {n}", with_=["max"]).id for n in range(4)]
    monkeypatch.setattr(listing, "PAGE", 2)
    expected = [*reversed(more), *(series[n].id for n in ("fetch", "park", "guitar"))]
    with Statements(studio) as seen:
        found = [item.image.id for item in studio.images(with_=["max"], limit=7)]
    assert found == expected
    max_anchor = studio.character("max").anchor_image_id
    assert listed_ids(ok(home, "images", "--with", "max")) == [*expected, max_anchor]
    pages = [statement for statement, _ in seen.seen if "image_cast AS cast_0" in statement]
    assert len(pages) == 4  # 2 + 2 + 2 + 1: each page one statement, from the last id seen
    casts = [s for s, _ in seen.seen if "FROM image_cast" in s and "cast_0" not in s]
    assert len(casts) == 4  # who is in them: one query per page, never per image
    plans = [plan for plan in seen.plans() if "cast_0" in plan]
    assert plans and all(
        "USING COVERING INDEX ix_image_cast_character_id_image_id" in plan
        and "SCAN image" not in plan
        and "TEMP B-TREE" not in plan
        for plan in plans
    ), plans


def test_the_library_lists_images_with_members(studio: Studio, series: dict[str, Image]) -> None:
    listed = list(studio.images(with_=["rin", "max"]))
    assert [item.image.id for item in listed] == [series["park"].id, series["guitar"].id]
    assert [[m.slug for m in item.cast.everyone] for item in listed] == [
        ["rin", "max"],
        ["mia", "rin", "max"],
    ]
    assert list(studio.images("week", with_=["bedroom"])) == []
