"""The library API end to end with the offline preview: characters, sessions, shots, lineage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from onmodel.blobs import sha256_file
from onmodel.errors import (
    DuplicateError,
    InvalidImageError,
    InvalidSlugError,
    NotFoundError,
    UsageError,
)
from onmodel.sheet import ModelSheet
from onmodel.store.database import transaction
from onmodel.store.models import ImageRow
from onmodel.studio import Studio

SHEET = ModelSheet(hair_color="#d22b2b", eye_color="#2e8b57", outfit_colors=["#1e6fd9"])


def new_session(studio: Studio) -> tuple[str, str]:
    studio.create_character("Rin", prompt="a girl with red hair and green eyes", sheet=SHEET)
    session = studio.start_session("rin", title="Rin's day")
    return "rin", session.slug


def pixels(path: Path) -> set[tuple[int, int, int]]:
    with PILImage.open(path) as img:
        return {c for _, c in img.convert("RGB").getcolors(1 << 20) or []}


def test_character_gets_an_anchor_with_exact_prompt_and_verified_file(studio: Studio) -> None:
    character = studio.create_character("Rin", prompt="a girl with red hair", sheet=SHEET)
    anchor = character.anchor
    assert anchor is not None and anchor.kind == "anchor" and anchor.succeeded
    assert "Plain clean white background" in anchor.prompt
    assert anchor.path is not None and sha256_file(anchor.path) == anchor.sha256
    assert anchor.parent is None


def test_shots_chain_from_the_anchor_and_advance_the_head(studio: Studio) -> None:
    _, slug = new_session(studio)
    session = studio.session(slug)
    crying = session.shot(expression="crying")
    guitar = session.shot(pose="playing guitar")
    anchor = studio.character("rin").anchor
    assert anchor is not None
    assert crying.parent is not None and crying.parent.id == anchor.id
    assert guitar.parent is not None and guitar.parent.id == crying.id
    assert session.head is not None and session.head.id == guitar.id
    assert [i.id for i in guitar.lineage()] == [anchor.id, crying.id, guitar.id]
    assert "Expression: crying" in crying.prompt and "Pose: playing guitar" in guitar.prompt


def test_every_shot_sends_the_anchor_first_then_the_parent(studio: Studio) -> None:
    _, slug = new_session(studio)
    session = studio.session(slug)
    first = session.shot(expression="crying")
    second = session.shot(pose="waving")
    assert [(r.role, r.image_id) for r in first.references] == [("anchor", first.row.parent_id)]
    roles = [(r.role, r.image_id) for r in second.references]
    assert roles == [("anchor", first.row.parent_id), ("parent", first.id)]


def test_branching_from_an_older_image_keeps_history(studio: Studio) -> None:
    _, slug = new_session(studio)
    session = studio.session(slug)
    a = session.shot(expression="crying")
    b = session.shot(pose="playing guitar")
    branch = session.shot(outfit="sportswear", from_image=a.id)
    assert branch.parent is not None and branch.parent.id == a.id
    assert studio.image(b.id).row.parent_id == a.id  # untouched
    assert {c.id for c in studio.image(a.id).children} == {b.id, branch.id}
    tree = session.tree()
    assert tree.image.kind == "anchor"
    (crying_node,) = tree.children
    assert [c.image.id for c in crying_node.children] == [b.id, branch.id]
    assert session.head is not None and session.head.id == branch.id


def test_the_same_character_appears_in_every_shot(studio: Studio) -> None:
    _, slug = new_session(studio)
    session = studio.session(slug)
    shots = [
        session.shot(expression="crying"),
        session.shot(action="taking a selfie with a dog", scene="park"),
        session.shot(outfit="sportswear", scene="beach"),
    ]
    hair, eyes = (0xD2, 0x2B, 0x2B), (0x2E, 0x8B, 0x57)
    for image in [studio.character("rin").anchor, *shots]:
        assert image is not None and image.path is not None
        colours = pixels(image.path)
        assert hair in colours and eyes in colours


def test_dry_run_composes_but_records_nothing(studio: Studio) -> None:
    _, slug = new_session(studio)
    before = len(studio.session(slug).images())
    plan = studio.session(slug).plan(pose="playing guitar")
    assert "Pose: playing guitar" in plan.prompt
    assert plan.inputs[0].role == "anchor"
    assert len(studio.session(slug).images()) == before
    with transaction(studio.engine) as db:
        assert len(db.exec(select(ImageRow)).all()) == 1  # only the anchor


def test_import_keeps_the_users_bytes_and_gen_id(studio: Studio, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 80), (10, 200, 30)).save(buffer, "PNG")
    source = tmp_path / "mine.png"
    source.write_bytes(buffer.getvalue())
    character = studio.import_character(
        "Kai", source, prompt="a boy", gen_id="5EutQh3bm4uwHr4F", revised_prompt="A boy, smiling"
    )
    anchor = character.anchor
    assert anchor is not None and anchor.kind == "import"
    assert anchor.read_bytes() == source.read_bytes()
    assert anchor.gen_id == "5EutQh3bm4uwHr4F"
    assert (anchor.row.width, anchor.row.height) == (64, 80)
    session = studio.start_session("kai")
    shot = session.shot(expression="laughing")
    assert "Reference description: A boy, smiling" in shot.prompt


def test_bad_input_raises_typed_errors_and_writes_nothing(studio: Studio, tmp_path: Path) -> None:
    studio.create_character("Rin", prompt="a girl")
    with pytest.raises(DuplicateError):
        studio.create_character("Rin", prompt="another")
    with pytest.raises(InvalidSlugError):
        studio.create_character("!!!", prompt="x")
    with pytest.raises(InvalidSlugError):
        studio.create_character("Ok", prompt="x", slug="Bad Slug")
    with pytest.raises(NotFoundError):
        studio.start_session("nobody")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InvalidImageError):
        studio.import_character("Kai", broken)
    with pytest.raises(InvalidImageError):
        studio.import_character("Kai", tmp_path / "missing.png")
    assert [c.slug for c in studio.characters()] == ["rin"]
    with pytest.raises(UsageError, match="no current session"):
        studio.session()


def test_branching_from_another_characters_image_is_refused(studio: Studio) -> None:
    other = studio.create_character("Ben", prompt="a boy")
    _, slug = new_session(studio)
    assert other.anchor is not None
    with pytest.raises(UsageError, match="another character"):
        studio.session(slug).shot(pose="waving", from_image=other.anchor.id)


def test_invalid_size_for_the_model_is_refused_before_recording(studio: Studio) -> None:
    _, slug = new_session(studio)
    with pytest.raises(UsageError, match="1000x1000"):
        studio.session(slug).shot(pose="waving", params={"size": "1000x1000"})
    assert studio.session(slug).images() == []


def test_current_session_follows_new_and_use(studio: Studio) -> None:
    _, first = new_session(studio)
    second = studio.start_session("rin", title="Second")
    assert studio.session().slug == second.slug
    studio.use_session(first)
    assert studio.session().slug == first


def test_a_library_caller_may_give_a_model_sheet_as_a_mapping(studio: Studio) -> None:
    from onmodel.errors import InputError

    mia = studio.create_character(
        "Mia", prompt="a girl", sheet={"hair_color": "#f0a04b", "must_keep": ["gold star clip"]}
    )
    assert mia.sheet.hair_color == "#f0a04b" and mia.sheet.must_keep == ["gold star clip"]
    with pytest.raises(InputError, match="the model sheet: hair_color: 'rainbow' is not a colour"):
        studio.edit_sheet(mia, {"hair_color": "rainbow"})
