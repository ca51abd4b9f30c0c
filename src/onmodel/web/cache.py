"""What a long series costs to read whole, kept between the server's requests.

At 100,000 images a session's lineage takes about 0.3 s to read (one recursive query for its
ids and links, and the index built from them, about 30 MB) and its totals about 0.2 s (most
of it summing the costs), where its stamp (:meth:`Studio.session_stamp`) takes a few
milliseconds. A page, and the poll that keeps it
live, would pay that on every request; so each is kept with the stamp it was read under:

- the totals while the stamp is the same (any change may change them);
- the lineage while no image has been added, hidden or shown again, which the images changed
  since its stamp tell (a star or a finished shot changes no parent link, and an image's
  parent never changes; a hidden image leaves the lineage, its children hung from the
  nearest shown ancestor).

Callers read the stamp *before* anything it stands for, so a change that lands in between is
seen again next time rather than missed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from onmodel.handles import Session
from onmodel.lineage import LineageIndex
from onmodel.presentation import Summary, session_summary
from onmodel.store import queries
from onmodel.studio import Studio

SESSIONS_KEPT = 4  # a 100,000-image lineage is tens of megabytes of ids
CHANGES_CHECKED = 200  # more changed since the lineage was read: read it again


@dataclass(frozen=True)
class _Lineage:
    """A lineage with the stamp taken before it was read (or last found current) and the
    root it was read with; replaced whole, so no thread sees one's stamp with another's ids."""

    index: LineageIndex
    stamp: str
    anchor_id: int | None


@dataclass
class _Kept:
    lineage: _Lineage | None = None
    summary: tuple[Summary, str] | None = None  # with the stamp taken before it was counted


class SessionCache:
    """The lineage and totals of the last few sessions shown, each revalidated by its stamp.

    Safe across the server's worker threads: two that miss at once both read, and the last
    one's result is kept (either is right for the stamp kept with it).
    """

    def __init__(self, studio: Studio, *, sessions: int = SESSIONS_KEPT) -> None:
        self.studio = studio
        self.sessions = sessions
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def lineage(self, session: Session, stamp: str) -> LineageIndex:
        """The session's lineage as of ``stamp`` or later."""
        anchor_id = session.character.anchor_image_id  # the root: a new anchor is a new tree
        kept = self._entry(session.id)
        known = kept.lineage
        if known is not None and known.anchor_id == anchor_id:
            if known.stamp == stamp:
                return known.index
            if self._same_shape(session, known):
                kept.lineage = _Lineage(known.index, stamp, anchor_id)
                return known.index
        index = session.lineage()
        kept.lineage = _Lineage(index, stamp, anchor_id)
        return index

    def summary(self, session: Session, stamp: str) -> Summary:
        """The session's totals as of ``stamp`` or later."""
        kept = self._entry(session.id)
        known = kept.summary
        if known is not None and known[1] == stamp:
            return known[0]
        summary = session_summary(session)
        kept.summary = (summary, stamp)
        return summary

    def _entry(self, session_id: int) -> _Kept:
        """The session's entry, made the most recent (the least recent goes past the bound)."""
        with self._lock:
            kept = self._kept.setdefault(session_id, _Kept())
            self._kept.move_to_end(session_id)
            while len(self._kept) > self.sessions:
                self._kept.popitem(last=False)
            return kept

    def _same_shape(self, session: Session, known: _Lineage) -> bool:
        """Whether every image changed since ``known`` was read is in it if and only if it
        is shown: none added, hidden or shown again. Read as records, which say whether an
        image is hidden (a handle does not)."""
        since = queries.stamp_change_time(known.stamp)
        engine = self.studio.engine
        changed = queries.images_changed_since(engine, session.id, since, CHANGES_CHECKED)
        return len(changed) < CHANGES_CHECKED and all(
            (record.id in known.index) == (record.hidden_at is None) for record in changed
        )
