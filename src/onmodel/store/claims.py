"""The SQL of batches shared by several machines on one PostgreSQL database (revision 0008).

``onmodel.batch.shared`` decides; this module only reads and writes. Every statement that two
workers could race on is made safe by the database, not by timing:

* a shot is taken with ``FOR UPDATE SKIP LOCKED`` and marked ``claimed`` in the same
  transaction, so two workers asking at once get different shots, and neither waits;
* money is reserved by one conditional ``UPDATE`` of the batch's ``batch_share`` row (spent plus
  reserved plus this estimate within the budget), which PostgreSQL serializes on the row;
* the next request start is handed out the same way, from the database server's clock, so
  machines whose clocks disagree still space their requests evenly;
* a worker is alive while its heartbeat (``seen_at``) is younger than the lease: a dead one's
  claims are taken over, and its pending image rows are marked ``interrupted`` then, in the
  same transaction that takes the claim.

Amounts are integers of nano-dollars (``usd_to_nano``): a sum of many small prices is exact,
and never a float.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from onmodel.status import ImageStatus
from onmodel.store.batches import interrupted_mark
from onmodel.store.models import BatchClaimRow, BatchRow, BatchShareRow, BatchWorkerRow, ImageRow
from onmodel.store.writes import change_time

_CLAIMS = BatchClaimRow.__table__  # type: ignore[attr-defined]
_WORKERS = BatchWorkerRow.__table__  # type: ignore[attr-defined]
_SHARE = BatchShareRow.__table__  # type: ignore[attr-defined]
_BATCHES = BatchRow.__table__  # type: ignore[attr-defined]
_IMAGES = ImageRow.__table__  # type: ignore[attr-defined]
_CHUNK = 1000
_LOCK_SPACE = 0x6F6D  # "om": the first key of onmodel's advisory locks
OPEN, CLAIMED, DONE = "open", "claimed", "done"
NANO = Decimal(1_000_000_000)


def usd_to_nano(amount: Decimal, *, up: bool = False) -> int:
    """Dollars as nano-dollars; ``up`` rounds an estimate up, so a reservation never falls
    short of what it stands for."""
    scaled = amount * NANO
    return int(scaled.to_integral_value(rounding=ROUND_CEILING) if up else round(scaled))


def nano_to_usd(amount: int) -> Decimal:
    return (Decimal(amount) / NANO).normalize()


def _now() -> Any:
    """The database server's clock, in seconds: one clock for every machine."""
    return func.extract("epoch", func.clock_timestamp())


@contextmanager
def session_guard(engine: Engine, session_id: int) -> Iterator[None]:
    """Hold the session's advisory lock: workers join, leave and finish a session's batch one
    at a time, so two that start at once never both open a new run. The lock belongs to a
    connection, so a worker that dies releases it with its connection."""
    with engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(_LOCK_SPACE, session_id)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(_LOCK_SPACE, session_id)))
            conn.commit()


@dataclass(frozen=True)
class WorkerRecord:
    id: int
    batch_id: int
    batch_name: str
    spec_hash: str
    epoch: int
    owner: str
    host: str
    pid: int


def _live() -> Any:
    """A worker is alive while it has not stopped and its last beat is younger than its own
    lease (each worker says how long it may go unseen; observers need not agree)."""
    return and_(_WORKERS.c.stopped_at.is_(None), _WORKERS.c.seen_at >= _now() - _WORKERS.c.lease)


def live_workers(engine: Engine, session_id: int) -> list[WorkerRecord]:
    """The workers of the session's batches whose heartbeat is younger than their lease."""
    query = (
        select(
            _WORKERS.c.id,
            _WORKERS.c.batch_id,
            _BATCHES.c.name,
            _BATCHES.c.spec_hash,
            _WORKERS.c.epoch,
            _WORKERS.c.owner,
            _WORKERS.c.host,
            _WORKERS.c.pid,
        )
        .join(_BATCHES, _BATCHES.c.id == _WORKERS.c.batch_id)
        .where(_BATCHES.c.session_id == session_id)
        .where(_live())
        .order_by(_WORKERS.c.id)
    )
    with engine.connect() as conn:
        return [WorkerRecord(*row) for row in conn.execute(query)]


