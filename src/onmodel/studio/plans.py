"""A shot that has been composed and checked, but not recorded or paid for yet.

Plain data handed from planning to the pipeline (and shown by dry runs): what a provider will
be given, plus the bookkeeping the studio records with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onmodel.composer import Rendered
from onmodel.providers.base import (
    CastMember,
    GenerationRequest,
    ImageKind,
    InputImage,
    PastTurn,
)
from onmodel.sheet import ModelSheet, ShotRequest


@dataclass(frozen=True)
class ShotPlan:
    """A fully composed, validated request that has not been recorded or paid for yet."""

    kind: ImageKind
    character_id: int | None  # None only while a new character is checked before it is written
    session_id: int | None
    parent_id: int | None
    provider: str
    model: str
    params: dict[str, Any]
    request: ShotRequest
    rendered: Rendered
    inputs: tuple[InputImage, ...]
    sheet: ModelSheet
    character_name: str
    subject_kind: str = "character"  # character_name's kind (onmodel.kinds)
    cast: tuple[CastMember, ...] = ()  # who a shot shows; empty: its character alone
    introduced: frozenset[int] = frozenset()  # members its conversation has been shown
    history: tuple[PastTurn, ...] = ()  # earlier turns a stateless chat API is sent again
    warnings: tuple[str, ...] = ()
    instructions: str | None = None
    previous_response_id: str | None = None
    estimated_max_cost: str | None = None
    retry_of_id: int | None = None
    batch_id: int | None = None
    shot_key: str | None = None
    variation: int = 1  # take N of M identical requests (a shot list's repeat: M)
    variations: int = 1

    @property
    def prompt(self) -> str:
        return self.rendered.text

    def generation_request(self) -> GenerationRequest:
        """What the provider is given: the plan without the bookkeeping the studio keeps."""
        return GenerationRequest(
            kind=self.kind,
            prompt=self.prompt,
            model=self.model,
            params=self.params,
            inputs=self.inputs,
            sheet=self.sheet,
            request=self.request,
            character_name=self.character_name,
            subject_kind=self.subject_kind,
            instructions=self.instructions,
            previous_response_id=self.previous_response_id,
            variation=self.variation,
            variations=self.variations,
            view=self.request.view,
            cast=self.cast,
            introduced=self.introduced,
            history=self.history,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "provider": self.provider,
            "model": self.model,
            "params": self.params,
            "parent_id": self.parent_id,
            "request": self.request.as_params(),
            "template": self.rendered.template_name,
            "prompt": self.prompt,
            "instructions": self.instructions,
            "previous_response_id": self.previous_response_id,
            "history": [turn.image_id for turn in self.history],
            "cast": [
                {"slug": member.slug, "name": member.name, "kind": member.kind}
                for member in self.cast
            ],
            "inputs": [
                {
                    "role": i.role,
                    "image_id": i.image_id,
                    "sha256": i.sha256,
                    "member": next((m.slug for m in self.cast if m.id == i.member_id), None),
                    "view": i.view or None,
                }
                for i in self.inputs
            ],
            "warnings": list(self.warnings),
            "estimated_max_cost_usd": self.estimated_max_cost,
        }
