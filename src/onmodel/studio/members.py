"""A session's cast, and who a shot shows: the lead, other characters and creatures, props,
and the set it takes place in.

A session has a lead (its character) and may have more members. A shot shows the lead unless
it says otherwise (``--with rin`` adds to the lead, ``--cast mia,rin`` names everyone, in
order) and takes place in one of the cast's sets (``--set bedroom``). Everything a shot's
cast could get wrong is refused here, in one line, before anything is recorded or paid: a
name not in the session's cast, a set asked to stand in a scene as a character, a character
asked to be the place, a member without an anchor to draw from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onmodel.errors import NotFoundError, UsageError
from onmodel.handles import Character, Session
from onmodel.kinds import SET, kind_label
from onmodel.sheet import ShotRequest
from onmodel.store import cast as cast_store

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


@dataclass(frozen=True)
class ShotCast:
    """Who one shot shows, in the order their anchors are sent, and where."""

    figures: tuple[Character, ...]  # characters, creatures and props, in the shot's order
    set: Character | None = None

    @property
    def everyone(self) -> tuple[Character, ...]:
        """Figures first, then the set: the order of their anchors and of ``image_cast``."""
        return (*self.figures, self.set) if self.set is not None else self.figures

    @property
    def ensemble(self) -> bool:
        """More than one figure, or a set: a shot whose prompt must say which image is whom."""
        return len(self.figures) > 1 or self.set is not None


def members(studio: Studio, session: Session) -> list[Character]:
    """See :attr:`Session.members`."""
    ids = cast_store.session_members(studio.engine, session.id)
    found = studio.lookups.characters_by_id(ids)
    return [found[each] for each in ids if each in found]


def add_members(
    studio: Studio, session: str | int | Session, names: Sequence[str | int | Character]
) -> list[Character]:
    """See :meth:`Studio.add_to_cast`."""
    chosen = studio.session(session)
    lead = chosen.character
    wanted = [studio.character(name) for name in names]  # an unknown name adds no one
    if not wanted:
        raise UsageError("name at least one character, creature, prop or set to add")
    for each in wanted:
        if each.id == lead.id:
            raise UsageError(f"{each.slug!r} is already the lead of session {chosen.slug!r}")
    added = set(cast_store.add_members(studio.engine, chosen.id, [each.id for each in wanted]))
    return [each for each in wanted if each.id in added]


def remove_member(
    studio: Studio, session: str | int | Session, name: str | int | Character
) -> Character:
    """See :meth:`Studio.remove_from_cast`."""
    chosen = studio.session(session)
    member = studio.character(name)
    if member.id == chosen.character_id:
        raise UsageError(
            f"{member.slug!r} is the lead of session {chosen.slug!r}; a session keeps its lead"
        )
    if not cast_store.remove_member(studio.engine, chosen.id, member.id):
        raise NotFoundError(f"{member.slug!r} is not in the cast of session {chosen.slug!r}")
    return member


def shot_cast(studio: Studio, session: Session, request: ShotRequest) -> ShotCast:
    """Who ``request`` shows in ``session``, each checked against its cast and its kind."""
    lead = session.character
    if not request.cast and not request.set:
        return ShotCast(figures=(lead,))
    cast = {member.id: member for member in [lead, *members(studio, session)]}
    names = ", ".join(member.slug for member in cast.values())

    def member(name: str) -> Character:
        """The member ``name`` (a slug, a name or an id) names, refused unless it is in the
        session's cast and shown."""
        known = studio.lookups.find_character(name.removeprefix("#"))
        if known is None:
            raise NotFoundError(
                f"no character, creature, prop or set {name!r} (see: onmodel character list)"
            )
        if known.id not in cast:
            raise UsageError(
                f"{known.kind} {known.slug!r} is not in the cast of session {session.slug!r} "
                f"({names}): add it with `onmodel session cast add {known.slug} "
                f"--session {session.slug}`"
            )
        if known.hidden_at is not None:
            raise UsageError(
                f"{known.kind} {known.slug!r} is hidden: unhide it to put it in a shot "
                f"(onmodel character unhide {known.slug})"
            )
        return known

    figures: list[Character] = []
    for name in request.cast or [lead.slug]:
        found = member(name)
        if found.kind == SET:
            raise UsageError(
                f"{found.slug!r} is a set, not someone in the scene: use --set {found.slug}"
            )
        figures.append(found)
    where: Character | None = None
    if request.set:
        where = member(request.set)
        if where.kind != SET:
            raise UsageError(
                f"{where.slug!r} is {kind_label(where.kind)}, not a set: use --with "
                f"{where.slug} to put it in the shot"
            )
    if not figures:
        raise UsageError("a shot shows at least one character, creature or prop")
    unique = {member.id: member for member in figures}  # each once, first place kept
    return ShotCast(figures=tuple(unique.values()), set=where)