def dead_owners(engine: Engine, session_id: int) -> set[str]:
    """Owner tokens of the session's workers whose lease ran out before they stopped: their
    pending rows are abandoned, even when the token names another machine (``onmodel.owners``
    cannot judge those, and takes them for alive). A worker that stopped gave up on its own
    rows itself, and its process may live on and record others (a ``retry``)."""
    query = (
        select(_WORKERS.c.owner)
        .join(_BATCHES, _BATCHES.c.id == _WORKERS.c.batch_id)
        .where(_BATCHES.c.session_id == session_id)
        .where(_WORKERS.c.stopped_at.is_(None), _WORKERS.c.seen_at < _now() - _WORKERS.c.lease)
    )
    with engine.connect() as conn:
        return {owner for (owner,) in conn.execute(query)}


def start_run(
    engine: Engine, batch_id: int, *, budget_nusd: int | None, rate_interval: float | None
) -> int:
    """A new run of the batch (no worker of it alive): its counters start at zero and the last
    run's claims are forgotten. Returns the run's number (its ``epoch``)."""
    with engine.begin() as conn:
        epoch = conn.execute(
            select(_SHARE.c.epoch).where(_SHARE.c.batch_id == batch_id)
        ).scalar_one_or_none()
        values = {
            "spent_nusd": 0,
            "reserved_nusd": 0,
            "unknown_costs": 0,
            "budget_nusd": budget_nusd,
            "rate_interval": rate_interval,
            "rate_next_at": 0.0,
        }
        if epoch is None:
            epoch = 1
            conn.execute(insert(_SHARE).values(batch_id=batch_id, epoch=epoch, **values))
        else:
            epoch += 1
            conn.execute(
                update(_SHARE).where(_SHARE.c.batch_id == batch_id).values(epoch=epoch, **values)
            )
        # the last run's claims go; its workers stay (a stalled one may wake and claim: its
        # row then says it is dead, and what it claimed is taken over)
        conn.execute(delete(_CLAIMS).where(_CLAIMS.c.batch_id == batch_id))
        return int(epoch)


@dataclass(frozen=True)
class ShareRecord:
    epoch: int
    spent_nusd: int
    reserved_nusd: int
    unknown_costs: int
    budget_nusd: int | None
    rate_interval: float | None


def join_run(
    engine: Engine, batch_id: int, *, budget_nusd: int | None, rate_interval: float | None
) -> ShareRecord:
    """Join the batch's run: the strictest budget and request spacing any worker asked for
    hold for all of them (a worker that names none takes the run's)."""
    with engine.begin() as conn:
        share = conn.execute(
            select(_SHARE).where(_SHARE.c.batch_id == batch_id).with_for_update()
        ).one()
        budget = share.budget_nusd
        if budget_nusd is not None:
            budget = budget_nusd if budget is None else min(budget, budget_nusd)
        interval = share.rate_interval
        if rate_interval is not None:
            interval = rate_interval if interval is None else max(interval, rate_interval)
        conn.execute(
            update(_SHARE)
            .where(_SHARE.c.batch_id == batch_id)
            .values(budget_nusd=budget, rate_interval=interval)
        )
    return read_share(engine, batch_id)


def read_share(engine: Engine, batch_id: int) -> ShareRecord:
    with engine.connect() as conn:
        row = conn.execute(select(_SHARE).where(_SHARE.c.batch_id == batch_id)).one()
    return ShareRecord(
        row.epoch,
        row.spent_nusd,
        row.reserved_nusd,
        row.unknown_costs,
        row.budget_nusd,
        row.rate_interval,
    )


def register_worker(
    engine: Engine,
    batch_id: int,
    epoch: int,
    *,
    owner: str,
    host: str,
    pid: int,
    concurrency: int,
    lease: float,
) -> int:
    with engine.begin() as conn:
        now = conn.execute(select(_now())).scalar_one()
        return int(
            conn.execute(
                insert(_WORKERS)
                .values(
                    batch_id=batch_id,
                    epoch=epoch,
                    owner=owner,
                    host=host,
                    pid=pid,
                    concurrency=concurrency,
                    lease=lease,
                    started_at=now,
                    seen_at=now,
                    stats={},
                )
                .returning(_WORKERS.c.id)
            ).scalar_one()
        )


def heartbeat(engine: Engine, worker_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(_WORKERS)
            .where(_WORKERS.c.id == worker_id)
            .where(_WORKERS.c.stopped_at.is_(None))
            .values(seen_at=_now())
        )


def stop_worker(engine: Engine, worker_id: int, stats: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(_WORKERS)
            .where(_WORKERS.c.id == worker_id)
            .values(stopped_at=_now(), seen_at=_now(), stats=stats)
        )


