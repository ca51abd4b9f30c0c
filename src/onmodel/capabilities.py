"""What each image model accepts and what it costs, checked before any money is spent.

The rules live in data (``onmodel/data/models.yaml`` and ``prices.yaml``), not in code, because
OpenAI changes them faster than onmodel is released: a user whose account can already use a
new snapshot, a larger size or a new price writes a small override file in their onmodel home
instead of waiting for a new version. The packaged tables follow the installed openai SDK's own
type docstrings, which are the closest thing to a contract the API has.

Everything here is offline and deterministic (``today`` is always passed in or defaulted at the
edge), so the same request is judged the same way by the preview provider, the tests and a real
API call.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from onmodel.errors import RetiredModelError, UsageError, ValidationError
from onmodel.yamlload import safe_load

__all__ = [
    "DEFAULT_MODEL",
    "ROUTES",
    "ROUTE_ALIASES",
    "STANDARD_SIZES",
    "CapabilityTable",
    "CustomSizeRule",
    "EstimateSettings",
    "ModelCapability",
    "ModelPrice",
    "OutputTokenFormula",
    "PriceTable",
    "default_model",
    "estimate_cost",
    "estimate_max_cost",
    "load_capabilities",
    "load_prices",
    "megapixel_cost",
    "parse_size",
    "resolve_route",
    "validate_request",
]

DEFAULT_MODEL = "gpt-image-2"
"""The model a new session uses: current, not scheduled for shutdown, and takes custom sizes."""

ROUTES: tuple[str, ...] = ("images.generate", "images.edit", "responses")
"""OpenAI's API routes a model entry can list: the Image API's two endpoints and the Responses
tool. A provider plugin's table declares its own (``routes:`` beside ``models:``)."""

TABLES_ENTRY_POINT_GROUP = "onmodel.model_tables"
"""Where a provider plugin registers the package holding its ``models.yaml`` and
``prices.yaml`` (``gemini = "onmodel.providers.gemini"``). Read from the entry point's value,
so loading the tables imports no provider's module, let alone its SDK."""

ROUTE_ALIASES: Mapping[str, str] = {"generate": "images.generate", "edit": "images.edit"}
"""Short spellings of the API routes; a provider's name is resolved by asking the provider."""

STANDARD_SIZES: tuple[str, ...] = ("1024x1024", "1536x1024", "1024x1536")
"""Sizes every GPT image model takes; ``auto`` means the model picks one of them."""

_SIZE_RE = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")
_DALLE_QUALITIES = frozenset({"standard", "hd"})
_OPT_IN_FORMATS = frozenset({"gif", "svg"})
_LEGACY_PARAMS: Mapping[str, str] = {
    "style": "describe the style in the prompt instead",
    "response_format": "GPT image models always return base64 images",
}
_TRANSPARENT_FORMATS = ("png", "webp")
_COMPRESSION_FORMATS = ("webp", "jpeg")
_DEFAULT_OUTPUT_FORMAT = "png"
_MAX_PARTIAL_IMAGES = 3
_MODERATION_VALUES = ("low", "auto")
_MILLION = Decimal(1_000_000)
MAX_PRICE = Decimal(1_000_000)
"""Dollars per million tokens above which a price table entry is a typo (and past which the
cost arithmetic would overflow), not a price."""
MAX_TOKENS = 10**9
MAX_TABLE_BYTES = 1024 * 1024  # a user's models.yaml or prices.yaml: a page of overrides


