"""The preview draws a cast (issue 15): several figures side by side, each from its own sheet,
in front of the set drawn from its sheet, so a shot of Mia and Rin in Mia's bedroom can be
seen, and checked, offline; and ``onmodel demo`` makes one.

Pixels are sampled where a user would look: the hair above each figure, the wall above
everyone's heads, the floor at the picture's bottom corners.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from cli_inprocess import run_cli
from onmodel.demo import CAST_SHOT, DEMO_CAST, DEMO_SHEET, DEMO_SLUG, MAX_SHEET, RIN_SHEET
from onmodel.providers.base import CastMember, GenerationRequest, GenerationResult
from onmodel.providers.preview import PreviewProvider, parse_colour
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.store.cast import cast_of
from onmodel.studio import Studio
from test_preview import make_request

RGB = tuple[int, int, int]

MIA, RIN, MAX = DEMO_SHEET, RIN_SHEET, MAX_SHEET  # the demo's, drawn as it draws them
WALL, FLOOR = "#dce8f2", "#b07a4a"
BEDROOM = ModelSheet(
    layout="bed on the left, sofa on the right",
    palette=[WALL, FLOOR],
    fixed_objects=["a red bed", "a blue sofa"],
)
LAMP = ModelSheet(species="an old brass lamp", skin_color="#c9a227")

MIA_M = CastMember(1, "mia", "Mia", "character", MIA)
RIN_M = CastMember(2, "rin", "Rin", "character", RIN)
MAX_M = CastMember(3, "max", "Max", "creature", MAX)
ROOM_M = CastMember(4, "bedroom", "Mia's bedroom", "set", BEDROOM)
LAMP_M = CastMember(5, "lamp", "Lamp", "prop", LAMP)


def rgb(value: str) -> RGB:
    parsed = parse_colour(value)
    assert parsed is not None
    return parsed


def shot(
    *cast: CastMember, request: ShotRequest | None = None, params: dict[str, Any] | None = None
) -> GenerationRequest:
    """A request as planning sends it: the first figure's sheet and name, and everyone."""
    first = next(m for m in cast if m.kind != "set")
    alone = make_request(
        request or ShotRequest(action="talking"), sheet=first.sheet, name=first.name, params=params
    )
    return replace(alone, subject_kind=first.kind, cast=cast)


def anchor_of(member: CastMember) -> GenerationRequest:
    """An anchor's request: its subject alone, no cast."""
    alone = make_request(kind="anchor", sheet=member.sheet, name=member.name)
    return replace(alone, subject_kind=member.kind)


def drawn(request: GenerationRequest) -> tuple[Image.Image, GenerationResult]:
    result = PreviewProvider().generate(request)
    image = Image.open(io.BytesIO(result.data)).convert("RGB")
    return image, result


def where(
    image: Image.Image, colour: RGB, box: tuple[int, int, int, int] | None = None
) -> list[tuple[int, int]]:
    """Every (x, y) of exactly ``colour`` inside ``box`` (the whole image by default)."""
    x0, y0, x1, y1 = box or (0, 0, image.width, image.height)
    pixels = image.load()
    assert pixels is not None
    return [(x, y) for y in range(y0, y1) for x in range(x0, x1) if pixels[x, y] == colour]


def boxes(result: GenerationResult) -> dict[str, tuple[int, int, int, int]]:
    return {f["member"]: tuple(f["box"]) for f in result.returned["figures"]}


