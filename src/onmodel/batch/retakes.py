"""Retakes in a shot list: which takes are due, which are not needed, and which one is the pick.

A checked shot with ``takes: K`` is a group of K takes (see :class:`~onmodel.batch.expand.
TakeOf`). Take k+1 is due only when every take before it is made and none is on model: a take
is made when it succeeded and has been checked, or failed (and is not being made again), as in
``onmodel shot --takes``, where a failed take is followed by the next. Once a take passes, the
takes not made are not needed; once a group is settled (a take passed, or every take is made),
its best-scoring take is its pick.

All of it is decided here from what the database says (shot states by key, checks by image),
so the runner, its dry run and ``batch status`` agree, and a killed run, run again, goes on
from exactly where the rows are: nothing checked twice, no take made that is not due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine

from onmodel.batch.expand import TakeOf
from onmodel.store.checks import checks_of
from onmodel.store.records import CheckRecord

NOT_NEEDED = "not needed"
"""The state of a take never made because an earlier one was on model."""
RETAKE = "retake"
"""The state of a later take that is made only if the takes before it drift."""
FINISHED = ("succeeded", "failed")
"""Check states that count as checked (pending and interrupted checks are asked again)."""


class TakeEntry(Protocol):
    """One shot of a list as the store sees it (a runner's status or a status line)."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def take(self) -> TakeOf | None: ...

    @property
    def state(self) -> str: ...

    @property
    def image_id(self) -> int | None: ...

    @property
    def picked(self) -> bool: ...


@dataclass(frozen=True)
class Pick:
    """A settled group's best take, its score, and every take of the group made."""

    image_id: int
    take_ids: tuple[int, ...]
    score: int | None


@dataclass
class Settlement:
    """What the takes of a list come to now."""

    states: dict[str, str] = field(default_factory=dict)  # keys whose state the groups change
    checks: dict[int, CheckRecord] = field(default_factory=dict)  # by image id
    due: set[str] = field(default_factory=set)  # keys to make now
    unchecked: list[TakeEntry] = field(default_factory=list)  # made, waiting for their check
    picks: dict[str, Pick] = field(default_factory=dict)  # by group, once settled
    repick: list[Pick] = field(default_factory=list)  # picks the store does not mark yet
    on_model: int = 0  # groups with a take on model
    drifted: list[str] = field(default_factory=list)  # groups checked, none on model
    retaken: int = 0  # takes after the first that were made

    def state_of(self, entry: TakeEntry) -> str:
        return self.states.get(entry.key, entry.state)

    def counts(self) -> dict[str, int]:
        """The check counts a report or status shows beside the shot states."""
        return {
            "checked": len(self.checks),
            "on model": self.on_model,
            "drifted": len(self.drifted),
            "retaken": self.retaken,
        }

    def shot_dict(self, entry: TakeEntry) -> dict[str, Any]:
        """A shot's check and pick, as the JSON of a status or dry run shows them."""
        check = self.checks.get(entry.image_id) if entry.image_id is not None else None
        pick = self.picks.get(entry.take.group) if entry.take is not None else None
        passed = None
        if check is not None and entry.take is not None:
            passed = entry.take.passes(check.score)
        return {
            "take": None if entry.take is None else entry.take.to_dict(),
            "check_status": None if check is None else check.status,
            "score": None if check is None else check.score,
            "passed": passed,
            "picked": pick is not None and pick.image_id == entry.image_id,
        }


def check_mark(shot: dict[str, Any]) -> str:
    """A shot's check (a :meth:`Settlement.shot_dict`) in a table cell: ``on model 93``,
    ``drifted 41, picked``, ``check failed``, or ``-`` when it has none."""
    if shot.get("check_status") is None:
        text = "-"
    elif shot.get("score") is None:
        text = "check failed"
    else:
        text = f"{'on model' if shot.get('passed') else 'drifted'} {shot['score']}"
    return f"{text}, picked" if shot.get("picked") else text


def found_checks(engine: Engine, entries: Iterable[TakeEntry]) -> dict[int, CheckRecord]:
    """Each made take's newest finished check by its own checker, by image id: a query per
    chunk of ids (``checks_of``), however long the list."""
    checker_of = {
        e.image_id: e.take.checker
        for e in entries
        if e.take is not None and e.state == "done" and e.image_id is not None
    }
    found: dict[int, CheckRecord] = {}
    for image_id, records in checks_of(engine, checker_of).items():
        for record in records:
            # a failed check is an answer too ("could not tell"): it is not asked again
            if record.checker == checker_of[image_id] and record.status in FINISHED:
                found[image_id] = record
    return found


def settle(
    entries: Sequence[TakeEntry],
    checks: dict[int, CheckRecord],
    runs: Callable[[TakeEntry], bool],
) -> Settlement:
    """Decide every group of ``entries``; ``runs`` says whether a shot not made would be made
    now (new, interrupted, or failed under ``--retry-failed``, and not tried yet this run)."""
    settlement = Settlement(checks=checks)
    groups: dict[str, list[TakeEntry]] = {}
    for entry in entries:
        if entry.take is None:
            if runs(entry):
                settlement.due.add(entry.key)
        else:
            groups.setdefault(entry.take.group, []).append(entry)
    for group, takes in groups.items():
        _settle_group(settlement, group, sorted(takes, key=_take_number), runs)
    return settlement


def _take_number(entry: TakeEntry) -> int:
    return entry.take.take if entry.take is not None else 0


def _settle_group(
    settlement: Settlement,
    group: str,
    takes: list[TakeEntry],
    runs: Callable[[TakeEntry], bool],
) -> None:
    checks = settlement.checks
    made = [e for e in takes if e.state == "done" and e.image_id is not None]
    scored = [e for e in made if e.image_id in checks]
    unchecked = [e for e in made if e.image_id not in checks]
    settlement.unchecked.extend(unchecked)
    settlement.retaken += sum(1 for e in made if _take_number(e) > 1)
    passed = any(_passes(e, checks) for e in scored)
    # a failed take not made again counts as made: the next take is made instead
    rest = [e for e in takes if e.state != "done" and (e.state != "failed" or runs(e))]
    if passed:
        settlement.states.update((e.key, NOT_NEEDED) for e in takes if e.state != "done")
        settlement.on_model += 1
    else:
        if scored:
            settlement.drifted.append(group)
        if rest and not unchecked and runs(rest[0]):
            settlement.due.add(rest[0].key)
        later = rest if unchecked else rest[1:]
        settlement.states.update((e.key, RETAKE) for e in later if e.state != "running")
    settled = not unchecked and (passed or not rest)
    if not settled or not scored or len(takes) == 1:
        return  # a shot checked without takes is checked, not picked: there is no choice
    best = max(scored, key=lambda e: (_score(e, checks), -(e.image_id or 0)))
    assert best.image_id is not None
    pick = Pick(
        image_id=best.image_id,
        take_ids=tuple(e.image_id for e in made if e.image_id is not None),
        score=checks[best.image_id].score,
    )
    settlement.picks[group] = pick
    if not best.picked or any(e.picked for e in made if e is not best):
        settlement.repick.append(pick)


def _score(entry: TakeEntry, checks: dict[int, CheckRecord]) -> int:
    """A take's score; a check that failed (no score) ranks below any."""
    score = checks[entry.image_id].score if entry.image_id is not None else None
    return -1 if score is None else score


def _passes(entry: TakeEntry, checks: dict[int, CheckRecord]) -> bool:
    assert entry.take is not None and entry.image_id is not None
    return entry.take.passes(checks[entry.image_id].score)
