"""The ``judge`` checker: a vision model compares a shot with its anchor, trait by trait.

One ``responses.create`` per check carries the rendered prompt (``prompts/judge.j2``, which a
user overrides with a file of the same name in their templates folder), the anchor and the
shot as ``input_image`` data URLs (anchor first), and a strict JSON schema (Structured
Outputs) with one entry per trait the model sheet sets: a verdict ``same | drifted |
not visible`` and a note, plus an overall score and a one-line summary. Declaring the traits in
the schema, rather than asking for "a list", is what makes the answer complete: the model cannot
skip a trait, and a missing or extra one is a schema mismatch.

A shot of several members is judged in one call (:meth:`JudgeChecker.check_cast`): every
member's anchor in cast order, then the shot, and a schema with a judgement per member
(``member_1``, ``member_2``…, each the one-member schema). One call rather than one per
member: to find Rin in a picture of Mia and Rin, the model must see both anchors anyway, so
one call per member would send every anchor each time, and pay for them as often. Its usage is
recorded on the first member's row; the others cost nothing of their own.

Whatever goes wrong, a refusal, an answer cut short, text that is not JSON, JSON that is not the
schema, an API error, is a :class:`CheckerError` with the usage already paid for, which the
studio records as a failed check. The SDK is imported only when a request is sent, so building
the checker (the CLI does, to list and estimate) stays cheap.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from onmodel.checkers.base import (
    Checker,
    CheckerContext,
    CheckerError,
    CheckOutcome,
    CheckSubject,
    TraitResult,
    Verdict,
)
from onmodel.errors import OnmodelError
from onmodel.sheet import ModelSheet, ShotRequest

if TYPE_CHECKING:
    import openai
    from openai.types.responses import Response

    from onmodel.composer import Rendered
    from onmodel.providers.base import ProviderError

__all__ = ["DEFAULT_JUDGE_MODEL", "JudgeChecker", "JudgedTrait", "judged_traits"]

DEFAULT_JUDGE_MODEL = "gpt-6-luna"
"""The vision model a judge asks unless told otherwise.

Why gpt-6-luna: it is in the SDK's ``ChatModel`` list with no shutdown announced, OpenAI's
models page names it the choice "for cost-sensitive, high-volume workloads", and its model page
lists image input and Structured Outputs through the Responses API, at $0.10 / $0.50 per 1M
input / output tokens: a check reads two images and answers a few hundred tokens, so it costs a
fraction of a cent. Comparing colours and shapes with a reference needs sight, not deep
reasoning; a stronger model (``JudgeChecker(model="gpt-6.1-terra")``) is a choice, not a need.
"""

JUDGE_TEMPLATE = "prompts/judge.j2"
DESCRIBE_TEMPLATE = "prompts/describe.j2"
MAX_OUTPUT_TOKENS = 8_000
"""The most a judge may answer, reasoning included: a verdict per trait is a few hundred
tokens, and the cap is what bounds a check's cost before it is sent."""

_IMAGE_DETAIL = "high"  # faces and small details are what drift; low detail blurs them away
_MAX_QUOTED = 200

_NOT_SEEN = frozenset({"avoid", "layout", "fixed_objects", "lighting"})  # a set's, not a figure's
"""Sheet fields no image shows: ``avoid`` lists what is never drawn, so nothing is judged (or
described) of it, and a described sheet keeps the one on record."""
_SEEN = tuple(name for name in ModelSheet.model_fields if name not in _NOT_SEEN)
"""The sheet fields a check judges and a describe answer fills, in the sheet's order."""
_LIST_FIELDS = frozenset(
    name for name, field in ModelSheet.model_fields.items() if field.annotation == list[str]
)
_OUTFIT_TRAITS = frozenset({"outfit", "outfit_colors"})
"""What a request's ``outfit`` changes on purpose: reported ``changed by request``."""

_COLOUR_FIELDS = frozenset({"hair_color", "eye_color", "skin_color", "outfit_colors", "palette"})
_HEX = "#[0-9a-fA-F]{6}"

_Parsed = TypeVar("_Parsed")


@dataclass(frozen=True)
class JudgedTrait:
    """One trait as the judge is asked about it.

    ``key`` names it in the schema (``must_keep_2``: safe as a property name whatever the item
    says), ``name`` in the stored result (``must_keep: hair clip``, as
    :class:`~onmodel.checkers.base.TraitResult` names list items).
    """

    key: str
    field: str
    name: str
    expected: str
    changed: bool


