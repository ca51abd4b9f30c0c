"""The shot-list file: a whole series written down once, validated before anything is spent.

A shot list names a session, sets defaults, and lists shots explicitly or as matrices
(pose × outfit × expression × scene ...) that expand into one shot per combination. Every layer
can override the one before it (defaults → matrix → matching override → the combination's own
values), and ``repeat`` asks for variations of the same shot. ``check``, ``min_score`` and
``takes`` ask for each shot to be checked, and made again (up to ``takes`` takes) until one is
on model, as ``onmodel shot --check --takes`` does.

Who is in a shot and where: ``with:`` names who joins the session's lead, ``cast:`` names
everyone in order (it may leave the lead out), ``set:`` names the set it takes place in, each a
member of the session's cast. ``with`` and ``cast`` are one setting said two ways, so a deeper
layer's ``with`` or ``cast`` *replaces* the one above, as ``refs`` do (``with: []`` is the lead
alone again): a shot that says ``with: rin`` under ``defaults: {with: max}`` shows Mia and Rin,
as written there, not a Max the reader has to look up. One layer may not say both.

The pydantic models below *are* the format: the JSON Schema that editors use comes from them
(``onmodel batch schema``), and every error they raise is reported with the file and line it
came from, all at once, before a single request is made.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from onmodel.batch.yamlpos import Loc, PositionedYaml, YamlSyntaxError, load_positioned
from onmodel.checkers import checker_names
from onmodel.errors import UsageError
from onmodel.limits import MAX_ID, MAX_NAME_LENGTH, check_text, read_bounded
from onmodel.sheet import ShotRequest
from onmodel.studio.retakes import MAX_TAKES

REQUEST_FIELDS: tuple[str, ...] = ("pose", "outfit", "expression", "scene", "action", "text")
"""The fields of a shot request, in the order labels and keys use them."""
CAST_FIELDS: tuple[str, ...] = ("with", "cast", "set")
"""Who is in a shot and where, as the file spells them; matrices take them as axes too."""
WHO: frozenset[str] = frozenset({"with", "cast"})
"""Two ways to say who is in a shot: a layer (or a matrix's axes) says one of them."""

MAX_REPEAT = 100
MAX_SHOTS = 10_000
"""A matrix that expands past this is almost certainly a typo, not a series."""
MAX_FILE_BYTES = 8 * 1024 * 1024
"""Ten thousand shots written out take about a megabyte; reading /dev/zero would never end."""

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


class ShotListError(UsageError):
    """A shot list is unreadable or invalid. ``problems`` has every (file, line, what) found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0].describe()
        more = ""
        if len(problems) > 1:
            rest = "; ".join(p.describe() for p in problems[1:6])
            extra = f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
            more = f" (and {len(problems) - 1} more: {rest}{extra})"
        super().__init__(first + more)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a shot list, where it is and what it is."""

    file: str
    line: int
    column: int
    where: str
    message: str

    def describe(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


_FIELD_DOCS = {
    "pose": "Body pose, e.g. 'sitting cross-legged'.",
    "outfit": "Clothing for this shot; empty keeps the character's default outfit.",
    "expression": "Facial expression, e.g. 'laughing'.",
    "scene": "Setting and background, e.g. 'park at dusk'.",
    "action": "What the character is doing, e.g. 'taking a selfie with a dog'.",
    "text": "Free text appended to the shot request.",
}


def _as_request(field: str) -> Callable[[str], str]:
    """A validator applying the studio's own rules for a request field here: length and
    control characters for the text fields (the same for each), one line for a cast
    member's name (``cast``/``set``).

    A value the studio would refuse mid-run is refused with its line instead, before anything
    is spent; asking :class:`ShotRequest` itself keeps the rules in one place.
    """

    def check(value: str) -> str:
        try:
            ShotRequest.model_validate({field: value})
        except PydanticValidationError as exc:
            raise ValueError(_message(exc.errors()[0]["msg"])) from None
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return value

    return check


def _label_text(value: str) -> str:
    """Names are printed in progress lines and tables: one line, no terminal escapes."""
    try:
        return check_text(value, "a name", max_length=MAX_NAME_LENGTH, multiline=False)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _message(text: str) -> str:
    """Pydantic's message for a ``ValueError`` without its "Value error, " prefix."""
    return text.removeprefix("Value error, ")


RequestText = Annotated[str, AfterValidator(_as_request("text"))]
Label = Annotated[str, AfterValidator(_label_text)]


def _one_or_many(value: object) -> object:
    """``with: rin`` is ``with: [rin]``: one name is a list of one."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    return value


MemberName = Annotated[str, AfterValidator(_as_request("set"))]
Names = Annotated[
    list[MemberName],
    BeforeValidator(_one_or_many, json_schema_input_type=MemberName | list[MemberName]),
]
"""``with: rin`` or ``with: [rin, max]``: one name, or several in order. Parsed as a list
either way, so a bad name is one error at its own place, not one per reading of the value."""
AxisValue = str | list[str]
"""One value of a matrix axis: text, a name, or (``with``/``cast``) a list of names."""


def names_of(value: str | list[str] | None) -> list[str]:
    """The names a ``with``/``cast`` value (or a matrix axis value) lists, in order."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def axis_text(value: str | list[str]) -> str:
    """An axis value as labels and ``when``/``exclude`` compare it: ``rin, max`` for a list."""
    return ", ".join(names_of(value))


def layer_value(layer: BaseModel, name: str) -> Any:
    """A field of a layer by the name the file uses (``with`` is ``with_`` in Python)."""
    return getattr(layer, "with_" if name == "with" else name)


class ShotFields(BaseModel):
    """Fields every layer can set. Unset (null) inherits; an empty string clears.

    Why ``None`` rather than ``""`` as the default: layering needs to tell "not said here" from
    "said: nothing", so a shot can clear the scene its matrix set.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)

    pose: RequestText | None = Field(default=None, description=_FIELD_DOCS["pose"])
    outfit: RequestText | None = Field(default=None, description=_FIELD_DOCS["outfit"])
    expression: RequestText | None = Field(default=None, description=_FIELD_DOCS["expression"])
    scene: RequestText | None = Field(default=None, description=_FIELD_DOCS["scene"])
    action: RequestText | None = Field(default=None, description=_FIELD_DOCS["action"])
    text: RequestText | None = Field(default=None, description=_FIELD_DOCS["text"])
    with_: Names | None = Field(
        default=None,
        alias="with",
        description="Who joins the session's lead in the shot: a name or a list of names "
        "from the session's cast (characters, creatures, props), e.g. [rin, max]. Replaces "
        "the with or cast of the layers above; [] is the lead alone. Not with cast.",
    )
    cast: Names | None = Field(
        default=None,
        description="Everyone in the shot, in the order their anchors are sent (it may leave "
        "the lead out), e.g. [rin, mia]. Replaces the with or cast of the layers above. "
        "Not with with.",
    )
    set: MemberName | None = Field(
        default=None,
        description="The set (a location in the session's cast) the shot takes place in, "
        "e.g. bedroom; an empty string clears the set of the layers above.",
    )
    provider: str | None = Field(
        default=None, description="Provider name (default: the session's), e.g. openai-images."
    )
    model: str | None = Field(
        default=None, description="Image model (default: the session's), e.g. gpt-image-2."
    )
    size: str | None = Field(
        default=None, description="Shortcut for params.size, e.g. 1024x1536 or auto."
    )
    quality: str | None = Field(
        default=None, description="Shortcut for params.quality: low, medium, high, auto..."
    )
    params: dict[str, JsonValue] | None = Field(
        default=None,
        description="Provider parameters, merged key by key over the layers above "
        "(session, defaults, matrix, override).",
    )
    from_image: int | None = Field(
        default=None,
        alias="from",
        ge=1,
        le=MAX_ID,
        description="Branch from this image id instead of the batch's parent "
        "(the session head when the batch first ran).",
    )
    refs: list[str] | None = Field(
        default=None,
        description="Extra reference image files, relative to the shot-list file. "
        "Replaces (does not extend) the refs of the layers above.",
    )
    repeat: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPEAT,
        description="How many variations of this shot to make (default 1).",
    )
    check: str | None = Field(
        default=None,
        min_length=1,
        description="Check every take with this checker: palette (offline, free) or judge "
        "(a vision model, billed against --budget). Setting min_score or takes alone checks "
        "with palette.",
    )
    min_score: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The score (0-100) a take must reach to be on model (default 80).",
    )
    takes: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TAKES,
        description="Make the shot again, up to this many takes, until one is on model; every "
        "take is kept and the best is picked (default 1). Not with repeat: repeat makes "
        "variations to choose from, takes retakes one shot.",
    )

    @field_validator("params")
    @classmethod
    def _no_n(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        """One shot is one image, so its row, key and cost stay one-to-one."""
        if value is not None and "n" in value:
            raise ValueError("params.n is not used in shot lists; use repeat: N for variations")
        return value

    @field_validator("params")
    @classmethod
    def _finite(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        """NaN and infinity have no JSON form: the stored batch and the request body need one."""
        pending: list[JsonValue] = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"params hold {item}; use a finite number")
            if isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
        return value


class Shot(ShotFields):
    """One explicit shot; any field left out comes from ``defaults``."""

    name: Label | None = Field(
        default=None,
        max_length=MAX_NAME_LENGTH,
        description="A label for progress and status (not part of the shot key).",
    )


class MatrixAxes(BaseModel):
    """The values to combine. Each axis is a list; the matrix makes every combination."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    pose: list[RequestText] | None = Field(
        default=None, min_length=1, description="Poses to combine."
    )
    outfit: list[RequestText] | None = Field(default=None, min_length=1, description="Outfits.")
    expression: list[RequestText] | None = Field(
        default=None, min_length=1, description="Expressions."
    )
    scene: list[RequestText] | None = Field(default=None, min_length=1, description="Scenes.")
    action: list[RequestText] | None = Field(default=None, min_length=1, description="Actions.")
    text: list[RequestText] | None = Field(default=None, min_length=1, description="Free texts.")
    with_: list[Names] | None = Field(
        default=None,
        alias="with",
        min_length=1,
        description="Who joins the lead, one shot per value: a name or a list of names, "
        "e.g. [rin, max, [rin, max]].",
    )
    cast: list[Names] | None = Field(
        default=None,
        min_length=1,
        description="Everyone in the shot, one shot per value: a list of names in order "
        "(or one name), e.g. [[mia, rin], [rin]].",
    )
    set: list[MemberName] | None = Field(
        default=None, min_length=1, description="Sets, one shot per set, e.g. [bedroom, park]."
    )

    def items(self) -> list[tuple[str, list[AxisValue]]]:
        """The axes that are set, in the fixed field order (so expansion order is stable)."""
        return [
            (name, values)
            for name in (*REQUEST_FIELDS, *CAST_FIELDS)
            if (values := layer_value(self, name))
        ]


class MatrixOverride(ShotFields):
    """Extra settings for the combinations that match ``when`` (every listed axis equal)."""

    when: dict[str, AxisValue] = Field(
        min_length=1, description="Axis values to match, e.g. {pose: running}."
    )


class Matrix(ShotFields):
    """Every combination of ``axes`` becomes a shot; the other fields apply to all of them."""

    name: Label | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, description="A label for progress and status."
    )
    axes: MatrixAxes = Field(description="Lists of values per request field.")
    exclude: list[dict[str, AxisValue]] = Field(
        default_factory=list,
        description="Combinations to leave out; each entry matches on the axes it lists.",
    )
    overrides: list[MatrixOverride] = Field(
        default_factory=list,
        description="Settings for matching combinations, applied in order.",
    )


