"""The seeds' series, offline: one character, six shots, one lineage, then the checks.

It reproduces the ChatGPT "gen id" walkthrough the project grew from (crying, playing guitar, a
selfie with a dog, using a computer, sportswear, a new scene) with the preview provider, so a
new user sees the whole flow without a key or a network. It ends with the check → retake →
pick loop: every shot is checked against the anchor with the offline ``palette`` checker, and
one more shot is asked for with retakes, its first take drawn with the hair off model on
purpose (the preview's drift knob) so the user sees a drifted take caught and retaken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from onmodel.config import resolve_paths
from onmodel.errors import NotFoundError, UsageError
from onmodel.handles import Character, Image, Session
from onmodel.providers import offline_provider_name
from onmodel.settings import Settings
from onmodel.sheet import ModelSheet
from onmodel.store.records import CheckRecord
from onmodel.studio import Studio
from onmodel.studio.retakes import RetakeReport

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
    must_keep=["small gold star hair clip on the left", "freckles across the nose"],
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


RETAKE_SHOT: ShotFields = {"pose": "waving", "scene": "beach at sunset"}
"""The shot the demo retakes: its first take drifts (see :data:`RETAKE_DRIFT`)."""
RETAKE_DRIFT = {"hair_color": "#3b5ba5", "takes": [1]}
"""Take 1 of the retake shot is drawn with blue hair, which the palette check must catch."""
DEMO_CHECKER = "palette"  # offline and free, like the rest of the demo

DEMO_SLUG = "mia-demo"
"""The demo's character: its own slug, so a data folder that has a Mia of its own keeps her."""


@dataclass(frozen=True)
class DemoHome:
    """Where the demo runs, and whose folder that is."""

    home: Path
    owned: bool  # the demo's own folder (or a new one given to it), not the user's records
    default: bool  # the folder every run reuses when none is given


@dataclass(frozen=True)
class DemoResult:
    home: Path
    character: Character
    session: Session
    images: list[Image]
    checks: list[tuple[Image, CheckRecord]]  # each of the six shots, checked
    retakes: RetakeReport  # the shot whose first take drifted, retaken until on model


def default_demo_home() -> Path:
    """The one folder the demo keeps when given none: the user's cache, as it can be
    removed at any time and is remade by the next run."""
    from platformdirs import user_cache_path

    return user_cache_path("onmodel-demo", appauthor=False)


def choose_demo_home(directory: Path | None) -> DemoHome:
    """``directory`` if given (new, empty, or already an onmodel data folder); else an
    explicit ``ONMODEL_HOME``; else :func:`default_demo_home`, the same on every run."""
    if directory is not None:
        found = directory.expanduser().resolve()
        if found.exists() and not found.is_dir():
            raise UsageError(f"{found} is a file; the demo needs a folder")
        if found.is_dir() and any(found.iterdir()) and not (found / "onmodel.db").exists():
            raise UsageError(
                f"{found} holds other files; give the demo a new folder or a data folder"
            )
        return DemoHome(found, owned=True, default=False)
    if Settings.from_environment().home:
        return DemoHome(resolve_paths().home, owned=False, default=False)
    return DemoHome(default_demo_home(), owned=True, default=True)


def run_demo(home: Path, *, make_current: bool = True) -> DemoResult:
    """Make the demo's series in ``home``: its character the first time, then on every run
    a new session of six shots from it (the preview draws the same pictures, so the folder
    gains rows, not files). ``make_current`` makes that session the current one (not in a
    folder that holds the user's own work)."""
    offline = offline_provider_name()  # no key, no network, and the same pictures every time
    with Studio.open(home) as studio:
        character = _demo_character(studio, offline)
        session = studio.start_session(
            character,
            title="Mia's week",
            provider=offline,
            params={"size": "1024x1024"},
            make_current=make_current,
        )
        shots = [session.shot(**fields) for fields in DEMO_SHOTS]
        checks = [(shot, studio.check(shot, DEMO_CHECKER)) for shot in shots]
        retakes = studio.shoot_until_on_model(
            session.plan(**RETAKE_SHOT, params={"drift": RETAKE_DRIFT}),
            checker=DEMO_CHECKER,
            takes=3,
        )
        anchor = character.anchor
        assert anchor is not None
        return DemoResult(
            home=home,
            character=character,
            session=session,
            images=[anchor, *shots, *(take.image for take in retakes.takes)],
            checks=checks,
            retakes=retakes,
        )


def _demo_character(studio: Studio, provider: str) -> Character:
    """The demo's character, made once per folder; a later run starts from the same anchor."""
    try:
        found = studio.character(DEMO_SLUG)
    except NotFoundError:
        return studio.create_character(
            "Mia",
            prompt="a cheerful young woman with orange hair and green eyes in a cream hoodie",
            sheet=DEMO_SHEET,
            slug=DEMO_SLUG,
            provider=provider,
        )
    if found.anchor is None or not found.anchor.succeeded:
        raise UsageError(
            f"the demo's character {DEMO_SLUG!r} in {studio.paths.home} has no anchor (an "
            "earlier demo stopped while drawing it); give the demo a new folder with --dir"
        )
    return found
