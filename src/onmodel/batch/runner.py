"""Running a shot list: concurrent, rate-limited, budgeted, and safe to kill at any moment.

How a run stays safe:

* **One run per session** (an OS file lock), so every ``pending`` batch row found at the start
  belongs to a dead run: it is marked ``interrupted`` and its shot is made again, linked to it by
  ``retry_of_id``. Nothing else is re-made: a key with a succeeded row is done, and a failed one
  waits for ``--retry-failed``.
* **Each shot goes through** :meth:`Studio.execute`, which records a pending row before paying
  and writes the image file (atomically) before marking the row succeeded, so a kill at any
  instant leaves either a pending row (re-made next time) or a finished one with its file.
* **Workers only execute.** Planning, the budget, the rate and every counter live in the main
  thread; workers hand back small outcomes, so nothing piles up as the batch grows and image
  bytes are on disk (and out of memory) as soon as each shot returns.
* **Signals.** The first Ctrl-C stops scheduling and lets the shots in flight finish (they are
  already paid for); a second Ctrl-C, or SIGTERM, gives up on them at once: their rows are
  marked ``interrupted`` and the run exits non-zero. SIGKILL leaves pending rows, handled as
  above by the next run.

Retakes run in rounds inside the one locked run (see ``batch/retakes.py`` for the rules): the
shots due are made as above, then every made take of a checked shot that has no answer from its
checker yet is checked, in the main thread (a paid check's cost counts against ``--budget``
before it is asked, and its actual cost into the spend; a checker whose cost cannot be
estimated refuses a budgeted run before anything is made), settled groups get their pick, and
the next round makes take k+1 of every group whose takes so far all drifted, until nothing is
due. A take whose check failed is asked again once per run, never retaken for it.

Parent choice: every shot without ``from:`` branches from the batch's parent, fixed when the
batch first runs (the session head then, or the anchor), and batch shots do not move the head.
So a series is siblings of one image, a resumed run adds to the same family, and a later
``onmodel shot`` continues from where the series was, not from whichever shot finished last.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, cast

from onmodel.batch.expand import (
    ExpandedShot,
    Expansion,
    SessionDefaults,
    expand,
    member_names,
)
from onmodel.batch.lock import SessionLock
from onmodel.batch.progress import NullProgress, Progress, Snapshot
from onmodel.batch.rate import RateLimiter, SharedRateLimiter
from onmodel.batch.retakes import (
    NOT_NEEDED,
    RETAKE,
    Settlement,
    TakeEntry,
    describe_counts,
    found_checks,
    on_model,
    settle,
)
from onmodel.batch.shared import (
    POLL_SECONDS,
    Departure,
    SharedRun,
    run_is_live,
    shares_batches,
)
from onmodel.batch.spec import (
    LoadedShotList,
    Problem,
    ShotListError,
    load_shot_list,
    sorted_problems,
)
from onmodel.errors import BudgetError, GenerationError, OnmodelError, UsageError
from onmodel.limits import check_amount
from onmodel.owners import owner_token
from onmodel.providers import warm_up_in_background
from onmodel.status import ImageStatus
from onmodel.store.batches import (
    KeyRecord,
    batch_ids_named,
    find_batch,
    get_batch,
    image_failure,
    interrupt_pending,
    key_records,
    save_batch,
)
from onmodel.store.claims import nano_to_usd
from onmodel.store.stale import live_owners
from onmodel.store.writes import pick_take

if TYPE_CHECKING:
    from onmodel.batch.expand import TakeOf
    from onmodel.capabilities import PriceTable
    from onmodel.checkers.base import Checker
    from onmodel.handles import Character, Session
    from onmodel.store.records import CheckRecord
    from onmodel.studio import Delivery, ShotPlan, ShotPlanner, Studio

MAX_CONCURRENCY = 64
MIN_RPM = 0.01  # one request every 100 minutes: slower is a typo, and would wait for ever
STORE_THREADS = 2
"""Enough to overlap one file's fsyncs with the next; SQLite takes one writer at a time anyway."""
WARM_UP_WAIT_SECONDS = 30.0
"""How long a run that ends waits for its providers' warm-up (a daemon thread) to finish."""
FATAL_ERROR_TYPES = frozenset({"auth", "quota"})
"""Failures that every later shot would hit too: stop scheduling instead of failing them all."""

ShotState = Literal["done", "new", "interrupted", "failed", "running", "retake", "not needed"]
StopReason = Literal["completed", "budget", "interrupted", "fatal"]


class BatchInterrupted(OnmodelError):
    """The run was stopped by a signal; shots in flight are recorded as interrupted."""

    def __init__(self, message: str, *, exit_code: int, report: BatchReport) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.report = report


class BatchIncompleteError(OnmodelError):
    """The run ended with shots failed or not made; the report says which and why."""

    def __init__(self, message: str, *, report: BatchReport) -> None:
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ShotStatus:
    """Where one shot of the list stands in the database."""

    shot: ExpandedShot
    state: ShotState
    image_id: int | None = None
    error: str | None = None
    picked: bool = False  # the image is its retake group's pick

    @property
    def key(self) -> str:
        return self.shot.key

    @property
    def label(self) -> str:
        return self.shot.label

    @property
    def take(self) -> TakeOf | None:
        return self.shot.take

    @property
    def will_run(self) -> bool:
        return self.state in ("new", "interrupted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.shot.number,
            "key": self.shot.key,
            "label": self.shot.label,
            "line": self.shot.line,
            "state": self.state,
            "image_id": self.image_id,
            "error": self.error,
        }


@dataclass(frozen=True)
class PlannedShot:
    """A dry-run line: what would happen to the shot, and what it could cost at most."""

    status: ShotStatus
    runs: bool
    parent_id: int | None
    estimate: Decimal | None
    prompt_chars: int | None

    def to_dict(self) -> dict[str, Any]:
        shot = self.status.shot
        return {
            **self.status.to_dict(),
            **shot.to_dict(),
            "runs": self.runs,
            "parent_id": self.parent_id,
            "estimated_max_cost_usd": None if self.estimate is None else str(self.estimate),
            "prompt_chars": self.prompt_chars,
        }


@dataclass(frozen=True)
class BatchPreview:
    """The whole dry run: every shot, what runs, and the estimated total."""

    name: str
    session: str
    parent_id: int | None
    shots: list[PlannedShot]
    warnings: list[str]
    budget: Decimal | None
    settlement: Settlement = field(default_factory=Settlement)
    paid_checks: int = 0  # checks a billed checker would make at most (priced per image)
    unpriced_checks: list[str] = field(default_factory=list)  # why a check's cost is unknown

    @property
    def to_run(self) -> list[PlannedShot]:
        return [s for s in self.shots if s.runs]

    @property
    def estimated_total(self) -> Decimal | None:
        """The upper bound for the shots that would run (their checks are priced once their
        images exist); None when any of them is unknown."""
        total = Decimal(0)
        for planned in self.to_run:
            if planned.estimate is None:
                return None
            total += planned.estimate
        return total

    @property
    def within_budget(self) -> int:
        """How many of the shots to run fit the budget by their estimates, in order."""
        if self.budget is None:
            return len(self.to_run)
        spent, count = Decimal(0), 0
        for planned in self.to_run:
            if planned.estimate is None or spent + planned.estimate > self.budget:
                break
            spent += planned.estimate
            count += 1
        return count

    def to_dict(self) -> dict[str, Any]:
        total = self.estimated_total
        return {
            "name": self.name,
            "session": self.session,
            "parent_id": self.parent_id,
            "shots": [{**s.to_dict(), **self.settlement.shot_dict(s.status)} for s in self.shots],
            "to_run": len(self.to_run),
            "paid_checks": self.paid_checks,
            "unpriced_checks": self.unpriced_checks,
            "estimated_max_cost_usd": None if total is None else str(total),
            "budget_usd": None if self.budget is None else str(self.budget),
            "within_budget": self.within_budget,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class ShotFailure:
    number: int
    label: str
    line: int
    key: str
    image_id: int | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "label": self.label,
            "line": self.line,
            "key": self.key,
            "image_id": self.image_id,
            "error": self.error,
        }


