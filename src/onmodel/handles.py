"""What library users hold: characters, sessions and images, each bound to its studio.

Handles wrap a snapshot of a database row and ask the studio for anything related
(``image.parent``, ``session.shot(...)``), so the CLI and Python code walk the same objects.

Everything a caller reads is a typed, read-only property (``image.parent_id``,
``image.status``, ``session.head_image_id``...). The ``row`` attribute each handle carries is
internal to the studio and the store: code elsewhere must not touch it (a test checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.blobs import blob_name
from onmodel.errors import EmptyRequestError, InputError, NoImageFileError, UsageError
from onmodel.lineage import LineageIndex, TreeNode, cast_dicts, image_casts
from onmodel.sheet import ModelSheet, ShotRequest, cast_fields, take_name, with_take
from onmodel.status import ImageStatus
from onmodel.store import lineage as lineage_queries
from onmodel.store.records import (
    CharacterRecord,
    CheckRecord,
    ImageRecord,
    ReferenceRecord,
    SessionRecord,
)

if TYPE_CHECKING:
    from onmodel.studio import ShotPlan, Studio
    from onmodel.studio.members import ShotCast

# TreeNode: from lineage
__all__ = ["Character", "Checked", "Image", "Reference", "Session", "TreeNode"]


@dataclass(frozen=True)
class Character:
    studio: Studio = field(repr=False, compare=False)
    row: CharacterRecord  # internal: for the studio and the store only; read the properties

    @property
    def id(self) -> int:
        assert self.row.id is not None
        return self.row.id

    @property
    def slug(self) -> str:
        return self.row.slug

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def kind(self) -> str:
        """What it is: ``character``, ``creature``, ``prop`` or ``set`` (``onmodel.kinds``)."""
        return self.row.kind

    @property
    def description(self) -> str:
        return self.row.description

    @property
    def sheet(self) -> ModelSheet:
        return ModelSheet.model_construct(**self.row.sheet)  # checked when it was stored

    @property
    def anchor_image_id(self) -> int | None:
        return self.row.anchor_image_id

    @property
    def created_at(self) -> datetime:
        return self.row.created_at

    @property
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @property
    def hidden_at(self) -> datetime | None:
        """When it was hidden (``onmodel hide``), or None: hidden rows leave listings, trees
        and exports until shown again or purged."""
        return self.row.hidden_at

    @property
    def anchor(self) -> Image | None:
        if self.row.anchor_image_id is None:
            return None
        return self.studio.image(self.row.anchor_image_id)

    def start_session(self, **options: Any) -> Session:
        return self.studio.start_session(self, **options)

    def __repr__(self) -> str:
        return f"Character(id={self.id}, slug={self.slug!r}, anchor={self.anchor_image_id})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "sheet": self.row.sheet,
            "anchor_image_id": self.row.anchor_image_id,
            "created_at": _iso(self.row.created_at),
        }


@dataclass(frozen=True)
class Session:
    studio: Studio = field(repr=False, compare=False)
    row: SessionRecord  # internal: for the studio and the store only; read the properties

    @property
    def id(self) -> int:
        assert self.row.id is not None
        return self.row.id

    @property
    def slug(self) -> str:
        return self.row.slug

    @property
    def title(self) -> str:
        return self.row.title

    @property
    def provider(self) -> str:
        return self.row.provider

    @property
    def model(self) -> str:
        return self.row.model

    @property
    def params(self) -> Mapping[str, Any]:
        return self.row.params

    @property
    def instructions(self) -> str:
        return self.row.instructions

    @property
    def character_id(self) -> int:
        return self.row.character_id

    @property
    def head_image_id(self) -> int | None:
        """The head when this handle was read; :attr:`head` reads the current one."""
        return self.row.head_image_id

    @property
    def last_response_id(self) -> str | None:
        return self.row.last_response_id

    @property
    def created_at(self) -> datetime:
        return self.row.created_at

    @property
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @property
    def hidden_at(self) -> datetime | None:
        """When it was hidden (``onmodel hide``), or None: hidden rows leave listings, trees
        and exports until shown again or purged."""
        return self.row.hidden_at

    @property
    def character(self) -> Character:
        return self.studio.character(self.row.character_id)

    @property
    def members(self) -> list[Character]:
        """The session's cast besides its lead, in the order they were added: who its shots
        may show (``--with``) and the sets they may take place in (``--set``)."""
        return self.studio.members(self)

    @property
    def cast(self) -> list[Character]:
        """The lead, then the other members."""
        return [self.character, *self.members]

    @property
    def head(self) -> Image | None:
        """The current tip: where the next shot continues from unless told otherwise."""
        fresh = self.studio.session(self.id).row
        if fresh.head_image_id is None:
            return None
        return self.studio.image(fresh.head_image_id)

    def shot(
        self,
        text: str = "",
        *,
        pose: str = "",
        outfit: str = "",
        expression: str = "",
        scene: str = "",
        action: str = "",
        with_: Sequence[str | int | Character] | str | None = (),
        cast: Sequence[str | int | Character] | str | None = (),
        set_: str | int | Character | None = "",
        same: bool = False,
        size: str | None = None,
        quality: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_image: int | str | Image | None = None,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        max_cost: Decimal | None = None,
    ) -> Image:
        """Plan, record and generate the next shot (see :meth:`plan` for the arguments); the
        head moves to it on success."""
        return self.studio.execute(
            self.plan(
                text,
                pose=pose,
                outfit=outfit,
                expression=expression,
                scene=scene,
                action=action,
                with_=with_,
                cast=cast,
                set_=set_,
                same=same,
                size=size,
                quality=quality,
                params=params,
                from_image=from_image,
                refs=refs,
                provider=provider,
                model=model,
                max_cost=max_cost,
            )
        )

    def plan(
        self,
        text: str = "",
        *,
        pose: str = "",
        outfit: str = "",
        expression: str = "",
        scene: str = "",
        action: str = "",
        with_: Sequence[str | int | Character] | str | None = (),
        cast: Sequence[str | int | Character] | str | None = (),
        set_: str | int | Character | None = "",
        same: bool = False,
        size: str | None = None,
        quality: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_image: int | str | Image | None = None,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        max_cost: Decimal | None = None,
    ) -> ShotPlan:
        """Compose and validate a shot without recording or spending anything (a dry run).

        ``with_`` names who joins the lead, ``cast`` everyone the shot shows (in order,
        perhaps without the lead), ``set_`` the set it takes place in: each a member of the
        session's cast (:attr:`members`), named by slug, name, id or handle (one name alone
        may be given as it is).

        A shot must ask for something (``text`` or a field); ``same=True`` asks, explicitly,
        for the character again as it is, so an empty call is never a paid shot by accident.
        ``size`` and ``quality`` are the model parameters of the same names, merged over
        ``params`` and checked against the model like them.
        """
        request = ShotRequest.checked(
            pose=pose,
            outfit=outfit,
            expression=expression,
            scene=scene,
            action=action,
            text=text,
            **cast_fields(
                self.character.slug,
                with_=_member_names(with_),
                cast=_member_names(cast),
                set_=_member_name(set_) if set_ else "",
            ),
        )
        if request.is_empty() and not same:
            raise EmptyRequestError(
                "the shot asks for nothing: give it a text, pose, outfit, expression, scene or "
                "action, or ask for the same character explicitly"
            )
        if same and not request.is_empty():
            raise UsageError(
                f"the shot asks for {request.label()!r} and for the same character at once: "
                "drop one of them"
            )
        chosen = {"size": size, "quality": quality}
        return self.studio.plan_shot(
            self,
            request,
            from_image=from_image,
            refs=refs,
            provider=provider,
            model=model,
            params={**(params or {}), **{k: v for k, v in chosen.items() if v}},
            max_cost=max_cost,
        )

    def images(self) -> list[Image]:
        """The session's own images, oldest first. The character's anchor belongs to no
        session, so it is not among them; :meth:`tree` and :meth:`lineage` start at it."""
        return self.studio.session_images(self)

    def tree(self) -> TreeNode:
        """The whole lineage as handles, rooted at the character's anchor (which
        :meth:`images` leaves out), every image loaded: for a long series, read
        :meth:`lineage` and load only the images you need."""
        return self.studio.tree(self)

    def lineage(self) -> LineageIndex:
        """The lineage's shape (ids and parent links) from the character's anchor, read in
        one query."""
        return self.studio.lookups.lineage(self)

    def __repr__(self) -> str:
        return (
            f"Session(id={self.id}, slug={self.slug!r}, provider={self.provider!r}, "
            f"head={self.head_image_id})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "character": self.character.slug,
            "members": [member.slug for member in self.members],
            "provider": self.provider,
            "model": self.model,
            "params": self.row.params,
            "head_image_id": self.row.head_image_id,
            "last_response_id": self.row.last_response_id,
            "created_at": _iso(self.row.created_at),
        }


@dataclass(frozen=True)
class Reference:
    position: int
    role: str
    sha256: str
    format: str
    image_id: int | None

    @classmethod
    def from_row(cls, row: ReferenceRecord) -> Reference:
        return cls(
            position=row.position,
            role=row.role,
            sha256=row.sha256,
            format=row.format,
            image_id=row.ref_image_id,
        )


@dataclass(frozen=True)
class Image:
    studio: Studio = field(repr=False, compare=False)
    row: ImageRecord  # internal: for the studio and the store only; read the properties
    # what a manual (ChatGPT app) shot asks the user to do, set when it is made:
    messages: tuple[str, ...] = ()  # the messages to paste, in order
    first_message: int = 1  # messages[0]'s number along the session's conversation
    attachments: tuple[Path, ...] = ()  # the files to attach to messages[0], in order

    @property
    def id(self) -> int:
        assert self.row.id is not None
        return self.row.id

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def status(self) -> ImageStatus:
        return ImageStatus(self.row.status)

    @property
    def succeeded(self) -> bool:
        return self.row.status == ImageStatus.SUCCEEDED

    @property
    def prompt(self) -> str:
        return self.row.prompt

    @property
    def revised_prompt(self) -> str | None:
        return self.row.revised_prompt

    @property
    def gen_id(self) -> str | None:
        return self.row.gen_id

    @cached_property
    def request(self) -> ShotRequest:
        """What the shot asked for (checked when it was stored); built once per handle, as a
        tree's line reads it for its label, its cast and its check."""
        return ShotRequest.model_construct(**self.row.request)

    @property
    def label(self) -> str:
        """What the image shows, in a few words; a take of a repeated shot says which
        ("playing guitar · take 2/3"), so that every place a label is shown (tree, listings,
        pages, the export) tells the takes apart without knowing about them."""
        if self.kind in ("anchor", "import"):
            return "anchor"
        return with_take(self.request.label(), self.row.variation, self.row.variations)

    @property
    def take(self) -> str | None:
        """``"take 2/3"`` for one of several identical requests (a shot list's ``repeat: 3``);
        None for a single shot, and for images made before takes were recorded."""
        if self.row.variation is None or self.row.variations is None:
            return None
        return take_name(self.row.variation, self.row.variations)

    @property
    def variation(self) -> int | None:
        """Which take of a repeated shot this is (1-based); None for a single shot."""
        return self.row.variation

    @property
    def variations(self) -> int | None:
        """How many takes its repeated shot asked for; None for a single shot."""
        return self.row.variations

    @property
    def character_id(self) -> int:
        return self.row.character_id

    @property
    def session_id(self) -> int | None:
        return self.row.session_id

    @property
    def parent_id(self) -> int | None:
        return self.row.parent_id

    @property
    def retry_of_id(self) -> int | None:
        """The failed or interrupted image this one retried, if any."""
        return self.row.retry_of_id

    @property
    def template_name(self) -> str | None:
        return self.row.template_name

    @property
    def template_hash(self) -> str | None:
        return self.row.template_hash

    @property
    def response_id(self) -> str | None:
        return self.row.response_id

    @property
    def previous_response_id(self) -> str | None:
        return self.row.previous_response_id

    @property
    def provider(self) -> str:
        return self.row.provider

    @property
    def model(self) -> str:
        return self.row.model

    @property
    def params(self) -> Mapping[str, Any]:
        return self.row.params

    @property
    def returned(self) -> Mapping[str, Any]:
        """What the provider reported back about the generation (size, quality...)."""
        return self.row.returned

    @property
    def error_type(self) -> str | None:
        return self.row.error_type

    @property
    def error_code(self) -> str | None:
        return self.row.error_code

    @property
    def error_message(self) -> str | None:
        return self.row.error_message

    @property
    def error_categories(self) -> tuple[str, ...]:
        return tuple(self.row.error_categories or ())

    @property
    def sha256(self) -> str | None:
        return self.row.sha256

    @property
    def format(self) -> str | None:
        return self.row.format

    @property
    def width(self) -> int | None:
        return self.row.width

    @property
    def height(self) -> int | None:
        return self.row.height

    @property
    def byte_size(self) -> int | None:
        return self.row.byte_size

    @property
    def usage(self) -> Mapping[str, Any] | None:
        return self.row.usage

    @property
    def cost_usd(self) -> str | None:
        """The cost in US dollars as a decimal string; None when unknown."""
        return self.row.cost_usd

    @property
    def latency_ms(self) -> int | None:
        return self.row.latency_ms

    @property
    def rating(self) -> int | None:
        return self.row.rating

    @property
    def starred(self) -> bool:
        return bool(self.row.starred)

    @property
    def note(self) -> str:
        return self.row.note or ""

    @property
    def batch_id(self) -> int | None:
        return self.row.batch_id

    @property
    def shot_key(self) -> str | None:
        return self.row.shot_key

    @property
    def created_at(self) -> datetime:
        return self.row.created_at

    @property
    def finished_at(self) -> datetime | None:
        return self.row.finished_at

    @property
    def updated_at(self) -> datetime:
        """When the row last changed (made, finished, starred, noted…): what a page polls."""
        return self.row.updated_at

    @property
    def hidden_at(self) -> datetime | None:
        """When it was hidden (``onmodel hide``), or None: hidden rows leave listings, trees
        and exports until shown again or purged."""
        return self.row.hidden_at

    @property
    def picked_at(self) -> datetime | None:
        """When a retake loop chose this take as the best of its siblings (``shot --takes``),
        or None: every take is kept, and this says which one the series goes on from."""
        return self.row.picked_at

    @property
    def sheet_version_id(self) -> int | None:
        """The model sheet version it was made with (see ``Studio.sheet_of``)."""
        return self.row.sheet_version_id

    @property
    def path(self) -> Path | None:
        """The image file, or None while pending or after a failure.

        With a remote blob store (``ONMODEL_BLOBS_URL=s3://...``) this is a verified local
        copy, downloaded on first use (:meth:`~onmodel.blobs.Blobs.local_path`); to say where
        an image is without fetching it, use :attr:`stored_at`."""
        if self.row.sha256 is None or self.row.format is None:
            return None
        return self.studio.blobs.local_path(self.row.sha256, self.row.format)

    @property
    def stored_at(self) -> str | None:
        """Where the image's bytes are stored, for display: a file's path or an ``s3://``
        URL; no I/O. None while pending or after a failure."""
        if self.row.sha256 is None or self.row.format is None:
            return None
        return self.studio.blobs.where(blob_name(self.row.sha256, self.row.format))

    def read_bytes(self) -> bytes:
        """The stored bytes, verified against the recorded digest; a pending or failed image
        has none (:class:`~onmodel.errors.NoImageFileError`)."""
        if self.row.sha256 is None or self.row.format is None:
            raise NoImageFileError(
                f"image {self.id} has no file: it is {self.status}", status=self.status
            )
        return self.studio.blobs.read(self.row.sha256, self.row.format)

    @property
    def parent(self) -> Image | None:
        if self.row.parent_id is None:
            return None
        return self.studio.image(self.row.parent_id)

    @property
    def children(self) -> list[Image]:
        return self.studio.children(self)

    @property
    def references(self) -> list[Reference]:
        return self.studio.references(self)

    def lineage(self) -> list[Image]:
        """This image and its ancestors, oldest first: the path back to the anchor, read in
        one query however long the series."""
        if self.row.parent_id is None:
            return [self]
        found = lineage_queries.ancestors(self.studio.engine, self.id)
        return [*(Image(self.studio, record) for record in found), self]

    def ancestor_ids(self) -> list[int]:
        """The ids of this image's ancestors, oldest first, read in one query (no image
        loaded: a deep image of a long series has tens of thousands)."""
        return lineage_queries.ancestor_ids(self.studio.engine, self.id)

    def __repr__(self) -> str:
        return (
            f"Image(id={self.id}, kind={self.kind!r}, label={_shortened(self.label)!r}, "
            f"status={self.status.value!r})"
        )

    def to_dict(
        self, references: Sequence[Reference] | None = None, cast: ShotCast | None = None
    ) -> dict[str, Any]:
        """Everything recorded, as JSON-ready values. ``references`` and ``cast`` (who is in
        the picture): this image's, read in advance (a page's in a query or two,
        :meth:`Studio.references_of`, :func:`onmodel.lineage.image_casts`) instead of here,
        which a listing of 100,000 images would do 100,000 times."""
        row = self.row
        sent = self.references if references is None else references
        shown = image_casts([self])[self.id] if cast is None else cast
        return {
            "id": self.id,
            "kind": row.kind,
            "status": row.status,
            "label": self.label,
            "character_id": row.character_id,
            "session_id": row.session_id,
            "parent_id": row.parent_id,
            "retry_of_id": row.retry_of_id,
            "request": row.request,
            "template": {"name": row.template_name, "sha256": row.template_hash},
            "prompt": row.prompt,
            "revised_prompt": row.revised_prompt,
            "gen_id": row.gen_id,
            "response_id": row.response_id,
            "previous_response_id": row.previous_response_id,
            "provider": row.provider,
            "model": row.model,
            "params": row.params,
            "returned": row.returned,
            "references": [
                {
                    "position": r.position,
                    "role": r.role,
                    "image_id": r.image_id,
                    "sha256": r.sha256,
                    "format": r.format,
                }
                for r in sent
            ],
            "cast": cast_dicts(shown),
            "error": None
            if row.error_type is None
            else {
                "type": row.error_type,
                "code": row.error_code,
                "message": row.error_message,
                "categories": row.error_categories,
            },
            "file": {
                "path": str(self.path) if self.path else None,
                "sha256": row.sha256,
                "format": row.format,
                "width": row.width,
                "height": row.height,
                "bytes": row.byte_size,
            },
            "usage": row.usage,
            "cost_usd": row.cost_usd,
            "latency_ms": row.latency_ms,
            "rating": row.rating,
            "starred": row.starred,
            "note": row.note,
            "batch_id": row.batch_id,
            "shot_key": row.shot_key,
            "sheet_version_id": row.sheet_version_id,
            "variation": row.variation,
            "variations": row.variations,
            "hidden_at": _iso(row.hidden_at),
            "picked_at": _iso(row.picked_at),
            "created_at": _iso(row.created_at),
            "finished_at": _iso(row.finished_at),
        }


