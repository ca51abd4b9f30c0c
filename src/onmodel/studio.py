"""The studio: the one place that runs onmodel's flows, for the CLI and for library users alike.

Every generation follows the same path — plan (compose, validate, pick references), record a
pending row, call the provider, store the bytes, then mark the row succeeded — so a crash or an
API error at any step leaves a row that says what happened and never a lost request.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from onmodel.blobs import BlobStore, sha256_bytes
from onmodel.composer import (
    ANCHOR_TEMPLATE,
    PRIMER_TEMPLATE,
    Composer,
    Rendered,
)
from onmodel.config import Paths, resolve_paths
from onmodel.errors import (
    BudgetError,
    DuplicateError,
    GenerationError,
    InvalidImageError,
    NotFoundError,
    UsageError,
)
from onmodel.handles import Character, Image, Reference, Session, TreeNode
from onmodel.imagefile import inspect_bytes, read_image_file
from onmodel.limits import (
    MAX_FIELD_LENGTH,
    MAX_ID,
    MAX_NAME_LENGTH,
    check_amount,
    check_id,
    check_text,
)
from onmodel.owners import owner_token
from onmodel.providers import default_provider_name, get_provider, is_manual
from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    ImageKind,
    InputImage,
    ManualResult,
    ParentTurn,
    Provider,
    ProviderContext,
    ProviderError,
)
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.slugs import check_slug, slugify
from onmodel.store.database import create_database_engine, transaction, upgrade
from onmodel.store.models import (
    CharacterRow,
    ImageReferenceRow,
    ImageRow,
    SessionRow,
    utcnow,
)
from onmodel.store.rows import insert_row, insert_rows, update_row
from onmodel.store.stale import reconcile_stale

MAX_NOTE_LENGTH = 10_000  # annotate_image: a note, not a document


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
    warnings: tuple[str, ...] = ()
    instructions: str | None = None
    previous_response_id: str | None = None
    estimated_max_cost: str | None = None
    retry_of_id: int | None = None
    batch_id: int | None = None
    shot_key: str | None = None

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
            instructions=self.instructions,
            previous_response_id=self.previous_response_id,
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
            "inputs": [
                {"role": i.role, "image_id": i.image_id, "sha256": i.sha256} for i in self.inputs
            ],
            "warnings": list(self.warnings),
            "estimated_max_cost_usd": self.estimated_max_cost,
        }


@dataclass(frozen=True)
class Delivery:
    """A provider's answer to a pending row, not stored yet (see :meth:`Studio.request`)."""

    image_id: int
    plan: ShotPlan
    result: GenerationResult | ManualResult
    started: float


@dataclass
class CostReport:
    """Known costs add up; images whose cost is unknown are counted, never taken as zero."""

    scope: str
    total: Decimal = Decimal(0)
    images: int = 0
    unknown: int = 0
    by_model: dict[str, Decimal] = field(default_factory=dict)

    def add(self, model: str, cost: str | None) -> None:
        self.images += 1
        if cost is None:
            self.unknown += 1
            return
        amount = Decimal(cost)
        self.total += amount
        self.by_model[model] = self.by_model.get(model, Decimal(0)) + amount

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "total_usd": str(self.total),
            "images": self.images,
            "unknown_cost_images": self.unknown,
            "by_model_usd": {k: str(v) for k, v in self.by_model.items()},
        }