def judged_traits(sheet: ModelSheet, request: ShotRequest) -> list[JudgedTrait]:
    """One entry per trait the sheet sets, list items one by one, in the sheet's order."""
    traits: list[JudgedTrait] = []
    # a palette colour that is an outfit colour goes with the outfit a request changes, as
    # the palette checker takes it: the two checkers agree on what a new outfit excuses
    outfit_colours = {colour.strip().lower() for colour in sheet.outfit_colors}
    changed_fit = bool(request.outfit)
    for field in _SEEN:
        value = getattr(sheet, field)
        changed = bool(request.outfit) and field in _OUTFIT_TRAITS
        if isinstance(value, str):
            if value:
                traits.append(JudgedTrait(field, field, field, value, changed))
            continue
        for number, item in enumerate(value, start=1):
            key, name = f"{field}_{number}", f"{field}: {item}"
            worn = field == "palette" and item.strip().lower() in outfit_colours
            traits.append(JudgedTrait(key, field, name, item, changed or (worn and changed_fit)))
    return traits


class _TraitAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal[Verdict.SAME, Verdict.DRIFTED, Verdict.NOT_VISIBLE]
    note: str


class _Judgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    traits: dict[str, _TraitAnswer]
    score: int = Field(ge=0, le=100)
    summary: str


