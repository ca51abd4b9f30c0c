"""Showing a batch as it runs: a live display on a terminal, plain lines everywhere else.

A long batch is watched by a person (who wants done, failed, remaining, time left and money
spent at a glance) or by a log file or CI (which wants one self-contained line per event, no
cursor tricks). The runner only reports snapshots; these classes decide how they look. All
calls come from the runner's main thread.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID

ProgressMode = Literal["auto", "rich", "plain", "none"]


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands. Counts are for this run's shots, not ones done in earlier runs;
    ``to_run`` grows when a round of retakes comes due."""

    to_run: int
    succeeded: int
    failed: int
    in_flight: int
    elapsed: float
    spent: Decimal
    spent_unknown: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def remaining(self) -> int:
        return max(0, self.to_run - self.finished)

    @property
    def eta(self) -> float | None:
        """Seconds left at the throughput so far; None until something has finished."""
        if self.finished == 0 or self.elapsed <= 0:
            return None
        return self.remaining * self.elapsed / self.finished

    def cost_text(self) -> str:
        text = f"${self.spent:.4f}"
        return f"{text} + {self.spent_unknown} unknown" if self.spent_unknown else text


class Progress(Protocol):
    """What the runner reports to."""

    def start(self, name: str, to_run: int, skipped: int) -> None: ...

    def update(self, snapshot: Snapshot, event: str | None = None) -> None: ...

    def note(self, message: str) -> None: ...

    def stop(self) -> None: ...


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class NullProgress:
    """For library callers that want nothing printed."""

    def start(self, name: str, to_run: int, skipped: int) -> None:
        pass

    def update(self, snapshot: Snapshot, event: str | None = None) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainProgress:
    """One line per finished shot and per note: greppable, and safe in any log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def _print(self, line: str) -> None:
        with self._lock:
            print(line, file=self.stream, flush=True)

    def start(self, name: str, to_run: int, skipped: int) -> None:
        done = f", {skipped} already done or skipped" if skipped else ""
        self._print(f"batch {name}: {to_run} to run{done}")

    def update(self, snapshot: Snapshot, event: str | None = None) -> None:
        if event is None:
            return
        self._print(
            f"[{snapshot.finished}/{snapshot.to_run}] {event} | done {snapshot.succeeded}, "
            f"failed {snapshot.failed}, remaining {snapshot.remaining}, "
            f"elapsed {_clock(snapshot.elapsed)}, eta {_clock(snapshot.eta)}, "
            f"cost {snapshot.cost_text()}"
        )

    def note(self, message: str) -> None:
        self._print(message)

    def stop(self) -> None:
        pass


class RichProgress:
    """A live bar with the counts beside it; notes scroll above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichBar

        self.console = Console(stderr=True, highlight=False)
        self._bar = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[succeeded]} done[/green] "
                "[red]{task.fields[failed]} failed[/red] "
                "{task.fields[remaining]} left · {task.fields[in_flight]} running"
            ),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            TextColumn("[yellow]{task.fields[cost]}"),
            console=self.console,
            refresh_per_second=8,
        )
        self._task: TaskID | None = None

    def start(self, name: str, to_run: int, skipped: int) -> None:
        if skipped:
            self.console.print(f"batch {name}: {skipped} already done or skipped")
        self._task = self._bar.add_task(
            name,
            total=to_run,
            succeeded=0,
            failed=0,
            remaining=to_run,
            in_flight=0,
            eta=_clock(None),
            cost="$0.0000",
        )
        self._bar.start()

    def update(self, snapshot: Snapshot, event: str | None = None) -> None:
        if self._task is None:
            return
        self._bar.update(
            self._task,
            total=snapshot.to_run,  # grows as rounds of retakes come due
            completed=snapshot.finished,
            succeeded=snapshot.succeeded,
            failed=snapshot.failed,
            remaining=snapshot.remaining,
            in_flight=snapshot.in_flight,
            eta=_clock(snapshot.eta),
            cost=snapshot.cost_text(),
        )
        # what needs a look scrolls above the bar: a failure, a drifted take, a failed check
        style = {"✗": "red", "~": "yellow", "?": "yellow"}.get((event or " ")[0])
        if event is not None and style is not None:
            self._bar.console.print(event, style=style, markup=False, highlight=False)

    def note(self, message: str) -> None:
        self._bar.console.print(message, markup=False, highlight=False)

    def stop(self) -> None:
        self._bar.stop()


def make_progress(mode: ProgressMode = "auto", stream: TextIO | None = None) -> Progress:
    """``auto`` is the live display when stderr is a terminal, plain lines otherwise."""
    target = stream or sys.stderr
    if mode == "none":
        return NullProgress()
    if mode == "rich" or (mode == "auto" and target.isatty()):
        return RichProgress()
    return PlainProgress(target)
