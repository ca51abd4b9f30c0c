"""The preview's drift knob: a take goes off model on cue, and only the preview will do it.

Checks, retakes and the demo need a character that drifts the same way every run; a real model
only drifts by accident. So ``params["drift"]`` recolours a trait or leaves out must-keep items
on chosen takes, the image's recorded params say so, and no request carrying it can reach an
API.
"""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

import pytest
from PIL import Image, ImageChops

from onmodel.capabilities import load_capabilities, validate_request
from onmodel.errors import ValidationError
from onmodel.providers.base import GenerationRequest, ProviderError
from onmodel.providers.preview import (
    PreviewProvider,
    _outline_of,
    _shade,
    drift_params,
    parse_colour,
)
from onmodel.sheet import ModelSheet, ShotRequest

RGB = tuple[int, int, int]
HAIR = "#f0a04b"
EYES = "#2e8b57"
SKIN = "#f6d7c3"
TOP = "#f3e9d2"
SHEET = ModelSheet(
    hair="shoulder-length bob",
    hair_color=HAIR,
    eye_color=EYES,
    skin_color=SKIN,
    outfit="cream hoodie and navy jeans",
    outfit_colors=[TOP, "#1f3a5f"],
)
CAPTION_LINE = (240, 180, 80)
TODAY = date(2026, 1, 15)


def rgb(value: str) -> RGB:
    parsed = parse_colour(value)
    assert parsed is not None
    return parsed


def request(
    params: dict[str, Any] | None = None,
    *,
    variation: int = 1,
    variations: int = 1,
    sheet: ModelSheet = SHEET,
    kind: str = "shot",
    shot: ShotRequest | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        kind="anchor" if kind == "anchor" else "shot",
        prompt="Mia",
        model="gpt-image-2",
        params=dict(params or {}),
        sheet=sheet,
        request=shot or ShotRequest(pose="waving"),
        character_name="Mia",
        variation=variation,
        variations=variations,
    )


def draw(req: GenerationRequest) -> Image.Image:
    image = Image.open(io.BytesIO(PreviewProvider().generate(req).data)).convert("RGB")
    image.load()
    return image


def colours(image: Image.Image) -> set[RGB]:
    counted = image.getcolors(maxcolors=image.width * image.height)
    assert counted is not None
    return {(int(c[0]), int(c[1]), int(c[2])) for _, c in counted}  # type: ignore[index]


def picture(image: Image.Image) -> Image.Image:
    """The image above the caption strip: the character and its background."""
    top = next(y for y in range(image.height) if image.getpixel((0, y)) == CAPTION_LINE)
    return image.crop((0, 0, image.width, top))


def pixels(image: Image.Image) -> list[RGB]:
    raw = image.tobytes()
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


def changed_from(before: Image.Image, after: Image.Image) -> set[RGB]:
    """The colours ``before`` had wherever ``after`` differs from it."""
    return {b for b, a in zip(pixels(before), pixels(after), strict=True) if b != a}


def test_hair_drift_recolours_only_the_hair_and_only_on_the_named_take() -> None:
    params = drift_params(hair_color="royalblue", takes=[2])
    takes = [draw(request(params, variation=n, variations=3)) for n in (1, 2, 3)]
    on_model = [draw(request(variation=n, variations=3)) for n in (1, 2, 3)]
    assert takes[0].tobytes() == on_model[0].tobytes()
    assert takes[2].tobytes() == on_model[2].tobytes()

    drifted = colours(takes[1])
    assert rgb("royalblue") in drifted and rgb(HAIR) not in drifted
    assert {rgb(EYES), rgb(SKIN), rgb(TOP)} <= drifted  # the rest is still on model
    hair = rgb(HAIR)
    assert changed_from(picture(on_model[1]), picture(takes[1])) == {
        hair,
        _outline_of(hair),
        _shade(hair, 0.7),  # the brows are drawn in the hair's shade
    }


@pytest.mark.parametrize(
    ("key", "sheet_colour"), [("eye_color", EYES), ("skin_color", SKIN), ("outfit_color", TOP)]
)
def test_each_colour_key_swaps_its_own_trait(key: str, sheet_colour: str) -> None:
    found = colours(draw(request(drift_params(**{key: "#ff00ff"}))))
    assert rgb("#ff00ff") in found
    assert rgb(sheet_colour) not in found
    assert rgb(HAIR) in found


def test_sheet_colour_words_and_hex_are_understood() -> None:
    assert rgb("blonde") in colours(draw(request(drift_params(hair_color="blonde"))))
    assert (1, 2, 3) in colours(draw(request(drift_params(hair_color="#010203"))))