class JudgeChecker(Checker):
    """Asks a vision model (``model``, else ``ONMODEL_JUDGE_MODEL``, else
    :data:`DEFAULT_JUDGE_MODEL`) to judge each trait.

    ``client`` is for tests and embedding; by default the OpenAI providers' shared client is
    built from the settings on first use, with their timeouts and retries.
    """

    name = "judge"
    billed = True
    offline = False
    key_env = "OPENAI_API_KEY"  # the SDK reads it itself; checked before a check is recorded

    def __init__(
        self,
        context: CheckerContext | None = None,
        *,
        model: str | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        super().__init__(context)
        self._model = model or self.context.settings.judge_model or DEFAULT_JUDGE_MODEL
        self._client = client

    @property
    def model(self) -> str:
        return self._model

    def has_key(self) -> bool:
        """Asked of the settings the client is built from, as the OpenAI providers ask."""
        return self.context.settings.has_openai_key

    def estimate_max_cost(self, subject: CheckSubject) -> Decimal | None:
        """Prompt and schema as text, two images, and :data:`MAX_OUTPUT_TOKENS` of answer, at
        the price table's rates; None (a budget refuses) when any of them is unknown."""
        return self._estimate(*self._judge_request(subject), images=2)

    def estimate_cast_max_cost(self, subjects: Sequence[CheckSubject]) -> Decimal | None:
        """One call: the prompt and schema of every member, each member's anchor and the
        shot, and :data:`MAX_OUTPUT_TOKENS` of answer."""
        return self._estimate(*self._cast_request(subjects), images=len(subjects) + 1)

    def _estimate(self, prompt: Rendered, schema: dict[str, Any], *, images: int) -> Decimal | None:
        """The most a call sending ``prompt``, ``schema`` and ``images`` images can cost."""
        from onmodel.capabilities import load_prices

        table = load_prices(self.context.prices_file)
        price = table.get(self.model)
        if price is None or price.input_image_tokens is None:
            return None
        chars = len(prompt.text) + len(json.dumps(schema))
        text_tokens = math.ceil(chars * table.estimate.text_tokens_per_char)
        text_tokens += table.estimate.text_tokens_overhead
        return self._priced(text_tokens, images * price.input_image_tokens, MAX_OUTPUT_TOKENS)

    def cost(self, usage: dict[str, Any] | None) -> str | None:
        """A Responses API usage priced as text: it does not split image from text input
        tokens, and this model bills both at the text input rate."""
        if usage is None:
            return None
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            return None
        cost = self._priced(tokens_in, 0, tokens_out)
        return None if cost is None else str(cost)

    def check(self, subject: CheckSubject) -> CheckOutcome:
        """Ask the judge once; every answer that is not a complete judgement is an error."""
        prompt, schema = self._judge_request(subject)
        images = [(subject.anchor, subject.anchor_mime), (subject.image, subject.image_mime)]
        response = self._ask(prompt.text, images, "onmodel_judgement", schema)
        traits = judged_traits(subject.sheet, subject.request)
        keys = {trait.key for trait in traits}

        def judgement(data: Any) -> _Judgement:
            parsed = _Judgement.model_validate(data)
            if set(parsed.traits) != keys:
                missing = sorted(keys - set(parsed.traits))
                extra = sorted(set(parsed.traits) - keys)
                raise ValueError(
                    f"traits missing {missing or 'none'}, unexpected {extra or 'none'}"
                )
            return parsed

        answer = self._parsed(response, judgement)
        return self._outcome(
            answer,
            traits,
            response,
            {
                "response_id": response.id,
                "template": prompt.template_name,
                "template_sha256": prompt.template_hash,
            },
        )

    def _outcome(
        self,
        answer: _Judgement,
        traits: list[JudgedTrait],
        response: Response,
        returned: dict[str, Any],
    ) -> CheckOutcome:
        """A judgement of one character as a check's outcome; what the request changes on
        purpose is ``changed by request`` whatever the model said of it."""
        results = [
            TraitResult(
                trait.name,
                Verdict.CHANGED if trait.changed else answer.traits[trait.key].verdict,
                note=answer.traits[trait.key].note,
            )
            for trait in traits
        ]
        return CheckOutcome(
            score=answer.score,
            traits=results,
            summary=answer.summary,
            model=response.model or self.model,
            usage=_usage(response),
            returned=dict(returned),
        )

    def check_cast(self, subjects: Sequence[CheckSubject]) -> list[CheckOutcome | CheckerError]:
        """Every member in one call (see the module's docstring): each member's anchor in
        cast order, then the shot; an answer that leaves out a member or a trait is a
        schema mismatch, and fails them all."""
        prompt, schema = self._cast_request(subjects)
        images = [(subject.anchor, subject.anchor_mime) for subject in subjects]
        images.append((subjects[0].image, subjects[0].image_mime))
        response = self._ask(prompt.text, images, "onmodel_cast_judgement", schema)
        members = [judged_traits(subject.sheet, subject.request) for subject in subjects]
        keys = {_member_key(n): {t.key for t in traits} for n, traits in enumerate(members)}

        def judgements(data: Any) -> dict[str, _Judgement]:
            if not isinstance(data, dict) or not isinstance(data.get("members"), dict):
                raise ValueError("expected an object with a judgement per member")
            found = data["members"]
            if set(found) != set(keys):
                raise ValueError(f"members {sorted(found)}, expected {sorted(keys)}")
            parsed = {key: _Judgement.model_validate(found[key]) for key in keys}
            for key, answer in parsed.items():
                if set(answer.traits) != keys[key]:
                    raise ValueError(f"{key}: traits are not the sheet's")
            return parsed

        answers = self._parsed(response, judgements)
        returned = {
            "response_id": response.id,
            "template": prompt.template_name,
            "template_sha256": prompt.template_hash,
        }
        outcomes: list[CheckOutcome | CheckerError] = []
        for number, traits in enumerate(members):
            answer = answers[_member_key(number)]
            outcome = self._outcome(answer, traits, response, returned)
            if number:
                outcome.usage = {}  # the call is paid for on the first member's row
            outcomes.append(outcome)
        return outcomes

    def describe(
        self, anchor: Path, mime: str, *, current: ModelSheet, character_name: str = ""
    ) -> ModelSheet:
        """The sheet's traits as the model reads them from the anchor, colours in hex; a field
        it leaves empty (not shown in the image) and ``avoid`` keep ``current``'s value."""
        prompt = self._render(
            DESCRIBE_TEMPLATE, {"character_name": character_name, "current": current}
        )
        response = self._ask(prompt.text, [(anchor, mime)], "onmodel_model_sheet", _sheet_schema())

        def sheet(data: Any) -> ModelSheet:
            if not isinstance(data, dict) or set(data) != set(_SEEN):
                raise ValueError(f"expected exactly the fields {', '.join(_SEEN)}")
            for field in _COLOUR_FIELDS:
                values = data[field] if isinstance(data[field], list) else [data[field]]
                bad = [v for v in values if v and not re.fullmatch(_HEX, str(v))]
                if bad:
                    raise ValueError(f"{field}: {bad[0]!r} is not a #rrggbb colour")
            return ModelSheet.checked(data, "the judge's model sheet")

        return current.merged_with(self._parsed(response, sheet))

    # ------------------------------------------------------------------ the request

    def _judge_request(self, subject: CheckSubject) -> tuple[Rendered, dict[str, Any]]:
        """The rendered prompt and the schema of one check: what is sent, and what is priced."""
        traits = judged_traits(subject.sheet, subject.request)
        prompt = self._render(
            JUDGE_TEMPLATE,
            {
                "character_name": subject.character_name,
                "sheet": subject.sheet,
                "request": subject.request,
                "traits": [asdict(trait) for trait in traits],
            },
        )
        return prompt, _judgement_schema(traits)

    def _cast_request(self, subjects: Sequence[CheckSubject]) -> tuple[Rendered, dict[str, Any]]:
        """The prompt and schema of one call judging every member of a shot of several."""
        judged = [judged_traits(subject.sheet, subject.request) for subject in subjects]
        members = [
            {
                "key": _member_key(number),
                "name": subject.character_name,
                "sheet": subject.sheet,
                "traits": [asdict(trait) for trait in traits],
            }
            for number, (subject, traits) in enumerate(zip(subjects, judged, strict=True))
        ]
        prompt = self._render(
            JUDGE_TEMPLATE,
            {
                "character_name": subjects[0].character_name,
                "sheet": subjects[0].sheet,
                "request": subjects[0].request,
                "traits": members[0]["traits"],
                "members": members,
            },
        )
        per_member = {
            _member_key(number): {
                **_judgement_schema(traits),
                "description": subject.character_name or _member_key(number),
            }
            for number, (subject, traits) in enumerate(zip(subjects, judged, strict=True))
        }
        return prompt, _closed({"members": _closed(per_member)})

    def _render(self, template: str, variables: dict[str, Any]) -> Rendered:
        """Through the studio's composer, so a user's template of the same name wins."""
        from onmodel.composer import Composer
        from onmodel.errors import TemplateError

        composer = self.context.composer or Composer()
        try:
            return composer.render(template, variables, collapse=False)
        except TemplateError as exc:
            raise CheckerError(str(exc), kind="template") from exc

    def _ask(
        self,
        prompt: str,
        images: list[tuple[Path, str]],
        schema_name: str,
        schema: dict[str, Any],
    ) -> Response:
        """One ``responses.create``: the prompt, the images in order, the schema, strict."""
        content: list[dict[str, Any]] = [{"type": "input_text", "text": prompt}]
        content.extend(_image_part(path, mime) for path, mime in images)
        return self._send(
            {
                "model": self.model,
                "input": [{"role": "user", "content": content}],
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": schema_name,
                        "strict": True,
                        "schema": schema,
                    }
                },
                "max_output_tokens": MAX_OUTPUT_TOKENS,
                "store": False,  # nothing continues a judgement; the images need not be kept
            }
        )

    def _send(self, arguments: dict[str, Any]) -> Response:
        """Through the providers' shared client and their error mapping (one-line messages,
        keys scrubbed), each failure as a :class:`CheckerError` of the same ``kind``."""
        import openai

        from onmodel.providers.base import ProviderError
        from onmodel.providers.openai.client import make_client
        from onmodel.providers.openai.errors import map_error

        try:
            if self._client is None:
                self._client = make_client(self.context.settings)
            response: Response = self._client.responses.create(**arguments)
            return response
        except openai.OpenAIError as exc:
            raise _checker_error(map_error(exc)) from exc
        except ProviderError as exc:  # an unusable setting, found while building the client
            raise _checker_error(exc) from exc

    def _parsed(self, response: Response, validate: Callable[[Any], _Parsed]) -> _Parsed:
        """The answer's JSON through ``validate``, or why there is no usable answer."""
        usage, rid = _usage(response), response.id

        def failed(message: str, kind: str) -> CheckerError:
            return CheckerError(
                f"the judge ({self.model}) {message}", kind=kind, usage=usage, response_id=rid
            )

        refusal = _refusal(response)
        if refusal is not None:
            raise failed(f"refused to answer: {_quoted(refusal)}", "refusal")
        if response.status == "incomplete":
            details = response.incomplete_details
            reason = details.reason if details is not None and details.reason else "unknown"
            raise failed(f"stopped before finishing its answer ({reason})", "incomplete")
        if response.error is not None or response.status == "failed":
            error = response.error
            detail = f"{error.code}: {_quoted(error.message)}" if error is not None else "failed"
            raise failed(f"failed ({detail})", "bad_response")
        text = response.output_text
        try:
            data = json.loads(text)
        except ValueError as exc:
            message = f"answered with text that is not JSON: {_quoted(text)}"
            raise failed(message, "malformed") from exc
        try:
            return validate(data)
        except (PydanticValidationError, OnmodelError, ValueError) as exc:
            message = f"answered outside the schema: {_quoted(_first_problem(exc))}"
            raise failed(message, "schema_mismatch") from exc

    def _priced(self, text_in: int, image_in: int, text_out: int) -> Decimal | None:
        """Tokens at the price table's rates, through the one cost function onmodel has."""
        from onmodel.capabilities import estimate_cost, load_prices

        usage = {
            "input_tokens": text_in + image_in,
            "input_tokens_details": {"text_tokens": text_in, "image_tokens": image_in},
            "output_tokens": text_out,
            "output_tokens_details": {"text_tokens": text_out, "image_tokens": 0},
        }
        return estimate_cost(self.model, usage, load_prices(self.context.prices_file))