def test_two_characters_in_a_set_stand_left_and_right_in_their_own_hair_in_the_set_s_colours() -> (
    None
):
    image, result = drawn(shot(MIA_M, RIN_M, ROOM_M))
    width = image.width
    mia_hair = where(image, rgb(MIA.hair_color))
    rin_hair = where(image, rgb(RIN.hair_color))
    assert mia_hair and rin_hair
    assert all(x < width / 2 for x, _ in mia_hair)  # Mia first, on the left
    assert all(x > width / 2 for x, _ in rin_hair)  # Rin second, on the right
    # each in their own clothes, not the other's
    assert where(image, rgb(RIN.outfit_colors[0]), (width // 2, 0, width, image.height))
    assert not where(image, rgb(RIN.outfit_colors[0]), (0, 0, width // 2, image.height))
    # the bedroom behind them: its wall above their heads, its floor at the bottom corners
    picture_bottom = result.returned["set"]["box"][3]
    top = min(box[1] for box in boxes(result).values())
    for x in (2, width // 2, width - 3):
        assert image.getpixel((x, top // 2)) == rgb(WALL)
    for x in (2, width - 3):
        assert image.getpixel((x, picture_bottom - 3)) == rgb(FLOOR)
    # and where each was drawn, for a check of each member
    placed = boxes(result)
    assert list(placed) == ["mia", "rin"]
    assert placed["mia"][2] <= placed["rin"][0]
    assert result.returned["set"]["member"] == "bedroom"


def test_the_same_cast_shot_is_the_same_bytes_and_another_order_is_another_picture() -> None:
    first = PreviewProvider().generate(shot(MIA_M, RIN_M, ROOM_M)).data
    assert PreviewProvider().generate(shot(MIA_M, RIN_M, ROOM_M)).data == first
    swapped, result = drawn(shot(RIN_M, MIA_M, ROOM_M))
    assert list(boxes(result)) == ["rin", "mia"]
    assert all(x < swapped.width / 2 for x, _ in where(swapped, rgb(RIN.hair_color)))


def test_a_shot_of_the_lead_alone_is_drawn_as_before_casts() -> None:
    alone = shot(MIA_M, request=ShotRequest(pose="waving", scene="park"))
    before = make_request(ShotRequest(pose="waving", scene="park"), sheet=MIA, name="Mia")
    assert PreviewProvider().generate(alone).data == PreviewProvider().generate(before).data


def test_a_creature_is_an_animal_in_its_fur_colour_not_a_character() -> None:
    image, result = drawn(shot(MIA_M, MAX_M, ROOM_M))
    placed = boxes(result)
    fur = where(image, rgb(MAX.skin_color), placed["max"])
    assert fur
    xs, ys = [x for x, _ in fur], [y for _, y in fur]
    assert max(xs) - min(xs) > max(ys) - min(ys)  # on four legs: longer than tall
    mia = placed["mia"]
    assert mia[3] - mia[1] > mia[2] - mia[0]  # a character stands: taller than wide
    assert not where(image, rgb(MIA.skin_color), placed["max"])  # no face, no hands
    assert where(image, rgb("red"), placed["max"])  # its collar, as its sheet keeps
    # its anchor shows it alone, on a plain background
    alone, anchored = drawn(anchor_of(MAX_M))
    assert where(alone, rgb(MAX.skin_color)) and "figures" not in anchored.returned


def test_a_prop_is_an_object_in_its_colour() -> None:
    image, result = drawn(shot(MIA_M, LAMP_M, ROOM_M))
    placed = boxes(result)
    assert where(image, rgb(LAMP.skin_color), placed["lamp"])
    assert not where(image, rgb(MIA.hair_color), placed["lamp"])


def test_the_set_s_anchor_is_the_empty_place_with_its_objects_where_the_layout_puts_them() -> None:
    image, result = drawn(anchor_of(ROOM_M))
    for sheet in (MIA, RIN):
        assert not where(image, rgb(sheet.skin_color)) and not where(image, rgb(sheet.hair_color))
    assert "figures" not in result.returned
    red, blue = where(image, rgb("red")), where(image, rgb("blue"))
    assert red and blue
    assert max(x for x, _ in red) < image.width / 2  # "bed on the left"
    assert min(x for x, _ in blue) > image.width / 2  # "sofa on the right"
    # the shot in that set shows the same place behind its figures
    in_shot, _ = drawn(shot(MIA_M, RIN_M, ROOM_M, request=ShotRequest(action="talking")))
    strip = (0, 0, image.width, 8)
    assert in_shot.crop(strip).tobytes() == image.crop(strip).tobytes()


def test_drift_recolours_the_first_figure_only() -> None:
    params = {"drift": {"hair_color": "#3b5ba5"}}
    image, _ = drawn(shot(MIA_M, RIN_M, ROOM_M, params=params))
    drifted = where(image, rgb("#3b5ba5"))
    assert drifted and all(x < image.width / 2 for x, _ in drifted)
    assert not where(image, rgb(MIA.hair_color))
    assert where(image, rgb(RIN.hair_color))  # Rin stays on model


def test_the_demo_makes_a_shot_of_mia_rin_and_max_in_her_bedroom(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    outcome = run_cli(tmp_path / "unused", "demo", "--dir", str(home))
    assert outcome.code == 0, outcome.stderr
    assert "+ Rin, Max · in Mia's bedroom" in outcome.stdout  # the cast shot in the lineage
    with Studio.open(home) as studio:
        session = studio.current_session()
        assert session is not None
        assert [m.slug for m in session.members] == [m.slug for m in DEMO_CAST]
        ids = {c.slug: c.id for c in studio.characters()}
        wanted = [DEMO_SLUG, *CAST_SHOT["with_"], CAST_SHOT["set_"]]
        shots = [image for image in session.images() if image.kind == "shot"]
        casts = cast_of(studio.engine, [image.id for image in shots])
        in_cast = [image for image in shots if casts[image.id] == [ids[s] for s in wanted]]
        assert len(in_cast) == 1
        picture = Image.open(in_cast[0].path).convert("RGB")
        assert [f["member"] for f in in_cast[0].returned["figures"]] == wanted[:-1]
        # Mia's orange hair on the left, Rin's black hair in the middle, Max's fur on the right
        thirds = [picture.width * i // 3 for i in range(4)]
        for colour, third in ((MIA.hair_color, 0), (RIN.hair_color, 1), (MAX.skin_color, 2)):
            box = (thirds[third], 0, thirds[third + 1], picture.height)
            assert where(picture, rgb(colour), box), colour


def test_a_layout_that_names_two_objects_on_one_side_puts_both_there() -> None:
    both_left = replace(
        ROOM_M, sheet=BEDROOM.model_copy(update={"layout": "bed and sofa on the left"})
    )
    image, _ = drawn(anchor_of(both_left))
    for colour in ("red", "blue"):
        found = where(image, rgb(colour))
        assert found and max(x for x, _ in found) < image.width / 2, colour