@dataclass(frozen=True)
class Checked:
    """An image with its newest finished check (None: never checked, or only pending): what
    a line of a tree or a card shows beside it."""

    image: Image
    check: CheckRecord | None


def with_latest_checks(images: Mapping[int, Image]) -> dict[int, Checked]:
    """``images`` (a chunk loaded by id) each with its newest check, read in one query for
    all of them: an output streaming a long lineage a chunk at a time wraps its loader in
    this, and never asks for a check per image."""
    if not images:
        return {}
    studio = next(iter(images.values())).studio
    latest = studio.latest_checks(list(images))
    return {key: Checked(image, latest.get(key)) for key, image in images.items()}


def cast_list(
    names: Sequence[str | int | Character] | str | int | Character | None,
) -> list[str | int | Character]:
    """Cast members as a caller may give them: one (a name, an id, a handle) or several, or
    None for none; anything else is refused in one line (``InputError``)."""
    if names is None:
        return []
    if isinstance(names, (str, int, Character)):
        names = [names]
    found = list(names)
    for name in found:
        if isinstance(name, bool) or not isinstance(name, (str, int, Character)):
            raise InputError(
                f"a cast member is named by a slug, a name, an id or a Character, not {name!r}"
            )
    return found


def _member_names(names: Sequence[str | int | Character] | str | None) -> list[str]:
    return [_member_name(name) for name in cast_list(names)]


def _member_name(name: str | int | Character) -> str:
    """A cast member as a request names it: a handle by its slug, an id as ``#12``."""
    (checked,) = cast_list(name)
    if isinstance(checked, Character):
        return checked.slug
    return f"#{checked}" if isinstance(checked, int) else checked


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


REPR_LABEL = 40  # characters of a label a repr shows: a request can be a paragraph


def _shortened(text: str) -> str:
    return text if len(text) <= REPR_LABEL else text[: REPR_LABEL - 1] + "…"