@dataclass
class Studio:
    paths: Paths
    engine: Engine
    blobs: BlobStore
    composer: Composer
    _state_cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, home: Path | str | None = None) -> Studio:
        """Open (creating and migrating if needed) the data directory ``home``."""
        paths = resolve_paths(home)
        paths.home.mkdir(parents=True, exist_ok=True)
        engine = create_database_engine(paths.database_url)
        upgrade(engine)
        return cls(
            paths=paths,
            engine=engine,
            blobs=BlobStore(paths.blobs),
            composer=Composer(paths.templates),
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ characters

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
        """Create a character and generate its anchor image on a plain background.

        The character row is committed before the anchor is generated, so a failed anchor is a
        recorded failure the user can retry, not a vanished character.
        """
        if not prompt.strip():
            raise UsageError("a character needs a prompt describing it (--prompt)")
        full_sheet = self._sheet_for(prompt, sheet)
        draft = Character(self, self._character_draft(name, slug, prompt, full_sheet))
        plan = self._plan(
            kind="anchor",
            character=draft,
            session=None,
            parent=None,
            request=ShotRequest(),
            provider=provider or default_provider_name(),
            model=model or self._default_model(),
            params=dict(params or {}),
            template=ANCHOR_TEMPLATE,
        )
        # Everything is checked; only now is the character written, so a refusal leaves no
        # character without an anchor behind.
        character_id = self._insert_character(draft.row)
        self.execute(replace(plan, character_id=character_id))
        return self.character(character_id)

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
        """Adopt an image the user already has (say, from ChatGPT) as a character's anchor."""
        if gen_id is not None:
            check_text(gen_id, "the gen id", max_length=MAX_NAME_LENGTH, multiline=False)
        if revised_prompt is not None:
            check_text(revised_prompt, "the revised prompt", max_length=MAX_FIELD_LENGTH)
        row = self._character_draft(name, slug, prompt, self._sheet_for(prompt, sheet))
        data, info = read_image_file(image)
        blob = self.blobs.put(data, info.format)
        with transaction(self.engine) as db:
            db.add(row)
            _flush_unique(db, f"a character named {row.slug!r} already exists")
            assert row.id is not None
            anchor = ImageRow(
                character_id=row.id,
                kind="import",
                status="succeeded",
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
        return self.character(row.id)

    def character(self, ref: str | int | Character) -> Character:
        if isinstance(ref, Character):
            ref = ref.id
        with transaction(self.engine) as db:
            row = _by_ref(db, CharacterRow, ref)
            if row is None and isinstance(ref, str):
                row = db.exec(select(CharacterRow).where(CharacterRow.name == ref)).first()
        if row is None:
            raise NotFoundError(f"no character {ref!r} (see: onmodel character list)")
        return Character(self, row)

    def characters(self) -> list[Character]:
        with transaction(self.engine) as db:
            rows = db.exec(select(CharacterRow).order_by(col(CharacterRow.id))).all()
        return [Character(self, r) for r in rows]

    # ------------------------------------------------------------------ sessions

    def start_session(
        self,
        character: str | int | Character,
        *,
        title: str = "",
        model: str | None = None,
        provider: str | None = None,
        params: dict[str, Any] | None = None,
        slug: str | None = None,
        make_current: bool = True,
    ) -> Session:
        """Start a series for a character; it becomes the current session by default."""
        owner = self.character(character)
        check_text(title, "the title", max_length=MAX_NAME_LENGTH, multiline=False)
        provider_name = provider or default_provider_name()
        self.provider(provider_name)  # an unknown provider is refused now, not at the first shot
        model_name = model or self._default_model()
        defaults = dict(params or {})
        # a bad default size or quality is refused now, not by every shot of the session
        self._validate(provider_name, model_name, defaults, None, 1)
        anchor = owner.anchor
        primer = self.composer.render(
            PRIMER_TEMPLATE, self._template_context(owner, anchor, ShotRequest(), None)
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
        session = Session(self, row)
        if make_current:
            self.use_session(session)
        return session

    def session(self, ref: str | int | Session | None = None) -> Session:
        """A session by slug or id; with no reference, the current one."""
        if isinstance(ref, Session):
            ref = ref.id
        if ref is None:
            current = self.current_session()
            if current is None:
                raise UsageError(
                    "no current session: start one with `onmodel session new CHARACTER`"
                )
            return current
        with transaction(self.engine) as db:
            row = _by_ref(db, SessionRow, ref)
        if row is None:
            raise NotFoundError(f"no session {ref!r} (see: onmodel session list)")
        return Session(self, row)

    def sessions(self, character: str | int | Character | None = None) -> list[Session]:
        query = select(SessionRow).order_by(col(SessionRow.id))
        if character is not None:
            query = query.where(SessionRow.character_id == self.character(character).id)
        with transaction(self.engine) as db:
            rows = db.exec(query).all()
        return [Session(self, r) for r in rows]

    def use_session(self, ref: str | int | Session) -> Session:
        session = self.session(ref)
        self._write_state({"current_session": session.slug})
        return session

    def current_session(self) -> Session | None:
        slug = self._read_state().get("current_session")
        if not slug:
            return None
        with transaction(self.engine) as db:
            row = db.exec(select(SessionRow).where(SessionRow.slug == slug)).first()
        return Session(self, row) if row is not None else None

    # ------------------------------------------------------------------ shots

    def plan_shot(
        self,
        session: str | int | Session | None,
        request: ShotRequest,
        *,
        from_image: int | str | Image | None = None,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        max_cost: Decimal | None = None,
    ) -> ShotPlan:
        """Compose and validate a shot; nothing is recorded and nothing is spent.

        ``max_cost`` refuses the shot when its worst-case cost estimate could exceed it (or is
        unknown), before any request is made.
        """
        if max_cost is not None:
            max_cost = check_amount(max_cost, "--max-cost")
        return self.planner(session, from_image=from_image).plan(
            request, refs=refs, provider=provider, model=model, params=params, max_cost=max_cost
        )

    def planner(
        self, session: str | int | Session | None, *, from_image: int | str | Image | None = None
    ) -> ShotPlanner:
        """Look up a session and the image its shots branch from, to plan shots from them.

        ``from_image`` None means the session head (or the anchor, before the first shot).
        """
        current = self.session(session)
        character = current.character
        if character.row.anchor_image_id is None:
            raise UsageError(f"character {character.slug!r} has no anchor image yet")
        anchor = self.image(character.row.anchor_image_id)
        if not anchor.succeeded:
            raise UsageError(
                f"the anchor of {character.slug!r} (image {anchor.id}) is {anchor.status}; "
                "retry it before asking for shots"
            )
        parent = self._parent_for(current, character, anchor, from_image)
        return ShotPlanner(
            self, current, character, anchor, parent, self._lineage_inputs(anchor, parent)
        )

    def retry(self, image: int | str | Image, **options: Any) -> Image:
        """Run a failed or interrupted shot again as a new node linked to the failed one."""
        failed = self.image(image)
        if failed.status == "pending" and reconcile_stale(
            self.engine, self.paths.home, [failed.id]
        ):
            failed = self.image(failed.id)  # its process is gone: now marked interrupted
        if failed.status == "pending":
            raise UsageError(
                f"image {failed.id} is pending: a running process is still making it, "
                "or it waits for `onmodel attach`"
            )
        if failed.status not in ("failed", "interrupted"):
            raise UsageError(f"image {failed.id} is {failed.status}; only failed shots are retried")
        if failed.row.session_id is None:
            if failed.kind != "anchor":
                raise UsageError(f"image {failed.id} belongs to no session")
            return self._retry_anchor(failed)
        extras = [
            self.blobs.path_for(r.sha256, r.format) for r in failed.references if r.role == "extra"
        ]
        plan = self.plan_shot(
            failed.row.session_id,
            failed.request,
            from_image=failed.row.parent_id,
            refs=extras,
            provider=failed.row.provider,
            model=failed.row.model,
            params=failed.row.params,
            **options,
        )
        row = failed.row  # a batch shot stays in its batch, under its key
        plan = replace(plan, retry_of_id=failed.id, batch_id=row.batch_id, shot_key=row.shot_key)
        return self.execute(plan)

    def attach(self, image: int | str | Image, file: Path, *, gen_id: str | None = None) -> Image:
        """Complete a pending ChatGPT-app shot with the picture the user saved from the app."""
        if gen_id is not None:
            check_text(gen_id, "the gen id", max_length=MAX_NAME_LENGTH, multiline=False)
        pending = self.image(image)
        if pending.status != "pending" or not is_manual(pending.row.provider):
            raise UsageError(
                f"image {pending.id} is a {pending.status} {pending.row.provider} image; "
                "attach completes pending chatgpt shots only"
            )
        data, info = read_image_file(file)
        blob = self.blobs.put(data, info.format)
        return self._complete(
            pending.id,
            gen_id=gen_id,
            sha256=blob.sha256,
            format=info.format,
            width=info.width,
            height=info.height,
            byte_size=blob.size,
            returned={"source": file.name, "size": f"{info.width}x{info.height}"},
            cost_usd="0",
        )

    def cost(self, session: str | int | Session | None = None) -> CostReport:
        """What a session (or, with no current session, everything) has cost so far."""
        query = select(ImageRow).where(col(ImageRow.status).in_(["succeeded", "failed"]))
        scope = "all sessions"
        if session is not None or self.current_session() is not None:
            current = self.session(session)
            query = query.where(ImageRow.session_id == current.id)
            scope = current.slug
        with transaction(self.engine) as db:
            rows = db.exec(query).all()
        report = CostReport(scope=scope)
        for row in rows:
            report.add(row.model or row.provider, row.cost_usd)
        return report

    def shot(
        self,
        session: str | int | Session | None,
        request: ShotRequest,
        **options: Any,
    ) -> Image:
        """Plan, record and generate one shot; the session head moves to it on success."""
        return self.execute(self.plan_shot(session, request, **options))

    def execute(self, plan: ShotPlan) -> Image:
        """Record ``plan`` as pending, generate it, and record the outcome, whatever it is."""
        return self.store(self.request(plan))

    def request(self, plan: ShotPlan) -> Delivery:
        """Record ``plan`` as pending and ask its provider; a failure is recorded and raised.

        The first half of :meth:`execute`. It is separate so that a batch can send its next
        request while the previous answer is still being written: the row stays ``pending``
        until :meth:`store` finishes it, so a kill in between is re-made like any other.
        """
        return self.call(self.record(plan), plan)

    def record(self, plan: ShotPlan) -> int:
        """The pipeline's first step: the pending row, written before any money is spent.

        Its id is known at once, so a caller that runs the rest elsewhere (the web server's
        background shots) can answer with it without waiting for the provider.
        """
        self.provider(plan.provider)  # an unknown provider leaves nothing pending
        return self._record_pending(plan)

    def call(self, image_id: int, plan: ShotPlan) -> Delivery:
        """The second step: ask the provider for a recorded plan; a failure is recorded, then
        raised as a :class:`GenerationError`."""
        provider = self.provider(plan.provider)
        request = plan.generation_request()
        started = time.monotonic()
        try:
            result = provider.generate(request)
        except ProviderError as exc:
            self._record_failure(image_id, exc, started)
            raise _failed(image_id, exc) from exc
        except (KeyboardInterrupt, SystemExit):
            self._mark(image_id, status="interrupted", error_type="interrupted")
            raise
        except Exception as exc:
            failure = ProviderError(f"{type(exc).__name__}: {exc}", kind="unexpected")
            self._record_failure(image_id, failure, started)
            raise _failed(image_id, failure) from exc
        return Delivery(image_id, plan, result, started)

    def store(self, delivery: Delivery) -> Image:
        """Write a delivered image to the blob store and mark its row succeeded."""
        result = delivery.result
        if isinstance(result, ManualResult):
            self._mark(delivery.image_id, params=result.sent_params or delivery.plan.params)
            return replace(self.image(delivery.image_id), messages=tuple(result.messages))
        return self._record_success(delivery.image_id, delivery.plan, result, delivery.started)

    # ------------------------------------------------------------------ images and lineage

    def image(self, image_id: int | str | Image) -> Image:
        if isinstance(image_id, Image):
            image_id = image_id.id
        key = _image_key(image_id)
        with transaction(self.engine) as db:
            row = db.get(ImageRow, key)
        if row is None:
            raise NotFoundError(f"no image {key} (see: onmodel tree)")
        return Image(self, row)

    def children(self, image: Image) -> list[Image]:
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageRow).where(ImageRow.parent_id == image.id).order_by(col(ImageRow.id))
            ).all()
        return [Image(self, r) for r in rows]

    def references(self, image: Image) -> list[Reference]:
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageReferenceRow)
                .where(ImageReferenceRow.image_id == image.id)
                .order_by(col(ImageReferenceRow.position))
            ).all()
        return [
            Reference(
                position=r.position,
                role=r.role,
                sha256=r.sha256,
                format=r.format,
                image_id=r.ref_image_id,
            )
            for r in rows
        ]

    def session_images(self, session: str | int | Session | None) -> list[Image]:
        current = self.session(session)
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageRow).where(ImageRow.session_id == current.id).order_by(col(ImageRow.id))
            ).all()
        return [Image(self, r) for r in rows]

    def tree(self, session: str | int | Session | None = None) -> TreeNode:
        """The session's lineage rooted at the character's anchor.

        Images from outside the session that a shot branched from (another session's image)
        are included, so every node's parent link is visible.
        """
        current = self.session(session)
        character = current.character
        with transaction(self.engine) as db:
            rows = list(db.exec(select(ImageRow).where(ImageRow.session_id == current.id)).all())
            known = {r.id for r in rows}
            missing = {r.parent_id for r in rows if r.parent_id and r.parent_id not in known}
            while missing:
                extra = db.exec(select(ImageRow).where(col(ImageRow.id).in_(missing))).all()
                rows.extend(extra)
                known.update(r.id for r in extra)
                missing = {r.parent_id for r in extra if r.parent_id and r.parent_id not in known}
            anchor_id = character.row.anchor_image_id
            if anchor_id is not None and anchor_id not in known:
                anchor_row = db.get(ImageRow, anchor_id)
                if anchor_row is not None:
                    rows.append(anchor_row)
        nodes = {r.id: TreeNode(Image(self, r)) for r in sorted(rows, key=lambda r: r.id or 0)}
        roots: list[TreeNode] = []
        for node in nodes.values():
            parent_id = node.image.row.parent_id
            if parent_id in nodes:
                nodes[parent_id].children.append(node)
            else:
                roots.append(node)
        if len(roots) == 1:
            return roots[0]
        anchor_node = nodes.get(anchor_id) if anchor_id is not None else None
        root = anchor_node or roots[0]
        root.children.extend(r for r in roots if r is not root)
        return root

    # ------------------------------------------------------------------ internals

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

    def _parent_for(
        self,
        session: Session,
        character: Character,
        anchor: Image,
        from_image: int | str | Image | None,
    ) -> Image:
        if from_image is None:
            head_id = self.session(session.id).row.head_image_id
            return self.image(head_id) if head_id is not None else anchor
        parent = self.image(from_image)
        if parent.row.character_id != character.id:
            raise UsageError(
                f"image {parent.id} belongs to another character; "
                f"branch only from images of {character.slug!r}"
            )
        if not parent.succeeded:
            raise UsageError(f"image {parent.id} is {parent.status}: branch from a finished image")
        return parent

    def _plan(
        self,
        *,
        kind: ImageKind,
        character: Character,
        session: Session | None,
        parent: Image | None,
        request: ShotRequest,
        provider: str,
        model: str,
        params: dict[str, Any],
        template: str,
        inputs: tuple[InputImage, ...] = (),
        anchor: Image | None = None,
    ) -> ShotPlan:
        self.provider(provider)
        context = self._template_context(character, anchor, request, session)
        rendered = self.composer.render(template, context)
        warnings = self._validate(provider, model, params, rendered.text, len(inputs))
        estimate = self._max_cost(provider, model, params, len(inputs), len(rendered.text))
        return ShotPlan(
            kind=kind,
            character_id=character.row.id,
            session_id=session.id if session else None,
            parent_id=parent.id if parent else None,
            provider=provider,
            model=model,
            params=params,
            request=request,
            rendered=rendered,
            inputs=inputs,
            sheet=character.sheet,
            character_name=character.name,
            warnings=tuple(warnings),
            estimated_max_cost=None if estimate is None else str(estimate),
        )

    def _template_context(
        self,
        character: Character,
        anchor: Image | None,
        request: ShotRequest,
        session: Session | None,
    ) -> dict[str, Any]:
        return {
            "character": {
                "name": character.name,
                "slug": character.slug,
                "description": character.description,
                "sheet": character.sheet.model_dump(),
            },
            "anchor": {
                "revised_prompt": anchor.revised_prompt if anchor else None,
                "gen_id": anchor.gen_id if anchor else None,
            },
            "request": request.model_dump(),
            "session": {"title": session.title if session else ""},
            "include_outfit": not request.outfit,
        }

    def _lineage_inputs(self, anchor: Image, parent: Image) -> tuple[InputImage, ...]:
        """Anchor first (the strongest consistency lever), then the parent when it differs."""
        inputs = [self._input_from_image(anchor, "anchor")]
        if parent.id != anchor.id:
            inputs.append(self._input_from_image(parent, "parent"))
        return tuple(inputs)

    def _with_refs(
        self, inputs: tuple[InputImage, ...], refs: Sequence[Path], most: int
    ) -> tuple[tuple[InputImage, ...], list[tuple[bytes, str]]]:
        """The lineage inputs followed by the user's extra reference files, read and checked.

        The files are returned to be stored (see :meth:`_keep_refs`) only once the whole shot
        has passed every check, so a refused shot leaves no reference files behind.
        """
        if len(inputs) + len(refs) > most:
            raise UsageError(
                f"{len(inputs) + len(refs)} input images (anchor, parent and --ref files); "
                f"at most {most} can be sent"
            )
        extras: list[InputImage] = []
        files: list[tuple[bytes, str]] = []
        for data, info in (read_image_file(ref) for ref in refs):
            sha256 = sha256_bytes(data)
            path = self.blobs.path_for(sha256, info.format)
            extras.append(InputImage("extra", path, sha256, info.mime))
            files.append((data, info.format))
        return (*inputs, *extras), files

    def _keep_refs(self, files: list[tuple[bytes, str]]) -> None:
        for data, fmt in files:
            self.blobs.put(data, fmt)

    def _input_from_image(self, image: Image, role: str) -> InputImage:
        path = image.path
        if path is None or image.row.sha256 is None or image.row.format is None:
            raise UsageError(f"image {image.id} has no file to send")
        if not self.blobs.verify(image.row.sha256, image.row.format):
            raise InvalidImageError(f"the file of image {image.id} is missing or damaged: {path}")
        from onmodel.imagefile import MIME_TYPES

        return InputImage(role, path, image.row.sha256, MIME_TYPES[image.row.format], image.id)

    def _conversation(self, session: Session, provider: Provider, parent: Image) -> dict[str, Any]:
        """Instructions and conversation state, for the providers that keep a conversation."""
        return provider.conversation(
            instructions=session.row.instructions or None,
            parent=ParentTurn(
                in_session=parent.row.session_id == session.id,
                provider=parent.row.provider,
                response_id=parent.row.response_id,
            ),
            started=lambda: any(i.kind == "shot" for i in self.session_images(session)),
        )

    def provider(self, name: str) -> Provider:
        """The named provider, reading this studio's capability table (``home/models.yaml``)."""
        return get_provider(name, ProviderContext(models_file=self.paths.models_file))

    def _max_cost(
        self, provider: str, model: str, params: dict[str, Any], n_inputs: int, chars: int
    ) -> Decimal | None:
        if not self.provider(provider).billed:
            return Decimal(0)
        from onmodel.capabilities import estimate_max_cost, load_prices

        return estimate_max_cost(
            model,
            params.get("quality"),
            params.get("size"),
            n_inputs,
            chars,
            prices=load_prices(self.paths.prices_file),
        )

    def _check_max_cost(self, plan: ShotPlan, limit: Decimal) -> None:
        if plan.estimated_max_cost is None:
            raise BudgetError(
                f"the cost of a {plan.model} shot is unknown (no price in the table), so it "
                f"cannot be kept under --max-cost {limit}; add a price to {self.paths.prices_file}"
            )
        if Decimal(plan.estimated_max_cost) > limit:
            raise BudgetError(
                f"this shot could cost up to ${plan.estimated_max_cost} ({plan.model}, "
                f"{plan.params.get('quality', 'auto')} quality), over --max-cost {limit}"
            )

    def _retry_anchor(self, failed: Image) -> Image:
        character = self.character(failed.row.character_id)
        plan = self._plan(
            kind="anchor",
            character=character,
            session=None,
            parent=None,
            request=ShotRequest(),
            provider=failed.row.provider,
            model=failed.row.model,
            params=failed.row.params,
            template=ANCHOR_TEMPLATE,
        )
        return self.execute(replace(plan, retry_of_id=failed.id))

    def _default_model(self) -> str:
        from onmodel.capabilities import default_model

        return default_model()

    def _capability(self, model: str) -> Any:
        """The model's row; retired and unknown models are refused, judged by the same day
        as :meth:`_validate` judges shutdown warnings."""
        from onmodel.capabilities import load_capabilities

        return load_capabilities(self.paths.models_file).get(model, today=date.today())

    def _validate(
        self, provider: str, model: str, params: dict[str, Any], prompt: str | None, n_inputs: int
    ) -> list[str]:
        """Check the request against the model's rules before anything is recorded or paid."""
        from onmodel.capabilities import validate_request

        return validate_request(
            self._capability(model),
            route=provider,
            params=params,
            prompt=prompt,
            n_input_images=n_inputs,
            today=date.today(),
        )

    def _record_pending(self, plan: ShotPlan) -> int:
        """The row that says a request is being paid for, with the images sent, in order.

        It names its owner, this process, so that once the process is gone (even by SIGKILL)
        any later one can tell the row will never finish and let it be retried.
        """
        owner = owner_token(self.paths.home)  # before the write lock: it may create a file
        with self.engine.begin() as conn:
            image_id = insert_row(
                conn,
                ImageRow,
                {
                    "character_id": plan.character_id,
                    "session_id": plan.session_id,
                    "parent_id": plan.parent_id,
                    "retry_of_id": plan.retry_of_id,
                    "kind": plan.kind,
                    "status": "pending",
                    "request": plan.request.as_params(),
                    "template_name": plan.rendered.template_name,
                    "template_hash": plan.rendered.template_hash,
                    "prompt": plan.prompt,
                    "previous_response_id": plan.previous_response_id,
                    "provider": plan.provider,
                    "model": plan.model,
                    "params": plan.params,
                    "batch_id": plan.batch_id,
                    "shot_key": plan.shot_key,
                    "owner": owner,
                },
            )
            insert_rows(
                conn,
                ImageReferenceRow,
                [
                    {
                        "image_id": image_id,
                        "position": position,
                        "role": item.role,
                        "ref_image_id": item.image_id,
                        "sha256": item.sha256,
                        "format": item.mime.split("/")[1],
                    }
                    for position, item in enumerate(plan.inputs)
                ],
            )
        return image_id

    def _record_success(
        self, image_id: int, plan: ShotPlan, result: GenerationResult, started: float
    ) -> Image:
        try:
            info = inspect_bytes(result.data, source=f"the image {plan.provider} returned")
        except InvalidImageError as exc:
            failure = ProviderError(str(exc), kind="bad_response", usage=result.usage)
            self._record_failure(image_id, failure, started)
            raise _failed(image_id, failure) from exc
        blob = self.blobs.put(result.data, info.format)
        return self._complete(
            image_id,
            params=result.sent_params,
            returned=result.returned,
            revised_prompt=result.revised_prompt,
            gen_id=result.gen_id,
            response_id=result.response_id,
            usage=result.usage,
            cost_usd=self._cost(plan.provider, plan.model, result.usage),
            sha256=blob.sha256,
            format=info.format,
            width=info.width,
            height=info.height,
            byte_size=blob.size,
            latency_ms=int((time.monotonic() - started) * 1000),
        )

    def _complete(self, image_id: int, **values: Any) -> Image:
        """Mark a row succeeded with its file's details and, in the same transaction, make it
        its character's anchor or its session's new head (batch shots are siblings: no head)."""
        now = utcnow()
        with self.engine.begin() as conn:
            update_row(
                conn, ImageRow, image_id, {**values, "status": "succeeded", "finished_at": now}
            )
            row = conn.execute(
                select(
                    ImageRow.kind, ImageRow.character_id, ImageRow.session_id, ImageRow.batch_id
                ).where(ImageRow.id == image_id)
            ).one()
            if row.kind == "anchor":
                update_row(
                    conn,
                    CharacterRow,
                    row.character_id,
                    {"anchor_image_id": image_id, "updated_at": now},
                )
            if row.session_id is not None and row.batch_id is None:
                head: dict[str, Any] = {"head_image_id": image_id, "updated_at": now}
                if values.get("response_id"):
                    head["last_response_id"] = values["response_id"]
                update_row(conn, SessionRow, row.session_id, head)
        return self.image(image_id)

    def _record_failure(self, image_id: int, error: ProviderError, started: float) -> None:
        self._mark(
            image_id,
            status="failed",
            error_type=error.kind,
            error_code=error.code,
            error_message=str(error),
            error_categories=error.categories,
            usage=error.usage,
            response_id=error.response_id,
            latency_ms=int((time.monotonic() - started) * 1000),
            finished_at=utcnow(),
        )

    def _mark(self, image_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            update_row(conn, ImageRow, image_id, values)

    def _cost(self, provider: str, model: str, usage: dict[str, Any] | None) -> str | None:
        """Free providers cost nothing; otherwise an estimate, or None when it is unknown."""
        if not self.provider(provider).billed:
            return "0"
        from onmodel.capabilities import estimate_cost, load_prices

        cost = estimate_cost(model, usage, load_prices(self.paths.prices_file))
        return None if cost is None else str(cost)

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.paths.state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, values: dict[str, Any]) -> None:
        """Replace the state file whole; each writer has its own temporary file, so commands
        run at once never move each other's half-written file (the last one's choice wins)."""
        import tempfile

        state = {**self._read_state(), **values}
        target = self.paths.state_file
        fd, name = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(state, indent=2))
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ annotations (gallery)
    # Added for the web gallery (onmodel serve); additive only, nothing above depends on it.

    def annotate_image(
        self,
        image: int | str | Image,
        *,
        starred: bool | None = None,
        rating: int | None = None,
        note: str | None = None,
    ) -> Image:
        """Set an image's star, rating (1-5; 0 clears it) or note; ``None`` leaves a field as is.

        Annotations are the illustrator's judgement, not provenance, so they may change on any
        image whatever its status; the generation record itself is never touched.
        """
        target = self.image(image)
        if rating is not None and not 0 <= rating <= 5:
            raise UsageError(f"a rating is 1 to 5 (0 clears it), not {rating}")
        if note is not None:
            check_text(note, "the note", max_length=MAX_NOTE_LENGTH)
        with transaction(self.engine) as db:
            row = db.get(ImageRow, target.id)
            assert row is not None
            if starred is not None:
                row.starred = starred
            if rating is not None:
                row.rating = rating or None
            if note is not None:
                row.note = note.strip()
            db.add(row)
        return self.image(target.id)


