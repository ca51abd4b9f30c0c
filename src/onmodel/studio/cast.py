"""Creating characters (from a prompt or an existing picture) and starting their sessions.

Everything a new character or session needs is checked before its first row is written, so a
refusal leaves nothing behind; names are unique under concurrent writers, which either get a
clear duplicate error or (for generated session names) the next free name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.composer import ANCHOR_TEMPLATE, PRIMER_TEMPLATE
from onmodel.errors import DuplicateError, UsageError
from onmodel.handles import Character, Image, Session
from onmodel.imagefile import read_image_file
from onmodel.kinds import check_kind, is_subject
from onmodel.limits import MAX_FIELD_LENGTH, MAX_NAME_LENGTH, check_text
from onmodel.providers import default_provider_name
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.slugs import check_slug, session_base, slugify
from onmodel.store import queries, writes
from onmodel.store.models import utcnow
from onmodel.store.records import CharacterRecord

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


class AnchorHygieneError(UsageError):
    """An anchor refused by ``strict``: its picture is not a clean reference (a busy
    background, the character cut off by the frame, or small in it), and every later shot is
    matched against it.

    ``warnings`` says what is wrong, one line each. ``image_id`` is the anchor a new
    character kept (its request was already paid for); None when nothing was written.
    """

    def __init__(
        self, message: str, *, warnings: Sequence[str], image_id: int | None = None
    ) -> None:
        super().__init__(message)
        self.warnings = list(warnings)
        self.image_id = image_id


def anchor_warnings(path: Path) -> list[str]:
    """What makes the picture at ``path`` a poor anchor, one line each (none: it is clean)."""
    from onmodel.vision.hygiene import anchor_hygiene  # reads pixels: imported when asked

    return anchor_hygiene(path)


def refuse_unclean(path: Path, what: str, outcome: str, *, image_id: int | None = None) -> None:
    """Raise :class:`AnchorHygieneError` when the picture at ``path`` (``what``, in the
    message) is not a clean reference; ``outcome`` says what became of it and what to do."""
    warnings = anchor_warnings(path)
    if warnings:
        raise AnchorHygieneError(
            f"{what} is not a clean reference: {'; '.join(warnings)}; {outcome}",
            warnings=warnings,
            image_id=image_id,
        )


class Cast:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def create_character(
        self,
        name: str,
        *,
        prompt: str,
        sheet: ModelSheet | Path | Mapping[str, Any] | None = None,
        slug: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        strict: bool = False,
        kind: str = "character",
    ) -> Character:
        """See :meth:`Studio.create_character`; ``strict`` raises :class:`AnchorHygieneError`
        when the new anchor is not a clean reference (the character and its anchor, paid
        for, are kept)."""
        studio = self.studio
        kind = check_kind(kind)  # an unknown kind is the first thing to say
        if not prompt.strip():
            raise UsageError(f"a {kind} needs a prompt describing it (--prompt)")
        full_sheet = self._sheet_for(prompt, sheet)
        values = self._character_values(name, slug, prompt, full_sheet, kind)
        draft = Character(studio, _draft_record(values))
        source = provider or default_provider_name()
        plan = studio.planning.plan(
            kind="anchor",
            character=draft,
            session=None,
            parent=None,
            request=ShotRequest(),
            provider=source,
            model=model or studio.planning.default_model(source),
            params=studio.provider(source).resolve_params(params or {}, Path.cwd()),
            template=ANCHOR_TEMPLATE,
        )
        # Everything is checked; only now is the character written, so a refusal leaves no
        # character without an anchor behind.
        character_id = writes.insert_character(self.engine, values)
        anchor = studio.execute(replace(plan, character_id=character_id))
        # a manual provider's anchor comes later; a set's picture is all background
        if strict and anchor.path is not None and is_subject(kind):
            refuse_unclean(
                anchor.path,
                f"the anchor of {values['slug']} (image {anchor.id})",
                "it is kept, as it is paid for (make a cleaner shot on a plain background and "
                "promote it: onmodel character anchor IMAGE)",
                image_id=anchor.id,
            )
        return studio.character(character_id)

    def import_character(
        self,
        name: str,
        image: Path,
        *,
        prompt: str = "",
        gen_id: str | None = None,
        revised_prompt: str | None = None,
        sheet: ModelSheet | Path | Mapping[str, Any] | None = None,
        slug: str | None = None,
        strict: bool = False,
        kind: str = "character",
    ) -> Character:
        """See :meth:`Studio.import_character`; ``strict`` raises :class:`AnchorHygieneError`,
        before anything is written, when the picture is not a clean reference."""
        if gen_id is not None:
            check_text(gen_id, "the gen id", max_length=MAX_NAME_LENGTH, multiline=False)
        if revised_prompt is not None:
            check_text(revised_prompt, "the revised prompt", max_length=MAX_FIELD_LENGTH)
        sheet_for = self._sheet_for(prompt, sheet)
        values = self._character_values(name, slug, prompt, sheet_for, kind)
        data, info = read_image_file(image)
        if strict and is_subject(kind):
            refuse_unclean(
                image,
                str(image),
                "nothing was imported (crop it or put the character on a plain background, "
                "or import it without --strict)",
            )
        blob = self.studio.blobs.put(data, info.format)
        character_id = writes.insert_imported_character(
            self.engine,
            values,
            {
                "prompt": prompt,
                "revised_prompt": revised_prompt,
                "gen_id": gen_id,
                "provider": "import",
                "model": "",
                "params": {"source": image.name},
                "sha256": blob.sha256,
                "format": info.format,
                "width": info.width,
                "height": info.height,
                "byte_size": blob.size,
                "cost_usd": "0",
            },
        )
        return self.studio.character(character_id)

    def start_session(
        self,
        owner: Character,
        *,
        title: str = "",
        model: str | None = None,
        provider: str | None = None,
        params: dict[str, Any] | None = None,
        slug: str | None = None,
    ) -> Session:
        """See :meth:`Studio.start_session`."""
        studio = self.studio
        check_text(title, "the title", max_length=MAX_NAME_LENGTH, multiline=False)
        provider_name = provider or default_provider_name()
        studio.provider(provider_name)  # an unknown provider is refused now, not at a shot
        model_name = model or studio.planning.default_model(provider_name)
        defaults = studio.provider(provider_name).resolve_params(params or {}, Path.cwd())
        # a bad default size or quality is refused now, not by every shot of the session
        studio.planning.validate(provider_name, model_name, defaults, None, 1)
        primer = studio.composer.render(
            PRIMER_TEMPLATE,
            studio.planning.template_context(owner, owner.anchor, ShotRequest(), None),
        )
        # a generated name leaves room for the -2, -3... that tells it from a taken one
        base = check_slug(slug) if slug else session_base(_title_slug(title, owner))
        record = writes.insert_session(
            self.engine,
            base,
            taken_ok=slug is None,
            values={
                "character_id": owner.id,
                "title": title,
                "provider": provider_name,
                "model": model_name,
                "params": defaults,
                "instructions": primer.text,
                "head_image_id": owner.anchor_image_id,
            },
        )
        return Session(studio, record)

    def anchor_warnings(self, image: Image) -> list[str]:
        """See :meth:`Studio.anchor_warnings`; none for a set's picture, which is all
        background by design."""
        if image.path is None:
            raise UsageError(f"image {image.id} is {image.status}: it has no picture to look at")
        if not is_subject(self.studio.character(image.character_id).kind):
            return []
        return anchor_warnings(image.path)

    def _sheet_for(
        self, prompt: str, sheet: ModelSheet | Path | Mapping[str, Any] | None
    ) -> ModelSheet:
        guessed = ModelSheet.from_prompt(prompt)
        return guessed if sheet is None else guessed.merged_with(ModelSheet.given(sheet))

    def _character_values(
        self, name: str, slug: str | None, prompt: str, sheet: ModelSheet, kind: str
    ) -> dict[str, Any]:
        """The character's columns, checked but not written (its name must still be free)."""
        kind = check_kind(kind)
        if not name.strip():
            raise UsageError(f"a {kind} needs a name")
        check_text(name, "the name", max_length=MAX_NAME_LENGTH, multiline=False)
        check_text(prompt, "the prompt", max_length=MAX_FIELD_LENGTH)
        final = check_slug(slug) if slug else slugify(name)
        if queries.character_slug_taken(self.engine, final):
            raise DuplicateError(f"a character named {final!r} already exists")
        return {
            "slug": final,
            "name": name.strip(),
            "description": prompt.strip(),
            "sheet": sheet.model_dump(),
            "kind": kind,
        }


def _title_slug(title: str, owner: Character) -> str:
    """``"Mia's week"`` -> ``mia-s-week``; no title: the character's slug; a title of only
    digits (``"2024"``) is led by the character's slug (``mia-2024``), never read as an id."""
    if not title.strip():
        return owner.slug
    return slugify(title, lead=owner.slug)


def _draft_record(values: dict[str, Any]) -> CharacterRecord:
    """What planning needs of a character not written yet; it has no id, row or anchor."""
    now = utcnow()
    return CharacterRecord(id=0, anchor_image_id=None, created_at=now, updated_at=now, **values)
