"""Fixing what was set up: names, a session's provider and model, its head, a character's
anchor and its model sheet.

None of these rewrites history. A renamed character or session keeps its id and every row
that points at it; a session's new provider or model applies to its next shots, each image
keeping the ones it was made with; a new anchor or head is where the next shots start, while
earlier shots keep the anchor their request sent (``image_reference``); an edited model sheet
becomes a new version, and each image names the version it was made with (:meth:`sheet_of`).
A sheet read from the anchor's picture (:meth:`describe`) is only a proposal until it is saved
as such an edit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.errors import UsageError, ValidationError
from onmodel.handles import Character, Image, Session
from onmodel.imagefile import MIME_TYPES
from onmodel.kinds import SET
from onmodel.limits import MAX_NAME_LENGTH, check_text
from onmodel.lineage import image_casts, is_ensemble_of
from onmodel.sheet import ModelSheet
from onmodel.slugs import check_slug
from onmodel.status import ImageStatus
from onmodel.store import queries, writes
from onmodel.store.records import SheetVersionRecord
from onmodel.studio.cast import refuse_unclean

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


@dataclass(frozen=True)
class SheetVersion:
    """One model sheet a character has had: version 1 is the sheet it was made with, and each
    edit adds the next. ``images`` counts the images made with it, when that was asked for."""

    number: int
    sheet: ModelSheet
    created_at: datetime
    images: int | None = None

    @classmethod
    def from_record(cls, record: SheetVersionRecord, images: int | None = None) -> SheetVersion:
        sheet = ModelSheet.model_construct(**record.sheet)  # checked when it was stored
        return cls(record.number, sheet, record.created_at, images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "sheet": self.sheet.model_dump(),
            "created_at": self.created_at.isoformat(),
            "images": self.images,
        }


@dataclass(frozen=True)
class SheetProposal:
    """A model sheet a checker read from a character's anchor, beside the sheet it has now:
    what ``character describe`` shows as a diff and, with ``--write``, saves as a new version
    (a sheet imported with a picture, say from ChatGPT, starts nearly empty)."""

    character: str  # the character's slug
    checker: str
    current: ModelSheet
    proposed: ModelSheet

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """``trait: (now, proposed)`` for each trait the proposal changes, in sheet order."""
        now, proposed = self.current.model_dump(), self.proposed.model_dump()
        return {key: (now[key], value) for key, value in proposed.items() if now[key] != value}

    def to_dict(self) -> dict[str, Any]:
        return {
            "character": self.character,
            "checker": self.checker,
            "current": self.current.model_dump(),
            "proposed": self.proposed.model_dump(),
            "changes": {
                key: {"from": now, "to": proposed}
                for key, (now, proposed) in self.changes().items()
            },
        }


def check_session_settings(
    studio: Studio, provider: str, model: str, params: Mapping[str, Any]
) -> None:
    """What a session's provider, model and default parameters must pass before they are
    stored, so a bad one is refused at once rather than by every shot of the session: the
    provider exists, and the model accepts the parameters (``Cast.start_session`` checks a
    new session's the same way)."""
    studio.provider(provider)
    studio.planning.validate(provider, model, dict(params), None, 1)


class Editing:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    # ------------------------------------------------------------------ names

    def rename_character(
        self, ref: str | int | Character, *, name: str | None, slug: str | None
    ) -> Character:
        """See :meth:`Studio.rename_character`."""
        character = self.studio.character(ref)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = _checked_name(name, "a character's name")
        if slug is not None:
            values["slug"] = check_slug(slug)
        if not values:
            raise UsageError("give a new name, a new slug, or both")
        writes.update_character(self.engine, character.id, values)
        return self.studio.character(character.id)

    def rename_session(
        self, ref: str | int | Session, *, title: str | None, slug: str | None
    ) -> Session:
        """See :meth:`Studio.rename_session`."""
        session = self.studio.session(ref)
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = check_text(
                title.strip(), "the title", max_length=MAX_NAME_LENGTH, multiline=False
            )
        if slug is not None:
            values["slug"] = check_slug(slug)
        if not values:
            raise UsageError("give a new title, a new slug, or both")
        writes.update_session(self.engine, session.id, values)
        renamed = self.studio.session(session.id)
        self.studio.current.renamed(session.slug, renamed.slug)
        return renamed

    # ------------------------------------------------------------------ a session's settings

    def update_session(
        self,
        ref: str | int | Session,
        *,
        provider: str | None,
        model: str | None,
        params: Mapping[str, Any | None],
    ) -> Session:
        """See :meth:`Studio.update_session`."""
        session = self.studio.session(ref)
        if provider is None and model is None and not params:
            raise UsageError("give a new provider, model, size or quality")
        new_provider = provider or session.provider
        given = self.studio.provider(new_provider).resolve_params(params, Path.cwd())
        chosen = {**session.params, **given}
        defaults = {key: value for key, value in chosen.items() if value is not None}
        new_model = self.studio.planning.model_for(new_provider, model, session.model)
        try:
            check_session_settings(self.studio, new_provider, new_model, defaults)
        except ValidationError as exc:
            # a default kept from before (another provider's, another model's) is what the
            # new setting refuses: say how to drop it
            kept = [
                k for k in session.params if k not in given and re.search(rf"\b{k}\b", str(exc))
            ]
            if not kept:
                raise
            clear = " ".join(f"--param {key}=" for key in kept)
            raise ValidationError(f"{exc}; clear a default with {clear}") from exc
        values: dict[str, Any] = {"provider": new_provider, "model": new_model, "params": defaults}
        if new_provider != session.provider:
            values["last_response_id"] = None  # another provider cannot continue that reply
        writes.update_session(self.engine, session.id, values)
        return self.studio.session(session.id)

    def move_head(self, ref: str | int | Session, image_ref: int | str | Image) -> Session:
        """See :meth:`Studio.move_head`."""
        session = self.studio.session(ref)
        image = self.studio.image(image_ref)
        if image.row.hidden_at is not None:
            raise UsageError(f"image {image.id} is hidden: show it first (onmodel unhide)")
        # the session's own images are in its lineage; any other one is looked up in it
        if image.session_id != session.id and image.id not in self.studio.lookups.lineage(session):
            raise UsageError(
                f"image {image.id} is not in session {session.slug}'s lineage "
                f"(see: onmodel tree {session.slug})"
            )
        if image.status != ImageStatus.SUCCEEDED:
            raise UsageError(f"image {image.id} is {image.status}: a head must have succeeded")
        values = {"head_image_id": image.id, "last_response_id": image.response_id}
        writes.update_session(self.engine, session.id, values)
        return self.studio.session(session.id)

    # ------------------------------------------------------------------ the anchor and sheet

    def promote_anchor(self, image_ref: int | str | Image, *, strict: bool = False) -> Character:
        """See :meth:`Studio.promote_anchor`; ``strict`` raises :class:`AnchorHygieneError`,
        before the anchor changes, when the image is not a clean reference."""
        image = self.studio.image(image_ref)
        character = self.studio.character(image.character_id)
        if image.status != ImageStatus.SUCCEEDED or image.path is None:
            raise UsageError(f"image {image.id} is {image.status}: an anchor must have succeeded")
        if image.row.hidden_at is not None:
            raise UsageError(f"image {image.id} is hidden: show it first (onmodel unhide)")
        _refuse_others(image, character)
        if strict:
            refuse_unclean(
                image.path,
                f"image {image.id}",
                f"{character.slug}'s anchor stays #{character.anchor_image_id}",
            )
        writes.update_character(self.engine, character.id, {"anchor_image_id": image.id})
        return self.studio.character(character.id)

    def edit_sheet(
        self,
        ref: str | int | Character,
        *,
        sheet: ModelSheet | Path | Mapping[str, Any] | None,
        changes: Mapping[str, Any],
    ) -> SheetVersion:
        """See :meth:`Studio.edit_sheet`."""
        character = self.studio.character(ref)
        if sheet is None and not changes:
            raise UsageError("give the new sheet, or the traits to change")
        base = (character.sheet if sheet is None else ModelSheet.given(sheet)).model_dump()
        edited = ModelSheet.checked({**base, **changes}, "the model sheet")
        if edited.model_dump() == character.sheet.model_dump():
            raise UsageError(f"the model sheet of {character.slug} already says that")
        record = writes.add_sheet_version(self.engine, character.id, edited.model_dump())
        return SheetVersion.from_record(record)

    def describe(self, ref: str | int | Character, checker_name: str) -> SheetProposal:
        """See :meth:`Studio.describe_character`."""
        character = self.studio.character(ref)
        anchor = self.studio.planning.anchor_of(character)
        checker = self.studio.checks.ready(checker_name)
        if anchor.path is None or anchor.format is None:
            raise UsageError(f"the anchor of {character.slug!r} (image {anchor.id}) has no file")
        proposed = checker.describe(
            anchor.path,
            MIME_TYPES[anchor.format],
            current=character.sheet,
            character_name=character.name,
        )
        return SheetProposal(
            character=character.slug,
            checker=checker.name,
            current=character.sheet,
            # what a checker (a model's answer, perhaps) proposes is checked as a user's sheet
            proposed=ModelSheet.checked(proposed.model_dump(), f"the {checker.name} proposal"),
        )

    def sheet_of(self, image_ref: int | str | Image) -> SheetVersion | None:
        """See :meth:`Studio.sheet_of`."""
        version_id = self.studio.image(image_ref).row.sheet_version_id
        record = queries.sheet_version(self.engine, version_id) if version_id else None
        return SheetVersion.from_record(record) if record is not None else None

    def sheet_history(self, ref: str | int | Character) -> list[SheetVersion]:
        """See :meth:`Studio.sheet_history`."""
        character = self.studio.character(ref)
        counts = queries.sheet_version_image_counts(self.engine, character.id)
        return [
            SheetVersion.from_record(record, counts.get(record.id, 0))
            for record in queries.sheet_versions(self.engine, character.id)
        ]


def _refuse_others(image: Image, character: Character) -> None:
    """An anchor is what every next shot draws its character from, and what a check measures
    it against: a picture of several (or of someone else, a ``--cast rin`` shot of Mia's
    session) would teach the model the wrong figure, so only one of the character alone is
    promoted."""
    shown = image_casts([image])[image.id].everyone
    if not is_ensemble_of(shown, character.id):
        return
    figures = [member.slug for member in shown if member.kind != SET]
    who = ", ".join(figures[:-1]) + " and " + figures[-1] if len(figures) > 1 else "".join(figures)
    where = [member.slug for member in shown if member.kind == SET]
    who = " in ".join(part for part in (who, *where) if part)
    if all(member.id != character.id for member in shown):
        raise UsageError(
            f"image {image.id} shows {who}, not {character.slug}: an anchor shows its "
            "character alone"
        )
    raise UsageError(
        f"image {image.id} shows {who}: an anchor shows its character alone; make a shot of "
        f"{character.slug} alone and promote that"
    )


def _checked_name(name: str, what: str) -> str:
    if not name.strip():
        raise UsageError(f"{what} cannot be empty")
    return check_text(name.strip(), what, max_length=MAX_NAME_LENGTH, multiline=False)