def test_without_takes_every_take_and_the_anchor_drift() -> None:
    params = drift_params(hair_color="royalblue")
    for req in (
        request(params, kind="anchor"),
        request(params, variation=1, variations=2),
        request(params, variation=2, variations=2),
    ):
        assert rgb(HAIR) not in colours(draw(req))


def test_drift_is_deterministic_and_recorded_in_the_sent_params() -> None:
    params = drift_params(hair_color="royalblue", takes=[1])
    first = PreviewProvider().generate(request(params))
    again = PreviewProvider().generate(request(params))
    assert first.data == again.data
    assert first.sent_params == {"drift": {"hair_color": "royalblue", "takes": [1]}}
    # a take the drift spares is still drawn on model, and still records what was asked
    spared = PreviewProvider().generate(request(params, variation=2, variations=2))
    assert spared.sent_params["drift"] == params["drift"]


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"hair": "blue"}, "drift: unknown key 'hair'"),
        ({"hair_color": "not-a-colour"}, "drift: hair_color 'not-a-colour' is not a colour"),
        ({"hair_color": 7}, "drift: hair_color 7 is not a colour"),
        ({"hair_color": "blue", "takes": [0]}, "drift: takes must be a list of take numbers"),
        ({"hair_color": "blue", "takes": "2"}, "drift: takes must be a list of take numbers"),
        ({"hair_color": "blue", "takes": []}, "drift: takes must be a list of take numbers"),
        ({"drop": "hair clip"}, "drift: drop must be a list of must_keep items or 'all'"),
        ({"drop": [""]}, "drift: drop must name must_keep items as text"),
        ({"takes": [2]}, "drift changes nothing"),
        ("blue hair", "drift must be a mapping"),
    ],
)
def test_a_malformed_drift_is_refused_in_one_line(drift: object, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate(route="preview", params={"drift": drift})
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(ProviderError, match=re.escape(message)) as failed:
        PreviewProvider().generate(request({"drift": drift}))
    assert failed.value.kind == "invalid_request"


def test_drift_params_checks_what_it_builds() -> None:
    assert drift_params(drop="all", takes=(1, 3)) == {"drift": {"drop": "all", "takes": [1, 3]}}
    with pytest.raises(ValidationError, match="unknown key 'hair'"):
        drift_params(hair="blue")


def validate(*, route: str, params: dict[str, Any]) -> list[str]:
    return validate_request(
        load_capabilities().get("gpt-image-2", today=TODAY),
        route=route,
        params=params,
        prompt="Mia waving",
        n_input_images=1,
        today=TODAY,
    )


def test_the_preview_accepts_a_well_formed_drift() -> None:
    assert validate(route="preview", params=drift_params(hair_color="blue", takes=[2])) == []


@pytest.mark.parametrize("route", ["openai-images", "openai-responses", "chatgpt", "images.edit"])
def test_no_real_provider_or_api_route_takes_drift(route: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate(route=route, params=drift_params(hair_color="blue"))
    message = str(refused.value)
    assert "drift is a preview-only test parameter" in message
    assert "\n" not in message


# --- must_keep items, and dropping them ---------------------------------------------------------

KEEPING = SHEET.model_copy(update={"must_keep": ["red hair clip", "freckles across the nose"]})
RED = (210, 43, 43)  # "red" as sheets mean it (COLOUR_WORDS)


def head_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Where the hair is: the bounding box of the sheet's hair colour."""
    mask = Image.frombytes(
        "L", image.size, bytes(255 if p == rgb(HAIR) else 0 for p in pixels(image))
    )
    box = mask.getbbox()
    assert box is not None
    return box


def near_hair(image: Image.Image, colour: RGB) -> bool:
    left, top, right, bottom = head_box(image)
    region = image.crop((left - 8, top - 8, right + 8, bottom + 8))
    return colour in colours(region)


@pytest.mark.parametrize(
    "shot",
    [ShotRequest(), ShotRequest(expression="crying"), ShotRequest(scene="beach", pose="running")],
    ids=lambda s: s.label() or "plain",
)
def test_a_red_hair_clip_is_drawn_by_the_hair_in_every_shot(shot: ShotRequest) -> None:
    assert near_hair(draw(request(sheet=KEEPING, shot=shot)), RED)
    assert RED not in colours(draw(request(shot=shot)))  # the clip, not the shot, is red


def test_the_anchor_wears_the_clip_too() -> None:
    assert near_hair(draw(request(sheet=KEEPING, kind="anchor")), RED)


def test_dropping_an_item_removes_only_its_pixels() -> None:
    kept = picture(draw(request(sheet=KEEPING)))
    dropped = picture(draw(request(drift_params(drop=["hair clip"]), sheet=KEEPING)))
    assert RED in colours(kept) and RED not in colours(dropped)
    changed = ImageChops.difference(kept, dropped).getbbox()
    assert changed is not None
    left, top, right, bottom = changed
    # a clip-sized patch by the hair, not the picture
    assert (right - left) * (bottom - top) < kept.width * kept.height / 100
    assert picture(draw(request(sheet=SHEET))).tobytes() == (
        picture(draw(request(drift_params(drop="all"), sheet=KEEPING))).tobytes()
    )


def test_dropping_is_limited_to_the_named_takes() -> None:
    params = drift_params(drop=["freckles across the nose"], takes=[2])
    first, second = (
        draw(request(params, sheet=KEEPING, variation=n, variations=2)) for n in (1, 2)
    )
    on_model = draw(request(sheet=KEEPING, variation=2, variations=2))
    assert RED in colours(second)  # the clip stays
    assert picture(first).tobytes() == picture(draw(request(sheet=KEEPING))).tobytes()
    assert picture(second).tobytes() != picture(on_model).tobytes()


def test_a_drop_naming_no_must_keep_item_is_refused() -> None:
    with pytest.raises(ProviderError, match="drop 'hat' matches no must_keep item"):
        PreviewProvider().generate(request(drift_params(drop=["hat"]), sheet=KEEPING))


@pytest.mark.parametrize(
    ("item", "colour"),
    [
        ("gold star badge", "gold"),
        ("round blue glasses", "blue"),
        ("crimson scarf", "crimson"),
        ("purple earrings", "purple"),
        ("pink bow in her hair", "pink"),
        ("orange beanie", "orange"),
        ("teal bow tie", "teal"),
    ],
)
def test_items_the_preview_knows_are_drawn_in_their_colour(item: str, colour: str) -> None:
    sheet = SHEET.model_copy(update={"must_keep": [item]})
    assert rgb(colour) in colours(draw(request(sheet=sheet)))
    assert rgb(colour) not in colours(draw(request()))


def test_items_it_cannot_draw_change_nothing() -> None:
    sheet = SHEET.model_copy(update={"must_keep": ["a small scar on the chin"]})
    assert draw(request(sheet=sheet)).tobytes() == draw(request()).tobytes()


# --- turnaround views ---------------------------------------------------------------------------


def view(
    name: str, sheet: ModelSheet = KEEPING, params: dict[str, Any] | None = None
) -> Image.Image:
    return draw(
        GenerationRequest(
            kind="view",
            prompt="Mia, side view",
            model="gpt-image-2",
            params=dict(params or {}),
            sheet=sheet,
            request=ShotRequest(),
            character_name="Mia",
            view=name,
        )
    )


def test_views_differ_from_each_other_and_keep_the_sheet_colours() -> None:
    anchor = picture(draw(request(sheet=KEEPING, kind="anchor")))
    views = {name: picture(view(name)) for name in ("three-quarter", "side", "back")}
    assert len({image.tobytes() for image in (anchor, *views.values())}) == 4
    for name, image in views.items():
        found = colours(image)
        assert {rgb(HAIR), rgb(SKIN), rgb(TOP)} <= found, name
        assert colours(image) & {(246, 244, 239)}, name  # a plain background, like the anchor
    assert rgb(EYES) in colours(views["three-quarter"]) and rgb(EYES) in colours(views["side"])
    assert rgb(EYES) not in colours(views["back"])  # from behind, no face
    assert colours(picture(view("front"))) == colours(anchor)


def test_a_view_is_captioned_with_its_name_and_ignores_the_scene() -> None:
    side = view("side")
    beach = GenerationRequest(
        kind="view",
        prompt="Mia",
        model="gpt-image-2",
        params={},
        sheet=KEEPING,
        request=ShotRequest(scene="beach at sunset", pose="running"),
        character_name="Mia",
        view="side",
    )
    assert picture(draw(beach)).tobytes() == picture(side).tobytes()
    caption = side.crop((0, picture(side).height, side.width, side.height))
    assert (
        caption.tobytes()
        != draw(request(sheet=KEEPING, kind="anchor"))
        .crop((0, picture(side).height, side.width, side.height))
        .tobytes()
    )


def test_the_clip_shows_in_profile_and_hides_from_behind() -> None:
    assert near_hair(view("side"), RED)
    assert RED not in colours(view("back"))


def test_views_drift_like_shots() -> None:
    assert rgb(HAIR) not in colours(view("back", params=drift_params(hair_color="navy")))


def test_an_unknown_view_is_refused() -> None:
    with pytest.raises(ProviderError, match="unknown view 'top'"):
        view("top")
