"""Retakes in a shot list: which takes are due, which are not needed, and which one is the pick.

A checked shot with ``takes: K`` is a group of K takes (see :class:`~onmodel.batch.expand.
TakeOf`). A take is on model when its check passed (``CheckRecord.passed``: no trait drifted
and the score reached the list's pass mark), and drifted when its check answered and did not
pass. Take k+1 is due only when every take before it is made and drifted, or failed to be made
(and is not being made again), as in ``onmodel shot --takes``. Once a take passes, the takes
not made are not needed; once a group is settled (a take passed, or every take is made and
drifted), its best take is its pick: on model before drifted, then by score.

A check that failed (a judge's refusal, an API error) is not drift: the checker could not
answer, and nothing says a new paid image would be better. Its group waits, unsettled and
shown as ``check failed``: no take is made after it and nothing is picked. A later ``batch
run`` asks that check again, once a run (so a checker that keeps failing costs one ask per
run, never a loop), and the group goes on from the answer. (A group already on model has its
answer: a failed check of another of its takes is not asked again.)

All of it is decided here from what the database says (shot states by key, checks by image),
so the runner, its dry run and ``batch status`` agree, and a killed run, run again, goes on
from exactly where the rows are: nothing checked twice, no take made that is not due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Engine

from onmodel.batch.expand import TakeOf
from onmodel.store.checks import FINISHED, checks_of, newest_round, shot_check
from onmodel.store.records import CheckRecord

NOT_NEEDED = "not needed"
"""The state of a take never made because an earlier one was on model."""
RETAKE = "retake"
"""The state of a later take that is made only if the takes before it drift."""


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
    """What the takes of a list come to now.

    Every checked shot (a group) with an answered check is exactly one of on model, drifted
    (checked, none on model, no check failed) or check failed (none on model, a take's newest
    check failed), so the counts add up to the shots checked."""

    states: dict[str, str] = field(default_factory=dict)  # keys whose state the groups change
    checks: dict[int, CheckRecord] = field(default_factory=dict)  # by image id
    due: set[str] = field(default_factory=set)  # keys to make now
    unchecked: list[TakeEntry] = field(default_factory=list)  # made, waiting for their check
    unanswered: list[TakeEntry] = field(default_factory=list)  # newest check failed: ask again
    picks: dict[str, Pick] = field(default_factory=dict)  # by group, once settled
    repick: list[Pick] = field(default_factory=list)  # picks the store does not mark yet
    on_model: int = 0  # groups with a take on model
    drifted: list[str] = field(default_factory=list)  # groups checked, none on model
    check_failed: list[str] = field(default_factory=list)  # groups waiting on a failed check
    retaken: int = 0  # takes after the first that were made

    def state_of(self, entry: TakeEntry) -> str:
        return self.states.get(entry.key, entry.state)

    @property
    def to_check(self) -> list[TakeEntry]:
        """The made takes a run checks: those never checked, then those whose check failed."""
        return [*self.unchecked, *self.unanswered]

    def counts(self) -> dict[str, int]:
        """The checked shots (groups, not checks) as a run, ``batch status`` and their JSON
        show them: on model + drifted + check failed = shots checked."""
        return {
            "shots_checked": self.on_model + len(self.drifted) + len(self.check_failed),
            "on_model": self.on_model,
            "drifted": len(self.drifted),
            "check_failed": len(self.check_failed),
            "retaken": self.retaken,
        }

    def shot_dict(self, entry: TakeEntry) -> dict[str, Any]:
        """A shot's check and pick, as the JSON of a status or dry run shows them."""
        check = self.checks.get(entry.image_id) if entry.image_id is not None else None
        pick = self.picks.get(entry.take.group) if entry.take is not None else None
        passed = None
        if check is not None and check.status == "succeeded" and entry.take is not None:
            passed = on_model(check, entry.take)
        error = None
        if check is not None and check.status == "failed":
            error = check.error_message or check.error_type
        return {
            "take": None if entry.take is None else entry.take.to_dict(),
            "check_status": None if check is None else check.status,
            "score": None if check is None else check.score,
            "passed": passed,
            "check_error": error,
            "picked": pick is not None and pick.image_id == entry.image_id,
        }


def on_model(record: CheckRecord, take: TakeOf) -> bool:
    """Whether a check says its take is on model: ``CheckRecord.passed`` held to the list's
    ``min_score`` rather than the mark it was asked with, so a changed mark re-judges the
    takes without asking their checks again."""
    return replace(record, min_score=take.min_score).passed is True