def default_model() -> str:
    """Model used when the user names none; kept in the gpt-image-2 family on purpose."""
    return DEFAULT_MODEL


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x864"`` -> ``(1536, 864)``; ``None`` for ``auto`` or anything malformed."""
    match = _SIZE_RE.match(size)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def _or_list(values: tuple[str, ...] | list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``: how a replacement list reads in one sentence."""
    items = list(values)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


# --------------------------------------------------------------------------------------------
# Capability table
# --------------------------------------------------------------------------------------------


class CustomSizeRule(BaseModel):
    """Rules for arbitrary ``WIDTHxHEIGHT`` sizes; defaults are the gpt-image-2 family's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple_of: int = Field(default=16, ge=1)
    max_aspect_ratio: float = Field(default=3.0, ge=1.0)
    max_edge: int = Field(default=3840, ge=1)
    max_pixels: int = Field(default=3840 * 2160, ge=1)
    min_pixels: int | None = Field(default=None, ge=1)
    experimental_above_pixels: int | None = Field(default=2560 * 1440, ge=1)

    def problems(self, width: int, height: int) -> list[str]:
        """Every rule the size breaks, each saying why, so one message can fix them all."""
        found: list[str] = []
        bad_sides = [
            f"{label} {value}"
            for label, value in (("width", width), ("height", height))
            if value % self.multiple_of
        ]
        if bad_sides:
            step = self.multiple_of
            verb = "is" if len(bad_sides) == 1 else "are"
            near_w = max(step, round(width / step) * step)
            near_h = max(step, round(height / step) * step)
            found.append(
                f"{' and '.join(bad_sides)} {verb} not divisible by {step}"
                f" (nearest: {near_w}x{near_h})"
            )
        long_edge, short_edge = max(width, height), min(width, height)
        if long_edge > self.max_aspect_ratio * short_edge:
            ratio = long_edge / short_edge
            shape = f"{ratio:.3g}:1" if width >= height else f"1:{ratio:.3g}"
            limit = f"{self.max_aspect_ratio:g}"
            found.append(f"aspect ratio {shape} is outside 1:{limit} to {limit}:1")
        if long_edge > self.max_edge:
            found.append(f"side {long_edge} is over the {self.max_edge} px maximum")
        pixels = width * height
        if pixels > self.max_pixels:
            found.append(
                f"{_fmt_int(pixels)} pixels is over the maximum of {_fmt_int(self.max_pixels)}"
            )
        if self.min_pixels is not None and pixels < self.min_pixels:
            found.append(
                f"{_fmt_int(pixels)} pixels is under the minimum of {_fmt_int(self.min_pixels)}"
            )
        return found


class ModelCapability(BaseModel):
    """One model's row of the table: what it accepts, where it runs, and when it stops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    family: str
    routes: tuple[str, ...] = ROUTES
    sizes: tuple[str, ...] = ("auto", *STANDARD_SIZES)
    custom_sizes: CustomSizeRule | None = None
    qualities: tuple[str, ...] = ("low", "medium", "high", "auto")
    backgrounds: tuple[str, ...] = ("transparent", "opaque", "auto")
    preview_backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ("png", "webp", "jpeg")
    input_fidelity: tuple[str, ...] = ()
    max_input_images: int = Field(default=16, ge=0)
    max_prompt_chars: int = Field(default=32000, ge=1)
    n_min: int = Field(default=1, ge=1)
    n_max: int = Field(default=10, ge=1)
    shutdown: date | None = None
    retired: bool = False
    replacement: tuple[str, ...] = ()

    @field_validator("sizes")
    @classmethod
    def _well_formed_sizes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for size in value:
            if size != "auto" and parse_size(size) is None:
                raise ValueError(f"size {size!r} is not 'auto' or WIDTHxHEIGHT")
        return value

    @model_validator(mode="after")
    def _n_range(self) -> ModelCapability:
        if self.n_max < self.n_min:
            raise ValueError(f"n_max {self.n_max} is below n_min {self.n_min}")
        return self

    def is_retired(self, today: date) -> bool:
        """Retired when marked so, or once its shutdown date has come (no code change needed)."""
        return self.retired or (self.shutdown is not None and self.shutdown <= today)

    def retired_message(self) -> str:
        """One line naming the date and what to use instead."""
        when = f"was shut down on {self.shutdown.isoformat()}" if self.shutdown else "is retired"
        if self.replacement:
            instead = f"use {_or_list(self.replacement)} instead"
        else:
            instead = f"choose another model (the default is {DEFAULT_MODEL})"
        return f"{self.name} {when}; {instead}"

    def shutdown_warning(self, today: date) -> str | None:
        """A warning while the model still works but has a shutdown date announced."""
        if self.shutdown is None or self.is_retired(today):
            return None
        days = (self.shutdown - today).days
        in_days = "tomorrow" if days == 1 else f"in {days} days"
        instead = f"; switch to {_or_list(self.replacement)}" if self.replacement else ""
        return f"{self.name} shuts down on {self.shutdown.isoformat()} ({in_days}){instead}"


class CapabilityTable:
    """All known models, after the user's overrides; look models up with :meth:`get`."""

    def __init__(self, models: Mapping[str, ModelCapability], sources: tuple[str, ...]) -> None:
        self._models = dict(models)
        self.sources = sources
        """Files the table was read from, packaged first; shown when a rule surprises a user."""

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def __iter__(self) -> Iterator[ModelCapability]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def find(self, model: str) -> ModelCapability | None:
        """The entry as written, retired or not; for listings, not for sending requests."""
        return self._models.get(model)

    def names(self, *, today: date | None = None, include_retired: bool = False) -> list[str]:
        """Model names in table order; retired ones only when asked for."""
        day = today or date.today()
        return [
            name for name, cap in self._models.items() if include_retired or not cap.is_retired(day)
        ]

    def get(self, model: str, *, today: date | None = None) -> ModelCapability:
        """The entry for a model that can still be used.

        Raises :class:`RetiredModelError` (date and replacement in the message) for a model
        that no longer answers, so no request is sent to it, and :class:`ValidationError` for a
        name the table does not know, suggesting the nearest known names (a typo such as
        ``gpt-image2`` is the usual cause).
        """
        day = today or date.today()
        cap = self._models.get(model)
        if cap is None:
            current = self.names(today=day)
            close = difflib.get_close_matches(model, list(self._models), n=3, cutoff=0.6)
            if close:
                hint = f"did you mean {_or_list(close)}?"
            else:
                hint = f"known models: {', '.join(current)}"
            raise ValidationError(f"unknown model {model!r}; {hint}")
        if cap.is_retired(day):
            raise RetiredModelError(cap.retired_message())
        return cap


def resolve_route(route: str, n_input_images: int) -> str | None:
    """Turn a route or provider name into the API route a request takes (None: no API call).

    A provider decides its own route (the Image API provider sends anchors to
    ``images.generate`` and shots, which carry the anchor image, to ``images.edit``); a
    provider that calls no API still has its requests checked against the model's rules.
    """
    if route in ROUTES:
        return route
    if route in ROUTE_ALIASES:
        return ROUTE_ALIASES[route]
    from onmodel.providers import FACTORIES, get_provider

    if route in FACTORIES:
        return get_provider(route).api_route(n_input_images)
    known = [*ROUTES, *ROUTE_ALIASES, *sorted(FACTORIES)]
    raise ValidationError(f"unknown route {route!r}; use one of {', '.join(known)}")


def _provider_param_problems(
    route: str, params: Mapping[str, Any], cap: ModelCapability
) -> list[str]:
    """Ask the provider ``route`` names about the params only it may take (the preview's test
    knobs); a bare API route is the real API, which refuses them."""
    from onmodel.providers import FACTORIES, get_provider
    from onmodel.providers.base import preview_only_problems

    if route in FACTORIES:
        return get_provider(route).param_problems(params, cap)
    return preview_only_problems(params)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_size(cap: ModelCapability, size: object, warnings: list[str]) -> list[str]:
    if not isinstance(size, str):
        return [f"size must be a string such as '1024x1024', not {size!r}"]
    if size in cap.sizes:
        return []
    dims = parse_size(size)
    if dims is None:
        example = next((each for each in cap.sizes if each != "auto"), "1024x1024")
        return [f"size {size!r} is not 'auto' or WIDTHxHEIGHT (e.g. {example})"]
    if cap.custom_sizes is None:
        # a model of OpenAI's routes can point at OpenAI's model with custom sizes; another
        # provider's cannot (its models are its table's to suggest)
        instead = (
            f" (custom sizes such as {size} need a model such as {DEFAULT_MODEL})"
            if set(cap.routes) & set(ROUTES)
            else ""
        )
        return [f"{cap.name} takes only the sizes {', '.join(cap.sizes)}{instead}"]
    found = cap.custom_sizes.problems(*dims)
    if found:
        return [f"size {size}: {', '.join(found)}"]
    limit = cap.custom_sizes.experimental_above_pixels
    if limit is not None and dims[0] * dims[1] > limit:
        warnings.append(
            f"size {size} is over {_fmt_int(limit)} pixels (2560x1440 in the packaged table):"
            " OpenAI calls such resolutions experimental"
        )
    return []


def _check_choice(name: str, value: object, allowed: tuple[str, ...], model: str) -> list[str]:
    if value is None or value in allowed:
        return []
    if not allowed:
        return [f"{model} does not take {name}, leave it out"]
    return [f"{name} {value!r} is not available on {model} (choose {', '.join(allowed)})"]


def validate_request(
    cap: ModelCapability,
    *,
    route: str,
    params: Mapping[str, Any],
    prompt: str | None,
    n_input_images: int,
    today: date,
) -> list[str]:
    """Check a request against the model's rules before it is sent; return warnings.

    ``prompt`` None checks the parameters alone: a session's defaults are checked when they are
    set, before any shot has a prompt, so a bad size is refused then rather than at every shot.

    Every broken rule is reported in one :class:`ValidationError` whose message is one line
    (problems joined with ``"; "``), so the user can fix them all at once and the CLI can
    print it as is. Warnings (a near shutdown, a preview feature, an experimental size) never
    stop the request: the API would accept it, and the user decides.
    """
    if cap.is_retired(today):
        raise RetiredModelError(cap.retired_message())
    api_route = resolve_route(route, n_input_images)
    if api_route is not None and api_route not in cap.routes:
        works_on = ", ".join(cap.routes) or "no route"
        raise ValidationError(f"{cap.name} does not work on {api_route} (it works on {works_on})")

    warnings: list[str] = []
    problems: list[str] = []
    model = cap.name

    asked_model = params.get("model")
    if asked_model is not None and asked_model != model:
        problems.append(f"params name model {asked_model!r} but the request is for {model}")
    for legacy, advice in _LEGACY_PARAMS.items():
        if params.get(legacy) is not None:
            problems.append(f"{legacy} was a DALL·E-only parameter ({advice})")

    if prompt is None:
        pass
    elif not prompt.strip():
        problems.append("the prompt is empty")
    elif len(prompt) > cap.max_prompt_chars:
        problems.append(
            f"the prompt is {_fmt_int(len(prompt))} characters, {model} takes at most"
            f" {_fmt_int(cap.max_prompt_chars)}"
        )

    if n_input_images < 0:
        problems.append(f"n_input_images cannot be negative ({n_input_images})")
    elif api_route == "images.generate" and n_input_images > 0:
        problems.append(
            f"images.generate sends no input images, got {n_input_images} (use images.edit)"
        )
    elif api_route == "images.edit" and n_input_images == 0:
        problems.append("images.edit needs at least one input image")
    elif n_input_images > cap.max_input_images:
        problems.append(
            f"{n_input_images} input images is more than the {cap.max_input_images}"
            f" {model} takes per request"
        )

    if params.get("size") is not None:
        problems.extend(_check_size(cap, params["size"], warnings))

    quality = params.get("quality")
    if quality in _DALLE_QUALITIES and quality not in cap.qualities:
        problems.append(
            f"quality {quality!r} was only for the retired DALL·E models"
            f" ({model} takes {', '.join(cap.qualities)})"
        )
    else:
        problems.extend(_check_choice("quality", quality, cap.qualities, model))

    output_format = params.get("output_format")
    if output_format in _OPT_IN_FORMATS and output_format not in cap.output_formats:
        problems.append(
            f"output_format {output_format!r} needs special access from OpenAI"
            f" (to opt in, add it to output_formats of {model} in your models.yaml)"
        )
    else:
        problems.extend(_check_choice("output_format", output_format, cap.output_formats, model))
    effective_format = output_format if isinstance(output_format, str) else _DEFAULT_OUTPUT_FORMAT

    background = params.get("background")
    problems.extend(_check_choice("background", background, cap.backgrounds, model))
    if background == "transparent" and effective_format not in _TRANSPARENT_FORMATS:
        problems.append(
            f"background 'transparent' needs output_format png or webp, not {effective_format}"
        )
    if background is not None and background in cap.preview_backgrounds:
        warnings.append(f"background {background!r} is a preview feature on {model}")

    compression = params.get("output_compression")
    if compression is not None:
        if not _is_int(compression) or not 0 <= compression <= 100:
            problems.append(f"output_compression must be a whole number 0-100, not {compression!r}")
        elif effective_format not in _COMPRESSION_FORMATS:
            problems.append(
                "output_compression works only with output_format webp or jpeg"
                f" (output_format is {effective_format})"
            )

    fidelity = params.get("input_fidelity")
    if fidelity is not None:
        if api_route == "images.generate":
            problems.append("input_fidelity applies only when input images are sent")
        elif not cap.input_fidelity:
            problems.append(f"{model} does not take input_fidelity, leave it out")
        elif fidelity not in cap.input_fidelity:
            problems.append(
                f"{model} takes input_fidelity {' or '.join(cap.input_fidelity)}, not {fidelity!r}"
            )

    n = params.get("n")
    if n is not None and (not _is_int(n) or not cap.n_min <= n <= cap.n_max):
        problems.append(
            f"n={n!r} is out of range: {model} makes {cap.n_min} to {cap.n_max} images per request"
        )

    partial = params.get("partial_images")
    if partial is not None and (not _is_int(partial) or not 0 <= partial <= _MAX_PARTIAL_IMAGES):
        problems.append(f"partial_images must be 0 to {_MAX_PARTIAL_IMAGES}, not {partial!r}")

    moderation = params.get("moderation")
    if moderation is not None and moderation not in _MODERATION_VALUES:
        problems.append(f"moderation must be low or auto, not {moderation!r}")

    problems.extend(_provider_param_problems(route, params, cap))

    if problems:
        raise ValidationError(f"{model}: " + "; ".join(problems))

    shutdown = cap.shutdown_warning(today)
    if shutdown:
        warnings.insert(0, shutdown)
    return warnings


# --------------------------------------------------------------------------------------------
# Loading tables: packaged YAML, then the user's file merged on top, model by model
# --------------------------------------------------------------------------------------------

_PACKAGED_LABEL = "packaged {name}"


@cache
def _packaged_text(filename: str) -> str:
    return (resources.files("onmodel") / "data" / filename).read_text(encoding="utf-8")


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise UsageError(f"{where} is not valid YAML: {detail}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be a mapping with a 'models' key")
    return data


def _read_user_yaml(path: Path) -> dict[str, Any] | None:
    """The user's file, or None when there is none: having no overrides is the normal case."""
    if not path.exists():
        return None
    from onmodel.limits import read_bounded

    data = read_bounded(path, MAX_TABLE_BYTES, "table")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not UTF-8 text") from None
    return _read_yaml(text, str(path))


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key, anything else (lists included) is replaced whole."""
    for key, value in override.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            base[key] = _merge(dict(current), value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _models_section(data: Mapping[str, Any], where: str, allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(data) - allowed)
    if unknown:
        expected = " and ".join(repr(key) for key in sorted(allowed))
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (expected {expected})")
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise UsageError(f"{where}: 'models' must be a mapping of model name to fields")
    return models


def _resolve_entries(
    raw: Mapping[str, Any], base: Mapping[str, dict[str, Any]], where: str
) -> dict[str, dict[str, Any]]:
    """Apply ``extends`` and merge each entry over the same-named entry in ``base``.

    Resolving one file at a time keeps a user's change to ``gpt-image-2`` from leaking into the
    snapshots that extend it in the packaged file: an override changes what it names.
    """
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in resolved:
            return resolved[name]
        if name in chain:
            loop = " -> ".join((*chain, name))
            raise UsageError(f"{where}: models.{name}: 'extends' loops ({loop})")
        entry = raw[name]
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise UsageError(f"{where}: models.{name} must be a mapping of fields")
        fields = dict(entry)
        written_name = fields.pop("name", name)
        if written_name != name:
            raise UsageError(f"{where}: models.{name}: name {written_name!r} differs from its key")
        parent = fields.pop("extends", None)
        start: dict[str, Any]
        if parent is None:
            start = copy.deepcopy(base.get(name, {}))
        elif not isinstance(parent, str):
            raise UsageError(f"{where}: models.{name}: extends must be a model name")
        elif parent in raw and parent != name:
            start = copy.deepcopy(resolve(parent, (*chain, name)))
        elif parent in base:
            start = copy.deepcopy(base[parent])
        else:
            raise UsageError(f"{where}: models.{name}: extends unknown model {parent!r}")
        resolved[name] = _merge(start, fields)
        return resolved[name]

    for key in raw:
        if not isinstance(key, str):
            raise UsageError(f"{where}: model names must be text, not {key!r}")
        resolve(key, ())
    return resolved


_M = TypeVar("_M", bound=BaseModel)


def _build(cls: type[_M], name: str, fields: Mapping[str, Any], where: str) -> _M:
    try:
        return cls.model_validate({**fields, "name": name})
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        field = f"models.{name}.{loc}" if loc else f"models.{name}"
        raise UsageError(f"{where}: {field}: {first['msg']}") from exc


class _Layers(NamedTuple):
    entries: dict[str, dict[str, Any]]
    origin: dict[str, str]  # the file each model's entry was last written in
    packaged: dict[str, Any]
    user: dict[str, Any]
    sources: tuple[str, ...]
    routes: frozenset[str]  # the API routes plugins' tables declare


@cache
def plugin_tables() -> tuple[tuple[str, str], ...]:
    """``(name, package)`` of every provider plugin that brings its own model and price
    tables, in name order (:data:`TABLES_ENTRY_POINT_GROUP`)."""
    from importlib.metadata import entry_points

    found = {entry.name: entry.value for entry in entry_points(group=TABLES_ENTRY_POINT_GROUP)}
    return tuple(sorted(found.items()))


def _plugin_text(package: str, filename: str) -> str | None:
    """A plugin's table, or None when it brings none of that kind (or cannot be read, which
    its first request then reports)."""
    try:
        found = resources.files(package) / filename
        return found.read_text(encoding="utf-8") if found.is_file() else None
    except (ModuleNotFoundError, OSError):
        return None


def _load_layers(
    filename: str,
    user_file: Path | None,
    allowed_keys: set[str],
    plugins: tuple[tuple[str, str], ...] = (),
) -> _Layers:
    """Packaged entries, then each plugin's, then the user's, resolved; plus the file each
    entry was last written in, for messages. A plugin's entries may extend onmodel's (and
    override them: its table is the newer word on its own models)."""
    packaged_where = _PACKAGED_LABEL.format(name=filename)
    packaged = _read_yaml(_packaged_text(filename), packaged_where)
    entries = _resolve_entries(
        _models_section(packaged, packaged_where, allowed_keys), {}, packaged_where
    )
    sources: tuple[str, ...] = (packaged_where,)
    origin = dict.fromkeys(entries, packaged_where)  # the file each entry was last written in
    declared: set[str] = set()
    for name, package in plugins:
        text = _plugin_text(package, filename)
        if text is None:
            continue
        where = f"{name} plugin's {filename}"
        data = _read_yaml(text, where)
        section = _models_section(data, where, {"models", "routes"})
        entries.update(_resolve_entries(section, entries, where))
        origin.update(dict.fromkeys(section, where))
        sources = (*sources, where)
        routes = data.get("routes") or []
        if not (isinstance(routes, list) and all(isinstance(r, str) for r in routes)):
            raise UsageError(f"{where}: 'routes' must be a list of route names")
        declared.update(routes)
    user: dict[str, Any] = {}
    if user_file is not None:
        found = _read_user_yaml(user_file)
        if found is not None:
            where = str(user_file)
            user_models = _models_section(found, where, allowed_keys)
            entries.update(_resolve_entries(user_models, entries, where))
            origin.update(dict.fromkeys(user_models, where))
            user = found
            sources = (*sources, where)
    return _Layers(entries, origin, packaged, user, sources, frozenset(declared))


def _file_version(path: Path | None) -> tuple[int, int] | None:
    """What identifies a version of an override file, so an edit is picked up at once."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def load_capabilities(user_file: Path | None = None) -> CapabilityTable:
    """The packaged capability table with the user's ``models.yaml`` merged on top.

    A missing user file means "no overrides"; a broken one raises :class:`UsageError` naming
    the file and the first problem, because silently ignoring a user's rule would let through
    requests they meant to forbid (or refuse ones they meant to allow). Tables are cached per
    version of the override file: every shot validates against them, and re-parsing the YAML
    each time was most of a batch's local overhead.
    """
    return _capabilities_for(user_file, _file_version(user_file))