@dataclass
class BatchReport:
    """What a run did. Per-shot detail lives in the database (``onmodel batch status``)."""

    batch_id: int
    name: str
    session: str
    total: int
    already_done: int
    skipped_failed: int
    to_run: int
    succeeded: int = 0
    failed: int = 0
    interrupted: int = 0
    spent: Decimal = Decimal(0)
    spent_unknown: int = 0
    budget: Decimal | None = None
    elapsed: float = 0.0
    stop_reason: StopReason = "completed"
    message: str = ""
    failures: list[ShotFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks_made: int = 0  # checks this run asked for, failed ones included
    picked: int = 0  # groups whose pick this run marked (or moved)
    not_needed: int = 0  # takes never made: an earlier take was on model
    unchecked: int = 0  # takes made and not checked (the run stopped first)
    # the list's checked shots after this run (Settlement.counts), as `batch status` counts them
    check_counts: dict[str, int] = field(default_factory=dict)
    drifted: list[ShotFailure] = field(default_factory=list)  # groups checked, none on model
    check_failed: list[ShotFailure] = field(default_factory=list)  # groups a failed check holds
    checks: list[dict[str, Any]] = field(default_factory=list)  # each check this run made
    # a worker of a shared batch: shots other workers made during this run, and whether this
    # worker is the one that marked the batch completed (None: the batch was not shared)
    made_elsewhere: int = 0
    completed_here: bool | None = None
    left_over: int | None = None  # a shared batch's shots no worker made (see not_run)

    @property
    def not_run(self) -> int:
        """Shots due that were not made: by this run; for a worker of a shared batch, by
        any worker (as the rows say when it leaves)."""
        if self.left_over is not None:
            return self.left_over
        return max(0, self.to_run - self.succeeded - self.failed - self.interrupted)

    @property
    def complete(self) -> bool:
        """Every shot of the list now has a succeeded image (checked, if asked, by a check that
        answered), or is a take not needed."""
        made = self.already_done + self.succeeded + self.made_elsewhere + self.not_needed
        made = made == self.total
        return made and not self.unchecked and not self.check_failed

    def summary(self) -> str:
        parts = [f"{self.succeeded} made", f"{self.failed} failed"]
        if self.made_elsewhere:
            parts.append(f"{self.made_elsewhere} made by other workers")
        if self.interrupted:
            parts.append(f"{self.interrupted} interrupted")
        if self.not_run:
            parts.append(f"{self.not_run} not run")
        if self.already_done:
            parts.append(f"{self.already_done} already done")
        if self.skipped_failed:
            parts.append(f"{self.skipped_failed} failed before (not retried)")
        if self.not_needed:
            parts.append(f"{self.not_needed} take{_plural(self.not_needed)} not needed")
        if self.checks_made:
            parts.append(f"{self.checks_made} check{_plural(self.checks_made)} made")
        checked = describe_counts(self.check_counts) if self.check_counts else ""
        if checked:
            parts.append(checked)
        cost = f"${self.spent:.4f}"
        if self.spent_unknown:
            cost += f" + {self.spent_unknown} of unknown cost"
        if self.budget is not None:
            cost += f" of ${self.budget} budget"
        finished = "; this worker completed the batch" if self.completed_here else ""
        return (
            f"batch {self.name} (#{self.batch_id}) on {self.session}: {', '.join(parts)}; "
            f"{cost}; {self.elapsed:.1f}s{finished}"
        )

    def problem(self) -> str | None:
        """Why the run is not a clean success, in one line, or None when it is."""
        if self.complete:
            if not self.drifted:
                return None
            return (
                f"{len(self.drifted)} shot(s) still drifted after their takes "
                "(the best take of each is picked; see `onmodel batch status`)"
            )
        reasons: list[str] = []
        if self.failed or self.skipped_failed:
            reasons.append(
                f"{self.failed + self.skipped_failed} failed "
                "(see `onmodel batch status`; re-run with --retry-failed)"
            )
        why = {"budget": self.message or "the budget is reached", "fatal": self.message}.get(
            self.stop_reason, "the run stopped"
        )
        if self.not_run:
            reasons.append(f"{self.not_run} not run ({why})")
        if self.unchecked:
            reasons.append(f"{self.unchecked} made and not checked ({why})")
        if self.check_failed:
            reasons.append(
                f"{len(self.check_failed)} shot(s) whose check failed, so they are neither on "
                "model nor drifted (run it again to ask those checks again; no take is made "
                "for a failed check)"
            )
        return "batch incomplete: " + "; ".join(reasons or ["shots remain"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "name": self.name,
            "session": self.session,
            "total": self.total,
            "already_done": self.already_done,
            "made_elsewhere": self.made_elsewhere,
            "completed_here": self.completed_here,
            "skipped_failed": self.skipped_failed,
            "to_run": self.to_run,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "not_run": self.not_run,
            "complete": self.complete,
            "spent_usd": str(self.spent),
            "spent_unknown": self.spent_unknown,
            "budget_usd": None if self.budget is None else str(self.budget),
            "elapsed_s": round(self.elapsed, 3),
            "stop_reason": self.stop_reason,
            "message": self.message,
            "failures": [f.to_dict() for f in self.failures],
            "warnings": self.warnings,
            "checks_made": self.checks_made,
            "picked": self.picked,
            "not_needed": self.not_needed,
            "unchecked": self.unchecked,
            "check_counts": self.check_counts,
            "drifted": [d.to_dict() for d in self.drifted],
            "check_failed": [f.to_dict() for f in self.check_failed],
            "checks": self.checks,
        }


# ---------------------------------------------------------------------------------- helpers


def _decimal(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class _Job:
    shot: ExpandedShot
    plan: ShotPlan
    estimate: Decimal


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    status: Literal["succeeded", "failed", "error"]
    image_id: int | None
    seconds: float
    cost: Decimal | None = None
    error: str | None = None
    error_type: str | None = None
    retry_after: float | None = None  # what a rate limit asked to wait


@dataclass
class _Prepared:
    session: Session
    expansion: Expansion
    batch_id: int | None
    batch_ids: set[int]  # every batch of this name in the session: whose shots are this list's
    key_slug: str  # the session slug the shots' keys are made with
    parent_id: int | None
    counters: dict[str, Any]


@dataclass(frozen=True)
class _Released:
    """A request came back: its slot is free, though its image may still be being stored."""

    job: _Job


class _Pipeline:
    """Request threads, one per slot, handing answers to a few store threads.

    Storing an answer (checking the image, writing the file with its fsyncs, updating the row)
    happens off the request threads, so a slot starts its next request as soon as an answer
    arrives instead of waiting on the disk. The hand-over queue is bounded: at most one image
    per slot waits in memory, and a slow disk slows the requests rather than filling memory.
    """

    def __init__(
        self,
        *,
        slots: int,
        request: Callable[[_Job], Delivery | _Outcome],
        store: Callable[[_Job, Delivery], _Outcome],
        stopped: Callable[[], bool],
    ) -> None:
        self._request = request
        self._store = store
        self._stopped = stopped
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.Queue[_Outcome | _Released] = queue.Queue()
        self._deliveries: queue.Queue[tuple[_Job, Delivery] | None] = queue.Queue(
            maxsize=max(1, slots)
        )
        # daemon threads: a run that gives up must not wait for a request to return
        self._requesters = [
            threading.Thread(target=self._requester, name=f"onmodel-batch-{i}", daemon=True)
            for i in range(slots)
        ]
        self._storers = [
            threading.Thread(target=self._storer, name=f"onmodel-store-{i}", daemon=True)
            for i in range(min(STORE_THREADS, slots))
        ]
        for thread in self.threads:
            thread.start()

    @property
    def threads(self) -> list[threading.Thread]:
        return [*self._requesters, *self._storers]

    def _requester(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self._stopped():  # taken after the run gave up: never start a new request
                continue
            answer = self._request(job)
            if isinstance(answer, _Outcome):
                self.results.put(answer)
            else:
                self._deliveries.put((job, answer))  # waits while the store threads catch up
                self.results.put(_Released(job))

    def _storer(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is None:
                return
            self.results.put(self._store(*item))

    def close(self, *, wait: bool) -> None:
        """Stop every thread once it has finished what it holds; ``wait`` joins them."""

        def shut_down() -> None:
            for _ in self._requesters:
                self.jobs.put(None)
            for thread in self._requesters:
                thread.join()
            for _ in self._storers:
                self._deliveries.put(None)
            for thread in self._storers:
                thread.join()

        if wait:
            shut_down()
        else:
            threading.Thread(target=shut_down, name="onmodel-batch-close", daemon=True).start()


# ---------------------------------------------------------------------------------- runner


class BatchRunner:
    """Runs (or previews) one shot list against a studio; see the module docstring."""

    def __init__(
        self,
        studio: Studio,
        shot_list: LoadedShotList | Path | str,
        *,
        session: str | int | None = None,
        concurrency: int = 4,
        rpm: float | None = None,
        budget: Decimal | float | str | None = None,
        retry_failed: bool = False,
        progress: Progress | None = None,
        handle_signals: bool = True,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be 1 to {MAX_CONCURRENCY}, not {concurrency}")
        if rpm is not None and not (math.isfinite(rpm) and rpm >= MIN_RPM):
            raise UsageError(f"--rpm must be a number of at least {MIN_RPM:g}, not {rpm}")
        self.studio = studio
        self.loaded = (
            shot_list if isinstance(shot_list, LoadedShotList) else load_shot_list(shot_list)
        )
        self.session_ref = session
        self.concurrency = concurrency
        self.rpm = rpm
        self.budget = _budget(budget)
        self.retry_failed = retry_failed
        self.progress: Progress = progress or NullProgress()
        self.handle_signals = handle_signals
        self._prices: PriceTable | None = None
        self._planners: dict[int | None, ShotPlanner] = {}  # by the image shots branch from
        self._session_id = 0
        self._counters: dict[str, Any] = {}
        self._drain = False
        self._stop_workers = False
        self._workers: list[threading.Thread] = []
        self._abandon_signal: int | None = None
        self._checkers: dict[str, Checker] = {}
        # a batch shared by workers on several machines (PostgreSQL; see batch/shared.py)
        self._shared: SharedRun | None = None
        self._shots: dict[str, ExpandedShot] = {}  # by key: what a claimed key is
        self._claimed: deque[ShotStatus] = deque()  # claimed, not planned yet
        self._batch_ids: set[int] = set()

    # ------------------------------------------------------------------ shared preparation

    def _prepare(self) -> _Prepared:
        ref = self.session_ref if self.session_ref is not None else self.loaded.spec.session
        session = self.studio.session(ref)
        engine = self.studio.engine
        row = find_batch(engine, session.id, self.loaded.name)
        # a batch keeps the slug its keys were first made with: a renamed session's batch
        # still finds its shots
        key_slug = (row.key_slug if row is not None else None) or session.slug
        defaults = SessionDefaults(
            slug=key_slug,
            provider=session.provider,
            model=session.model,
            params=dict(session.params),
            lead=session.character.slug,
            **self._members(session.character),
            model_for=lambda provider: self.studio.planning.model_for(
                provider, None, session.model
            ),
        )
        expansion = expand(self.loaded, defaults)
        stored = row.spec.get("parent_image_id") if row is not None else None
        if isinstance(stored, int):
            parent_id: int | None = stored
        else:
            fresh = self.studio.session(session.id)
            parent_id = fresh.head_image_id or fresh.character.anchor_image_id
        return _Prepared(
            session=session,
            expansion=expansion,
            batch_id=row.id if row is not None else None,
            batch_ids=batch_ids_named(engine, session.id, self.loaded.name),
            key_slug=key_slug,
            parent_id=parent_id,
            counters=dict(row.counters) if row is not None else {},
        )

    def _members(self, lead: Character) -> dict[str, Any]:
        """``aliases``: the slug each member name of the list names (a query per distinct
        name, not per shot), so a shot's key does not depend on how a member is spelt;
        ``member_ids``: the id of each, which the keys name (:func:`keyed_by_id`)."""
        found = {
            name: self.studio.lookups.find_character(name)
            for name in member_names(self.loaded.spec)
        }
        named = {name: each for name, each in found.items() if each is not None}
        ids = {each.slug: each.id for each in (lead, *named.values())}
        return {
            "aliases": {name: each.slug for name, each in named.items()},
            "member_ids": ids,
        }

    def _statuses(
        self, prepared: _Prepared, *, live: bool, tried: Collection[str] = ()
    ) -> tuple[list[ShotStatus], Settlement]:
        """Classify every shot, ``live`` pending rows as running and others interrupted, and
        settle its retakes: which takes are due, not needed, or made only if others drift.
        ``tried`` are keys this run has made already, never made twice in one run."""
        shots = prepared.expansion.shots
        engine = self.studio.engine
        records = key_records(
            engine, prepared.session.id, (s.key for s in shots), batch_ids=prepared.batch_ids
        )
        statuses = [self._status(shot, records.get(shot.key), live) for shot in shots]
        settlement = settle(
            statuses,
            found_checks(engine, statuses),
            lambda entry: entry.key not in tried and self._runs(entry),
        )
        states = [replace(s, state=cast(ShotState, settlement.state_of(s))) for s in statuses]
        return states, settlement

    def _status(self, shot: ExpandedShot, record: KeyRecord | None, live: bool) -> ShotStatus:
        if record is None:
            return ShotStatus(shot, "new")
        if record.done_id is not None:
            return ShotStatus(shot, "done", record.done_id, picked=record.done_picked)
        if record.latest_status == ImageStatus.PENDING:
            state: ShotState = "running" if live else "interrupted"
            return ShotStatus(shot, state, record.latest_id)
        if record.latest_status == ImageStatus.FAILED:
            return ShotStatus(shot, "failed", record.latest_id, record.latest_error)
        return ShotStatus(shot, "interrupted", record.latest_id, record.latest_error)

    def _runs(self, entry: TakeEntry) -> bool:
        """Whether a shot in this state is made (a take only once its turn comes)."""
        return entry.state in ("new", "interrupted") or (
            entry.state == "failed" and self.retry_failed
        )

    def _plan(self, shot: ExpandedShot, parent_id: int | None) -> ShotPlan:
        """Compose and validate one shot; errors name the file and line it came from."""
        start = shot.from_image or parent_id
        try:
            planner = self._planners.get(start)
            if planner is None:
                planner = self._planners[start] = self.studio.planner(
                    self.session_id, from_image=start
                )
            plan = planner.plan(
                shot.request,
                refs=list(shot.refs),
                provider=shot.provider,
                model=shot.model,
                params=dict(shot.params),
            )
            if self.studio.provider(plan.provider).manual:
                raise UsageError(
                    f"provider {plan.provider!r} needs manual steps (paste, then attach): "
                    "make its shots one at a time with `onmodel shot`, not in a batch"
                )
            return plan
        except OnmodelError as exc:
            if isinstance(exc, ShotListError):
                raise
            problem = Problem(self.loaded.label, shot.line, 1, shot.source, str(exc))
            raise ShotListError([problem]) from exc

    @staticmethod
    def _estimate(plan: ShotPlan) -> Decimal | None:
        """The most this shot can cost, as the studio estimated it (None: unknown)."""
        return _decimal(plan.estimated_max_cost)

    def _actual_cost(self, model: str, provider: str, usage: dict[str, Any] | None) -> Decimal:
        """What a failed request cost: the usage the API reported before it failed."""
        if not usage:
            return Decimal(0)
        cost = self.studio.provider(provider).cost(model, usage, {}, self._price_table())
        return cost or Decimal(0)

    def _price_table(self) -> PriceTable:
        if self._prices is None:
            from onmodel.capabilities import load_prices

            self._prices = load_prices(self.studio.paths.prices_file)
        return self._prices

    @property
    def session_id(self) -> int:
        return self._session_id

    # ------------------------------------------------------------------ dry run

    def shot_statuses(self) -> tuple[list[ShotStatus], Settlement]:
        """Every shot of the list, where it stands now, and its retakes; changes nothing."""
        prepared = self._prepare()
        self._session_id = prepared.session.id
        live = run_is_live(self.studio.engine, self.studio.paths.home, prepared.session.id)
        return self._statuses(prepared, live=live)

    def preview(self) -> BatchPreview:
        """Expand, classify and plan every shot that would run, counting every take a drift
        could need (the worst case); record and spend nothing."""
        prepared = self._prepare()
        self._session_id = prepared.session.id
        live = run_is_live(self.studio.engine, self.studio.paths.home, prepared.session.id)
        planned: list[PlannedShot] = []
        warnings = list(prepared.expansion.warnings)
        statuses, settlement = self._statuses(prepared, live=live)
        to_check = {entry.key for entry in settlement.to_check}
        billed = {name: self.studio.checks.checker(name).billed for name in _checkers(statuses)}
        paid_checks = 0
        checked: list[ShotStatus] = []
        problems: dict[tuple[int, str], Problem] = {}
        for status in statuses:
            runs = self._could_run(status, settlement)
            if status.take is not None and (runs or status.key in to_check):
                checked.append(status)
                paid_checks += billed[status.take.checker]
            if not runs:
                planned.append(PlannedShot(status, False, None, None, None))
                continue
            try:
                plan = self._plan(status.shot, prepared.parent_id)
            except ShotListError as exc:
                _collect(problems, exc)
                continue
            warnings.extend(w for w in plan.warnings if w not in warnings)
            planned.append(
                PlannedShot(status, True, plan.parent_id, self._estimate(plan), len(plan.prompt))
            )
        if problems:
            raise ShotListError(sorted_problems(problems.values()))
        return BatchPreview(
            name=self.loaded.name,
            session=prepared.session.slug,
            parent_id=prepared.parent_id,
            shots=planned,
            warnings=warnings,
            budget=self.budget,
            settlement=settlement,
            paid_checks=paid_checks,
            unpriced_checks=self._unpriced_checks(
                checked, _probe_id(settlement, prepared.parent_id)
            ),
        )

    @staticmethod
    def _could_run(status: ShotStatus, settlement: Settlement) -> bool:
        """Whether a run could make this shot: it is due, or a take due if others drift."""
        return status.key in settlement.due or status.state == RETAKE

    def _checker(self, name: str) -> Checker:
        """The named checker, built once a run; one missing its API key is refused."""
        checker = self._checkers.get(name)
        if checker is None:
            checker = self._checkers[name] = self.studio.checks.ready(name)
        return checker

    # ------------------------------------------------------------------ run

    def run(self) -> BatchReport:
        """Make every shot of the list that is not made yet; see the module docstring."""
        prepared = self._prepare()
        self._session_id = prepared.session.id
        # Judged before the lock is taken, so a list the model rules refuse writes nothing at
        # all, not even the lock file. Pending rows count as shots to run here, as they will
        # once the lock is held, so no shot runs that was not judged.
        statuses, settlement = self._statuses(prepared, live=False)
        queue_ = [s for s in statuses if self._could_run(s, settlement)]
        checked = [*queue_, *settlement.to_check]
        for name in _checkers(checked):
            self._checker(name)  # an unknown checker, or one without its key, spends nothing
        if self.budget is not None:  # nor one whose cost is unknown, as for a shot's
            unpriced = self._unpriced_checks(checked, _probe_id(settlement, prepared.parent_id))
            if unpriced:
                raise BudgetError(unpriced[0])
        warming = warm_up_in_background({s.shot.provider for s in queue_}) if queue_ else None
        try:
            warnings = list(prepared.expansion.warnings)
            warnings.extend(self._prevalidate(queue_, prepared.parent_id))
            if shares_batches(self.studio.engine):
                report = self._run_shared(prepared, warnings)
            else:
                report = self._run_locked(prepared, warnings)
        finally:
            if warming is not None:  # long done unless planning failed: leave no thread behind
                warming.join(WARM_UP_WAIT_SECONDS)
        if self._abandon_signal is not None or report.stop_reason == "interrupted":
            signum = self._abandon_signal or signal.SIGINT
            name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
            raise BatchInterrupted(
                f"stopped by {name}: {report.summary()}; run it again to finish the rest",
                exit_code=128 + signum,
                report=report,
            )
        return report

    def _run_locked(self, prepared: _Prepared, warnings: list[str]) -> BatchReport:
        """Hold the session's lock, record the batch and make its shots."""
        session = prepared.session
        lock = SessionLock(self.studio.paths.home, session.id, session.slug)
        lock.acquire()
        try:
            engine, home = self.studio.engine, self.studio.paths.home
            live = live_owners(engine, home, session_id=session.id)
            interrupt_pending(engine, session_id=session.id, keep_owners=live)
            # what is still pending now belongs to a live process: running, not to be remade
            statuses, settlement = self._statuses(prepared, live=True)
            for message in warnings:
                self.progress.note(f"warning: {message}")
            batch_id = self._open_batch(prepared, statuses)
            report = self._start_report(prepared, statuses, batch_id, warnings)
            try:
                with self._signals():
                    self._rounds(report, prepared, statuses, settlement, batch_id)
            finally:
                self._close_batch(batch_id, report)
        finally:
            stray = [t for t in self._workers if t.is_alive()]
            if stray:
                lock.release_after(stray)
            else:
                lock.release()
        return report

    def _start_report(
        self, prepared: _Prepared, statuses: list[ShotStatus], batch_id: int, warnings: list[str]
    ) -> BatchReport:
        prepared.batch_ids.add(batch_id)  # a first run's rounds read its own shots
        self._batch_ids = prepared.batch_ids
        return BatchReport(
            batch_id=batch_id,
            name=self.loaded.name,
            session=prepared.session.slug,
            total=len(statuses),
            already_done=sum(1 for s in statuses if s.state == "done"),
            skipped_failed=sum(
                1 for s in statuses if s.state == "failed" and not self.retry_failed
            ),
            to_run=0,
            budget=self.budget,
            warnings=warnings,
        )

    def _run_shared(self, prepared: _Prepared, warnings: list[str]) -> BatchReport:
        """Join (or start) the batch's run with the workers of other machines, through the
        database (see ``batch/shared.py``), and make shots until none is left to anyone."""
        session = prepared.session
        engine, home = self.studio.engine, self.studio.paths.home
        shared = SharedRun(engine, session.id, session.slug)
        with shared.guard():
            seat = shared.seat(self.loaded.name, self.loaded.spec_hash())
            if seat.batch_id is not None and prepared.batch_id != seat.batch_id:
                prepared = self._prepare()  # the batch began since: its parent, its keys
            if seat.batch_id is None:
                keep = live_owners(engine, home, session_id=session.id) - seat.dead_owners
                interrupt_pending(engine, session_id=session.id, keep_owners=keep)
            statuses, settlement = self._statuses(prepared, live=True)
            if seat.batch_id is None:
                batch_id = self._open_batch(prepared, statuses)
            else:
                batch_id = seat.batch_id
            shared.start(
                batch_id,
                new_run=seat.batch_id is None,
                owner=owner_token(home),
                concurrency=self.concurrency,
                budget=self.budget,
                rpm=self.rpm,
            )
        self._shared = shared
        self.budget = shared.budget()
        self._shots = {shot.key: shot for shot in prepared.expansion.shots}
        for message in warnings:
            self.progress.note(f"warning: {message}")
        report = self._start_report(prepared, statuses, batch_id, warnings)
        try:
            with self._signals():
                self._shared_rounds(report, prepared, statuses, settlement, shared)
        finally:
            stray = [t for t in self._workers if t.is_alive()]
            if stray and self._abandon_signal is None:
                # given up on by an exception in a process that lives on: those requests
                # still finish here, so their claims stay held until they have (SIGTERM or a
                # second Ctrl-C ends the process, and its requests with it: no wait)
                threading.Thread(
                    target=self._leave_after,
                    args=(stray, shared, report),
                    name="onmodel-batch-leave",
                    daemon=True,
                ).start()
            else:
                self._leave(shared, report)
        return report

    def _leave_after(
        self, threads: list[threading.Thread], shared: SharedRun, report: BatchReport
    ) -> None:
        """Leave once ``threads`` have ended, as the lock of a lone run is released: until
        then this worker's lease and claims hold, so no other worker makes those shots."""
        for thread in threads:
            thread.join()
        self._leave(shared, report)

    def _rounds(
        self,
        report: BatchReport,
        prepared: _Prepared,
        statuses: list[ShotStatus],
        settlement: Settlement,
        batch_id: int,
    ) -> None:
        """Make what is due, check what is made, pick what is settled; again until nothing
        is due or the run stops. Each round reads the rows afresh (a query per chunk of keys),
        so it goes on from what is recorded, exactly as a run after a kill would. A check that
        fails is asked once a run: ``asked`` keeps the next round from asking it again."""
        tried: set[str] = set()
        asked: set[int] = set()
        started = time.monotonic()
        due = [s for s in statuses if s.key in settlement.due]
        settled = sum(1 for s in statuses if s.state in ("done", "failed", NOT_NEEDED))
        self.progress.start(report.name, len(due), settled)
        try:
            while True:
                to_check = [e for e in settlement.to_check if e.image_id not in asked]
                if to_check and self._running(report, checking=True):
                    self._check_takes(report, to_check, started, asked)
                    statuses, settlement = self._statuses(prepared, live=True, tried=tried)
                if self._abandon_signal is None:
                    self._pick(report, settlement)
                due = [s for s in statuses if s.key in settlement.due]
                if not due or not self._running(report):
                    break
                tried.update(s.key for s in due)
                report.to_run += len(due)
                self._execute(report, due, batch_id, prepared.parent_id, started)
                statuses, settlement = self._statuses(prepared, live=True, tried=tried)
        finally:
            report.elapsed = time.monotonic() - started
            self.progress.stop()
        self._tally(report, statuses, settlement)

    def _shared_rounds(
        self,
        report: BatchReport,
        prepared: _Prepared,
        statuses: list[ShotStatus],
        settlement: Settlement,
        shared: SharedRun,
    ) -> None:
        """:meth:`_rounds` for a worker of a shared batch: the shots due are offered to every
        worker, and this one makes those it claims. "Made in this run" is what the batch's
        claims say is done, by any worker. The worker leaves when it found nothing to do and no
        live worker holds a claim: the shots or checks another makes may settle a group whose
        next take is due, and a worker that dies leaves shots to take over."""
        asked: set[int] = set()
        offered: set[str] = set()
        started = time.monotonic()
        positions = {status.key: number for number, status in enumerate(statuses)}
        due = [s for s in statuses if s.key in settlement.due]
        settled = sum(1 for s in statuses if s.state in ("done", "failed", NOT_NEEDED))
        self.progress.start(report.name, len(due), settled)
        try:
            while True:
                did = 0
                to_check = [e for e in settlement.to_check if e.image_id not in asked]
                if to_check and self._running(report, checking=True):
                    did += self._check_takes(report, to_check, started, asked)
                if self._abandon_signal is None:
                    self._pick(report, settlement)
                if not self._running(report):
                    break
                due = [s for s in statuses if s.key in settlement.due]
                shared.offer([(s.key, positions[s.key]) for s in due])
                offered.update(s.key for s in due)
                report.to_run = len(offered)
                did += self._execute(report, due, report.batch_id, prepared.parent_id, started)
                tried = shared.done_keys()
                statuses, settlement = self._statuses(prepared, live=True, tried=tried)
                if did:
                    continue
                if not shared.busy_elsewhere():
                    break
                time.sleep(POLL_SECONDS)  # others are making shots: look again soon
        finally:
            report.elapsed = time.monotonic() - started
            self.progress.stop()
        self._tally(report, statuses, settlement)
        done = sum(1 for s in statuses if s.state == "done")
        report.made_elsewhere = max(0, done - report.already_done - report.succeeded)
        unmade = sum(1 for s in statuses if s.key in offered and s.state in ("new", "interrupted"))
        report.left_over = max(0, unmade - report.interrupted)  # those it gave up are counted

    def _leave(self, shared: SharedRun, report: BatchReport) -> None:
        """Hand back what this worker did not finish; the worker that sees the batch done
        marks it completed (one ever does), and the last one out records the run."""
        stats = {
            "succeeded": report.succeeded,
            "failed": report.failed,
            "interrupted": report.interrupted,
            "spent_usd": str(report.spent),
            "stop_reason": report.stop_reason,
        }
        departure = shared.leave(stats, complete=report.complete)
        report.completed_here = departure.completed
        if departure.last:
            self._close_batch(report.batch_id, report, departure)

    def _running(self, report: BatchReport, *, checking: bool = False) -> bool:
        """Whether the run goes on; the first Ctrl-C between rounds stops it as in one.
        ``checking``: a reached budget still lets free checks of what was made go on."""
        if self._drain and report.stop_reason in ("completed", "budget"):
            report.stop_reason = "interrupted"
        going = ("completed", "budget") if checking else ("completed",)
        return report.stop_reason in going and self._abandon_signal is None

    def _check_takes(
        self, report: BatchReport, takes: list[TakeEntry], started: float, asked: set[int]
    ) -> int:
        """Check each made take in the main thread, adding it to ``asked``; a paid check is
        asked only when what is spent plus its most stays within the budget (else the run
        stops, as for a shot, once the free checks are made: they cost nothing). A worker of a
        shared batch checks only the takes it claims. Returns how many checks it asked."""
        images = self.studio.checks
        shared = self._shared
        made = 0
        for entry in takes:
            if not self._running(report, checking=True):
                break
            assert entry.take is not None and entry.image_id is not None
            checker = self._checker(entry.take.checker)
            claim = f"check:{entry.image_id}:{checker.name}"
            if shared is not None and not shared.claim(claim):
                continue  # another worker checks it
            if checker.billed and self.budget is not None:
                if report.stop_reason == "budget":
                    continue
                estimate = images.estimate(checker, self.studio.image(entry.image_id))
                if estimate is None:  # the run's refusal up front did not see it: say it now
                    report.stop_reason, report.message = "budget", self._unpriced(checker)
                    self.progress.note(
                        f"stopping before checking #{entry.image_id}: {report.message}"
                    )
                    continue
                spent = report.spent
                if shared is not None:
                    reservation = shared.reserve(claim, estimate)
                    over = not reservation.granted
                    spent = nano_to_usd(reservation.spent_nusd)
                else:
                    over = report.spent + estimate > self.budget
                if over:
                    report.stop_reason = "budget"
                    self.progress.note(
                        f"budget ${self.budget} reached: checking #{entry.image_id} could cost "
                        f"up to ${estimate:.4f}, ${spent:.4f} is spent"
                    )
                    continue
            asked.add(entry.image_id)
            made += 1
            try:
                record = images.check(entry.image_id, checker.name, min_score=entry.take.min_score)
            except OnmodelError as exc:  # every take would hit it (an anchor with no file)
                report.stop_reason, report.message = "fatal", f"checking #{entry.image_id}: {exc}"
                self.progress.note(f"stopping: {report.message}")
                break
            cost = _decimal(record.cost_usd)
            if shared is not None:
                shared.settle(claim, cost)
            if cost is None:
                report.spent_unknown += 1
            else:
                report.spent += cost
            report.checks_made += 1
            report.checks.append(
                {
                    "image_id": entry.image_id,
                    "label": entry.label,
                    "checker": checker.name,
                    "status": record.status,
                    "score": record.score,
                    "passed": record.status == "succeeded" and on_model(record, entry.take),
                    "error": record.error_message or record.error_type,
                }
            )
            self.progress.update(_snapshot(report, 0, started), _checked(entry, record))
        return made

    def _unpriced(self, checker: Checker) -> str:
        """Why a budget cannot be kept with a billed checker whose cost is unknown, and the fix:
        a vision model's check is priced by the tokens of the images it is shown, which the
        price table may not give for its model."""
        prices = self.studio.paths.prices_file
        if checker.model is None:
            return (
                f"the cost of a {checker.name} check cannot be estimated, so --budget cannot "
                "be kept: run without --budget"
            )
        return (
            f"the cost of a {checker.name} check cannot be estimated: the price table has no "
            f"input_image_tokens (tokens per input image) for {checker.model}, so --budget "
            f"cannot be kept; add it for {checker.model} under models: in {prices}, "
            "or run without --budget"
        )

    def _unpriced_checks(self, entries: Iterable[TakeEntry], probe_id: int | None) -> list[str]:
        """:meth:`_unpriced` for each billed checker ``entries`` use whose check of one image
        (``probe_id``: a take to check, or the batch's parent; a check is priced by what it is
        shown) has no estimate; [] when every one has, or the image cannot be checked (its
        check will say why)."""
        if probe_id is None:
            return []
        images = self.studio.checks
        try:
            probe = self.studio.image(probe_id)
            unknown = [
                checker
                for checker in (images.checker(name) for name in sorted(_checkers(entries)))
                if checker.billed and images.estimate(checker, probe) is None
            ]
        except OnmodelError:
            return []
        return [self._unpriced(checker) for checker in unknown]

    def _pick(self, report: BatchReport, settlement: Settlement) -> None:
        """Mark each settled group's best take as its pick; a batch never moves the head."""
        for pick in settlement.repick:
            pick_take(self.studio.engine, pick.image_id, pick.take_ids, None)
            report.picked += 1
        settlement.repick.clear()

    def _tally(
        self, report: BatchReport, statuses: list[ShotStatus], settlement: Settlement
    ) -> None:
        """The list's takes and groups as the run leaves them."""
        report.not_needed = sum(1 for s in statuses if s.state == NOT_NEEDED)
        report.unchecked = len(settlement.unchecked)
        report.check_counts = settlement.counts()
        picked = {pick.image_id for pick in settlement.picks.values()}
        for check in report.checks:
            check["picked"] = check["image_id"] in picked
        by_key = {s.key: s for s in statuses}
        by_image = {s.image_id: s for s in statuses if s.image_id is not None}
        for group in settlement.drifted:
            pick = settlement.picks.get(group)
            shown = by_image[pick.image_id] if pick else by_key[group]  # the pick, or take 1
            why = f"drifted; best {pick.score}, picked" if pick else "drifted; takes left to make"
            shot = shown.shot
            report.drifted.append(
                ShotFailure(shot.number, shot.label, shot.line, shot.key, shown.image_id, why)
            )
        shown_groups: set[str] = set()
        for entry in settlement.unanswered:  # one line a shot: its first take whose check failed
            assert entry.image_id is not None and entry.take is not None
            if entry.take.group in shown_groups:
                continue
            shown_groups.add(entry.take.group)
            shot = by_image[entry.image_id].shot
            record = settlement.checks[entry.image_id]
            why = (
                f"check failed: {record.error_message or record.error_type}; not drift, so no "
                "take is made for it (run it again to ask again)"
            )
            report.check_failed.append(
                ShotFailure(shot.number, shot.label, shot.line, shot.key, entry.image_id, why)
            )

    def _prevalidate(self, statuses: list[ShotStatus], parent_id: int | None) -> list[str]:
        """Plan one shot of each distinct setting before anything is spent.

        Shots that share provider, model, parameters, parent, refs and cast are judged the
        same way by the model rules and the session's cast, so one plan per such group finds
        every invalid size, retired model, member not in the cast (or without an anchor) and
        shot with more images than its model takes up front, while the rest are planned just
        in time, overlapping the requests. Every group's problem is reported at once, each
        with its line (a matrix's once, not once per combination).
        """
        seen: set[tuple[Any, ...]] = set()
        warnings: list[str] = []
        problems: dict[tuple[int, str], Problem] = {}
        for status in statuses:
            shot = status.shot
            shape = (
                shot.provider,
                shot.model,
                json.dumps(shot.params, sort_keys=True),
                shot.from_image,
                shot.refs,
                tuple(shot.request.cast),
                shot.request.set,
            )
            if shape in seen:
                continue
            seen.add(shape)
            try:
                plan = self._plan(shot, parent_id)
            except ShotListError as exc:
                _collect(problems, exc)
                continue
            warnings.extend(w for w in plan.warnings if w not in warnings)
            if self.budget is not None and self._estimate(plan) is None:
                raise BudgetError(
                    f"{self.loaded.label}:{shot.line}: {shot.source}: the cost of {plan.model} "
                    f"({plan.params.get('quality', 'auto')}, {plan.params.get('size', 'auto')}) "
                    "is unknown, so a budget cannot be kept; add its prices to prices.yaml "
                    "or run without --budget"
                )
        if problems:
            raise ShotListError(sorted_problems(problems.values()))
        return warnings

    def _open_batch(self, prepared: _Prepared, statuses: list[ShotStatus]) -> int:
        spec = {
            "format": 1,
            "source": str(self.loaded.source) if self.loaded.source else None,
            "list": self.loaded.canonical(),
            "parent_image_id": prepared.parent_id,
            # a checked shot's take follows, so status by batch id knows its group
            "shots": [
                [s.key, s.shot.label, *([s.take.to_dict()] if s.take is not None else [])]
                for s in statuses
            ],
        }
        values: dict[str, Any] = {
            "name": self.loaded.name,
            "session_id": prepared.session.id,
            "source_path": spec["source"] or "",
            "spec_hash": self.loaded.spec_hash(),
            "spec": spec,
            "status": "running",
            "budget_usd": None if self.budget is None else str(self.budget),
            "key_slug": prepared.key_slug,
        }
        counters = dict(prepared.counters)
        counters["runs"] = int(counters.get("runs", 0)) + 1
        counters["last_run"] = {"started_at": time.time(), "pid": os.getpid()}
        self._counters = counters
        values["counters"] = counters
        row = save_batch(self.studio.engine, prepared.batch_id, **values)
        assert row.id is not None
        return row.id

    def _close_batch(
        self, batch_id: int, report: BatchReport, shared: Departure | None = None
    ) -> None:
        """Record how the run went; for a shared run, by the last worker out, from what every
        worker recorded when it stopped and the money they spent together."""
        if report.complete:
            status = "completed"
        elif report.stop_reason == "interrupted" or self._abandon_signal is not None:
            status = "interrupted"
        else:
            status = "incomplete"
        counters = dict(self._counters)
        if shared is not None:  # the run's first worker may not be this one
            row = get_batch(self.studio.engine, batch_id)
            counters = dict(row.counters) if row is not None else {}
        last = dict(counters.get("last_run") or {})
        last.update(
            {
                "finished_at": time.time(),
                "stop_reason": report.stop_reason,
                "succeeded": report.succeeded,
                "failed": report.failed,
                "interrupted": report.interrupted,
                "not_run": report.not_run,
                "spent_usd": str(report.spent),
                "elapsed_s": round(report.elapsed, 3),
                "checks_made": report.checks_made,
            }
        )
        if shared is not None:
            for name in ("succeeded", "failed", "interrupted"):
                last[name] = sum(int(str(w.get(name, 0))) for w in shared.workers)
            last["spent_usd"] = str(shared.spent)
            last["spent_unknown"] = shared.unknown_costs
            last["workers"] = shared.workers
        counters["last_run"] = last
        counters["shots"] = report.total
        save_batch(self.studio.engine, batch_id, status=status, counters=counters)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into flags the scheduling loop checks (main thread only)."""
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_interrupt(signum: int, frame: FrameType | None) -> None:
            if self._drain:
                self._abandon_signal = signum
            else:
                self._drain = True

        def on_terminate(signum: int, frame: FrameType | None) -> None:
            self._abandon_signal = signum

        previous_int = signal.signal(signal.SIGINT, on_interrupt)
        previous_term = signal.signal(signal.SIGTERM, on_terminate)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)

    def _execute(
        self,
        report: BatchReport,
        statuses: list[ShotStatus],
        batch_id: int,
        parent_id: int | None,
        started: float,
    ) -> int:
        """One round's scheduling loop: plan ahead while idle, respect slots, rate, budget.
        ``started`` is when the run began: its elapsed time and ETA span every round. A worker
        of a shared batch makes the shots it claims instead of ``statuses``, keeps the budget
        and the rate with the other workers, and hands each outcome's cost to them. Returns
        how many shots it took on."""
        shared = self._shared
        self._stop_workers = False  # the last round's threads were joined: a new round starts
        pipeline = _Pipeline(
            slots=self.concurrency if shared else min(self.concurrency, len(statuses)),
            request=self._request,
            store=self._store,
            stopped=lambda: self._stop_workers,
        )
        self._workers = pipeline.threads
        limiter = RateLimiter(self.rpm) if shared is None else SharedRateLimiter(shared)
        pending = iter(statuses)
        taken = 0
        reserved_keys: set[str] = set()  # shared: jobs whose money is reserved
        # Planned ahead, up to one per slot, so freed slots are refilled at once; a shot that
        # fails to plan waits here in its turn and stops the run when it is reached.
        ready: deque[_Job | OnmodelError] = deque()
        exhausted = False
        requesting: set[str] = set()  # the concurrency limit: requests the API is working on
        in_flight: dict[str, _Job] = {}  # requested and not yet stored
        reserved = Decimal(0)
        fatal: BaseException | None = None

        def snapshot() -> Snapshot:
            return _snapshot(report, len(in_flight), started)

        def stop(problem: BaseException) -> None:
            nonlocal fatal
            if fatal is None:
                fatal = problem
                report.stop_reason = "fatal"
                report.message = str(problem)
                self.progress.note(f"stopping: {problem}")

        try:
            while True:
                if self._abandon_signal is not None:
                    break
                if self._drain and report.stop_reason == "completed":
                    report.stop_reason = "interrupted"
                    self.progress.note(
                        f"stopping: waiting for {len(in_flight)} shot(s) in flight "
                        "(Ctrl-C again to give up on them)"
                    )
                wait = 0.1
                while report.stop_reason == "completed" and ready:
                    job = ready[0]
                    if isinstance(job, OnmodelError):
                        stop(job)
                        break
                    if len(requesting) >= self.concurrency:
                        break
                    over, anyone_in_flight, spent = self._over_budget(
                        report, job, reserved, bool(in_flight), reserved_keys
                    )
                    if over:
                        if not anyone_in_flight:  # in-flight shots may cost less than reserved
                            report.stop_reason = "budget"
                            self.progress.note(
                                f"budget ${self.budget} reached: the next shot could cost "
                                f"up to ${job.estimate:.4f}, ${spent:.4f} is spent"
                            )
                        elif shared is not None:  # another worker's shot may settle soon
                            wait = POLL_SECONDS
                        break
                    delay = limiter.delay()
                    if delay > 0:
                        wait = min(wait, delay)
                        break
                    limiter.take()
                    ready.popleft()
                    in_flight[job.shot.key] = job
                    requesting.add(job.shot.key)
                    reserved += job.estimate
                    pipeline.jobs.put(job)
                running = report.stop_reason == "completed"
                if not in_flight and (not running or (exhausted and not ready)):
                    break
                if running and not exhausted and len(ready) < self.concurrency:
                    if pipeline.results.empty():  # idle: plan the next shot now
                        before = len(ready)
                        exhausted = self._plan_ahead(ready, pending, batch_id, parent_id)
                        taken += len(ready) - before
                        continue
                    wait = 0.0
                try:
                    message = pipeline.results.get(timeout=wait)
                except queue.Empty:
                    continue
                while True:
                    key = message.job.shot.key
                    requesting.discard(key)
                    if isinstance(message, _Outcome):
                        del in_flight[key]
                        reserved -= message.job.estimate
                        problem = self._account(report, message)
                        if problem is not None:
                            stop(problem)
                        if message.retry_after:
                            limiter.hold(message.retry_after)
                        self.progress.update(snapshot(), self._event(message))
                    try:
                        message = pipeline.results.get_nowait()
                    except queue.Empty:
                        break
        except BaseException as exc:
            # KeyboardInterrupt when the signals are not ours, or a bug: give up on what is in
            # flight, record it, and let the caller see the error.
            if isinstance(exc, KeyboardInterrupt) and self._abandon_signal is None:
                self._abandon_signal = signal.SIGINT
            report.stop_reason = "interrupted" if self._abandon_signal else "fatal"
            report.message = report.message or str(exc)
            self._give_up(report, in_flight, batch_id)
            raise
        finally:
            # Abandoned: threads finish (and store) the request they hold, if the process
            # lives on, but start nothing new; otherwise everything has finished by now.
            self._stop_workers = True
            pipeline.close(wait=self._abandon_signal is None and not in_flight)
        if self._abandon_signal is not None:
            report.stop_reason = "interrupted"
            self._give_up(report, in_flight, batch_id)
        if fatal is not None and not isinstance(fatal, GenerationError):
            raise fatal
        return taken

    def _over_budget(
        self,
        report: BatchReport,
        job: _Job,
        reserved: Decimal,
        in_flight: bool,
        reserved_keys: set[str],
    ) -> tuple[bool, bool, Decimal]:
        """Whether starting ``job`` could take the run past its budget: (over, whether shots
        in flight may still come in cheaper, what is spent). A worker of a shared batch asks
        the database, which reserves the job's most for it when it fits."""
        shared = self._shared
        if self.budget is None:
            return False, in_flight, report.spent
        if shared is None:
            return report.spent + reserved + job.estimate > self.budget, in_flight, report.spent
        if job.shot.key in reserved_keys:
            return False, in_flight, report.spent
        reservation = shared.reserve(job.shot.key, job.estimate)
        if reservation.granted:
            reserved_keys.add(job.shot.key)
            return False, in_flight, report.spent
        spent = nano_to_usd(reservation.spent_nusd)
        return True, in_flight or reservation.reserved_nusd > 0, spent

    def _plan_ahead(
        self,
        ready: deque[_Job | OnmodelError],
        pending: Iterator[ShotStatus],
        batch_id: int,
        parent_id: int | None,
    ) -> bool:
        """Plan the next shot onto ``ready``; True when no shot is left to plan."""
        status = next(pending, None) if self._shared is None else self._claim_next(self._shared)
        if status is None:
            return True
        try:
            plan = self._plan(status.shot, parent_id)
        except OnmodelError as exc:
            ready.append(exc)
            return True
        shot = status.shot
        plan = replace(
            plan,
            batch_id=batch_id,
            shot_key=shot.key,
            retry_of_id=status.image_id,
            variation=shot.variation,
            variations=shot.variations,
        )
        ready.append(_Job(status.shot, plan, self._estimate(plan) or Decimal(0)))
        return False

    def _claim_next(self, shared: SharedRun) -> ShotStatus | None:
        """The next shot this worker claims, as its rows say it stands now (the round's
        statuses are older than the claim); one made meanwhile by a process outside the batch
        (``onmodel retry``) is done for this run. Shots are claimed a few at a time."""
        while not self._claimed:
            claimed = shared.claim_next()
            self.budget = shared.budget_usd  # a worker that joined later may have named one
            if not claimed:
                return None
            records = key_records(
                self.studio.engine,
                self._session_id,
                [claim.key for claim in claimed],
                batch_ids=self._batch_ids,
            )
            for claim in claimed:
                shot = self._shots[claim.key]  # every worker runs the same list (its hash)
                if claim.taken_over:
                    self.progress.note(f"taking over {shot.label}: its worker stopped answering")
                status = self._status(shot, records.get(claim.key), live=True)
                if status.state in ("done", "running"):
                    shared.settle(claim.key, Decimal(0))
                else:
                    self._claimed.append(status)
        return self._claimed.popleft()

    def _give_up(self, report: BatchReport, in_flight: dict[str, _Job], batch_id: int) -> None:
        """Record the shots in flight as interrupted; their threads are left to die with us."""
        report.interrupted += len(in_flight)
        owner = owner_token(self.studio.paths.home) if self._shared else None
        interrupt_pending(
            self.studio.engine, session_id=self._session_id, batch_id=batch_id, owner=owner
        )
        self.progress.stop()

    def _request(self, job: _Job) -> Delivery | _Outcome:
        """Send one shot; its delivery to store, or the outcome when it failed. Never raises."""
        started = time.monotonic()
        try:
            return self.studio.request(job.plan)
        except Exception as exc:
            return self._settled(self._failure(job, exc, started))

    def _store(self, job: _Job, delivery: Delivery) -> _Outcome:
        """Write a delivered image and describe the outcome. Never raises."""
        try:
            image = self.studio.store(delivery)
        except Exception as exc:
            return self._settled(self._failure(job, exc, delivery.started))
        seconds = time.monotonic() - delivery.started
        if not image.succeeded:
            return self._settled(
                _Outcome(
                    job,
                    "error",
                    image.id,
                    seconds,
                    error=f"provider {job.plan.provider!r} needs manual steps; "
                    "it cannot run a batch",
                )
            )
        billed = self.studio.provider(job.plan.provider).billed
        cost = _decimal(image.cost_usd) if billed else Decimal(0)
        return self._settled(_Outcome(job, "succeeded", image.id, seconds, cost=cost))

    def _settled(self, outcome: _Outcome) -> _Outcome:
        """A shared batch's shot is done once its outcome is known: settled here, on the
        pipeline's thread, so the scheduling loop never waits for the database. A settle the
        database refused leaves the claim held: released when the worker leaves, the shot is
        then found made by the next worker to claim it, and settled there."""
        if self._shared is not None:
            with suppress(Exception):
                self._shared.settle(outcome.job.shot.key, outcome.cost)
        return outcome

    def _failure(self, job: _Job, exc: Exception, started: float) -> _Outcome:
        seconds = time.monotonic() - started
        if not isinstance(exc, GenerationError):
            return _Outcome(job, "error", None, seconds, error=f"{type(exc).__name__}: {exc}")
        recorded = image_failure(self.studio.engine, exc.image_id) if exc.image_id else None
        return _Outcome(
            job,
            "failed",
            exc.image_id,
            seconds,
            cost=self._actual_cost(
                job.plan.model, job.plan.provider, recorded.usage if recorded else None
            ),
            # the row's own message; in a batch the way to retry is --retry-failed
            error=(recorded.message if recorded and recorded.message else str(exc)),
            error_type=recorded.error_type if recorded else None,
            retry_after=exc.retry_after,
        )

    def _account(self, report: BatchReport, outcome: _Outcome) -> OnmodelError | None:
        """Add an outcome to the report; return an error that should stop scheduling."""
        job = outcome.job
        if outcome.cost is None:
            report.spent_unknown += 1
        else:
            report.spent += outcome.cost
        if outcome.status == "succeeded":
            report.succeeded += 1
            return None
        report.failed += 1
        report.failures.append(
            ShotFailure(
                number=job.shot.number,
                label=job.shot.label,
                line=job.shot.line,
                key=job.shot.key,
                image_id=outcome.image_id,
                error=outcome.error or "unknown error",
            )
        )
        if outcome.status == "error":
            return OnmodelError(f"shot {job.shot.number} ({job.shot.label}): {outcome.error}")
        if outcome.error_type in FATAL_ERROR_TYPES:
            return GenerationError(
                f"{outcome.error_type} error, which every other shot would hit too: "
                f"{outcome.error}",
                image_id=outcome.image_id,
            )
        return None

    @staticmethod
    def _event(outcome: _Outcome) -> str:
        shot = outcome.job.shot
        image = f"#{outcome.image_id} " if outcome.image_id is not None else ""
        if outcome.status == "succeeded":
            return f"✓ {image}{shot.label} ({outcome.seconds:.1f}s)"
        error = " ".join((outcome.error or "").split())
        return f"✗ {image}{shot.label} (line {shot.line}): {error}"


def _collect(problems: dict[tuple[int, str], Problem], exc: ShotListError) -> None:
    """Keep a shot's planning problems, each once: a matrix's combinations that fail alike
    (a member not in the cast on every pose) say it once, at the matrix's line."""
    for problem in exc.problems:
        problems.setdefault((problem.line, problem.message), problem)


def _checkers(entries: Iterable[TakeEntry]) -> set[str]:
    """The checkers the list's checked shots name."""
    return {e.take.checker for e in entries if e.take is not None}


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _probe_id(settlement: Settlement, parent_id: int | None) -> int | None:
    """An image to price a check by before the takes exist: the first made take waiting for
    its check, or else the batch's parent (each take is shown to a checker as it would be)."""
    return next((e.image_id for e in settlement.to_check), parent_id)


def _snapshot(report: BatchReport, in_flight: int, started: float) -> Snapshot:
    return Snapshot(
        to_run=report.to_run,
        succeeded=report.succeeded,
        failed=report.failed,
        in_flight=in_flight,
        elapsed=time.monotonic() - started,
        spent=report.spent,
        spent_unknown=report.spent_unknown,
    )


def _checked(entry: TakeEntry, record: CheckRecord) -> str:
    """A check as a progress line: ``✓ #12 waving · take 1/3: palette, on model 93``."""
    assert entry.take is not None
    label = f"#{entry.image_id} {entry.label}: {entry.take.checker}"
    if record.status != "succeeded":
        error = record.error_message or record.error_type
        return f"? {label} check failed: {error} (not drift: no retake; a later run asks again)"
    if on_model(record, entry.take):
        return f"✓ {label}, on model {record.score}"
    score = record.score or 0
    why = "a trait drifted" if score >= entry.take.min_score else f"needs {entry.take.min_score}"
    return f"~ {label}, drifted {score} ({why})"


def _budget(value: Decimal | float | str | None) -> Decimal | None:
    """``--budget``: dollars as typed ("$5" too), by the same rule as every money limit."""
    if value is None:
        return None
    return check_amount(str(value).strip().lstrip("$"), "--budget")


# ---------------------------------------------------------------------------------- library


def run_batch(
    studio: Studio,
    shot_list: LoadedShotList | Path | str,
    **options: Any,
) -> BatchReport:
    """Run a shot list (see :class:`BatchRunner` for the options); the CLI's ``batch run``."""
    return BatchRunner(studio, shot_list, **options).run()


def preview_batch(
    studio: Studio,
    shot_list: LoadedShotList | Path | str,
    **options: Any,
) -> BatchPreview:
    """What ``run_batch`` would do, and its estimated cost; records and spends nothing."""
    return BatchRunner(studio, shot_list, **options).preview()