class ShotList(BaseModel):
    """A series as one batch: which session, what defaults, which shots.

    Top-level keys starting with ``x-`` are ignored, so YAML anchors have somewhere to live.
    """

    model_config = ConfigDict(
        extra="forbid",
        title="onmodel shot list",
        json_schema_extra={"patternProperties": {"^x-": {}}},
    )

    version: Literal[1] = Field(default=1, description="Format version; always 1 for now.")
    name: Label | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="The batch name (default: the file name without extension). Running a "
        "file with the same name on the same session continues that batch.",
    )
    session: str | None = Field(
        default=None, description="Session slug or id (default: the current session)."
    )
    defaults: ShotFields = Field(
        default_factory=ShotFields, description="Settings every shot starts from."
    )
    shots: list[Shot] = Field(default_factory=list, description="Explicit shots.")
    matrices: list[Matrix] = Field(
        default_factory=list, description="Matrices that expand into one shot per combination."
    )

    @field_validator("session", mode="before")
    @classmethod
    def _session_id_as_text(cls, value: object) -> object:
        """``session: 3`` is an id; keep it as text so slugs and ids share one field."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("session")
    @classmethod
    def _session_id_in_range(cls, value: str | None) -> str | None:
        """Digits name a session by id; one no row can have is refused here, with its line,
        rather than overflowing inside the database driver."""
        if value is not None and value.isdigit() and not is_row_id(value):
            raise ValueError(f"a session id is a number from 1 to {MAX_ID}")
        return value


def is_row_id(digits: str) -> bool:
    """Whether digits can name a database row: no row has an id past 64 bits, and ``"²"`` is
    a digit to ``str.isdigit`` but not a number to ``int``."""
    return digits.isascii() and len(digits) <= len(str(MAX_ID)) and 1 <= int(digits) <= MAX_ID


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the shot-list format, for editors and validators."""
    schema = ShotList.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_URL, **schema}