@lru_cache(maxsize=16)
def _capabilities_for(user_file: Path | None, _version: tuple[int, int] | None) -> CapabilityTable:
    entries, origin, _, _, sources, routes = _load_layers(
        "models.yaml", user_file, {"models"}, plugin_tables()
    )
    known_routes = {*ROUTES, *routes}
    models: dict[str, ModelCapability] = {}
    for name, fields in entries.items():
        where = origin[name]
        models[name] = _build(ModelCapability, name, fields, where)
        unknown = [route for route in models[name].routes if route not in known_routes]
        if unknown:
            raise UsageError(
                f"{where}: models.{name}.routes: unknown route {unknown[0]!r}; routes are "
                f"{', '.join(sorted(known_routes))}"
            )
    return CapabilityTable(models, sources)


# --------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------


class OutputTokenFormula(BaseModel):
    """Output image tokens for any size, as OpenAI's calculator computes them for gpt-image-2.

    ``tokens = ceil(f * s * (area_offset_pixels + W*H) / area_scale)`` where ``f`` is the
    quality factor and ``s = floor((2*f*short + long) / (2*long))``. It matters because plain
    area scaling would overstate a 3840x2160 image about fourfold and make budgets refuse.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality_factors: dict[str, int]
    area_offset_pixels: int = Field(default=2_000_000, ge=0)
    area_scale: int = Field(default=4_000_000, ge=1)

    def tokens(self, quality: str, width: int, height: int) -> int | None:
        factor = self.quality_factors.get(quality)
        if factor is None:
            return None
        long_edge, short_edge = max(width, height), min(width, height)
        short_factor = (2 * factor * short_edge + long_edge) // (2 * long_edge)
        numerator = factor * short_factor * (self.area_offset_pixels + width * height)
        return -(-numerator // self.area_scale)


class ModelPrice(BaseModel):
    """USD per 1M tokens for one model; a missing price is unknown, never zero."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = ""
    text_input: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    cached_text_input: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    image_input: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    cached_image_input: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    image_output: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    text_output: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    input_image_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    partial_image_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    output_tokens: dict[str, dict[str, int]] = Field(default_factory=dict)
    output_token_formula: OutputTokenFormula | None = None
    # Priced by the picture, not by the token (FLUX, most hosted image APIs): USD for an
    # output image's first megapixel, for each further megapixel or part of one, and per
    # megapixel of each input image; what one credit is worth when the API reports its cost
    # in credits.
    image_first_megapixel: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    image_per_megapixel: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    input_image_per_megapixel: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)
    usd_per_credit: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)

    @field_validator("output_tokens")
    @classmethod
    def _sizes_are_sizes(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for quality, sizes in value.items():
            for size, tokens in sizes.items():
                if parse_size(size) is None:
                    raise ValueError(f"{quality}: {size!r} is not WIDTHxHEIGHT")
                if tokens < 0:
                    raise ValueError(f"{quality}: {size}: tokens cannot be negative")
        return value

    def _qualities(self) -> list[str]:
        names = list(self.output_tokens)
        if self.output_token_formula is not None:
            names += [q for q in self.output_token_formula.quality_factors if q not in names]
        return names

    def output_tokens_for(self, quality: str | None, size: str | None) -> int | None:
        """Image output tokens for one image; ``auto`` takes the most expensive choice.

        ``None`` when the table cannot say (an unlisted quality such as ``xhigh``), so that a
        budget check treats the request as of unknown cost instead of guessing low.
        """
        if quality is None or quality == "auto":
            options = [self.output_tokens_for(q, size) for q in self._qualities()]
            return _max_known(options)
        if size is None or size == "auto":
            options = [self.output_tokens_for(quality, s) for s in STANDARD_SIZES]
            return _max_known(options)
        dims = parse_size(size)
        if dims is None:
            return None
        listed = self.output_tokens.get(quality, {})
        if size in listed:
            return listed[size]
        if self.output_token_formula is not None:
            tokens = self.output_token_formula.tokens(quality, *dims)
            if tokens is not None:
                return tokens
        if not listed:
            return None
        # Highest tokens-per-pixel among the listed sizes, times this size's pixels: an upper
        # bound for token counts that grow with area, as the gpt-image-1 family's do.
        rate = max(Fraction(tokens, _area(s)) for s, tokens in listed.items())
        return math.ceil(rate * dims[0] * dims[1])


def _area(size: str) -> int:
    dims = parse_size(size)
    assert dims is not None  # checked by ModelPrice._sizes_are_sizes
    return dims[0] * dims[1]


def _max_known(options: list[int | None]) -> int | None:
    if not options or any(option is None for option in options):
        return None
    return max(option for option in options if option is not None)


class EstimateSettings(BaseModel):
    """How a prompt's length becomes text tokens before the prompt is tokenized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_tokens_per_char: Decimal = Field(default=Decimal(1), ge=0, le=1000)
    text_tokens_overhead: int = Field(default=32, ge=0, le=MAX_TOKENS)


class PriceTable:
    """Prices by model after the user's overrides, plus the pre-call estimate settings."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        estimate: EstimateSettings,
        sources: tuple[str, ...],
    ) -> None:
        self._models = dict(models)
        self.estimate = estimate
        self.sources = sources

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def get(self, model: str) -> ModelPrice | None:
        """The model's prices, or None when onmodel knows none (its cost is then UNKNOWN)."""
        return self._models.get(model)