def check_mark(shot: dict[str, Any], state: str) -> str:
    """A shot's check (a :meth:`Settlement.shot_dict`, the shot in ``state``) in a table cell:
    ``on model 93``, ``drifted 41, picked``, ``check failed``, the check it will get
    (``palette ≥ 80``, ``palette ≥ 80 if take 1 drifts``), or ``-`` when it gets none."""
    take = shot.get("take")
    if shot.get("check_status") == "failed":
        text = "check failed"
    elif shot.get("check_status") is not None:
        text = f"{'on model' if shot.get('passed') else 'drifted'} {shot['score']}"
    elif take is None or state == NOT_NEEDED:
        text = "-"
    else:
        text = f"{take['checker']} ≥ {take['min_score']}"
        number = int(take["take"])
        if number == 2:
            text += " if take 1 drifts"
        elif number > 2:
            text += f" if takes 1-{number - 1} drift"
    return f"{text}, picked" if shot.get("picked") else text


def describe_counts(counts: dict[str, int]) -> str:
    """:meth:`Settlement.counts` in words, ``3 shots checked (1 on model, 1 drifted, 1 check
    failed), 1 take retaken``; empty when no shot is checked or retaken."""
    parts = []
    if counts["shots_checked"]:
        outcomes = [f"{counts['on_model']} on model", f"{counts['drifted']} drifted"]
        if counts["check_failed"]:
            outcomes.append(f"{counts['check_failed']} check failed")
        parts.append(f"{_count(counts['shots_checked'], 'shot')} checked ({', '.join(outcomes)})")
    if counts["retaken"]:
        parts.append(f"{_count(counts['retaken'], 'take')} retaken")
    return ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def found_checks(engine: Engine, entries: Iterable[TakeEntry]) -> dict[int, CheckRecord]:
    """Each made take's newest finished check by its own checker, by image id: a query per
    chunk of ids (``checks_of``), however long the list. A shot of several is its newest
    round, judged by its worst member (a ``ShotCheck``): on model only when all are."""
    checker_of = {
        e.image_id: e.take.checker
        for e in entries
        if e.take is not None and e.state == "done" and e.image_id is not None
    }
    found: dict[int, CheckRecord] = {}
    for image_id, records in checks_of(engine, checker_of).items():
        # the newest answer counts: a failed check asked again and answered is checked
        mine = [r for r in records if r.checker == checker_of[image_id] and r.status in FINISHED]
        if mine:
            found[image_id] = shot_check(newest_round(mine))
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
    unchecked = [e for e in made if e.image_id not in checks]
    scored = [e for e in made if e.image_id in checks and _check(e, checks).status == "succeeded"]
    unanswered = [e for e in made if e.image_id in checks and e not in scored]
    settlement.unchecked.extend(unchecked)
    settlement.retaken += sum(1 for e in made if _take_number(e) > 1)
    passed = any(on_model(_check(e, checks), _take_of(e)) for e in scored)
    # a take not answered yet (never checked, or its check failed) holds the next take back
    waiting = unchecked or unanswered
    # a failed take not made again counts as made: the next take is made instead
    rest = [e for e in takes if e.state != "done" and (e.state != "failed" or runs(e))]
    if passed:
        settlement.states.update((e.key, NOT_NEEDED) for e in takes if e.state != "done")
        settlement.on_model += 1
    else:
        settlement.unanswered.extend(unanswered)
        if unanswered:
            settlement.check_failed.append(group)
        elif scored:
            settlement.drifted.append(group)
        if rest and not waiting and runs(rest[0]):
            settlement.due.add(rest[0].key)
        later = rest if waiting else rest[1:]
        settlement.states.update((e.key, RETAKE) for e in later if e.state != "running")
    settled = not unchecked and (passed or not (unanswered or rest))
    if not settled or not scored or len(takes) == 1:
        return  # a shot checked without takes is checked, not picked: there is no choice
    best = max(scored, key=lambda e: _rank(e, checks))
    assert best.image_id is not None
    pick = Pick(
        image_id=best.image_id,
        take_ids=tuple(e.image_id for e in made if e.image_id is not None),
        score=checks[best.image_id].score,
    )
    settlement.picks[group] = pick
    if not best.picked or any(e.picked for e in made if e is not best):
        settlement.repick.append(pick)


def _rank(entry: TakeEntry, checks: dict[int, CheckRecord]) -> tuple[bool, int, int]:
    """The pick's order, as ``shot --takes`` picks: an on-model take before any that drifted
    (a 95 with drifted hair is no pick over an 85 on model), then the higher score, then the
    first of equals."""
    record = _check(entry, checks)
    return (on_model(record, _take_of(entry)), record.score or 0, -(entry.image_id or 0))


def _check(entry: TakeEntry, checks: dict[int, CheckRecord]) -> CheckRecord:
    assert entry.image_id is not None
    return checks[entry.image_id]


def _take_of(entry: TakeEntry) -> TakeOf:
    assert entry.take is not None
    return entry.take
