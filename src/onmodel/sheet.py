"""The character's model sheet and a shot's request: the two inputs every prompt is made of.

A model sheet is what an animation studio hands every artist so the character stays on model:
the traits that must not drift. It is plain data (YAML on disk, JSON in the database) so that
users can write it by hand and templates can read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from onmodel.errors import InputError, UsageError
from onmodel.limits import (
    MAX_FIELD_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SHEET_BYTES,
    check_text,
    read_bounded,
)

MAX_TRAIT_LENGTH = 2_000  # one trait of a sheet: a sentence or two, restated in every prompt
MAX_COLOUR_LENGTH = 64

_Model = TypeVar("_Model", bound=BaseModel)


class ModelSheet(BaseModel):
    """Invariant traits of a character. Colours are CSS names or ``#rrggbb`` hex codes.

    List fields default to ``[]``, not a ``default_factory``: pydantic copies the default
    for each instance all the same, and a factory costs an ``inspect.signature`` of it on
    every ``model_construct`` (60 µs against 2), which a tree of 100,000 images pays 300,000
    times.
    """

    model_config = ConfigDict(extra="forbid")

    style: str = Field(default="", description="Art style, stated first in every prompt.")
    species: str = Field(default="", description="What the character is (girl, robot, fox...).")
    hair: str = Field(default="", description="Hairstyle and colour in words.")
    hair_color: str = Field(default="", description="Hair colour, CSS name or hex.")
    eye_color: str = Field(default="", description="Eye colour, CSS name or hex.")
    skin_color: str = Field(default="", description="Skin, fur or surface colour.")
    build: str = Field(default="", description="Body type and proportions.")
    outfit: str = Field(default="", description="Default outfit in words.")
    outfit_colors: list[str] = Field(default=[], description="Main outfit colours.")
    palette: list[str] = Field(default=[], description="Brand palette as hex codes.")
    must_keep: list[str] = Field(default=[], description="Details that never change.")
    avoid: list[str] = Field(default=[], description="Things never to draw.")
    layout: str = Field(default="", description="A set's layout: where things are in it.")
    fixed_objects: list[str] = Field(
        default=[], description="A set's objects that are always there, in place."
    )
    lighting: str = Field(default="", description="A set's usual light (window, lamps...).")

    @field_validator(
        "style",
        "species",
        "hair",
        "build",
        "outfit",
        "must_keep",
        "avoid",
        "layout",
        "fixed_objects",
        "lighting",
        mode="after",
    )
    @classmethod
    def _plain_text(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            check_text(item, "the trait", max_length=MAX_TRAIT_LENGTH, multiline=False)
        return value

    @field_validator(
        "hair_color", "eye_color", "skin_color", "outfit_colors", "palette", mode="after"
    )
    @classmethod
    def _colours(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            if item:
                check_colour(item)
        return value

    @classmethod
    def from_yaml_file(cls, path: Path) -> ModelSheet:
        """Load a sheet, naming the file and the field when it is wrong."""
        import yaml

        from onmodel.yamlload import YamlLimitError, safe_load

        raw = read_bounded(path, MAX_SHEET_BYTES, "model sheet")
        try:
            data = safe_load(raw.decode("utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"model sheet {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        except YamlLimitError as exc:
            raise UsageError(f"model sheet {path}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None)
            if mark is not None and problem:
                where = f"{path}:{mark.line + 1}:{mark.column + 1}"
                raise UsageError(f"model sheet {where}: not valid YAML: {problem}") from None
            detail = " ".join(str(exc).split())
            raise UsageError(f"model sheet {path} is not valid YAML: {detail}") from None
        if not isinstance(data, dict):
            raise UsageError(f"model sheet {path} must be a mapping of traits")
        return cls.checked(data, f"model sheet {path}")

    @classmethod
    def given(cls, value: ModelSheet | Path | Mapping[str, Any]) -> ModelSheet:
        """A sheet as a library caller may hand one over: a sheet, a YAML file, or a mapping
        of traits (checked like the file, in a one-line error)."""
        if isinstance(value, ModelSheet):
            return value
        if isinstance(value, Path):
            return cls.from_yaml_file(value)
        if isinstance(value, Mapping):
            return cls.checked(dict(value), "the model sheet")
        raise InputError(f"a model sheet is a ModelSheet, a YAML file or a mapping, not {value!r}")

    @classmethod
    def checked(cls, data: object, source: str) -> ModelSheet:
        """Validate ``data`` as a sheet, naming ``source`` and the field in a one-line error."""
        return _validated(cls, data, source)

    @classmethod
    def from_prompt(cls, prompt: str) -> ModelSheet:
        """Guess colour traits from a free-text prompt so the preview has something to draw.

        Users who start with just a sentence ("a girl with red hair and green eyes") still get
        a preview whose hair and eyes match what they wrote.
        """
        text = prompt.lower()
        sheet = cls()
        hair = _colour_before(text, r"hair(?:ed)?")
        if hair:
            sheet.hair_color = hair
        eyes = _colour_before(text, r"eye[sd]?")
        if eyes:
            sheet.eye_color = eyes
        for noun in ("jacket", "hoodie", "dress", "shirt", "coat", "sweater", "suit", "uniform"):
            colour = _colour_before(text, noun)
            if colour:
                sheet.outfit_colors.append(colour)
        return sheet

    def merged_with(self, other: ModelSheet) -> ModelSheet:
        """Fields set in ``other`` win; used to lay a hand-written sheet over a guessed one."""
        data = self.model_dump()
        data.update(other.model_dump(exclude_defaults=True))
        return ModelSheet.model_validate(data)


COLOUR_WORDS: dict[str, str] = {
    "blonde": "#e8c872",
    "blond": "#e8c872",
    "golden": "#d4a017",
    "silver": "#c0c0c0",
    "platinum": "#e5e4e2",
    "auburn": "#a52a2a",
    "ginger": "#c9642b",
    "chestnut": "#954535",
    "brunette": "#5a3825",
    "hazel": "#8e7618",
    "amber": "#ffbf00",
    "teal": "#008080",
    "navy": "#000080",
    "pink": "#ff69b4",
    "purple": "#800080",
    "violet": "#8f00ff",
    "red": "#d22b2b",
    "orange": "#ff8c00",
    "yellow": "#ffd700",
    "green": "#2e8b57",
    "blue": "#1e6fd9",
    "brown": "#6b4226",
    "black": "#1a1a1a",
    "white": "#f5f5f5",
    "gray": "#808080",
    "grey": "#808080",
    "cyan": "#00b7c7",
}


def check_colour(value: str) -> str:
    """A colour field is a CSS name, a hex code, an ``rgb()``/``hsl()`` value, or a phrase that
    names one ("dark brown"), so the preview and the palette check can read it."""
    if len(value) > MAX_COLOUR_LENGTH:
        raise ValueError(f"a colour of {len(value)} characters; at most {MAX_COLOUR_LENGTH}")
    text = value.strip().lower()
    if _is_colour(text):
        return value
    if "(" not in text and any(_is_colour(word) for word in re.findall(r"[a-z]+", text)):
        return value
    raise ValueError(
        f"{value!r} is not a colour: use a CSS name such as 'teal' or a hex code such as '#f0a04b'"
    )


def _is_colour(token: str) -> bool:
    from PIL import ImageColor

    token = COLOUR_WORDS.get(token, token)
    if not token.startswith(("#", "rgb(", "rgba(", "hsl(", "hsv(")):
        return token in ImageColor.colormap
    if token.endswith(")") and re.search(r"\d{4,}", token):
        return False  # a thousand or more in any component is a typo, and overflows Pillow
    try:
        rgb = ImageColor.getrgb(token)
    except ValueError:
        return False
    return all(0 <= channel <= 255 for channel in rgb)


def _validated(model: type[_Model], data: object, source: str) -> _Model:
    """``model.model_validate(data)`` with pydantic's error turned into one line."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{source}: {where}: {message}") from None