@dataclass(frozen=True)
class ShotPlanner:
    """Plans shots from one session and one parent image (see :meth:`Studio.planner`).

    The session, its character, the anchor and the parent are looked up, and their files
    checked, when the planner is made rather than for every shot: a batch plans hundreds of
    shots from the same ones, and those lookups were most of the time each plan took. (The
    provider checks each file's digest again as it sends it.)
    """

    studio: Studio
    session: Session
    character: Character
    anchor: Image
    parent: Image
    inputs: tuple[InputImage, ...]

    def plan(
        self,
        request: ShotRequest,
        *,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        max_cost: Decimal | None = None,
    ) -> ShotPlan:
        """Compose and validate a shot; see :meth:`Studio.plan_shot`."""
        studio, session = self.studio, self.session
        route = provider or session.provider
        source = studio.provider(route)
        inputs, ref_files = studio._with_refs(self.inputs, refs, source.max_input_images)
        plan = studio._plan(
            kind="shot",
            character=self.character,
            session=session,
            parent=self.parent,
            request=request,
            provider=route,
            model=model or session.model,
            params={**session.row.params, **(params or {})},
            template=source.shot_template,
            inputs=inputs,
            anchor=self.anchor,
        )
        plan = replace(plan, **studio._conversation(session, source, self.parent))
        if max_cost is not None:
            studio._check_max_cost(plan, max_cost)
        studio._keep_refs(ref_files)
        return plan


def _failed(image_id: int, error: ProviderError) -> GenerationError:
    """The error a caller sees; the failed row already holds every detail."""
    return GenerationError(
        f"image {image_id} failed: {error}", image_id=image_id, retryable=error.kind != "quota"
    )


def _by_ref(db: Any, table: type[Any], ref: str | int) -> Any:
    """Rows are named by slug or by numeric id; an id no row can have finds nothing."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
        key = int(ref)
        return db.get(table, key) if 0 < key <= MAX_ID else None
    return db.exec(select(table).where(table.slug == ref)).first()


def _image_key(ref: int | str) -> int:
    if isinstance(ref, int):
        return check_id(ref, "image")
    text = ref.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{ref!r} is not an image id (a number such as 12)")
    return check_id(int(text), "image")


_SLUG_ATTEMPTS = 20


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
