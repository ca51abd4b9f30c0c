"""Prompt composition: the order of the parts and strict errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from onmodel.composer import ANCHOR_TEMPLATE, SHOT_TEMPLATE, Composer
from onmodel.errors import TemplateError
from onmodel.sheet import ModelSheet, ShotRequest

SHEET = ModelSheet(
    style="Watercolour storybook style",
    hair="long braid",
    hair_color="auburn",
    eye_color="green",
    must_keep=["round glasses"],
    avoid=["hats"],
)


def context(request: ShotRequest, revised: str | None = None) -> dict[str, object]:
    return {
        "character": {
            "name": "Ada",
            "slug": "ada",
            "description": "a curious inventor girl",
            "sheet": SHEET.model_dump(),
        },
        "anchor": {"revised_prompt": revised, "gen_id": None},
        "request": request.model_dump(),
        "session": {"title": ""},
        "include_outfit": not request.outfit,
    }


def test_shot_prompt_puts_style_then_traits_then_request_then_constraints() -> None:
    request = ShotRequest(pose="playing guitar", outfit="sportswear", scene="park at dusk")
    text = Composer().render(SHOT_TEMPLATE, context(request, "Ada, auburn braid")).text
    positions = [
        text.index("Watercolour storybook style"),
        text.index("auburn"),
        text.index("round glasses"),
        text.index("Reference description: Ada, auburn braid"),
        text.index("Pose: playing guitar"),
        text.index("Outfit: sportswear"),
        text.index("Scene: park at dusk"),
        text.index("same face, same hairstyle"),
        text.index("Do not redesign"),
    ]
    assert positions == sorted(positions)
    assert "Avoid: hats" in text


def test_anchor_prompt_asks_for_a_plain_clean_background() -> None:
    text = Composer().render(ANCHOR_TEMPLATE, context(ShotRequest())).text
    assert "Plain clean white background" in text
    assert text.startswith("Watercolour storybook style")


def test_missing_variable_names_template_line_and_variable(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "shot.j2").write_text(
        "Style first.\n{{ character.name }}\n{{ mood }}\n"
    )
    with pytest.raises(TemplateError) as caught:
        Composer(tmp_path).render(SHOT_TEMPLATE, context(ShotRequest()))
    message = str(caught.value)
    assert "prompts/shot.j2" in message and "line 3" in message and "'mood'" in message


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "shot.j2").write_text("ok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"prompts/shot.j2.*line 2.*syntax error"):
        Composer(tmp_path).render(SHOT_TEMPLATE, context(ShotRequest()))


def test_user_templates_override_packaged_ones(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "anchor.j2").write_text("My own anchor for {{ character.name }}")
    composer = Composer(tmp_path)
    assert composer.render(ANCHOR_TEMPLATE, context(ShotRequest())).text == "My own anchor for Ada"
    origins = {t.name: t.origin for t in composer.list_templates()}
    assert origins["prompts/anchor.j2"] == "user"
    assert origins["prompts/shot.j2"] == "packaged"


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "anchor.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match="unsafe"):
        Composer(tmp_path).render(ANCHOR_TEMPLATE, context(ShotRequest()))


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ('{{ "a" * 999999999999 }}', "repetition"),
        ("{% for i in range(99999999999) %}x{% endfor %}", "Range too big"),
        ('{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}', "1,000,000 characters"),
        ("{{ 2 ** 99999999 }}", "power"),
        ("{{ 1 / 0 }}", "line 1: ZeroDivisionError"),
    ],
)
def test_a_user_template_cannot_exhaust_memory_or_crash(
    tmp_path: Path, source: str, says: str
) -> None:
    (tmp_path / "bomb.j2").write_text(source)
    with pytest.raises(TemplateError, match=says):
        Composer(tmp_path).render("bomb.j2", {})
