"""Recording when a batch's rate limiter lets each request start, alone or shared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from onmodel.batch.rate import RateLimiter, SharedRateLimiter


@dataclass
class Starts:
    """``scheduled``: each start's moment on the clock that spaces them (this process's, or
    the database server's for a shared batch); ``local``: this process's clock at each take,
    before its request was sent."""

    scheduled: list[float] = field(default_factory=list)
    local: list[float] = field(default_factory=list)


def record_limiter_starts(monkeypatch: pytest.MonkeyPatch) -> Starts:
    """Noted at :meth:`take`: the next start is allowed ``interval`` after the one taken, so
    the scheduled moments are spaced at least ``interval`` apart however busy the machine is,
    and every request is sent after its local moment."""
    starts = Starts()

    class Recording(RateLimiter):
        def take(self) -> None:
            super().take()
            assert self.last_start is not None
            starts.scheduled.append(self.last_start)
            starts.local.append(time.monotonic())

    class RecordingShared(SharedRateLimiter):
        def take(self) -> None:
            super().take()
            assert self.last_start is not None
            starts.scheduled.append(self.last_start)
            starts.local.append(time.monotonic())

    monkeypatch.setattr("onmodel.batch.runner.RateLimiter", Recording)
    monkeypatch.setattr("onmodel.batch.runner.SharedRateLimiter", RecordingShared)
    return starts