def _colour_before(text: str, noun: str) -> str:
    """Return the colour word closest before ``noun`` ("long red hair" -> "red")."""
    words = "|".join(sorted(COLOUR_WORDS, key=len, reverse=True))
    match = re.search(rf"\b({words})\b(?:[\s-]+[a-z]+){{0,2}}?[\s-]+{noun}\b", text)
    return match.group(1) if match else ""


class ShotRequest(BaseModel):
    """What one shot asks for on top of the anchor. Every field is optional.

    ``view`` is set only on a turnaround's reference views (one of
    :data:`onmodel.providers.base.VIEWS`), so that each view's row says which one it is.
    """

    model_config = ConfigDict(extra="forbid")

    pose: str = ""
    outfit: str = ""
    expression: str = ""
    scene: str = ""
    action: str = ""
    text: str = ""
    view: str = ""
    cast: list[str] = []
    """Who is in the shot, by name, in the order their anchors are sent (``--cast mia,rin``);
    empty: the session's lead alone, as every shot before casts existed."""
    set: str = ""
    """The set (a location of the session's cast) the shot takes place in (``--set``)."""

    @field_validator(
        "pose", "outfit", "expression", "scene", "action", "text", "view", mode="after"
    )
    @classmethod
    def _plain_text(cls, value: str) -> str:
        return check_text(value, "the text", max_length=MAX_FIELD_LENGTH)

    @field_validator("cast", "set", mode="after")
    @classmethod
    def _names(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            check_text(item, "a cast member's name", max_length=MAX_NAME_LENGTH, multiline=False)
        return value

    @classmethod
    def checked(cls, **fields: str | list[str]) -> ShotRequest:
        """A request from user input, refused in one line naming the field at fault."""
        return _validated(cls, fields, "shot request")

    def is_empty(self) -> bool:
        return not any(self.model_dump().values())

    def label(self) -> str:
        """A short human name for the shot, used in captions, trees and file names."""
        parts = [v for v in (self.expression, self.pose, self.action, self.outfit, self.scene) if v]
        if self.view:
            parts.insert(0, f"{self.view} view")
        if self.text:
            parts.append(self.text)
        return ", ".join(parts) or self.cast_label() or "same character"

    def cast_label(self) -> str:
        """Who and where, by slug (``"mia & rin, in bedroom"``; empty for the lead alone):
        where a listing has no names to show (a shot list's table). Pictures show their cast
        by name beside the label, which leaves it out."""
        parts = [" & ".join(self.cast)] if self.cast else []
        if self.set:
            parts.append(f"in {self.set}")
        return ", ".join(parts)

    def as_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v}


