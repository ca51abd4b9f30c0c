"""One batch made by several machines at once, through a shared PostgreSQL database.

On SQLite a batch runs on one machine, under the session's ``flock`` (``batch.lock``). On
PostgreSQL every ``onmodel batch run FILE`` of the same list and session joins one run of it
instead, as a *worker*:

* **Joining.** Under the session's advisory lock, a worker that finds no live worker of the
  batch starts a new run (marking what dead runs left pending ``interrupted``, exactly as a
  lone run does); one that finds some joins theirs. A worker of another batch of the session
  refuses, as the ``flock`` does, and so does a different version of the list.
* **Claims.** The shots due are offered in list order; each worker takes the next with
  ``FOR UPDATE SKIP LOCKED`` (``store.claims``), so each shot is made once, by one worker.
* **Leases.** A heartbeat thread renews the worker's lease (``ONMODEL_BATCH_LEASE`` seconds,
  30 by default) while the process lives, however long a request takes. A worker not seen for
  a lease is dead: its claimed shots go to the next worker that asks, which marks the dead
  one's pending rows ``interrupted`` and makes the shot again, linked to them.
* **Budget and rate.** Money is reserved and spent in one row all workers share, so together
  they never pass ``--budget``; request starts are handed out ``60 / rpm`` seconds apart from
  the database's clock, across all workers; a ``Retry-After`` holds every worker's starts.
* **The end.** A worker leaves when nothing is left to claim and no live worker holds a claim
  (a dead one's shots would be left over otherwise). The first worker to see the batch done
  marks it completed — exactly once, by a conditional update; the last to leave records the
  run.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from onmodel.batch.lock import BatchBusyError, is_locked
from onmodel.errors import UsageError
from onmodel.settings import setting
from onmodel.store import claims
from onmodel.store.claims import Claim, Reservation, WorkerRecord

LEASE_ENV = "ONMODEL_BATCH_LEASE"
DEFAULT_LEASE_SECONDS = 30.0
POLL_SECONDS = 0.5  # how often an idle worker looks again while others finish their shots
CLAIM_AT_ONCE = 4
"""Shots a worker claims in one transaction: fewer round trips, while a worker never holds
more than a few shots another could have started."""


def shares_batches(engine: Engine) -> bool:
    """Whether workers on several machines can share a batch through this database."""
    return engine.dialect.name == "postgresql"


def lease_seconds() -> float:
    text = setting(LEASE_ENV)
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise UsageError(f"{LEASE_ENV}={text!r} is not a number of seconds of at least 1")
    return value


def run_is_live(engine: Engine, home: Path, session_id: int) -> bool:
    """Whether a batch run of the session is going on: a live worker anywhere, or a local
    run's lock."""
    if shares_batches(engine):
        return bool(claims.live_workers(engine, session_id))
    return is_locked(home, session_id)


@dataclass(frozen=True)
class Seat:
    """How a worker came into the batch: ``batch_id`` of the run it joined (None: it starts a
    new run), and the owners whose pending rows a new run treats as abandoned."""

    batch_id: int | None
    dead_owners: frozenset[str]


