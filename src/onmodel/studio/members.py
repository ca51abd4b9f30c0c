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


def members(studio: Studio, session: Session) -> list[Character]:
    """See :attr:`Session.members`."""
    ids = cast_store.session_members(studio.engine, session.id)
    found = studio.lookups.characters_by_id(ids)
    return [found[each] for each in ids if each in found]


def sessions_casting(studio: Studio, character: Character) -> list[Session]:
    """See :meth:`Studio.sessions_casting`."""
    ids = sorted(cast_store.sessions_with_member(studio.engine, character.id))
    return [studio.lookups.session(each) for each in ids]


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


@dataclass(frozen=True)
class Roster:
    """A session's cast as read once (the lead first), to resolve the names of many shots
    without a query per shot: a batch plans thousands from one planner."""

    session: Session
    everyone: tuple[Character, ...]

    def find(self, name: str) -> Character | None:
        """The member ``name`` names: its slug, its name (in any case), or its id (``12``
        or ``#12``), as :meth:`Studio.character` finds one."""
        key = name.removeprefix("#")
        for member in self.everyone:
            if key in (member.slug, member.name, str(member.id)):
                return member
        folded = key.lower()
        for member in self.everyone:
            if folded in (member.slug.lower(), member.name.lower()):
                return member
        return None


def roster(studio: Studio, session: Session) -> Roster:
    """See :class:`Roster`."""
    return Roster(session, (session.character, *members(studio, session)))


def shot_cast(studio: Studio, cast: Roster, request: ShotRequest) -> ShotCast:
    """Who ``request`` shows, each checked against the session's cast and its kind."""
    lead = cast.everyone[0]
    if not request.cast and not request.set:
        return ShotCast(figures=(lead,))
    session = cast.session

    def member(name: str) -> Character:
        """The member ``name`` names, refused unless it is in the cast and shown."""
        found = cast.find(name)
        if found is None:  # only a mistake reads the database again, to name it well
            known = studio.lookups.find_character(name)
            if known is None:
                raise NotFoundError(
                    f"no character, creature, prop or set {name!r} (see: onmodel character list)"
                )
            names = ", ".join(each.slug for each in cast.everyone)
            raise UsageError(
                f"{known.kind} {known.slug!r} is not in the cast of session {session.slug!r} "
                f"({names}): add it with `onmodel session cast add {known.slug} "
                f"--session {session.slug}`"
            )
        if found.hidden_at is not None:
            raise UsageError(
                f"{found.kind} {found.slug!r} is hidden: unhide it to put it in a shot "
                f"(onmodel character unhide {found.slug})"
            )
        return found

    figures: list[Character] = []
    for name in request.cast or [lead.slug]:
        found = member(name)
        if found.kind == SET:
            raise UsageError(
                f"{found.slug!r} is a set, not someone in the scene: make it the shot's set "
                f"(--set {found.slug}; set: {found.slug} in a shot list)"
            )
        if any(each.id == found.id for each in figures):
            raise UsageError(f"{found.slug!r} is named twice in the shot's cast")
        figures.append(found)
    where: Character | None = None
    if request.set:
        where = member(request.set)
        if where.kind != SET:
            raise UsageError(
                f"{where.slug!r} is {kind_label(where.kind)}, not a set: put it in the shot "
                f"with the others (--with {where.slug}; with: {where.slug} in a shot list)"
            )
    return ShotCast(figures=tuple(figures), set=where)