def load_prices(user_file: Path | None = None) -> PriceTable:
    """The packaged price table with the user's ``prices.yaml`` merged on top, per model.

    Cached per version of the override file, like :func:`load_capabilities`.
    """
    return _prices_for(user_file, _file_version(user_file))


@lru_cache(maxsize=16)
def _prices_for(user_file: Path | None, _version: tuple[int, int] | None) -> PriceTable:
    entries, origin, packaged, user, sources, _ = _load_layers(
        "prices.yaml", user_file, {"models", "estimate"}, plugin_tables()
    )
    prices = {
        name: _build(ModelPrice, name, fields, origin[name]) for name, fields in entries.items()
    }
    estimate_fields = _merge(dict(packaged.get("estimate") or {}), user.get("estimate") or {})
    try:
        estimate = EstimateSettings.model_validate(estimate_fields)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"{sources[-1]}: estimate.{loc}: {first['msg']}") from exc
    return PriceTable(prices, estimate, sources)


@cache
def _packaged_prices() -> PriceTable:
    return load_prices()


def _cost(tokens: int, price: Decimal | None) -> Decimal | None:
    """Cost of some tokens; zero tokens cost nothing even when the price is unknown."""
    if tokens == 0:
        return Decimal(0)
    if price is None:
        return None
    return Decimal(tokens) * price / _MILLION