def worker_stats(engine: Engine, batch_id: int, epoch: int) -> list[dict[str, Any]]:
    """What each worker of the run did, as it recorded when it stopped, oldest first."""
    query = (
        select(_WORKERS.c.host, _WORKERS.c.pid, _WORKERS.c.stats)
        .where(_WORKERS.c.batch_id == batch_id, _WORKERS.c.epoch == epoch)
        .order_by(_WORKERS.c.id)
    )
    with engine.connect() as conn:
        return [{"host": h, "pid": p, **(stats or {})} for h, p, stats in conn.execute(query)]


def offer(engine: Engine, batch_id: int, shots: Iterable[tuple[str, int]]) -> None:
    """Make shots claimable, in list order (``position``); one already offered in this run, in
    whatever state, is left alone: a shot made (or being made) is never offered again."""
    rows = [
        {"batch_id": batch_id, "shot_key": key, "position": position, "state": OPEN}
        for key, position in shots
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), _CHUNK):
            statement = pg_insert(_CLAIMS).values(
                [{**row, "reserved_nusd": 0} for row in rows[start : start + _CHUNK]]
            )
            conn.execute(statement.on_conflict_do_nothing())


@dataclass(frozen=True)
class Claim:
    """A shot this worker now makes; ``taken_over``: from a dead worker, whose pending rows
    of it were marked interrupted as it was taken."""

    key: str
    taken_over: bool = False


@dataclass(frozen=True)
class Claimed:
    """What one claim transaction got: shots in list order, the batch's request spacing as it
    stands (a worker that joined later may have made it stricter), and how many seconds from
    now no request may start (an API's ``Retry-After``, held for every worker)."""

    claims: list[Claim]
    rate_interval: float | None
    hold: float
    budget_nusd: int | None


def claim_next(engine: Engine, batch_id: int, worker_id: int, most: int) -> Claimed:
    """Up to ``most`` open shots in list order, or else one a dead worker held; none when
    there is none. Two workers asking at once never get the same one, and neither waits for
    the other (``SKIP LOCKED``). A few at a time: one transaction serves several shots."""
    with engine.begin() as conn:
        interval, hold, budget = conn.execute(
            select(
                _SHARE.c.rate_interval,
                func.greatest(_SHARE.c.rate_next_at - _now(), 0.0),
                _SHARE.c.budget_nusd,
            ).where(_SHARE.c.batch_id == batch_id)
        ).one()
        keys = list(
            conn.execute(
                select(_CLAIMS.c.shot_key)
                .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.state == OPEN)
                .where(_CLAIMS.c.position >= 0)  # shots; a check is claimed by its key
                .order_by(_CLAIMS.c.position)
                .limit(most)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if keys:
            _take(conn, batch_id, keys, worker_id)
            return Claimed([Claim(key) for key in keys], interval, float(hold), budget)
        dead = conn.execute(
            select(_CLAIMS.c.shot_key, _CLAIMS.c.reserved_nusd, _WORKERS.c.owner)
            .join(_WORKERS, _WORKERS.c.id == _CLAIMS.c.worker_id)
            .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.state == CLAIMED)
            .where(_CLAIMS.c.position >= 0)
            .where(_CLAIMS.c.worker_id != worker_id)  # a late heartbeat of its own is no death
            .where(~_live())
            .order_by(_CLAIMS.c.position)
            .limit(1)
            .with_for_update(of=_CLAIMS, skip_locked=True)
        ).first()
        if dead is None:
            return Claimed([], interval, float(hold), budget)
        _abandon(conn, batch_id, dead.shot_key, dead.owner, dead.reserved_nusd)
        _take(conn, batch_id, [dead.shot_key], worker_id)
        return Claimed([Claim(dead.shot_key, taken_over=True)], interval, float(hold), budget)


def claim_one(engine: Engine, batch_id: int, key: str, worker_id: int) -> bool:
    """Claim this one item (a check of a take): True when it is now this worker's, because no
    one had it, it was open, or its worker died (whose reservation then counts as spent)."""
    with engine.begin() as conn:
        row = conn.execute(
            select(_CLAIMS.c.state, _CLAIMS.c.reserved_nusd, _WORKERS.c.owner, _live())
            .outerjoin(_WORKERS, _WORKERS.c.id == _CLAIMS.c.worker_id)
            .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.shot_key == key)
            .with_for_update(of=_CLAIMS)
        ).first()
        if row is None:
            inserted = conn.execute(
                pg_insert(_CLAIMS)
                .values(
                    batch_id=batch_id,
                    shot_key=key,
                    position=-1,
                    state=CLAIMED,
                    worker_id=worker_id,
                    reserved_nusd=0,
                )
                .on_conflict_do_nothing()
            )
            return bool(inserted.rowcount)
        if row.state == DONE or (row.state == CLAIMED and row[3]):
            return False
        if row.state == CLAIMED:
            _abandon(conn, batch_id, key, row.owner, row.reserved_nusd)
        _take(conn, batch_id, [key], worker_id)
        return True


