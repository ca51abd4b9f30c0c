"""The one interface every image source plugs into.

Providers turn a fully composed :class:`GenerationRequest` into bytes and metadata. They never
touch the database or the blob store: the studio writes a pending row before calling them and
records whatever they return or raise, so a crash or an API error never loses a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from onmodel.errors import OnmodelError
from onmodel.sheet import ModelSheet, ShotRequest

ImageKind = Literal["anchor", "shot"]


@dataclass(frozen=True)
class InputImage:
    """An image sent along with a request, in the order it is sent."""

    role: str  # "anchor", "parent" or "extra"
    path: Path
    sha256: str
    mime: str
    image_id: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider needs; the studio has already composed and validated it."""

    kind: ImageKind
    prompt: str
    model: str
    params: dict[str, Any]
    inputs: tuple[InputImage, ...] = ()
    sheet: ModelSheet = field(default_factory=ModelSheet)
    request: ShotRequest = field(default_factory=ShotRequest)
    character_name: str = ""
    instructions: str | None = None
    previous_response_id: str | None = None


@dataclass
class GenerationResult:
    """What came back. ``data`` are the image bytes exactly as the provider produced them."""

    data: bytes
    format: str
    sent_params: dict[str, Any]
    revised_prompt: str | None = None
    gen_id: str | None = None
    response_id: str | None = None
    usage: dict[str, Any] | None = None
    returned: dict[str, Any] = field(default_factory=dict)


@dataclass
class ManualResult:
    """A provider that cannot call anything (the ChatGPT app route) returns messages to paste."""

    messages: list[str]
    sent_params: dict[str, Any] = field(default_factory=dict)


class ProviderError(OnmodelError):
    """A provider call failed. ``kind`` says why, so the studio can record and report it."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        code: str | None = None,
        categories: list[str] | None = None,
        usage: dict[str, Any] | None = None,
        response_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind  # quota, moderation, auth, rate_limit, server, timeout, bad_response...
        self.code = code
        self.categories = categories or []
        self.usage = usage
        self.response_id = response_id


class Provider(Protocol):
    """An image source. ``name`` is what sessions and the ``--provider`` option store."""

    name: str

    def generate(self, request: GenerationRequest) -> GenerationResult | ManualResult: ...
