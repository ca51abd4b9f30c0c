"""The seeds' series, offline: Mia, six shots, one lineage, a shot of her cast, then the checks.

It reproduces the ChatGPT "gen id" walkthrough the project grew from (crying, playing guitar, a
selfie with a dog, using a computer, sportswear, a new scene) with the preview provider, so a
new user sees the whole flow without a key or a network. Then a series is rarely one character
alone: Mia's friend Rin, her dog Max and her bedroom join the session's cast, and one shot
shows the three of them in the bedroom, each drawn from its own sheet. It ends with the check →
retake → pick loop: every shot is checked against the anchors it sent with the offline
``palette`` checker (the cast shot member by member: Mia, Rin and Max each against their own
anchor, the bedroom not, being the place), and one more shot is asked for with retakes, its
first take drawn with the hair off model on purpose (the preview's drift knob) so the user sees
a drifted take caught and retaken.
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


RIN_SHEET = ModelSheet(
    style=DEMO_SHEET.style,
    species="young man",
    hair="short and spiky",
    hair_color="#1a1a1a",
    eye_color="#3b7dd8",
    skin_color="#e8b48f",
    build="tall and lanky",
    outfit="green jacket and grey trousers",
    outfit_colors=["#3bb273", "#4a4a55"],
    palette=["#1a1a1a", "#3b7dd8", "#3bb273", "#4a4a55"],
    must_keep=["round glasses"],
)
MAX_SHEET = ModelSheet(
    style=DEMO_SHEET.style,
    species="small scruffy dog",
    eye_color="#2b1d14",
    skin_color="#8b5a2b",
    build="short legs, floppy ears, a wagging tail",
    palette=["#8b5a2b", "#d7263d"],
    must_keep=["red collar"],
)
BEDROOM_SHEET = ModelSheet(
    style=DEMO_SHEET.style,
    species="a small cosy bedroom",
    layout="bed and lamp on the left, window and desk on the right, bookshelf at the back",
    palette=["#dce8f2", "#b07a4a", "#7768ae"],
    fixed_objects=["a bed with a purple cover", "a window", "a desk", "a bookshelf", "a lamp"],
    lighting="soft daylight from the window",
)


@dataclass(frozen=True)
class DemoMember:
    """One of the demo's cast, made once per folder under a slug of its own, so a data
    folder that has a Rin or a bedroom of its own keeps them."""

    name: str
    slug: str
    kind: str
    prompt: str
    sheet: ModelSheet


DEMO_CAST: tuple[DemoMember, ...] = (
    DemoMember(
        "Rin", "rin-demo", "character", "Mia's friend, a tall boy with spiky black hair", RIN_SHEET
    ),
    DemoMember("Max", "max-demo", "creature", "Mia's small scruffy brown dog", MAX_SHEET),
    DemoMember("Mia's bedroom", "bedroom-demo", "set", "Mia's small, cosy bedroom", BEDROOM_SHEET),
)
"""Who joins Mia's session: a friend, her dog and the place, each with its own anchor."""


class ShotFields(TypedDict, total=False):
    """A shot's request, as keyword arguments of :meth:`Session.shot`."""

    pose: str
    outfit: str
    expression: str
    scene: str
    action: str
    with_: list[str]
    set_: str


DEMO_SHOTS: list[ShotFields] = [
    {"expression": "crying, tears running down her cheeks"},
    {"pose": "sitting on a stool", "action": "playing an acoustic guitar"},
    {"action": "taking a selfie with a small dog", "scene": "park on a sunny day"},
    {"pose": "sitting at a desk", "action": "using a computer", "expression": "focused"},
    {"outfit": "sportswear: a red tracksuit and white sneakers", "pose": "running"},
    {"scene": "city street at night with neon signs", "expression": "smiling"},
]


CAST_SHOT: ShotFields = {
    "action": "playing the guitar for her friends",
    "expression": "smiling",
    "with_": ["rin-demo", "max-demo"],
    "set_": "bedroom-demo",
}
"""Mia, Rin and Max in Mia's bedroom: three anchors and the set's, one picture."""

RETAKE_SHOT: ShotFields = {"pose": "waving", "scene": "beach at sunset"}
"""The shot the demo retakes: its first take drifts (see :data:`RETAKE_DRIFT`)."""
RETAKE_DRIFT = {"hair_color": "#3b5ba5", "takes": [1]}
"""Take 1 of the retake shot is drawn with blue hair, which the palette check must catch."""
DEMO_CHECKER = "palette"  # offline and free, like the rest of the demo

DEMO_SLUG = "mia-demo"
"""The demo's character: its own slug, so a data folder that has a Mia of its own keeps her."""
DEMO_LEAD = DemoMember(
    "Mia",
    DEMO_SLUG,
    "character",
    "a cheerful young woman with orange hair and green eyes in a cream hoodie",
    DEMO_SHEET,
)


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
    cast: list[Character]  # who joins Mia in the session: Rin, Max and her bedroom
    session: Session
    images: list[Image]
    cast_shot: Image  # Mia, Rin and Max in the bedroom
    checks: list[tuple[Image, CheckRecord]]  # each of the six shots and the cast shot, checked
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
    """Make the demo's series in ``home``: its character and cast the first time, then on
    every run a new session of six shots of Mia and one of her cast (the preview draws the
    same pictures, so the folder gains rows, not files). ``make_current`` makes that session
    the current one (not in a folder that holds the user's own work)."""
    offline = offline_provider_name()  # no key, no network, and the same pictures every time
    with Studio.open(home) as studio:
        character = _demo_character(studio, DEMO_LEAD, offline)
        cast = [_demo_character(studio, member, offline) for member in DEMO_CAST]
        session = studio.start_session(
            character,
            title="Mia's week",
            provider=offline,
            params={"size": "1024x1024"},
            make_current=make_current,
            with_=cast,
        )
        shots = [session.shot(**fields) for fields in DEMO_SHOTS]
        cast_shot = session.shot(**CAST_SHOT)
        checks = [(shot, studio.check(shot, DEMO_CHECKER)) for shot in (*shots, cast_shot)]
        retakes = studio.shoot_until_on_model(
            session.plan(**RETAKE_SHOT, params={"drift": RETAKE_DRIFT}),
            checker=DEMO_CHECKER,
            takes=3,
        )
        anchors = [member.anchor for member in (character, *cast)]
        return DemoResult(
            home=home,
            character=character,
            cast=cast,
            session=session,
            images=[
                *(anchor for anchor in anchors if anchor is not None),
                *shots,
                cast_shot,
                *(take.image for take in retakes.takes),
            ],
            cast_shot=cast_shot,
            checks=checks,
            retakes=retakes,
        )


def _demo_character(studio: Studio, member: DemoMember, provider: str) -> Character:
    """One of the demo's cast, made once per folder; a later run starts from the same anchor."""
    try:
        found = studio.character(member.slug)
    except NotFoundError:
        return studio.create_character(
            member.name,
            prompt=member.prompt,
            sheet=member.sheet,
            slug=member.slug,
            provider=provider,
            kind=member.kind,
        )
    if found.anchor is None or not found.anchor.succeeded:
        raise UsageError(
            f"the demo's {member.kind} {member.slug!r} in {studio.paths.home} has no anchor (an "
            "earlier demo stopped while drawing it); give the demo a new folder with --dir"
        )
    return found
