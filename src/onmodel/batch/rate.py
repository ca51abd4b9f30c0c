"""Spacing a batch's request starts: alone, or shared by every worker of the batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from onmodel.store import claims

if TYPE_CHECKING:
    from onmodel.batch.shared import SharedRun

MAX_HOLD_SECONDS = 300.0
"""The longest a rate limit's ``Retry-After`` holds a batch's starts (a longer one is a
quota in all but name: the shots fail, recorded, for ``--retry-failed``)."""


class RateLimiter:
    """Evenly spaced request starts: at most ``rpm`` per minute, never in bursts.

    Even spacing (rather than a bucket that allows a burst) is what an API's per-minute limit
    tolerates best, and makes ``N / rpm`` the honest lower bound on a run's duration.
    """

    def __init__(self, rpm: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._clock = clock
        self._next_at: float | None = None
        self.last_start: float | None = None
        """When the start taken last was due, on the clock that spaces the starts."""

    def delay(self) -> float:
        """Seconds until the next request may start (0 when it may start now)."""
        if self._next_at is None:
            return 0.0
        return max(0.0, self._next_at - self._clock())

    def take(self) -> None:
        """Record a start now; call only when :meth:`delay` is 0."""
        self.last_start = self._clock()
        if self.interval:
            self._next_at = self._clock() + self.interval

    def hold(self, seconds: float) -> None:
        """Start nothing for ``seconds``: an API's rate limit asked to wait that long
        (``Retry-After``), and every shot started before then would meet it again."""
        until = self._clock() + min(seconds, MAX_HOLD_SECONDS)
        self._next_at = until if self._next_at is None else max(self._next_at, until)


class SharedRateLimiter:
    """The :class:`RateLimiter` interface over the starts every worker of a shared batch
    takes from: a start is taken from the database when first asked for, then waited for here.
    ``last_start`` is on the database server's clock, the one that spaces them."""

    def __init__(self, run: SharedRun, clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self._clock = clock
        self._slot: tuple[float, float] | None = None  # (local moment, server moment)
        self.last_start: float | None = None

    def delay(self) -> float:
        if self._run.rate_interval is None:  # no --rpm anywhere: only a Retry-After holds
            return max(0.0, self._run.held_until - self._clock())
        if self._slot is None:
            start = claims.next_start(self._run.engine, self._run.batch_id)
            self._slot = (self._clock() + start.wait, start.at)
        return max(0.0, self._slot[0] - self._clock())

    def take(self) -> None:
        if self._slot is not None:
            self.last_start = self._slot[1]
        self._slot = None

    def hold(self, seconds: float) -> None:
        """Hold every worker's starts: those spaced by a rate at once (their next start comes
        from the database), the others when they next claim shots."""
        seconds = min(seconds, MAX_HOLD_SECONDS)
        claims.hold_starts(self._run.engine, self._run.batch_id, seconds)
        self._run.held_until = max(self._run.held_until, self._clock() + seconds)