class SharedRun:
    """This worker's part in a shared batch: its claims, reservations, starts and heartbeat."""

    def __init__(self, engine: Engine, session_id: int, session_slug: str) -> None:
        self.engine = engine
        self.session_id = session_id
        self.slug = session_slug
        self.lease = lease_seconds()
        self.batch_id = 0
        self.worker_id = 0
        self.epoch = 0
        self.rate_interval: float | None = None  # seconds between starts, for all workers
        self.held_until = 0.0  # this clock's moment until which a Retry-After holds starts
        self.budget_usd: Decimal | None = None  # the strictest budget any worker named
        self._beating = threading.Event()
        self._heart: threading.Thread | None = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        with claims.session_guard(self.engine, self.session_id):
            yield

    def seat(self, name: str, spec_hash: str) -> Seat:
        """Which run this worker joins (call under :meth:`guard`); refuses one of another
        batch, or of another version of this list."""
        live = claims.live_workers(self.engine, self.session_id)
        for worker in live:
            if worker.batch_name != name:
                raise BatchBusyError(
                    f"another batch ({worker.batch_name!r}) is running on session "
                    f"{self.slug!r} ({_who(worker)}); wait for it to finish or stop it first"
                )
            if worker.spec_hash != spec_hash:
                raise BatchBusyError(
                    f"workers are running another version of batch {name!r} on session "
                    f"{self.slug!r} ({_who(worker)}); run the same list, or wait for them"
                )
        if live:
            return Seat(live[0].batch_id, frozenset())
        return Seat(None, frozenset(claims.dead_owners(self.engine, self.session_id)))

    def start(
        self,
        batch_id: int,
        *,
        new_run: bool,
        owner: str,
        concurrency: int,
        budget: Decimal | None,
        rpm: float | None,
    ) -> None:
        """Begin (or join) the batch's run, register, and start the heartbeat."""
        budget_nusd = None if budget is None else claims.usd_to_nano(budget)
        interval = 60.0 / rpm if rpm else None
        if new_run:
            self.rate_interval = interval
            self.epoch = claims.start_run(
                self.engine, batch_id, budget_nusd=budget_nusd, rate_interval=interval
            )
        else:
            share = claims.join_run(
                self.engine, batch_id, budget_nusd=budget_nusd, rate_interval=interval
            )
            self.epoch, self.rate_interval = share.epoch, share.rate_interval
        self.batch_id = batch_id
        self.worker_id = claims.register_worker(
            self.engine,
            batch_id,
            self.epoch,
            owner=owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            concurrency=concurrency,
            lease=self.lease,
        )
        self._heart = threading.Thread(target=self._beat, name="onmodel-heartbeat", daemon=True)
        self._heart.start()

    def _beat(self) -> None:
        """Renew the lease a few times a lease; a missed beat (the database away a moment) is
        only late, and the lease allows for it."""
        while not self._beating.wait(self.lease / 4):
            try:
                claims.heartbeat(self.engine, self.worker_id)
            except Exception:
                continue

    def budget(self) -> Decimal | None:
        """The budget every worker keeps (the strictest any of them named)."""
        share = claims.read_share(self.engine, self.batch_id)
        return None if share.budget_nusd is None else claims.nano_to_usd(share.budget_nusd)

    # ------------------------------------------------------------------ work

    def offer(self, keys_in_order: list[tuple[str, int]]) -> None:
        claims.offer(self.engine, self.batch_id, keys_in_order)

    def claim_next(self) -> list[Claim]:
        """A few shots to make, in list order (empty: none is left to claim now)."""
        claimed = claims.claim_next(self.engine, self.batch_id, self.worker_id, CLAIM_AT_ONCE)
        self.rate_interval = claimed.rate_interval
        self.held_until = time.monotonic() + claimed.hold
        self.budget_usd = (
            None if claimed.budget_nusd is None else claims.nano_to_usd(claimed.budget_nusd)
        )
        return claimed.claims

    def claim(self, key: str) -> bool:
        return claims.claim_one(self.engine, self.batch_id, key, self.worker_id)

    def reserve(self, key: str, amount: Decimal) -> Reservation:
        nano = claims.usd_to_nano(amount, up=True)
        return claims.reserve(self.engine, self.batch_id, key, self.worker_id, nano)

    def settle(self, key: str, cost: Decimal | None) -> None:
        nano = None if cost is None else claims.usd_to_nano(cost)
        claims.settle(self.engine, self.batch_id, key, self.worker_id, nano)

    def done_keys(self) -> set[str]:
        return claims.done_keys(self.engine, self.batch_id)

    def busy_elsewhere(self) -> bool:
        return claims.busy_elsewhere(self.engine, self.batch_id, self.worker_id)

    # ------------------------------------------------------------------ leaving

    def leave(self, stats: dict[str, object], *, complete: bool) -> Departure:
        """Hand back unfinished claims, stop the heartbeat, and say what this worker closes:
        ``completed`` when it marked the batch completed (one worker ever does), ``last`` when
        no live worker is left to record the run."""
        self._beating.set()
        if self._heart is not None:
            self._heart.join()
        with self.guard():
            claims.release_claims(self.engine, self.batch_id, self.worker_id)
            claims.stop_worker(self.engine, self.worker_id, dict(stats))
            completed = complete and claims.finish_batch(self.engine, self.batch_id)
            others = [
                w
                for w in claims.live_workers(self.engine, self.session_id)
                if w.batch_id == self.batch_id
            ]
            workers = claims.worker_stats(self.engine, self.batch_id, self.epoch)
            share = claims.read_share(self.engine, self.batch_id)
        return Departure(
            completed=completed,
            last=not others,
            workers=workers,
            spent=claims.nano_to_usd(share.spent_nusd),
            unknown_costs=share.unknown_costs,
        )


@dataclass(frozen=True)
class Departure:
    """What a worker leaving learns: whether it completed the batch, whether it is the last
    out (then it records the run), and the run as all its workers made it: each one's own
    record, what they spent together (a dead worker's reservation counted as spent) and how
    many costs no one could tell."""

    completed: bool
    last: bool
    workers: list[dict[str, object]]
    spent: Decimal
    unknown_costs: int


def _who(worker: WorkerRecord) -> str:
    return f"pid {worker.pid} on {worker.host}"
