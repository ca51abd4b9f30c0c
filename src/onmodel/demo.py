"""The seeds' series, offline: one character, six shots, one lineage.

It reproduces the ChatGPT "gen id" walkthrough the project grew from (crying, playing guitar, a
selfie with a dog, using a computer, sportswear, a new scene) with the preview provider, so a
new user sees the whole flow without a key or a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from onmodel.handles import Character, Image, Session
from onmodel.providers import offline_provider_name
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio

DEMO_SHEET = ModelSheet(
    style="Clean cel-shaded anime illustration, soft pastel lighting",
    species="young woman",
    hair="shoulder-length bob with a side fringe",
    hair_color="#f0a04b",
    eye_color="#2e8b57",
    skin_color="#f6d7c3",
    build="slim, average height",
    outfit="cream hoodie and navy jeans",
    outfit_colors=["#f3e9d2", "#1f3a5f"],
    palette=["#f0a04b", "#2e8b57", "#f3e9d2", "#1f3a5f"],
    must_keep=["small star hair clip on the left", "freckles across the nose"],
    avoid=["extra characters in the anchor", "text or watermarks"],
)


class ShotFields(TypedDict, total=False):
    """A shot's request, as keyword arguments of :meth:`Session.shot`."""

    pose: str
    outfit: str
    expression: str
    scene: str
    action: str


DEMO_SHOTS: list[ShotFields] = [
    {"expression": "crying, tears running down her cheeks"},
    {"pose": "sitting on a stool", "action": "playing an acoustic guitar"},
    {"action": "taking a selfie with a small dog", "scene": "park on a sunny day"},
    {"pose": "sitting at a desk", "action": "using a computer", "expression": "focused"},
    {"outfit": "sportswear: a red tracksuit and white sneakers", "pose": "running"},
    {"scene": "city street at night with neon signs", "expression": "smiling"},
]


@dataclass(frozen=True)
class DemoResult:
    home: Path
    character: Character
    session: Session
    images: list[Image]


def run_demo(home: Path) -> DemoResult:
    """Build the demo series in ``home`` (which should be new) and return what was made."""
    offline = offline_provider_name()  # no key, no network, and the same pictures every time
    with Studio.open(home) as studio:
        character = studio.create_character(
            "Mia",
            prompt="a cheerful young woman with orange hair and green eyes in a cream hoodie",
            sheet=DEMO_SHEET,
            provider=offline,
        )
        session = studio.start_session(
            character, title="Mia's week", provider=offline, params={"size": "1024x1024"}
        )
        shots = [session.shot(**fields) for fields in DEMO_SHOTS]
        anchor = character.anchor
        assert anchor is not None
        return DemoResult(home=home, character=character, session=session, images=[anchor, *shots])
