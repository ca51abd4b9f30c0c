"""Curating a cast (issue 15): a hidden member that pictures which stay still show is not purged
behind the user's back, a ``--subtree`` purge names every shown image it takes and every head it
moves before it takes them, and only a picture of a character alone becomes its anchor; through
the library and the command line, as the user reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_inprocess import snapshot
from onmodel.errors import UsageError
from onmodel.handles import Image, Session
from onmodel.studio import Studio
from test_cast_cli import home as cast_home  # noqa: F401  (a fixture: Mia, Rin, Max, Bedroom)
from test_cast_cli import ok
from test_cast_cli import refused as refused_cleanly


def refused(home: Path, *args: str) -> str:
    """What a one-line refusal that changed nothing says (``test_cast_cli.refused``)."""
    return refused_cleanly(home, *args).error_lines[0].removeprefix("error: ")


def head_of(studio: Studio, session: str) -> int | None:
    return studio.session(session).head_image_id


@pytest.fixture
def mia(studio: Studio, cast_home: Path) -> Session:  # noqa: F811  (the fixture imported)
    """Session ``mia``: Mia's, with Rin, Max and the bedroom in its cast (``cast_home``
    made them)."""
    return studio.start_session("mia", provider="preview", with_=["rin", "max", "bedroom"])


# ------------------------------------------------------------------ purging a cast member


def test_a_hidden_member_kept_pictures_show_is_refused_in_those_terms(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    alone = mia.shot("standing")
    walk = mia.shot("dog walk", with_=["max"])
    run = mia.shot("dog run", with_=["max"])  # made from the walk: the session's head
    ok(home, "character", "hide", "max")

    expected = (
        f"max (creature) is in 2 pictures that stay (#{walk.id}, #{run.id}) in session mia: "
        f"purging it would take those pictures with it; hide them first (onmodel hide "
        f"{walk.id} {run.id}), or keep max (onmodel character unhide max)"
    )
    for args in (("purge",), ("purge", "--yes"), ("purge", "--json")):
        assert refused(home, *args) == expected
    with pytest.raises(UsageError) as raised:
        studio.purge()
    assert str(raised.value) == expected
    assert "--subtree" not in expected
    assert [image.id for image in studio.session("mia").images()][-3:] == [
        alone.id,
        walk.id,
        run.id,
    ]

    # Doing what it says: the pictures are hidden (the head steps back), then max goes.
    ok(home, "hide", str(walk.id), str(run.id))
    assert head_of(studio, "mia") == alone.id
    out = ok(home, "purge", "--yes")
    assert out.startswith("purged 3 images (2 hidden one by one), 1 character (max)")
    assert "shown in" not in out and "head" not in out  # nothing shown went
    assert head_of(studio, "mia") == alone.id
    assert [member.slug for member in studio.session("mia").members] == ["rin", "bedroom"]


def test_the_refusal_names_what_was_made_from_the_members_pictures(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    walk = mia.shot("dog walk", with_=["max"])
    reading = mia.shot("reading")  # Mia alone, but drawn from the walk
    other = studio.start_session("mia", provider="preview", slug="park", with_=["max"])
    fetch = other.shot("fetch", with_=["max"])
    ok(home, "character", "hide", "max")

    assert refused(home, "purge") == (
        f"max (creature) is in 2 pictures that stay (#{walk.id}, #{fetch.id}) in sessions "
        f"mia, park: purging it would take those pictures and 1 made from them "
        f"(#{reading.id}) with it; hide them first (onmodel hide {walk.id} {reading.id} "
        f"{fetch.id}), or keep max (onmodel character unhide max)"
    )


def test_a_hidden_character_in_one_kept_picture_is_named_by_its_slug(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    duet = mia.shot("duet", with_=["rin"])
    ok(home, "character", "hide", "rin")
    assert refused(home, "purge") == (
        f"rin is in 1 picture that stays (#{duet.id}) in session mia: purging it would take "
        f"that picture with it; hide it first (onmodel hide {duet.id}), or keep rin "
        "(onmodel character unhide rin)"
    )


def test_a_subtree_purge_lists_every_shown_image_and_head_before_it_takes_them(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    alone = mia.shot("standing")
    walk = mia.shot("dog walk", with_=["max"])
    reading = mia.shot("reading")  # the head, made from the walk
    ok(home, "character", "hide", "max")
    anchor = studio.character("max").anchor_image_id
    assert anchor is not None

    before = snapshot(home)
    lines = ok(home, "purge", "--subtree").splitlines()
    assert lines[0].startswith("would purge 3 images (0 hidden one by one), 1 character (max);")
    assert lines[1:] == [
        f"shown in session mia, made from what is purged, so they go too: #{walk.id}, "
        f"#{reading.id}",
        f"session mia's head moves from #{reading.id} to #{alone.id}",
        "nothing is deleted until: onmodel purge --yes --subtree",
    ]
    report = json.loads(ok(home, "purge", "--subtree", "--json"))
    assert report["taken"] == [{"session": "mia", "images": [walk.id, reading.id]}]
    assert report["heads"] == [{"session": "mia", "from": reading.id, "to": alone.id}]
    assert snapshot(home) == before and head_of(studio, "mia") == reading.id

    library = studio.purge(subtree=True, dry_run=True)
    assert library.taken == {("session", "mia"): (walk.id, reading.id)}
    assert library.heads == {"mia": (reading.id, alone.id)}

    out = ok(home, "purge", "--subtree", "--yes")
    assert out.splitlines()[1:3] == [
        f"shown in session mia, made from what is purged, so they went too: #{walk.id}, "
        f"#{reading.id}",
        f"session mia's head moved from #{reading.id} to #{alone.id}",
    ]
    assert head_of(studio, "mia") == alone.id
    assert [image.id for image in studio.session("mia").images()][-1] == alone.id
    assert studio.lookups.images_by_id([walk.id, reading.id, anchor]) == {}
    # The next shot continues from the new head.
    nxt = studio.session("mia").shot("waving")
    assert nxt.parent_id == alone.id


def test_a_session_whose_shots_all_go_continues_from_its_anchor(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    walk = mia.shot("dog walk", with_=["max"])
    mia.shot("dog run", with_=["max"])
    ok(home, "character", "hide", "max")
    lead_anchor = studio.character("mia").anchor_image_id
    assert walk.parent_id == lead_anchor

    report = studio.purge(subtree=True, dry_run=True)
    head = head_of(studio, "mia")
    assert head is not None and report.heads == {"mia": (head, lead_anchor)}
    assert f"session mia's head moves from #{head} to #{lead_anchor}" in ok(
        home, "purge", "--subtree"
    )
    studio.purge(subtree=True)
    assert head_of(studio, "mia") == lead_anchor
    assert studio.session("mia").shot("waving").parent_id == lead_anchor


# ------------------------------------------------------------------ promoting an anchor


def test_only_a_picture_of_the_character_alone_becomes_its_anchor(
    studio: Studio, mia: Session
) -> None:
    home = studio.paths.home
    anchor = studio.character("mia").anchor_image_id
    several = mia.shot("playing", with_=["rin", "max"])
    rin = mia.shot("rin reads", cast=["rin"])
    room = mia.shot("in her room", set_="bedroom")
    assert rin.character_id == studio.character("mia").id  # the session's lead's picture

    refusals = [
        (
            several,
            f"image {several.id} shows mia, rin and max: an anchor shows its character "
            "alone; make a shot of mia alone and promote that",
        ),
        (rin, f"image {rin.id} shows rin, not mia: an anchor shows its character alone"),
        (
            room,
            f"image {room.id} shows mia in bedroom: an anchor shows its character alone; "
            "make a shot of mia alone and promote that",
        ),
    ]
    for image, message in refusals:
        assert refused(home, "character", "anchor", str(image.id)) == message
        assert refused(home, "character", "anchor", str(image.id), "--strict") == message
        with pytest.raises(UsageError) as raised:
            studio.promote_anchor(image)
        assert str(raised.value) == message
        assert studio.character("mia").anchor_image_id == anchor

    alone: Image = mia.shot("standing")
    assert ok(home, "character", "anchor", str(alone.id)).splitlines()[0] == (
        f"mia's anchor is now #{alone.id}"
    )
    assert studio.character("mia").anchor_image_id == alone.id