def _take(conn: Connection, batch_id: int, keys: list[str], worker_id: int) -> None:
    conn.execute(
        update(_CLAIMS)
        .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.shot_key.in_(keys))
        .values(state=CLAIMED, worker_id=worker_id, reserved_nusd=0)
    )


def _abandon(conn: Connection, batch_id: int, key: str, owner: str, reserved: int) -> None:
    """A dead worker's claim: its pending rows of the shot are interrupted (the shot is made
    again, linked to them), and what it had reserved counts as spent, its cost unknown: the
    request may have been paid for before the worker died."""
    session_id = conn.execute(
        select(_BATCHES.c.session_id).where(_BATCHES.c.id == batch_id)
    ).scalar_one()
    now = change_time(conn, [session_id])
    marked = conn.execute(
        update(_IMAGES)
        .where(_IMAGES.c.batch_id == batch_id)
        .where(_IMAGES.c.shot_key == key)
        .where(_IMAGES.c.owner == owner)
        .where(_IMAGES.c.status == ImageStatus.PENDING)
        .values(**interrupted_mark(now))
    ).rowcount
    conn.execute(
        update(_SHARE)
        .where(_SHARE.c.batch_id == batch_id)
        .values(
            reserved_nusd=_SHARE.c.reserved_nusd - reserved,
            spent_nusd=_SHARE.c.spent_nusd + reserved,
            unknown_costs=_SHARE.c.unknown_costs + (1 if marked else 0),
        )
    )


@dataclass(frozen=True)
class Reservation:
    """The answer to "may I spend up to this much?": ``granted``, or not, with what the
    batch has spent and reserved across its workers (``reserved`` above 0: some worker has a
    request in flight whose cost may come in lower, so waiting may help)."""

    granted: bool
    spent_nusd: int
    reserved_nusd: int
    budget_nusd: int | None


def reserve(engine: Engine, batch_id: int, key: str, worker_id: int, amount: int) -> Reservation:
    """Reserve ``amount`` for a claimed item, if spent plus reserved plus it stays within the
    budget; the conditional update is serialized on the share row, so workers together never
    reserve past the budget."""
    with engine.begin() as conn:
        share = _SHARE.c
        granted = conn.execute(
            update(_SHARE)
            .where(share.batch_id == batch_id)
            .where(
                or_(
                    share.budget_nusd.is_(None),
                    share.spent_nusd + share.reserved_nusd + amount <= share.budget_nusd,
                )
            )
            .values(reserved_nusd=share.reserved_nusd + amount)
            .returning(share.spent_nusd, share.reserved_nusd, share.budget_nusd)
        ).first()
        if granted is not None:
            conn.execute(
                update(_CLAIMS)
                .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.shot_key == key)
                .where(_CLAIMS.c.worker_id == worker_id)
                .values(reserved_nusd=_CLAIMS.c.reserved_nusd + amount)
            )
            return Reservation(True, *granted)
        _spend_dead_reservations(conn, batch_id)
        row = conn.execute(
            select(share.spent_nusd, share.reserved_nusd, share.budget_nusd).where(
                share.batch_id == batch_id
            )
        ).one()
        return Reservation(False, *row)


def _spend_dead_reservations(conn: Connection, batch_id: int) -> None:
    """What dead workers reserved counts as spent, cost unknown, and no longer as money in
    flight: a worker refused by the budget would otherwise wait forever for a dead one's
    request to settle (its shots are still taken over when nothing else is left to claim)."""
    dead = (
        select(_CLAIMS.c.shot_key, _CLAIMS.c.reserved_nusd)
        .join(_WORKERS, _WORKERS.c.id == _CLAIMS.c.worker_id)
        .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.state == CLAIMED)
        .where(_CLAIMS.c.reserved_nusd > 0)
        .where(~_live())
        .with_for_update(of=_CLAIMS, skip_locked=True)
    )
    for key, reserved in conn.execute(dead).all():
        conn.execute(
            update(_CLAIMS)
            .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.shot_key == key)
            .values(reserved_nusd=0)
        )
        _release_money(conn, batch_id, reserved, None)
        conn.execute(
            update(_SHARE)
            .where(_SHARE.c.batch_id == batch_id)
            .values(spent_nusd=_SHARE.c.spent_nusd + reserved)
        )


