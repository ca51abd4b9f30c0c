"""Hiding and purging: taking images, sessions and characters away, and for good.

Hiding is the everyday "delete": a hidden image, session or character leaves listings,
trees, exports and pages, but every row stays, so nothing made from it loses its lineage and
showing it again undoes everything. A purge is the one step that cannot be undone: it deletes
what is hidden (``store.purge``), then the image files no row refers to any more (by the
rules of ``onmodel db check``: ``doctor.discard_unreferenced``). It never deletes what a kept
image was made from unless asked to take that image too (``subtree``), nor a kept character's
anchor, nor an image still being made. What ``subtree`` takes was shown until then, so its
report (the dry run's first) names every such image and every kept session whose head moves:
nothing a user sees disappears without having been listed. A cast member that pictures which
stay still show is refused in those terms (who, which pictures, where), not as a lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from onmodel.blobs import IN_USE_GRACE
from onmodel.doctor import discard_unreferenced
from onmodel.errors import UsageError
from onmodel.handles import Character, Image, Session
from onmodel.providers import is_manual
from onmodel.status import ImageStatus
from onmodel.store import lineage, queries, writes
from onmodel.store.models import utcnow
from onmodel.store.purge import Appearance, PurgePlan, execute_purge, plan_purge
from onmodel.store.stale import find_stale

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

LISTED = 5  # ids a refusal names before "…"


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed or, ``done`` False, would remove."""

    done: bool
    images: int
    hidden_images: int  # of them, hidden one by one (the others went with a session,
    # a character, or as images made from a purged one)
    sessions: tuple[str, ...]  # slugs
    characters: tuple[str, ...]
    files: int  # image files deleted (or that would be)
    bytes: int
    files_kept: int = 0  # unreferenced, but too recent to be sure no write is using them
    # shown images that go with what they were made from (``subtree``), oldest first, by
    # where they are: ("session", "mia"), or ("character", "mia") outside any session
    taken: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    heads: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # slug: (from, to)

    @property
    def empty(self) -> bool:
        return not (self.images or self.sessions or self.characters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "images": self.images,
            "hidden_images": self.hidden_images,
            "sessions": list(self.sessions),
            "characters": list(self.characters),
            "files": self.files,
            "bytes": self.bytes,
            "files_kept": self.files_kept,
            "taken": [
                {what: slug, "images": list(images)} for (what, slug), images in self.taken.items()
            ],
            "heads": [
                {"session": slug, "from": old, "to": new} for slug, (old, new) in self.heads.items()
            ],
        }


