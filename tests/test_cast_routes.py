"""A shot of several members (two characters and a set) on every route, against the local
OpenAI-compatible server: the right images in the right order, a prompt that says which image
is whom, each member's anchor sent on the turn where it first appears, and who is in the
picture recorded. Then the refusals, each before anything is recorded or sent."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import inspect, text

from fakeopenai import FakeOpenAI
from onmodel.errors import GenerationError, NotFoundError, UsageError
from onmodel.handles import Image, Session
from onmodel.sheet import ModelSheet
from onmodel.store.cast import cast_of
from onmodel.store.database import SCHEMA_HEAD, _alembic_config, create_database_engine
from onmodel.studio import Studio

KEY = "sk-test-never-store-me-0123456789"
BEDROOM = ModelSheet(
    layout="bed on the left, window at the back",
    fixed_objects=["blue lamp", "guitar stand"],
    palette=["#f3e5c0", "#5b7fa6"],
)


@pytest.fixture
def api(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("ONMODEL_OPENAI_TIMEOUT", "5")
    return fake_openai


def picture(path: Path, colour: tuple[int, int, int]) -> Path:
    buffer = io.BytesIO()
    PILImage.new("RGB", (48, 48), colour).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def anchor_bytes(studio: Studio, slug: str) -> bytes:
    anchor = studio.character(slug).anchor
    assert anchor is not None
    return anchor.read_bytes()


def cast_slugs(studio: Studio, image: Image) -> list[str]:
    ids = cast_of(studio.engine, [image.id])[image.id]
    return [studio.character(each).slug for each in ids]


def data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def make_cast(studio: Studio, provider: str) -> None:
    studio.create_character("Mia", prompt="a girl with red hair", provider=provider)
    studio.create_character("Rin", prompt="a boy with black hair", provider=provider)
    studio.create_character(
        "Bedroom", prompt="Mia's bedroom", sheet=BEDROOM, kind="set", provider=provider
    )


def test_images_route_sends_every_anchor_in_order_and_names_each_image(
    studio: Studio, api: FakeOpenAI
) -> None:
    make_cast(studio, "openai-images")
    generations = api.requests_to("images/generations")
    assert "Location design reference image" in generations[-1].json["prompt"]
    assert "no people" in generations[-1].json["prompt"]
    session = studio.start_session("mia", with_=["rin", "bedroom"])
    first = session.shot("playing guitar together", with_=["rin"], set_="bedroom")
    second = session.shot("waving goodbye", cast=["rin", "mia"], set_="bedroom")
    api.assert_no_rejections()
    one, two = api.requests_to("images/edits")
    anchors = [anchor_bytes(studio, slug) for slug in ("mia", "rin", "bedroom")]
    assert [f.data for f in one.images] == anchors
    # the cast's order is the order of the anchors; the parent follows them
    assert [f.data for f in two.images] == [anchors[1], anchors[0], anchors[2], first.read_bytes()]
    prompt = one.fields["prompt"]
    assert prompt == first.prompt
    assert "image 1 is Mia; image 2 is Rin; image 3 is Bedroom, the place" in prompt
    assert "Layout: bed on the left, window at the back." in prompt
    assert "blue lamp; guitar stand" in prompt
    assert "image 4 is the previous picture of this series" in two.fields["prompt"]
    assert [r.role for r in second.references] == ["anchor", "anchor", "anchor", "parent"]
    assert cast_slugs(studio, first) == ["mia", "rin", "bedroom"]
    assert cast_slugs(studio, second) == ["rin", "mia", "bedroom"]
    assert second.request.cast == ["rin", "mia"] and second.request.set == "bedroom"
    # Rin is in both pictures, across the lineage, newest first; the set too
    assert images_with(studio, "rin") == [second.id, first.id, rin_anchor(studio)]
    assert images_with(studio, "rin", "bedroom") == [second.id, first.id]


def images_with(studio: Studio, *names: str) -> list[int]:
    return [listed.image.id for listed in studio.images(with_=list(names))]


def rin_anchor(studio: Studio) -> int:
    anchor_id = studio.character("rin").anchor_image_id
    assert anchor_id is not None
    return anchor_id


def test_responses_route_sends_a_members_anchor_on_the_turn_it_first_appears(
    studio: Studio, api: FakeOpenAI
) -> None:
    make_cast(studio, "openai-images")
    session = studio.start_session("mia", provider="openai-responses", with_=["rin", "bedroom"])
    alone = session.shot(expression="happy")
    together = session.shot("playing guitar", with_=["rin"], set_="bedroom")
    again = session.shot("laughing", with_=["rin"], set_="bedroom")
    branch = session.shot("reading", with_=["rin"], from_image=alone.id)
    api.assert_no_rejections()
    first, second, third, fourth = (call for call in api.requests_to("responses"))
    mia, rin, bedroom = (anchor_bytes(studio, slug) for slug in ("mia", "rin", "bedroom"))
    assert [data_url_bytes(u) for u in first.input_image_urls] == [mia]
    # the conversation has seen Mia: Rin and the bedroom are new on this turn, and only they go
    assert second.json["previous_response_id"] == alone.row.response_id
    assert [data_url_bytes(u) for u in second.input_image_urls] == [rin, bedroom]
    # the prompt numbers what this turn attaches, and names who the conversation has seen
    said = second.json["input"][0]["content"][0]["text"]
    assert "image 1 is Rin; image 2 is Bedroom, the place this scene is set in." in said
    assert "Mia is as in the earlier pictures of this conversation." in said
    assert third.input_image_urls == []  # everyone is already in the conversation
    said = third.json["input"][0]["content"][0]["text"]
    assert "image 1" not in said
    assert "Mia, Rin and Bedroom are as in the earlier pictures" in said
    # a branch continues the first turn's conversation, which never saw Rin
    assert fourth.json["previous_response_id"] == alone.row.response_id
    assert [data_url_bytes(u) for u in fourth.input_image_urls] == [rin]
    ids = {slug: studio.character(slug).id for slug in ("mia", "rin", "bedroom")}
    assert together.params["conversation_cast"] == sorted(ids.values())
    assert again.params["conversation_cast"] == sorted(ids.values())
    assert branch.params["conversation_cast"] == sorted([ids["mia"], ids["rin"]])
    assert cast_slugs(studio, together) == ["mia", "rin", "bedroom"]


def test_chatgpt_route_attaches_each_members_anchor_and_says_which_file_is_whom(
    studio: Studio, tmp_path: Path
) -> None:
    studio.import_character("Mia", picture(tmp_path / "mia.png", (200, 30, 30)), prompt="a girl")
    studio.import_character("Rin", picture(tmp_path / "rin.png", (20, 20, 20)), prompt="a boy")
    studio.import_character(
        "Bedroom", picture(tmp_path / "bed.png", (240, 230, 190)), prompt="a room", kind="set"
    )
    studio.import_character(
        "Max", picture(tmp_path / "max.png", (120, 80, 40)), prompt="a dog", kind="creature"
    )
    session = studio.start_session("mia", provider="chatgpt", with_=["rin", "bedroom", "max"])
    pending = session.shot("playing guitar", with_=["rin"], set_="bedroom")
    primer, message = pending.messages
    assert "never mix up their traits" in primer
    assert "Rin: a boy." in message and "Bedroom: a room." in message
    assert "playing guitar" in message
    files = "mia-anchor.png is Mia; rin-anchor.png is Rin; bedroom-anchor.png is Bedroom (set)"
    assert f"Attached: {files}." in message
    assert [path.name for path in pending.attachments] == [
        "mia-anchor.png",
        "rin-anchor.png",
        "bedroom-anchor.png",
    ]
    for path, slug in zip(pending.attachments, ("mia", "rin", "bedroom"), strict=True):
        assert path.read_bytes() == anchor_bytes(studio, slug)
    studio.attach(pending.id, picture(tmp_path / "saved.png", (1, 2, 3)))
    later = session.shot("walking the dog", with_=["rin", "max"], set_="bedroom")
    (only,) = later.messages  # no primer: the conversation goes on
    assert "Attached: max-anchor.png is Max (creature)." in only
    assert "Max: a dog." in only  # a member new to the chat is described under its name
    assert "Rin: a boy." not in only  # the chat has seen Rin
    assert [path.name for path in later.attachments] == ["max-anchor.png"]
    assert cast_slugs(studio, later) == ["mia", "rin", "max", "bedroom"]


def failed_shot_of_three(studio: Studio, api: FakeOpenAI) -> tuple[Session, Image]:
    """Mia's session with Rin and the bedroom, and a shot of the three the server failed."""
    make_cast(studio, "openai-images")
    session = studio.start_session("mia", with_=["rin", "bedroom"])
    api.fail_next("images/edits", "server_error")
    with pytest.raises(GenerationError) as caught:
        session.shot("playing guitar", with_=["rin"], set_="bedroom")
    assert caught.value.image_id is not None
    return session, studio.image(caught.value.image_id)