def settle(engine: Engine, batch_id: int, key: str, worker_id: int, cost_nusd: int | None) -> None:
    """The item is done: its reservation is released and its cost (None: unknown) spent."""
    mine = and_(
        _CLAIMS.c.batch_id == batch_id,
        _CLAIMS.c.shot_key == key,
        _CLAIMS.c.worker_id == worker_id,
    )
    with engine.begin() as conn:
        reserved = conn.execute(
            select(_CLAIMS.c.reserved_nusd).where(mine).with_for_update()
        ).scalar_one_or_none()
        conn.execute(update(_CLAIMS).where(mine).values(state=DONE, reserved_nusd=0))
        _release_money(conn, batch_id, int(reserved or 0), cost_nusd)


def _release_money(conn: Connection, batch_id: int, reserved: int, cost: int | None) -> None:
    conn.execute(
        update(_SHARE)
        .where(_SHARE.c.batch_id == batch_id)
        .values(
            reserved_nusd=_SHARE.c.reserved_nusd - reserved,
            spent_nusd=_SHARE.c.spent_nusd + (cost or 0),
            unknown_costs=_SHARE.c.unknown_costs + (1 if cost is None else 0),
        )
    )


def release_claims(engine: Engine, batch_id: int, worker_id: int) -> int:
    """Hand back what this worker claimed and did not finish (it stops early): another
    worker may make those shots. Returns how many."""
    mine = and_(_CLAIMS.c.worker_id == worker_id, _CLAIMS.c.state == CLAIMED)
    with engine.begin() as conn:
        reserved = conn.execute(
            select(func.coalesce(func.sum(_CLAIMS.c.reserved_nusd), 0)).where(mine)
        ).scalar_one()
        held = conn.execute(
            update(_CLAIMS).where(mine).values(state=OPEN, worker_id=None, reserved_nusd=0)
        ).rowcount
        _release_money(conn, batch_id, int(reserved), 0)
        return int(held or 0)


def done_keys(engine: Engine, batch_id: int) -> set[str]:
    """The items finished in this run, by any worker: none is made twice in one run."""
    query = select(_CLAIMS.c.shot_key).where(
        _CLAIMS.c.batch_id == batch_id, _CLAIMS.c.state == DONE
    )
    with engine.connect() as conn:
        return {key for (key,) in conn.execute(query)}


def busy_elsewhere(engine: Engine, batch_id: int, worker_id: int) -> bool:
    """Whether another worker holds a claim of the batch, alive or dead: what a live one makes
    may need checking or settle a group whose next take is due, and a dead one's claims are
    to be taken over once its lease runs out; either way this worker does not leave yet."""
    query = select(
        exists()
        .where(_CLAIMS.c.batch_id == batch_id, _CLAIMS.c.state == CLAIMED)
        .where(_CLAIMS.c.worker_id != worker_id)
    )
    with engine.connect() as conn:
        return bool(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class Start:
    """A request start: seconds to wait for it, and its moment on the server's clock."""

    wait: float
    at: float


def next_start(engine: Engine, batch_id: int) -> Start:
    """Take the batch's next request start. Starts are ``rate_interval`` apart across all
    workers, handed out in the order they are asked for; without a rate, now."""
    share = _SHARE.c
    with engine.begin() as conn:
        now = float(conn.execute(select(_now())).scalar_one())
        slot = conn.execute(
            update(_SHARE)
            .where(share.batch_id == batch_id)
            .where(share.rate_interval.is_not(None))
            .values(rate_next_at=func.greatest(share.rate_next_at, now) + share.rate_interval)
            .returning(share.rate_next_at - share.rate_interval)
        ).scalar_one_or_none()
    at = now if slot is None else float(slot)
    return Start(max(0.0, at - now), at)


def hold_starts(engine: Engine, batch_id: int, seconds: float) -> None:
    """Start nothing for ``seconds``, on any worker: an API's rate limit asked for it."""
    if not math.isfinite(seconds) or seconds <= 0:
        return
    share = _SHARE.c
    with engine.begin() as conn:
        conn.execute(
            update(_SHARE)
            .where(share.batch_id == batch_id)
            .values(rate_next_at=func.greatest(share.rate_next_at, _now() + seconds))
        )


def finish_batch(engine: Engine, batch_id: int) -> bool:
    """Mark the batch completed; True for exactly one caller however many workers finish at
    once (the update is conditional on the status it changes)."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(_BATCHES)
            .where(_BATCHES.c.id == batch_id, _BATCHES.c.status == "running")
            .values(status="completed", updated_at=func.now())
        ).rowcount
    return bool(changed)