@dataclass(frozen=True)
class LoadedShotList:
    """A validated shot list plus where it came from, so later errors can name lines too."""

    spec: ShotList
    source: Path | None
    label: str
    positioned: PositionedYaml

    @property
    def base_dir(self) -> Path:
        """Where relative ``refs`` are resolved: the file's folder (or the working folder)."""
        return self.source.parent if self.source is not None else Path.cwd()

    @property
    def name(self) -> str:
        if self.spec.name:
            return self.spec.name
        return self.source.stem if self.source is not None else "batch"

    def line_of(self, loc: Loc) -> int:
        return self.positioned.position_of(loc).line

    def problem(self, loc: Loc, message: str) -> Problem:
        where = self.positioned.position_of(loc)
        return Problem(self.label, where.line, where.column, format_loc(loc), message)

    def canonical(self) -> dict[str, Any]:
        """The list as data with defaults left out: stored with the batch and hashed."""
        return self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)

    def spec_hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_loc(loc: Loc) -> str:
    """``("shots", 3, "pose")`` → ``shots[3].pose``: how a person would point at it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_shot_list(path: Path | str) -> LoadedShotList:
    """Read and validate a shot-list file; every problem is reported with its line."""
    file = Path(path)
    data = read_bounded(file, MAX_FILE_BYTES, "shot list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"shot list {file} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    return parse_shot_list(text, source=file.resolve(), label=str(path))


def parse_shot_list(
    text: str, *, source: Path | None = None, label: str = "<shot list>"
) -> LoadedShotList:
    """Validate shot-list text; ``source`` anchors relative refs and the default name."""
    try:
        positioned = load_positioned(text)
    except YamlSyntaxError as exc:
        raise ShotListError(
            [Problem(label, exc.position.line, exc.position.column, "", str(exc))]
        ) from exc
    data = positioned.data
    if data is None:
        raise ShotListError([Problem(label, 1, 1, "", "the file is empty")])
    if not isinstance(data, dict):
        raise ShotListError(
            [Problem(label, 1, 1, "", "a shot list is a mapping (session:, defaults:, shots: ...)")]
        )
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    problems = [
        Problem(
            label,
            again.line,
            again.column,
            format_loc(loc),
            f"duplicate key (also line {first.line})",
        )
        for loc, first, again in positioned.duplicates
    ]
    try:
        spec = ShotList.model_validate(data)
    except PydanticValidationError as exc:
        problems.extend(_pydantic_problems(exc, positioned, label))
        raise ShotListError(sorted_problems(problems)) from exc
    loaded = LoadedShotList(spec=spec, source=source, label=label, positioned=positioned)
    problems.extend(check_semantics(loaded))
    if problems:
        raise ShotListError(sorted_problems(problems))
    return loaded


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems in file order, as a person fixes them."""
    return sorted(problems, key=lambda p: (p.line, p.column))