def _sum_known(parts: list[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for part in parts:
        if part is None:
            return None
        total += part
    return total


def _token_count(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key, 0)
    if value is None:
        return 0
    return value if _is_int(value) and value >= 0 else None


def estimate_cost(
    model: str,
    usage: Mapping[str, Any] | None,
    prices: PriceTable | None = None,
) -> Decimal | None:
    """What a finished request cost, from the ``usage`` the API returned (SDK ``Usage`` shape).

    Returns None, shown as UNKNOWN, when there is no usage, the model has no prices, or tokens
    were used whose price is not known: a wrong zero would make spending look free. Without
    ``output_tokens_details`` every output token is an image token (the SDK's older meaning of
    ``output_tokens``). ``prices`` defaults to the packaged table; pass ``load_prices(file)``
    to honour the user's overrides.
    """
    if usage is None or not ("input_tokens" in usage or "output_tokens" in usage):
        return None  # no token counts at all: unknown, not free
    price = (prices or _packaged_prices()).get(model)
    if price is None:
        return None
    input_details = usage.get("input_tokens_details")
    output_details = usage.get("output_tokens_details")
    if isinstance(input_details, Mapping):
        text_in = _token_count(input_details, "text_tokens")
        image_in = _token_count(input_details, "image_tokens")
    elif _token_count(usage, "input_tokens") == 0:
        text_in, image_in = 0, 0
    else:
        return None  # input tokens we cannot split into text and image
    if isinstance(output_details, Mapping):
        image_out = _token_count(output_details, "image_tokens")
        text_out = _token_count(output_details, "text_tokens")
    else:
        image_out, text_out = _token_count(usage, "output_tokens"), 0
    counts = (text_in, image_in, image_out, text_out)
    if any(count is None for count in counts):
        return None
    assert text_in is not None and image_in is not None
    assert image_out is not None and text_out is not None
    return _sum_known(
        [
            _cost(text_in, price.text_input),
            _cost(image_in, price.image_input),
            _cost(image_out, price.image_output),
            _cost(text_out, price.text_output),
        ]
    )


def megapixel_cost(
    price: ModelPrice, output_pixels: int, input_pixels: list[int]
) -> Decimal | None:
    """What a picture priced by the megapixel costs: the first megapixel, each further one
    (a part counted whole, so an estimate never comes out low), and every input image by its
    exact megapixels. None when a needed price is unknown."""
    if price.image_first_megapixel is None or output_pixels < 0:
        return None
    further = max(0, math.ceil(output_pixels / 1_000_000) - 1)
    if further and price.image_per_megapixel is None:
        return None
    total = price.image_first_megapixel + further * (price.image_per_megapixel or Decimal(0))
    if any(input_pixels):
        if price.input_image_per_megapixel is None:
            return None
        total += price.input_image_per_megapixel * Decimal(sum(input_pixels)) / _MILLION
    return total


def estimate_max_cost(
    model: str,
    quality: str | None,
    size: str | None,
    n_input_images: int,
    prompt_chars: int,
    *,
    n: int = 1,
    partial_images: int = 0,
    prices: PriceTable | None = None,
) -> Decimal | None:
    """An upper-bound cost estimate made before the call, for ``--max-cost`` and budgets.

    Per image: prompt text (``text_tokens_per_char`` per character plus an overhead), each
    input image at the model's ``input_image_tokens``, output tokens for the quality and size
    (``auto`` = the most expensive), streamed partial images; times ``n``, because the API
    bills ``n`` images as ``n`` separate generations. Returns None when any needed number is
    unknown, so a budget can refuse rather than assume the request is cheap.
    """
    table = prices or _packaged_prices()
    price = table.get(model)
    if price is None or n < 1 or n_input_images < 0 or prompt_chars < 0 or partial_images < 0:
        return None
    output_tokens = price.output_tokens_for(quality, size)
    if output_tokens is None:
        return None
    if partial_images:
        if price.partial_image_tokens is None:
            return None
        output_tokens += partial_images * price.partial_image_tokens
    settings = table.estimate
    text_tokens = math.ceil(prompt_chars * settings.text_tokens_per_char)
    text_tokens += settings.text_tokens_overhead
    image_tokens: int | None = 0
    if n_input_images:
        per_image = price.input_image_tokens
        image_tokens = None if per_image is None else n_input_images * per_image
    if image_tokens is None:
        return None
    per_call = _sum_known(
        [
            _cost(text_tokens, price.text_input),
            _cost(image_tokens, price.image_input),
            _cost(output_tokens, price.image_output),
        ]
    )
    return None if per_call is None else per_call * n
