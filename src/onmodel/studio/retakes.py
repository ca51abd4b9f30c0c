"""Retakes: make a shot, check it, and make it again until a take is on model.

Every take is kept, a sibling of the others under the same parent, numbered as a shot list's
``repeat`` takes are ("take 2/3"), with its check beside it. The best-scoring take is the pick:
it is marked, and a plain shot's session continues from it, whichever take was made last.
Money is watched as it is spent: before each take and each paid check, what has been spent so
far plus the worst case of the next step must stay under ``max_cost``, or the loop stops there
and says so; nothing already made is lost.

A take of several figures is checked per member; its check (a
:class:`~onmodel.store.checks.ShotCheck`) is its worst member's, at what the whole check cost,
so a take is on model only when every member is, and scores what its lowest member scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from onmodel.checkers.base import DEFAULT_MIN_SCORE
from onmodel.errors import BudgetError, GenerationError, UsageError
from onmodel.handles import Image
from onmodel.limits import check_amount
from onmodel.store import writes
from onmodel.store.records import CheckRecord
from onmodel.studio.plans import ShotPlan

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

MAX_TAKES = 10
"""A loop that has not passed in ten takes needs a person, not an eleventh take."""


@dataclass(frozen=True)
class Take:
    """One take: its image (failed ones included) and its check (None when it has none; for
    a take of several, its worst member's, every member's in ``check.members``)."""

    image: Image
    check: CheckRecord | None


@dataclass(frozen=True)
class RetakeReport:
    """What a retake loop made, which take it picked, and why it stopped."""

    takes: tuple[Take, ...]
    pick: Image | None  # the best-scoring take (None: no take could be checked)
    min_score: int
    checker: str
    stopped: str = ""  # why it ended before a take passed (a budget, a failure), if it did

    @property
    def passed(self) -> bool:
        """Whether the pick is on model (see :attr:`CheckRecord.passed`)."""
        best = self.best_check
        return best is not None and best.passed is True

    @property
    def best_check(self) -> CheckRecord | None:
        return next((t.check for t in self.takes if self.pick and t.image.id == self.pick.id), None)


def check_retake_options(takes: int, min_score: int | None) -> int:
    """The pass mark, once ``takes`` and ``min_score`` are known to be sensible."""
    if not 1 <= takes <= MAX_TAKES:
        raise UsageError(f"--takes must be 1 to {MAX_TAKES}, not {takes}")
    mark = DEFAULT_MIN_SCORE if min_score is None else min_score
    if not 0 <= mark <= 100:
        raise UsageError(f"--min-score must be 0 to 100, not {mark}")
    return mark


def shoot_until_on_model(
    studio: Studio,
    plan: ShotPlan,
    *,
    checker: str,
    takes: int,
    min_score: int | None = None,
    max_cost: Decimal | None = None,
) -> RetakeReport:
    """Make up to ``takes`` takes of ``plan``, checking each with ``checker``, until one
    scores ``min_score`` or more; mark the best one picked (and, for a plain shot, move the
    session's head to it). Takes already made stay whatever happens later."""
    mark = check_retake_options(takes, min_score)
    limit = None if max_cost is None else check_amount(max_cost, "--max-cost")
    studio.checks.ready(checker)  # a missing key refuses before anything is recorded
    if studio.provider(plan.provider).manual:
        raise UsageError(
            f"provider {plan.provider!r} waits for you to attach each picture, so its takes "
            "cannot be checked as they are made: make the shot without --check, then run "
            "onmodel check IMAGE once it is attached"
        )
    made: list[Take] = []
    spent = Decimal(0)
    stopped = ""
    for number in range(1, takes + 1):
        shot_cost = _known(plan.estimated_max_cost)
        if limit is not None and (shot_cost is None or spent + shot_cost > limit):
            stopped = _over_budget(f"take {number}", spent, shot_cost, limit)
            if not made:  # nothing made yet: a refusal, like a single shot's --max-cost
                raise BudgetError(stopped)
            break
        take = replace(plan, variation=number, variations=takes) if takes > 1 else plan
        try:
            image = studio.execute(take)
        except GenerationError as exc:
            if exc.image_id is not None:
                failed = studio.image(exc.image_id)
                made.append(Take(failed, None))
                spent += _known(failed.row.cost_usd) or Decimal(0)
            if not exc.retryable:
                stopped = str(exc)
                break
            continue
        spent += _known(image.row.cost_usd) or shot_cost or Decimal(0)
        try:
            record = studio.checks.check(
                image, checker, min_score=mark, max_cost=limit, spent=spent
            )
        except BudgetError as exc:
            made.append(Take(image, None))
            stopped = f"stopped before the check of take {number}: {exc}"
            break
        spent += _known(record.cost_usd) or Decimal(0)
        made.append(Take(image, record))
        if record.passed:
            break
    pick = _pick(studio, made, plan)
    return RetakeReport(tuple(made), pick, mark, checker, stopped)


def _pick(studio: Studio, made: Sequence[Take], plan: ShotPlan) -> Image | None:
    """The best take, marked: an on-model one before any that drifted, then the higher
    score, then the first of equals; a plain shot's head moves to it."""
    scored = [t for t in made if t.check is not None and t.check.score is not None]
    if not scored:
        return None

    def rank(take: Take) -> tuple[bool, int, int]:
        assert take.check is not None
        return (take.check.passed is True, take.check.score or 0, -take.image.id)

    best = max(scored, key=rank)
    session_id = plan.session_id if plan.batch_id is None else None
    writes.pick_take(studio.engine, best.image.id, [t.image.id for t in made], session_id)
    return studio.image(best.image.id)


def _known(amount: str | None) -> Decimal | None:
    return None if amount is None else Decimal(amount)


def _over_budget(step: str, spent: Decimal, worst: Decimal | None, limit: Decimal) -> str:
    could = "an unknown amount" if worst is None else f"up to ${worst}"
    return (
        f"stopped before {step}: it could cost {could} on top of ${spent}, over --max-cost {limit}"
    )