_KNOWN_KEYS: frozenset[str] = frozenset(
    set(ShotList.model_fields)
    | {f.alias or n for n, f in Matrix.model_fields.items()}
    | {f.alias or n for n, f in MatrixOverride.model_fields.items()}
    | {f.alias or n for n, f in Shot.model_fields.items()}
)


def _pydantic_problems(
    exc: PydanticValidationError, positioned: PositionedYaml, label: str
) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        where = positioned.position_of(loc)
        message = _message(str(error["msg"]))
        if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            message = f"unknown field {loc[-1]!r}"
            guess = difflib.get_close_matches(loc[-1], sorted(_KNOWN_KEYS), n=1)
            if guess:
                message += f" (did you mean {guess[0]!r}?)"
        elif error["type"] == "missing":
            message = f"missing required field {loc[-1]!r}" if loc else "missing field"
        elif error["type"] == "string_type" and isinstance(error.get("input"), bool):
            message += " (YAML reads yes/no/on/off as true/false: quote the text)"
        elif error["type"] == "literal_error" and loc == ("version",):
            message = "this onmodel reads shot-list version 1"
        problems.append(Problem(label, where.line, where.column, format_loc(loc), message))
    return problems


def check_semantics(loaded: LoadedShotList) -> list[Problem]:
    """Rules one field cannot check alone: axes named in ``when``, refs that exist, etc."""
    spec = loaded.spec
    problems: list[Problem] = []
    if not spec.shots and not spec.matrices:
        problems.append(loaded.problem((), "the shot list has no shots (add shots: or matrices:)"))
    layers: list[tuple[Loc, ShotFields]] = [(("defaults",), spec.defaults)]
    layers += [(("shots", i), shot) for i, shot in enumerate(spec.shots)]
    for m, matrix in enumerate(spec.matrices):
        base: Loc = ("matrices", m)
        layers.append((base, matrix))
        layers += [((*base, "overrides", o), rule) for o, rule in enumerate(matrix.overrides)]
        problems.extend(_check_matrix(loaded, base, matrix))
    for loc, layer in layers:
        problems.extend(_check_layer(loaded, loc, layer))
    total = sum(_images_per_shot(spec.defaults, shot) for shot in spec.shots)
    for matrix in spec.matrices:
        combinations = 1
        for _, values in matrix.axes.items():
            combinations *= len(values)
        total += combinations * _images_per_shot(spec.defaults, matrix)
    if total > MAX_SHOTS:
        problems.append(
            loaded.problem((), f"expands to {total:,} shots; a batch holds at most {MAX_SHOTS:,}")
        )
    return problems