def cast_fields(
    lead: str, *, with_: Iterable[str] = (), cast: Iterable[str] = (), set_: str = ""
) -> dict[str, list[str] | str]:
    """The request fields for ``--with``/``--cast``/``--set`` (``with``/``cast``/``set`` in
    a shot list): ``with_`` adds to the lead, ``cast`` names everyone (and may leave the lead
    out). Both at once, an empty name and a name given twice are refused. A cast of the lead
    alone (``--with mia`` in Mia's session says no more) is the empty default, so such a shot
    is the same request (and the same shot-list key) as before."""
    added = _cast_names(with_, "who joins the lead (with)")
    named = _cast_names(cast, "the cast")
    if added and named:
        raise UsageError("name who joins the lead (with) or everyone in the shot (cast), not both")
    everyone = named or ([lead, *(name for name in added if name != lead)] if added else [])
    return {"cast": [] if everyone == [lead] else everyone, "set": set_.strip()}


def _cast_names(names: Iterable[str], what: str) -> list[str]:
    """``names`` stripped, refused in one line when one is empty or given twice."""
    found = [name.strip() for name in names]
    if any(not name for name in found):
        raise UsageError(f"an empty name in {what}")
    joined = next((name for name in found if "," in name), None)
    if joined is not None:  # a shot list's "mia,rin" where a list was meant
        listed = ", ".join(part.strip() for part in joined.split(","))
        raise UsageError(f"{joined!r} in {what} is one name: list the names as [{listed}]")
    twice = next((name for at, name in enumerate(found) if name in found[:at]), None)
    if twice is not None:
        raise UsageError(f"{twice!r} is named twice in {what}")
    return found


def take_name(variation: int, variations: int) -> str:
    """``"take 2/3"``: which of several identical requests (a shot list's ``repeat: 3``) an
    image answers; the preview draws it, and every label of such an image carries it."""
    return f"take {variation}/{variations}"


def with_take(label: str, variation: int | None, variations: int | None) -> str:
    """``label`` with its take (``"playing guitar · take 2/3"``); a single shot's as it is."""
    if variation is None or variations is None or variations <= 1:
        return label
    return f"{label} · {take_name(variation, variations)}"
