"""Curating a series (issue 13): hide and delete, purge, rename, a session's settings and
head, a promoted anchor, model sheet versions, annotations and tags, and the image listing;
each from the library and from the CLI, as a user sees it."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from cli_inprocess import assert_refused_cleanly, run_cli, snapshot
from onmodel.errors import DuplicateError, UsageError, ValidationError
from onmodel.handles import Image, Session
from onmodel.providers import FACTORIES
from onmodel.sheet import ShotRequest
from onmodel.store import purge as store_purge
from onmodel.studio import Studio
from test_batch_support import REFUSE_WORD, FakeImages, make_session, png

HOUR_AGO = time.time() - 3600


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeImages:
    images = FakeImages()
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: images)
    return images


@pytest.fixture
def session(studio: Studio, fake: FakeImages) -> Session:
    """An imported anchor and a session ``week`` on the fake ``openai-images``."""
    return make_session(studio)


def shot(studio: Studio, session: Session | str, pose: str, **options: object) -> Image:
    return studio.shot(session, ShotRequest(pose=pose), **options)


def chain(studio: Studio, session: Session, *poses: str) -> list[Image]:
    """Shots each continuing the last (the session head moves on)."""
    return [shot(studio, session, pose) for pose in poses]


def age_blobs(home: Path) -> None:
    """Files written long ago: no write can still be using them (see blobs.IN_USE_GRACE)."""
    for path in (home / "blobs").rglob("*"):
        if path.is_file():
            os.utime(path, (HOUR_AGO, HOUR_AGO))


def cli(studio: Studio, *args: str) -> str:
    outcome = run_cli(studio.paths.home, *args)
    assert outcome.code == 0, outcome
    return outcome.stdout


def listed_ids(output: str) -> list[int]:
    """The ids an image listing (``images``, ``session show``) shows, in order."""
    lines = [line.strip() for line in output.splitlines()]
    return [int(line.split()[0][1:]) for line in lines if line.startswith("#")]


# ------------------------------------------------------------------ hiding


def test_a_hidden_image_leaves_listings_and_trees_and_its_children_stay(
    studio: Studio, session: Session
) -> None:
    a, b, c = chain(studio, session, "one", "two", "three")
    anchor = session.character.anchor_image_id
    assert cli(studio, "delete", str(b.id)).startswith(f"hidden: #{b.id}")

    assert [image.id for image in session.images()] == [a.id, c.id]
    index = studio.session(session.id).lineage()
    assert b.id not in index and index.parent(c.id) == a.id  # hung one line up
    assert index.ancestors(c.id) == [anchor, a.id]
    assert studio.image(c.id).parent_id == b.id  # the row still says where it came from
    assert c.ancestor_ids() == [anchor, a.id, b.id]

    tree = cli(studio, "tree", "week", "--all")
    assert f"#{c.id}" in tree and f"#{b.id}" not in tree
    shown = cli(studio, "session", "show", "week")
    assert listed_ids(shown) == [a.id, c.id]
    assert "images: 2 — 2 succeeded" in shown and "1 hidden" in shown
    listed = json.loads(cli(studio, "session", "list", "--json"))
    assert listed[0]["images"] == 2
    assert b.id not in listed_ids(cli(studio, "images"))
    assert listed_ids(cli(studio, "images", "--hidden")) == [b.id]

    assert cli(studio, "unhide", str(b.id)).startswith(f"shown again: #{b.id}")
    assert studio.session(session.id).lineage().parent(c.id) == b.id
    assert [image.id for image in session.images()] == [a.id, b.id, c.id]


def test_a_hidden_image_leaves_the_export(studio: Studio, session: Session, tmp_path: Path) -> None:
    a, b, c = chain(studio, session, "one", "two", "three")
    studio.hide_images([b])
    cli(studio, "export", "week", "--to", str(tmp_path / "out"))
    series = (tmp_path / "out" / "series.json").read_text()
    assert f'"id": {c.id}' in series and f'"id": {a.id}' in series
    assert f'"id": {b.id}' not in series


def test_hiding_the_head_moves_it_to_the_nearest_shown_success(
    studio: Studio, session: Session
) -> None:
    a, b = chain(studio, session, "one", "two")
    with pytest.raises(Exception, match="image"):
        shot(studio, session, REFUSE_WORD)  # a failed take is never a head
    c = shot(studio, session, "three")
    studio.hide_images([b, c])
    assert studio.session(session.id).head_image_id == a.id
    following = shot(studio, session, "four")
    assert following.parent_id == a.id
    studio.unhide_images([c])
    assert studio.session(session.id).head_image_id == following.id  # a moved head stays


def test_an_anchor_cannot_be_hidden_and_a_refusal_changes_nothing(
    studio: Studio, session: Session
) -> None:
    anchor = str(session.character.anchor_image_id)
    before = snapshot(studio.paths.home)
    outcome = run_cli(studio.paths.home, "hide", anchor)
    assert_refused_cleanly(outcome)
    assert "anchor of mia" in outcome.stderr and "character anchor" in outcome.stderr
    assert_refused_cleanly(run_cli(studio.paths.home, "hide", "99999"))
    assert_refused_cleanly(run_cli(studio.paths.home, "hide", "abc"))
    assert snapshot(studio.paths.home) == before
    assert list(studio.images(hidden=True)) == []


def test_an_image_still_being_made_cannot_be_hidden(studio: Studio, session: Session) -> None:
    pending = studio.record(studio.plan_shot(session, ShotRequest(pose="in flight")))
    with pytest.raises(UsageError, match="still being made"):
        studio.hide_images([pending])


def test_hidden_sessions_and_characters_leave_their_lists(studio: Studio, session: Session) -> None:
    shot(studio, session, "one")
    other = studio.start_session("mia", slug="other")  # now the current session
    assert cli(studio, "session", "delete", "other").startswith("hidden: session other")
    assert [s.slug for s in studio.sessions()] == ["week"]
    assert studio.current_session() is None  # a hidden session is no longer current
    hidden = json.loads(cli(studio, "session", "list", "--hidden", "--json"))
    assert [s["slug"] for s in hidden] == ["other"]
    assert studio.session("other").id == other.id  # still reachable by name

    studio.hide_character("mia")
    assert studio.characters() == [] and studio.sessions() == []
    assert [c.slug for c in studio.characters(hidden=True)] == ["mia"]
    assert list(studio.images()) == []  # its images leave the listing
    studio.unhide_character("mia")
    studio.unhide_session("other")
    assert [s.slug for s in studio.sessions()] == ["week", "other"]


# ------------------------------------------------------------------ purging


def test_purge_without_yes_only_says_what_would_go(studio: Studio, session: Session) -> None:
    _a, b = chain(studio, session, "one", "two")
    studio.hide_images([b])
    before = snapshot(studio.paths.home)
    out = cli(studio, "purge")
    assert "would purge 1 image;" in out and "onmodel purge --yes" in out
    assert snapshot(studio.paths.home) == before
    report = json.loads(cli(studio, "purge", "--json"))
    assert (report["done"], report["images"], report["files"]) == (False, 1, 1)


def test_purge_deletes_hidden_rows_and_the_files_nothing_else_uses(
    studio: Studio, session: Session
) -> None:
    home = studio.paths.home
    shared = home / "style.png"
    shared.write_bytes(png("style"))
    kept = shot(studio, session, "kept", refs=[shared])
    gone = shot(studio, session, "gone", refs=[shared], from_image=kept.parent_id)
    studio.tag_image(gone, ["draft"])
    gone_file, kept_file = gone.path, kept.path
    assert gone_file is not None and kept_file is not None
    studio.hide_images([gone])
    age_blobs(home)

    out = cli(studio, "purge", "--yes")
    assert out.startswith("purged 1 image; removed 1 file")
    assert not gone_file.exists()  # its own file: nothing else uses it
    assert kept_file.exists()
    style = next(r for r in kept.references if r.role == "extra")
    assert studio.blobs.verify(style.sha256, style.format)  # the kept shot sent it too
    with pytest.raises(UsageError, match=f"no image {gone.id}"):
        studio.image(gone.id)
    with studio.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM image_tag")).scalar() == 0
        left = conn.execute(
            text("SELECT COUNT(*) FROM image_reference WHERE image_id = :i"), {"i": gone.id}
        ).scalar()
    assert left == 0
    assert "nothing to purge" in cli(studio, "purge", "--yes")


def test_purge_keeps_young_files_for_db_check(studio: Studio, session: Session) -> None:
    (gone,) = chain(studio, session, "gone")
    studio.hide_images([gone])
    report = studio.purge()  # its file was written just now: a write may be using it
    assert (report.images, report.files, report.files_kept) == (1, 0, 1)
    assert gone.path is not None and gone.path.exists()
    age_blobs(studio.paths.home)
    check = run_cli(studio.paths.home, "db", "check")
    assert "orphan" in check.stdout and str(gone.path) in check.stdout


def test_purge_refuses_an_image_others_were_made_from_unless_subtree(
    studio: Studio, session: Session
) -> None:
    a, b, c, _d = chain(studio, session, "one", "two", "three", "four")
    studio.hide_images([b])
    before = snapshot(studio.paths.home)
    outcome = run_cli(studio.paths.home, "purge", "--yes")
    assert_refused_cleanly(outcome)
    assert f"image {b.id} is to be purged" in outcome.stderr and f"#{c.id}" in outcome.stderr
    assert "--subtree" in outcome.stderr
    assert snapshot(studio.paths.home) == before

    preview = json.loads(cli(studio, "purge", "--subtree", "--json"))
    assert preview["images"] == 3 and preview["hidden_images"] == 1
    report = studio.purge(subtree=True, grace=timedelta(0))
    assert (report.images, report.files) == (3, 3)
    assert [image.id for image in session.images()] == [a.id]
    assert studio.session(session.id).head_image_id == a.id  # the head moved to what stays


def test_purge_forgets_the_failed_take_a_kept_retry_points_at(
    studio: Studio, session: Session, fake: FakeImages
) -> None:
    with pytest.raises(Exception, match="image"):
        shot(studio, session, REFUSE_WORD)
    (failed,) = [i for i in session.images() if i.status == "failed"]
    fake.refuse = None
    retried = studio.retry(failed)
    assert retried.retry_of_id == failed.id
    studio.hide_images([failed])
    assert studio.purge().images == 1
    assert studio.image(retried.id).retry_of_id is None
    assert studio.image(retried.id).updated_at > retried.updated_at  # a change pages see


def test_purge_takes_hidden_sessions_and_characters_with_their_rows(
    studio: Studio, session: Session, tmp_path: Path
) -> None:
    chain(studio, session, "one", "two")
    other = tmp_path / "rin.png"
    other.write_bytes(png("rin", (64, 64)))
    rin = studio.import_character("Rin", other, prompt="a boy")
    studio.start_session("rin", slug="rin-week", provider="preview")
    shot(studio, "rin-week", "waving")
    studio.edit_sheet(rin, changes={"hair": "spiky"})
    studio.hide_character(rin)
    studio.hide_session(session)
    age_blobs(studio.paths.home)

    out = cli(studio, "purge", "--yes")
    assert "purged 4 images" in out and "2 sessions (week, rin-week)" in out
    assert "1 character (rin)" in out
    counts = snapshot(studio.paths.home)[0]
    assert counts == (1, 0, 1, 0, 0)  # mia and her anchor: character, session, image, ...
    with studio.engine.connect() as conn:
        versions = conn.execute(text("SELECT character_id FROM sheet_version")).scalars().all()
    assert versions == [studio.character("mia").id]
    anchor = studio.character("mia").anchor
    assert anchor is not None and anchor.path is not None and anchor.path.exists()


def test_purge_refuses_a_kept_characters_anchor(studio: Studio, session: Session) -> None:
    (a,) = chain(studio, session, "one")
    studio.promote_anchor(a)
    studio.hide_session(session)
    with pytest.raises(UsageError, match=f"image {a.id} is the anchor of mia"):
        studio.purge()


def test_a_purge_deletes_a_chunk_of_images_per_transaction(
    studio: Studio, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain(studio, session, *(f"pose {n}" for n in range(12)))
    studio.hide_session(session)
    monkeypatch.setattr(store_purge, "ID_CHUNK", 5)
    plan = store_purge.plan_purge(studio.engine, subtree=False)
    assert list(plan.images) == sorted(plan.images, reverse=True)  # newest first
    assert list(store_purge.execute_purge(studio.engine, plan)) == [5, 5, 2]
    assert studio.sessions() == [] and studio.sessions(hidden=True) == []


# ------------------------------------------------------------------ renaming


def test_rename_a_character_and_a_session(studio: Studio, session: Session) -> None:
    out = cli(studio, "character", "rename", "mia", "--name", "Mia Chen", "--slug", "mia-chen")
    assert out.strip() == "character mia-chen: Mia Chen"
    assert studio.character("mia-chen").id == session.character_id
    assert "Mia Chen" in studio.plan_shot(session, ShotRequest(pose="x")).prompt

    studio.use_session("week")
    assert cli(studio, "session", "rename", "week", "--slug", "days", "--title", "Days")
    assert studio.current_session() is not None
    assert studio.current_session().slug == "days"  # the current session follows
    assert cli(studio, "session", "show").startswith("days")

    studio.start_session("mia-chen", slug="taken", provider="preview")
    with pytest.raises(DuplicateError, match="'taken' already exists"):
        studio.rename_session("days", slug="taken")
    before = snapshot(studio.paths.home)
    for args in (
        ("session", "rename", "days", "--slug", "taken"),
        ("session", "rename", "days", "--slug", "123"),
        ("session", "rename", "days"),
        ("character", "rename", "mia-chen", "--name", "  "),
        ("character", "rename", "nobody", "--name", "x"),
    ):
        assert_refused_cleanly(run_cli(studio.paths.home, *args))
    assert snapshot(studio.paths.home) == before


# ------------------------------------------------------------------ a session's settings


def test_session_set_changes_the_next_shots_and_is_checked_like_session_new(
    studio: Studio, session: Session
) -> None:
    (made,) = chain(studio, session, "one")
    home = studio.paths.home
    before = snapshot(home)
    for args in (
        ("session", "set", "week", "--provider", "nope"),
        ("session", "set", "week", "--quality", "ultra"),
        ("session", "set", "week", "--model", "dall-e-3"),
        ("session", "set", "week"),
    ):
        assert_refused_cleanly(run_cli(home, *args))
    assert snapshot(home) == before
    with pytest.raises(ValidationError, match="quality 'ultra'"):
        studio.update_session(session, params={"quality": "ultra"})

    out = cli(studio, "session", "set", "week", "--provider", "preview", "--quality", "low")
    assert out.strip() == "session week: preview, gpt-image-2, size 1024x1024, quality low"
    plan = studio.plan_shot(session, ShotRequest(pose="two"))
    assert (plan.provider, plan.params["quality"]) == ("preview", "low")
    assert studio.execute(plan).provider == "preview"
    assert studio.image(made.id).provider == "openai-images"  # made as it was


# ------------------------------------------------------------------ heads and anchors


def test_session_head_moves_where_the_next_shot_continues(studio: Studio, session: Session) -> None:
    a, b = chain(studio, session, "one", "two")
    assert cli(studio, "session", "head", str(a.id)).strip() == f"session week: head #{a.id}"
    assert shot(studio, session, "branch").parent_id == a.id

    with pytest.raises(Exception, match="image"):
        shot(studio, session, REFUSE_WORD)
    failed = next(i for i in session.images() if i.status == "failed")
    other = studio.start_session("mia", slug="other")
    elsewhere = shot(studio, other, "elsewhere")
    studio.hide_images([b])
    home = studio.paths.home
    before = snapshot(home)
    for image, why in ((failed.id, "failed"), (elsewhere.id, "lineage"), (b.id, "hidden")):
        outcome = run_cli(home, "session", "head", str(image), "--session", "week")
        assert_refused_cleanly(outcome)
        assert why in outcome.stderr
    assert snapshot(home) == before
    anchor = session.character.anchor_image_id
    moved = studio.move_head("week", anchor)  # the anchor is in every session's lineage
    assert moved.head_image_id == anchor


def test_a_promoted_anchor_draws_the_next_shots_and_earlier_ones_keep_theirs(
    studio: Studio, session: Session
) -> None:
    first = session.character.anchor_image_id
    a, b = chain(studio, session, "one", "two")
    assert cli(studio, "character", "anchor", str(b.id)).strip() == f"mia's anchor is now #{b.id}"
    c = shot(studio, session, "three")
    anchors = {i.id: [r.image_id for r in i.references if r.role == "anchor"] for i in (a, c)}
    assert anchors == {a.id: [first], c.id: [b.id]}

    # The tree stays rooted at the first anchor: the new one sits where it was made.
    index = studio.session(session.id).lineage()
    assert index.roots == [first] and index.ancestors(c.id) == [first, a.id, b.id]
    # A session started now begins at the new anchor, its path from the first one shown.
    later = studio.start_session("mia", slug="later")
    d = shot(studio, later, "four")
    assert d.parent_id == b.id
    assert studio.session("later").lineage().ancestors(d.id) == [first, a.id, b.id]
    tree = cli(studio, "tree", "later", "--all")
    assert tree.index(f"#{first} ") < tree.index(f"#{b.id} ") < tree.index(f"#{d.id} ")

    studio.hide_images([a])
    with pytest.raises(UsageError, match="hidden"):
        studio.promote_anchor(a)


# ------------------------------------------------------------------ the model sheet


def test_an_edited_sheet_is_a_new_version_and_each_shot_keeps_its_own(
    studio: Studio, session: Session, tmp_path: Path
) -> None:
    (before,) = chain(studio, session, "one")
    out = cli(studio, "character", "sheet", "mia", "--set", "hair=short silver bob")
    assert "model sheet is now version 2" in out and "hair: short silver bob" in out
    after = shot(studio, session, "two")
    assert "short silver bob" in after.prompt and "short silver bob" not in before.prompt
    old, new = studio.sheet_of(before), studio.sheet_of(after)
    assert old is not None and new is not None
    assert (old.number, new.number) == (1, 2)
    assert new.sheet.hair == "short silver bob" and old.sheet.hair != "short silver bob"
    anchor_sheet = studio.sheet_of(session.character.anchor_image_id or 0)
    assert anchor_sheet is not None and anchor_sheet.number == 1

    history = json.loads(cli(studio, "character", "sheet", "mia", "--json"))
    assert [(v["number"], v["images"]) for v in history] == [(1, 2), (2, 1)]
    listed = cli(studio, "character", "sheet", "mia")
    assert "version 2:" in listed and "version 1:" in listed

    sheet_file = tmp_path / "sheet.yaml"
    sheet_file.write_text("hair: long braid\npalette: ['#ff0000']\n", encoding="utf-8")
    cli(studio, "character", "sheet", "mia", "--file", str(sheet_file), "--set", "eye_color=teal")
    sheet = studio.character("mia").sheet
    assert (sheet.hair, sheet.palette, sheet.eye_color) == ("long braid", ["#ff0000"], "teal")

    home = studio.paths.home
    state = snapshot(home)
    for args in (
        ("character", "sheet", "mia", "--set", "wings=yes"),
        ("character", "sheet", "mia", "--set", "eye_color=not a colour at all"),
        ("character", "sheet", "mia", "--set", "hair"),
        ("character", "sheet", "mia", "--set", "hair=long braid"),  # no change
    ):
        assert_refused_cleanly(run_cli(home, *args))
    assert snapshot(home) == state


# ------------------------------------------------------------------ annotations and listing


def test_star_rate_note_and_tag_from_the_cli(studio: Studio, session: Session) -> None:
    (a,) = chain(studio, session, "one")
    assert cli(studio, "star", str(a.id)).strip() == f"#{a.id} starred"
    assert cli(studio, "rate", str(a.id), "4").strip() == f"#{a.id} rated 4"
    assert cli(studio, "note", str(a.id), "the best one").strip() == f"#{a.id} note: the best one"
    assert (
        cli(studio, "tag", str(a.id), "Keeper", "cover").strip() == f"#{a.id} tags: cover, keeper"
    )
    assert cli(studio, "tag", str(a.id), "cover", "--remove").strip() == f"#{a.id} tags: keeper"
    assert cli(studio, "star", str(a.id), "--off").strip() == f"#{a.id} not starred"
    found = studio.image(a.id)
    assert (found.starred, found.rating, found.note) == (False, 4, "the best one")
    assert studio.tags(a) == ["keeper"]
    home = studio.paths.home
    for args in (("rate", str(a.id), "9"), ("tag", str(a.id), " "), ("star", "0")):
        assert_refused_cleanly(run_cli(home, *args))


def test_images_lists_newest_first_with_filters(studio: Studio, session: Session) -> None:
    a, b, c = chain(studio, session, "walking in the park", "reading", "park bench")
    with pytest.raises(Exception, match="image"):
        shot(studio, session, REFUSE_WORD)
    failed = next(i for i in session.images() if i.status == "failed")
    studio.annotate_image(b, starred=True, note="Cover candidate")
    studio.tag_image(c, ["keeper"])
    anchor = session.character.anchor_image_id
    assert listed_ids(cli(studio, "images")) == [failed.id, c.id, b.id, a.id, anchor]
    assert listed_ids(cli(studio, "images", "week")) == [failed.id, c.id, b.id, a.id]
    assert listed_ids(cli(studio, "images", "--starred")) == [b.id]
    assert listed_ids(cli(studio, "images", "--failed")) == [failed.id]
    assert listed_ids(cli(studio, "images", "--tag", "KEEPER")) == [c.id]
    assert listed_ids(cli(studio, "images", "--search", "PARK")) == [c.id, a.id]
    assert listed_ids(cli(studio, "images", "--search", "cover")) == [b.id]  # the note
    assert listed_ids(cli(studio, "images", "--search", "100%")) == []
    out = cli(studio, "images", "--limit", "2")
    assert listed_ids(out) == [failed.id, c.id] and "--limit 4" in out
    out = cli(studio, "images", "week", "--search", "park", "--limit", "1")
    assert "… more: onmodel images week --search park --limit 2 " in out  # the same filters
    line = next(x for x in cli(studio, "images").splitlines() if x.startswith(f"#{b.id} "))
    assert "★" in line and "Cover candidate" in line and "week" in line
    assert "[keeper]" in cli(studio, "images", "--tag", "keeper")
    assert cli(studio, "images", "--tag", "nothing").strip() == "no images match"

    listed = json.loads(cli(studio, "images", "--json", "--starred"))
    assert [(i["id"], i["session"], i["starred"], i["note"]) for i in listed] == [
        (b.id, "week", True, "Cover candidate")
    ]
    assert json.loads(cli(studio, "images", "--json", "--tag", "none")) == []
    assert_refused_cleanly(run_cli(studio.paths.home, "images", "nowhere"))
    assert_refused_cleanly(run_cli(studio.paths.home, "images", "--limit", "0"))


def test_the_listing_reads_a_page_at_a_time(
    studio: Studio, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.studio import listing

    images = chain(studio, session, *(f"pose {n}" for n in range(7)))
    studio.hide_images([images[3]])
    monkeypatch.setattr(listing, "PAGE", 2)
    pages: list[int] = []
    real = listing.listing.images_page

    def counted(*args: object, **kwargs: object) -> list[object]:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        pages.append(len(found))
        return found  # type: ignore[return-value]

    monkeypatch.setattr(listing.listing, "images_page", counted)
    every = [item.image.id for item in studio.images(session)]
    expected = [image.id for image in reversed(images) if image.id != images[3].id]
    assert every == expected
    assert pages == [2, 2, 2, 0]  # six shown images, two at a time, each page one query
    pages.clear()
    assert [item.image.id for item in studio.images(session, limit=3)] == expected[:3]
    assert pages == [2, 1]