# ---------------------------------------------------------------------- schemas


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object schema as strict Structured Outputs requires: every property required, no
    others allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


def _judgement_schema(traits: list[JudgedTrait]) -> dict[str, Any]:
    """``{"traits": {key: {verdict, note}}, "score", "summary"}``, one key per trait."""
    verdicts = [str(v) for v in (Verdict.SAME, Verdict.DRIFTED, Verdict.NOT_VISIBLE)]
    per_trait = {
        trait.key: _closed(
            {
                "verdict": {"type": "string", "enum": verdicts},
                "note": {"type": "string", "description": "What the shot shows, in a few words."},
            },
            description=f"{trait.field.replace('_', ' ')}: expected {trait.expected}",
        )
        for trait in traits
    }
    return _closed(
        {
            "traits": _closed(per_trait),
            "score": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "description": "100: on model in every trait the request does not change.",
            },
            "summary": {"type": "string", "description": "One line: what drifted, if anything."},
        }
    )


def _member_key(number: int) -> str:
    """A member's name in a cast judgement's schema, by its place in the cast (from 0)."""
    return f"member_{number + 1}"


def _sheet_schema() -> dict[str, Any]:
    """The model sheet's fields a describe answer fills, colours as ``#rrggbb``."""
    properties: dict[str, Any] = {}
    for name in _SEEN:
        field = ModelSheet.model_fields[name]
        text: dict[str, Any] = {"type": "string"}
        if name in _COLOUR_FIELDS:
            text["pattern"] = f"^{_HEX}$" if name in _LIST_FIELDS else f"^({_HEX})?$"
        schema = {"type": "array", "items": text} if name in _LIST_FIELDS else text
        properties[name] = {**schema, "description": field.description or name}
    return _closed(properties)


# ---------------------------------------------------------------------- answers


def _image_part(path: Path, mime: str) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckerError(
            f"cannot read the image {path}: {exc.strerror or exc}", kind="unreadable"
        ) from exc
    encoded = base64.b64encode(data).decode("ascii")
    return {
        "type": "input_image",
        "image_url": f"data:{mime};base64,{encoded}",
        "detail": _IMAGE_DETAIL,
    }


def _refusal(response: Response) -> str | None:
    """The model's refusal text, if its message refused (a ``refusal`` content part)."""
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                if part.type == "refusal":
                    return part.refusal
    return None


def _usage(response: Response) -> dict[str, Any] | None:
    return response.usage.model_dump() if response.usage is not None else None


def _first_problem(exc: Exception) -> str:
    """Pydantic's report in a user's words: where, and what is wrong there (its own text
    names an internal class and a documentation link), and how many more problems."""
    if not isinstance(exc, PydanticValidationError):
        return str(exc)
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _quoted(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_QUOTED else flat[: _MAX_QUOTED - 1] + "…"


def _checker_error(error: ProviderError) -> CheckerError:
    return CheckerError(
        str(error), kind=error.kind, usage=error.usage, response_id=error.response_id
    )