class Curation:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    # ------------------------------------------------------------------ hiding

    def hide_images(self, refs: Sequence[int | str | Image], *, hidden: bool) -> list[Image]:
        """See :meth:`Studio.hide_images`."""
        studio = self.studio
        images = studio.lookups.images(refs)
        if not images:
            raise UsageError("name at least one image")
        ids = [image.id for image in images]
        if hidden:
            self._refuse_anchors(images)
            self._refuse_in_flight(ids, "hide it")
        writes.set_images_hidden(self.engine, ids, utcnow() if hidden else None)
        if hidden:
            for session in queries.sessions_headed_by(self.engine, ids):
                self._step_head_back(session.id, session.head_image_id)
        return studio.lookups.images(ids)

    def hide_session(self, ref: str | int | Session, *, hidden: bool) -> Session:
        """See :meth:`Studio.hide_session`."""
        session = self.studio.session(ref)
        writes.update_session(self.engine, session.id, {"hidden_at": utcnow() if hidden else None})
        if hidden:
            self.studio.current.forget(session.slug)
        return self.studio.session(session.id)

    def hide_character(self, ref: str | int | Character, *, hidden: bool) -> Character:
        """See :meth:`Studio.hide_character`."""
        character = self.studio.character(ref)
        values = {"hidden_at": utcnow() if hidden else None}
        writes.update_character(self.engine, character.id, values)
        current = self.studio.current_session()
        if hidden and current is not None and current.character_id == character.id:
            self.studio.current.forget(current.slug)
        return self.studio.character(character.id)

    def _refuse_anchors(self, images: Sequence[Image]) -> None:
        """A character's current anchor is what every next shot is drawn from: it stays."""
        ids = {image.id for image in images}
        for character_id in sorted({image.character_id for image in images}):
            character = self.studio.character(character_id)
            if character.anchor_image_id in ids:
                raise UsageError(
                    f"image {character.anchor_image_id} is the anchor of {character.slug}: make "
                    "another image its anchor first (onmodel character anchor IMAGE), or hide "
                    f"{character.slug}"
                )

    def _refuse_in_flight(self, image_ids: Sequence[int], action: str) -> None:
        """An image a running process is still making would be written again when it ends.
        Pending rows nobody is making (their process ended, or they wait for ``attach``)
        are not in flight."""
        found = lineage.images_by_id(self.engine, image_ids)
        pending = [key for key, record in found.items() if record.status == ImageStatus.PENDING]
        if not pending:
            return
        stale = {row.image_id for row in find_stale(self.engine, self.studio.paths.home, pending)}
        for image_id in pending:
            if image_id not in stale and not is_manual(found[image_id].provider):
                raise UsageError(
                    f"image {image_id} is still being made; {action} once it has finished"
                )

    def _step_head_back(self, session_id: int, head_id: int | None) -> None:
        """A session whose head was hidden continues from its nearest shown, succeeded
        ancestor instead (none: from the anchor). Ancestors are read newest first, a chunk
        at a time, so a deep head costs one query for its path and rarely more than one for
        the images on it."""
        ancestors = lineage.ancestor_ids(self.engine, head_id) if head_id is not None else []
        chosen: int | None = None
        for end in range(len(ancestors), 0, -queries.ID_CHUNK):
            chunk = ancestors[max(end - queries.ID_CHUNK, 0) : end]
            found = lineage.images_by_id(self.engine, chunk)
            usable = [
                key
                for key in reversed(chunk)
                if key in found
                and found[key].hidden_at is None
                and found[key].status == ImageStatus.SUCCEEDED
            ]
            if usable:
                chosen = usable[0]
                break
        writes.update_session(
            self.engine, session_id, {"head_image_id": chosen, "last_response_id": None}
        )

    # ------------------------------------------------------------------ purging

    def purge(
        self, *, subtree: bool = False, dry_run: bool = False, grace: timedelta = IN_USE_GRACE
    ) -> PurgeReport:
        """See :meth:`Studio.purge`."""
        plan = plan_purge(self.engine, subtree=subtree)
        self._refuse_blocked(plan)
        sessions = tuple(self.studio.session(key).slug for key in plan.sessions)
        characters = tuple(self.studio.character(key).slug for key in plan.characters)
        taken, heads = self._taken(plan), self._heads(plan)
        if dry_run:
            found = (self.studio.blobs.size(sha256, fmt) for sha256, fmt in plan.files)
            sizes = [size for size in found if size is not None]
            return PurgeReport(
                done=False,
                images=len(plan.images),
                hidden_images=plan.hidden_images,
                sessions=sessions,
                characters=characters,
                files=len(sizes),
                bytes=sum(sizes),
                taken=taken,
                heads=heads,
            )
        deleted = sum(execute_purge(self.engine, plan))
        files = discard_unreferenced(self.engine, self.studio.blobs, plan.files, grace=grace)
        return PurgeReport(
            done=True,
            images=deleted,
            hidden_images=plan.hidden_images,
            sessions=sessions,
            characters=characters,
            files=files.files,
            bytes=files.bytes,
            files_kept=files.kept,
            taken=taken,
            heads=heads,
        )

    def _taken(self, plan: PurgePlan) -> dict[tuple[str, str], tuple[int, ...]]:
        """The shown images ``subtree`` takes, by the session they are in (or, outside any,
        the character they are of); each session and character looked up once."""
        grouped: dict[tuple[str, int], list[int]] = {}
        for image_id, session_id, character_id in plan.taken:
            owner = (
                ("session", session_id) if session_id is not None else ("character", character_id)
            )
            grouped.setdefault(owner, []).append(image_id)
        return {
            (what, self._slug(what, key)): tuple(images) for (what, key), images in grouped.items()
        }

    def _heads(self, plan: PurgePlan) -> dict[str, tuple[int, int | None]]:
        """Each kept session whose head goes: from which image to which (None: its anchor)."""
        return {self.studio.session(move.session).slug: (move.old, move.new) for move in plan.heads}

    def _slug(self, what: str, key: int) -> str:
        found = self.studio.session(key) if what == "session" else self.studio.character(key)
        return found.slug

    def _refuse_blocked(self, plan: PurgePlan) -> None:
        """The first thing that stands in the way, as one refusal."""
        if plan.appearances:
            self._refuse_appearance(plan.appearances[0])
        if plan.made_from:
            image_id, users = next(iter(plan.made_from.items()))
            raise UsageError(
                f"image {image_id} is to be purged but {len(users)} image(s) that stay were "
                f"made from it ({_listed(users)}); hide them too, or purge them with it "
                "(onmodel purge --subtree)"
            )
        if plan.anchors:
            image_id, character_id = plan.anchors[0]
            slug = self.studio.character(character_id).slug
            raise UsageError(
                f"image {image_id} is the anchor of {slug}, which stays: make another image "
                f"its anchor first (onmodel character anchor IMAGE), or hide {slug} too"
            )
        self._refuse_in_flight(plan.pending, "purge")

    def _refuse_appearance(self, appearance: Appearance) -> NoReturn:
        """A purged cast member that kept pictures show: those pictures (and what was made
        from them) would have to go with it, so the user hides them first or keeps it. Not
        ``--subtree``: that takes shown pictures, which no one should do in passing."""
        member = self.studio.character(appearance.character)
        who = member.slug if member.kind == "character" else f"{member.slug} ({member.kind})"
        images, below = appearance.images, appearance.made_from_them
        one = len(images) == 1
        pictures = f"{len(images)} picture{' that stays' if one else 's that stay'}"
        sessions = [self.studio.session(key).slug for key in appearance.sessions[:LISTED]]
        where = f" in session{'' if len(appearance.sessions) == 1 else 's'} " if sessions else ""
        where += ", ".join(sessions) + (", …" if len(appearance.sessions) > LISTED else "")
        taken = "that picture" if one else "those pictures"
        if below:
            taken += f" and {len(below)} made from {'it' if one else 'them'} ({_listed(below)})"
        everything = sorted({*images, *below})
        hide = (
            f"onmodel hide {' '.join(str(key) for key in everything)}"
            if len(everything) <= LISTED
            else f"onmodel images --with {member.slug} lists them"
        )
        raise UsageError(
            f"{who} is in {pictures} ({_listed(images)}){where}: purging it would take "
            f"{taken} with it; hide {'it' if len(everything) == 1 else 'them'} first ({hide}), "
            f"or keep {member.slug} (onmodel character unhide {member.slug})"
        )


def _listed(image_ids: Sequence[int]) -> str:
    """``#6, #10``: the first few ids a refusal names, then ``…``."""
    more = ", …" if len(image_ids) > LISTED else ""
    return ", ".join(f"#{key}" for key in image_ids[:LISTED]) + more