def _images_per_shot(defaults: ShotFields, layer: ShotFields) -> int:
    """The most images one shot of ``layer`` can make: every variation, every take of each."""
    repeat = layer.repeat or defaults.repeat or 1
    return repeat * (layer.takes or defaults.takes or 1)


def _check_layer(loaded: LoadedShotList, loc: Loc, layer: ShotFields) -> list[Problem]:
    problems: list[Problem] = []
    known = checker_names()
    if layer.check is not None and layer.check not in known:
        choose = ", ".join(known) or "none (reinstall onmodel)"
        problems.append(
            loaded.problem(
                (*loc, "check"), f"unknown checker {layer.check!r}; choose one of: {choose}"
            )
        )
    if layer.with_ is not None and layer.cast is not None:
        problems.append(
            loaded.problem(
                (*loc, "cast"),
                "with (who joins the lead) and cast (everyone, in order) on one layer; keep one",
            )
        )
    params = layer.params or {}
    for name in ("size", "quality"):
        if getattr(layer, name) is not None and name in params:
            problems.append(
                loaded.problem((*loc, name), f"{name} is set twice (here and in params); keep one")
            )
    for index, ref in enumerate(layer.refs or []):
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = loaded.base_dir / path
        if not path.is_file():
            problems.append(loaded.problem((*loc, "refs", index), f"no file at {path}"))
    return problems