def test_a_failed_shot_of_several_is_retried_with_the_same_cast(
    studio: Studio, api: FakeOpenAI
) -> None:
    _, failed = failed_shot_of_three(studio, api)
    assert cast_slugs(studio, failed) == ["mia", "rin", "bedroom"]  # recorded before the call
    again = studio.retry(failed.id)
    assert again.succeeded and cast_slugs(studio, again) == ["mia", "rin", "bedroom"]
    edit = api.requests_to("images/edits")[-1]
    anchors = [anchor_bytes(studio, slug) for slug in ("mia", "rin", "bedroom")]
    assert [f.data for f in edit.images] == anchors


def test_a_retry_draws_the_members_it_was_made_with_whatever_they_are_called_now(
    studio: Studio, api: FakeOpenAI
) -> None:
    session, failed = failed_shot_of_three(studio, api)
    studio.rename_character("rin", slug="rinny")
    studio.create_character("Rin", prompt="a tall knight", provider="openai-images")
    studio.add_to_cast(session, ["rin"])  # another character now answers to 'rin'
    again = studio.retry(failed.id)
    assert cast_slugs(studio, again) == ["mia", "rinny", "bedroom"]
    assert again.request.cast == ["mia", "rinny"]
    sent = [f.data for f in api.requests_to("images/edits")[-1].images]
    assert sent[1] == anchor_bytes(studio, "rinny") != anchor_bytes(studio, "rin")
    api.fail_next("images/edits", "server_error")
    with pytest.raises(GenerationError) as second:
        session.shot("reading", with_=["rinny"])
    assert second.value.image_id is not None
    studio.remove_from_cast(session, "rinny")
    with pytest.raises(UsageError, match="character 'rinny' is not in the cast of session"):
        studio.retry(second.value.image_id)


