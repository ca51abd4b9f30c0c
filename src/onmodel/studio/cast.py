"""Creating characters (from a prompt or an existing picture) and starting their sessions.

Everything a new character or session needs is checked before its first row is written, so a
refusal leaves nothing behind; names are unique under concurrent writers, which either get a
clear duplicate error or (for generated session names) the next free name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from onmodel.composer import ANCHOR_TEMPLATE, PRIMER_TEMPLATE
from onmodel.errors import DuplicateError, UsageError
from onmodel.handles import Character, Session
from onmodel.imagefile import read_image_file
from onmodel.limits import MAX_FIELD_LENGTH, MAX_NAME_LENGTH, check_text
from onmodel.providers import default_provider_name
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.slugs import check_slug, slugify
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import CharacterRow, ImageRow, SessionRow, utcnow

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

_SLUG_ATTEMPTS = 20


class Cast:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def create_character(
        self,
        name: str,
        *,
        prompt: str,
        sheet: ModelSheet | Path | None = None,
        slug: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Character:
        """See :meth:`Studio.create_character`."""
        studio = self.studio
        if not prompt.strip():
            raise UsageError("a character needs a prompt describing it (--prompt)")
        full_sheet = self._sheet_for(prompt, sheet)
        draft = Character(studio, self._character_draft(name, slug, prompt, full_sheet))
        plan = studio.planning.plan(
            kind="anchor",
            character=draft,
            session=None,
            parent=None,
            request=ShotRequest(),
            provider=provider or default_provider_name(),
            model=model or studio.planning.default_model(),
            params=dict(params or {}),
            template=ANCHOR_TEMPLATE,
        )
        # Everything is checked; only now is the character written, so a refusal leaves no
        # character without an anchor behind.
        character_id = self._insert_character(draft.row)
        studio.execute(replace(plan, character_id=character_id))
        return studio.character(character_id)

    def import_character(
        self,
        name: str,
        image: Path,
        *,
        prompt: str = "",
        gen_id: str | None = None,
        revised_prompt: str | None = None,
        sheet: ModelSheet | Path | None = None,
        slug: str | None = None,
    ) -> Character:
        """See :meth:`Studio.import_character`."""
        if gen_id is not None:
            check_text(gen_id, "the gen id", max_length=MAX_NAME_LENGTH, multiline=False)
        if revised_prompt is not None:
            check_text(revised_prompt, "the revised prompt", max_length=MAX_FIELD_LENGTH)
        row = self._character_draft(name, slug, prompt, self._sheet_for(prompt, sheet))
        data, info = read_image_file(image)
        blob = self.studio.blobs.put(data, info.format)
        with transaction(self.engine) as db:
            db.add(row)
            _flush_unique(db, f"a character named {row.slug!r} already exists")
            assert row.id is not None
            anchor = ImageRow(
                character_id=row.id,
                kind="import",
                status=ImageStatus.SUCCEEDED,
                prompt=prompt,
                revised_prompt=revised_prompt,
                gen_id=gen_id,
                provider="import",
                model="",
                params={"source": image.name},
                sha256=blob.sha256,
                format=info.format,
                width=info.width,
                height=info.height,
                byte_size=blob.size,
                cost_usd="0",
                finished_at=utcnow(),
            )
            db.add(anchor)
            db.flush()
            row.anchor_image_id = anchor.id
            db.add(row)
        return self.studio.character(row.id)

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
        model_name = model or studio.planning.default_model()
        defaults = dict(params or {})
        # a bad default size or quality is refused now, not by every shot of the session
        studio.planning.validate(provider_name, model_name, defaults, None, 1)
        primer = studio.composer.render(
            PRIMER_TEMPLATE,
            studio.planning.template_context(owner, owner.anchor, ShotRequest(), None),
        )
        base = check_slug(slug) if slug else slugify(title) if title else owner.slug
        row = self._insert_session(
            base,
            taken_ok=slug is None,
            values={
                "character_id": owner.id,
                "title": title,
                "provider": provider_name,
                "model": model_name,
                "params": defaults,
                "instructions": primer.text,
                "head_image_id": owner.row.anchor_image_id,
            },
        )
        return Session(studio, row)

    def _sheet_for(self, prompt: str, sheet: ModelSheet | Path | None) -> ModelSheet:
        guessed = ModelSheet.from_prompt(prompt)
        if sheet is None:
            return guessed
        given = ModelSheet.from_yaml_file(sheet) if isinstance(sheet, Path) else sheet
        return guessed.merged_with(given)

    def _character_draft(
        self, name: str, slug: str | None, prompt: str, sheet: ModelSheet
    ) -> CharacterRow:
        """The character's row, checked but not written (its name must still be free)."""
        if not name.strip():
            raise UsageError("a character needs a name")
        check_text(name, "the name", max_length=MAX_NAME_LENGTH, multiline=False)
        check_text(prompt, "the prompt", max_length=MAX_FIELD_LENGTH)
        final = check_slug(slug) if slug else slugify(name)
        with transaction(self.engine) as db:
            if db.exec(select(CharacterRow).where(CharacterRow.slug == final)).first():
                raise DuplicateError(f"a character named {final!r} already exists")
        return CharacterRow(
            slug=final, name=name.strip(), description=prompt.strip(), sheet=sheet.model_dump()
        )

    def _insert_character(self, draft: CharacterRow) -> int:
        """Write a drafted character; a concurrent writer of the same name makes it a duplicate."""
        with transaction(self.engine) as db:
            row = CharacterRow.model_validate(draft.model_dump())
            db.add(row)
            _flush_unique(db, f"a character named {row.slug!r} already exists")
            assert row.id is not None
            return row.id

    def _insert_session(self, base: str, *, taken_ok: bool, values: dict[str, Any]) -> SessionRow:
        """Insert under ``base`` or, when generated, the next free ``base-N``.

        Two processes can pick the same free slug at once; the unique index refuses the second,
        which then moves on to the next free one rather than failing.
        """
        for _ in range(_SLUG_ATTEMPTS):
            with transaction(self.engine) as db:
                row = SessionRow(slug=_free_slug(db, base, taken_ok=taken_ok), **values)
                db.add(row)
                try:
                    _flush_unique(db, f"a session named {base!r} already exists")
                except DuplicateError:
                    if not taken_ok:
                        raise
                    continue
                return row
        raise DuplicateError(f"could not find a free name for session {base!r}; try again")


def _flush_unique(db: Any, message: str) -> None:
    """Flush, turning a unique-constraint race lost to another process into a DuplicateError."""
    from sqlalchemy.exc import IntegrityError

    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise DuplicateError(message) from None


def _free_slug(db: Any, base: str, *, taken_ok: bool) -> str:
    """``base``, or ``base-2``, ``base-3``... when generated; an explicit slug must be free."""
    candidate, n = base, 1
    while db.exec(select(SessionRow).where(SessionRow.slug == candidate)).first() is not None:
        if not taken_ok:
            raise DuplicateError(f"a session named {base!r} already exists")
        n += 1
        candidate = f"{base}-{n}"
    return candidate