def _check_matrix(loaded: LoadedShotList, loc: Loc, matrix: Matrix) -> list[Problem]:
    problems: list[Problem] = []
    axes = dict(matrix.axes.items())
    if not axes:
        problems.append(
            loaded.problem((*loc, "axes"), "a matrix needs at least one axis (pose: [...], ...)")
        )
    who = sorted(WHO & set(axes))
    if len(who) > 1:
        problems.append(
            loaded.problem((*loc, "axes", "cast"), "with and cast are both axes; keep one")
        )
    for name, values in axes.items():
        # with and cast say the same thing: a fixed one beside the other's axis is a clash
        for fixed in sorted(WHO) if name in WHO else [name]:
            if layer_value(matrix, fixed) is not None:
                message = (
                    f"{name} is both an axis and a fixed value of this matrix"
                    if fixed == name
                    else f"{fixed} is a fixed value of this matrix and {name} an axis; keep one"
                )
                problems.append(loaded.problem((*loc, fixed), message))
        seen: set[str] = set()
        for index, value in enumerate(values):
            if axis_text(value) in seen:
                problems.append(
                    loaded.problem(
                        (*loc, "axes", name, index),
                        f"{axis_text(value)!r} is listed twice",
                    )
                )
            seen.add(axis_text(value))

    def check_match(where: Loc, match: dict[str, AxisValue]) -> None:
        for axis, value in match.items():
            if axis not in axes:
                known = ", ".join(axes) or "none"
                problems.append(
                    loaded.problem((*where, axis), f"{axis!r} is not an axis (axes: {known})")
                )
            elif axis_text(value) not in {axis_text(each) for each in axes[axis]}:
                lists = any(isinstance(each, list) for each in axes[axis])
                choices = ("; " if lists else ", ").join(axis_text(each) for each in axes[axis])
                problems.append(
                    loaded.problem(
                        (*where, axis),
                        f"{axis_text(value)!r} is not one of the {axis} values ({choices})",
                    )
                )

    for index, match in enumerate(matrix.exclude):
        if not match:
            problems.append(
                loaded.problem((*loc, "exclude", index), "an empty exclude matches all")
            )
        check_match((*loc, "exclude", index), match)
    for index, rule in enumerate(matrix.overrides):
        where: Loc = (*loc, "overrides", index)
        check_match((*where, "when"), rule.when)
        for name in axes:
            for field in sorted(WHO) if name in WHO else [name]:
                if layer_value(rule, field) is not None:
                    problems.append(
                        loaded.problem(
                            (*where, field),
                            f"an override cannot change the axis {name!r} (use exclude and a shot)",
                        )
                    )
    return problems