def test_each_members_views_follow_the_anchors_and_the_parent(studio: Studio) -> None:
    make_cast(studio, "preview")
    studio.turnaround("rin", views=["side"])
    studio.turnaround("mia", views=["back"])
    with pytest.raises(UsageError, match="'bedroom' is a set"):
        studio.turnaround("bedroom")
    session = studio.start_session("mia", provider="preview", with_=["rin", "bedroom"])
    first = session.shot("waving", with_=["rin"], set_="bedroom")
    second = session.shot("sitting", with_=["rin"], set_="bedroom")
    assert [(r.role) for r in second.references] == [
        "anchor",
        "anchor",
        "anchor",
        "parent",
        "view",
        "view",
    ]
    assert second.references[3].image_id == first.id
    assert "image 5 is Mia from the back view; image 6 is Rin from the side view." in second.prompt


def test_views_without_room_are_named_and_a_parent_without_room_points_at_from(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.providers.preview import PreviewProvider

    make_cast(studio, "preview")
    studio.turnaround("rin", views=["side", "back"])
    session = studio.start_session("mia", provider="preview", with_=["rin", "bedroom"])
    monkeypatch.setattr(PreviewProvider, "max_input_images", 4)
    plan = session.plan("waving", with_=["rin"], set_="bedroom")
    assert [i.role for i in plan.inputs] == ["anchor", "anchor", "anchor", "view"]
    assert "1 turnaround view(s) left out for room (Rin: back)" in plan.warnings
    session.shot("waving", with_=["rin"])
    monkeypatch.setattr(PreviewProvider, "max_input_images", 3)
    with pytest.raises(UsageError, match=r"or branch from an anchor \(--from\)"):
        session.plan("sitting", with_=["rin"], set_="bedroom")


def test_a_hidden_member_is_refused_until_it_is_shown_again(studio: Studio) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    studio.hide_character("rin")
    with pytest.raises(UsageError, match="character 'rin' is hidden: unhide it"):
        session.shot("waving", with_=["Rin"])  # by name, as well as by slug
    studio.unhide_character("rin")
    assert cast_slugs(studio, session.shot("waving", with_=["Rin"])) == ["mia", "rin"]


def test_preview_route_makes_a_three_member_shot_offline(studio: Studio) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin", "bedroom"])
    shot = session.shot("playing guitar", with_=["rin"], set_="bedroom")
    assert shot.succeeded and shot.path is not None
    assert cast_slugs(studio, shot) == ["mia", "rin", "bedroom"]
    assert [r.image_id for r in shot.references] == [
        studio.character(slug).anchor_image_id for slug in ("mia", "rin", "bedroom")
    ]


def test_a_shot_of_the_lead_alone_is_the_same_request_as_before_casts(studio: Studio) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    plain = session.plan(pose="waving")
    named = session.plan(pose="waving", cast=["mia"])
    assert plain.request.as_params() == named.request.as_params() == {"pose": "waving"}
    assert plain.prompt == named.prompt
    assert "image 1 is" not in plain.prompt  # one figure: the prompt of a single shot


def test_a_shot_of_fewer_after_a_group_picture_says_who_its_parent_shows(
    studio: Studio,
) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin", "bedroom"])
    alone = session.shot("waving")
    group = session.shot("playing guitar", with_=["rin"], set_="bedroom")
    after = session.plan("reading a book")
    assert "This picture shows Mia." in after.prompt
    assert (
        "image 1 is Mia; image 2 is the previous picture of this series (it shows Mia, Rin, "
        "Bedroom; draw only who this picture shows)."
    ) in after.prompt
    assert [i.image_id for i in after.inputs][1] == group.id
    rin_only = session.plan("reading a book", cast=["rin"])
    assert "This picture shows Rin." in rin_only.prompt
    # a parent showing the same cast keeps the single-character prompt, word for word
    same = session.plan("reading a book", from_image=alone.id)
    assert "The same character as in the reference image." in same.prompt
    assert "image 1 is" not in same.prompt


def test_a_members_sheet_versions_count_the_pictures_it_is_in(studio: Studio) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    session.shot("waving", with_=["rin"])
    studio.edit_sheet("rin", {"hair_color": "#222222"})
    session.shot("reading", cast=["rin"])
    session.shot("sitting")
    counts = [version.images for version in studio.sheet_history("rin")]
    assert counts == [2, 1]  # the anchor and the shot with Mia; then the shot of Rin alone
    assert [version.images for version in studio.sheet_history("mia")] == [3]


def test_a_responses_turn_of_fewer_after_a_group_turn_says_who_the_parent_showed(
    studio: Studio, api: FakeOpenAI
) -> None:
    make_cast(studio, "openai-images")
    session = studio.start_session("mia", provider="openai-responses", with_=["rin", "bedroom"])
    session.shot("playing guitar", with_=["rin"], set_="bedroom")
    alone = session.shot("reading a book")
    said = api.requests_to("responses")[-1].json["input"][0]["content"][0]["text"]
    assert alone.prompt == said
    assert (
        "The previous picture of this series showed Mia, Rin, Bedroom; draw only who this "
        "picture shows."
    ) in said


def test_a_shot_without_the_lead_keeps_the_series_style(studio: Studio) -> None:
    studio.create_character(
        "Mia", prompt="a girl", sheet={"style": "Clean cel-shaded anime"}, provider="preview"
    )
    studio.create_character("Rin", prompt="a boy", provider="preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    plan = session.plan("reading", cast=["rin"])
    assert plan.prompt.startswith("Clean cel-shaded anime.")


def test_a_shot_without_the_lead_draws_and_composes_the_member_it_shows(studio: Studio) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    plan = session.plan(pose="waving", cast=["rin"])
    assert plan.character_name == "Rin" and "Rin: a boy with black hair" in plan.prompt
    assert "Mia" not in plan.prompt
    assert [i.image_id for i in plan.inputs] == [studio.character("rin").anchor_image_id]


def test_cast_mistakes_are_refused_before_anything_is_recorded_or_sent(
    studio: Studio, api: FakeOpenAI
) -> None:
    make_cast(studio, "openai-images")
    studio.create_character("Zed", prompt="a tall man", provider="openai-images")
    api.fail_next("images/generations", "moderation")
    with pytest.raises(Exception, match="failed"):
        studio.create_character("Max", prompt="a dog", kind="creature")
    session = studio.start_session("mia", with_=["rin", "bedroom", "max"])
    sent = len(api.requests)
    images = len(list(studio.images()))
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"with_": ["zed"]}, UsageError, "character 'zed' is not in the cast of session 'mia'"),
        ({"with_": ["bedroom"]}, UsageError, "'bedroom' is a set, not someone in the scene"),
        ({"set_": "rin"}, UsageError, "'rin' is a character, not a set"),
        ({"with_": ["nobody"]}, NotFoundError, "no character, creature, prop or set 'nobody'"),
        ({"with_": ["max"]}, UsageError, "creature 'max' has no anchor image yet"),
        ({"with_": ["rin"], "cast": ["rin"]}, UsageError, "not both"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            session.shot("waving", **options)  # type: ignore[arg-type]
    assert len(api.requests) == sent
    assert len(list(studio.images())) == images


def test_too_many_images_for_the_model_names_what_did_not_fit(
    studio: Studio, api: FakeOpenAI, tmp_path: Path
) -> None:
    names = [f"extra{number}" for number in range(16)]
    for number, name in enumerate(names):
        studio.import_character(name, picture(tmp_path / f"{name}.png", (number * 9, 50, 90)))
    studio.import_character("Mia", picture(tmp_path / "mia.png", (200, 30, 30)))
    session = studio.start_session("mia", with_=names)
    fifteen = names[:15]
    assert len(session.plan("a crowd", with_=fifteen).inputs) == 16  # exactly the limit
    made = session.shot("a crowd", with_=fifteen)
    sent = len(api.requests)
    with pytest.raises(UsageError) as refused:  # now the parent makes seventeen
        session.shot("a crowd again", with_=fifteen)
    message = str(refused.value)
    assert "needs 17 input images and gpt-image-2 through openai-images takes at most 16" in message
    assert message.endswith(
        f"the parent (image {made.id}) did not fit (anchors go first, then the parent, then "
        "--ref files); show fewer members or send fewer --ref files; or branch from an "
        "anchor (--from), which sends no parent"
    )
    with pytest.raises(UsageError, match=r": the anchor of extra15, the parent \(image"):
        session.shot("everyone", with_=names)
    assert len(api.requests) == sent
    assert len(session.images()) == 1


def test_purging_a_member_takes_the_pictures_that_showed_it_only_with_subtree(
    studio: Studio,
) -> None:
    make_cast(studio, "preview")
    session = studio.start_session("mia", provider="preview", with_=["rin"])
    alone = session.shot(pose="waving")
    together = session.shot(pose="hugging", with_=["rin"])
    studio.hide_character("rin")
    with pytest.raises(UsageError, match=f"\\(#{together.id}\\)"):
        studio.purge()
    studio.purge(subtree=True)
    assert [image.id for image in session.images()] == [alone.id]
    assert studio.members(session) == []


def test_revision_0007_records_who_is_in_every_earlier_image_and_comes_undone(
    tmp_path: Path,
) -> None:
    from alembic import command

    home = tmp_path / "home"
    engine = create_database_engine(f"sqlite:///{home / 'onmodel.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
        conn.execute(
            text(
                "INSERT INTO character (id, slug, name, description, sheet, created_at,"
                " updated_at) VALUES (1, 'mia', 'Mia', '', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        for image_id in (7, 8):
            conn.execute(
                text(
                    "INSERT INTO image (id, character_id, kind, status, request, prompt,"
                    " provider, model, params, returned, error_categories, starred, note,"
                    f" created_at, updated_at) VALUES ({image_id}, 1, 'shot', 'succeeded',"
                    " '{}', 'p', 'preview', 'gpt-image-2', '{}', '{}', '[]', 0, '',"
                    " '2026-01-01', '2026-01-01')"
                )
            )
    engine.dispose()
    with Studio.open(home) as studio:  # upgrades it
        assert studio.character("mia").kind == "character"
        assert cast_of(studio.engine, [7, 8]) == {7: [1], 8: [1]}
        assert images_with(studio, "mia") == [8, 7]
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            SCHEMA_HEAD
        )
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert not {"image_cast", "session_member"} & tables
        assert "kind" not in {c["name"] for c in inspect(conn).get_columns("character")}
        assert conn.execute(text("SELECT id FROM image ORDER BY id")).scalars().all() == [7, 8]
    engine.dispose()
