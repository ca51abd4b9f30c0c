"""Shots started from the web UI run in background threads, so a page never waits on an API.

The request records the pending row itself (the pipeline's first step) and answers with its
id; a thread then asks the provider and stores the image. Each web shot carries a ``shot_key``
(``web-`` and 32 hex digits the form generated), the row's idempotency key, which turns a
double-submitted form into the same shot instead of two paid ones.
"""

from __future__ import annotations

import re
import sys
import threading
import traceback
from dataclasses import replace

from onmodel.errors import GenerationError, UsageError
from onmodel.store import queries
from onmodel.studio import ShotPlan, Studio

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
KEY_PREFIX = "web-"


class TooBusyError(UsageError):
    """More shots are running than the server lets one person start at once."""


class ShotRunner:
    def __init__(self, studio: Studio, *, max_running: int = 4) -> None:
        self.studio = studio
        self.max_running = max_running
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    @staticmethod
    def shot_key(key: str) -> str:
        if not KEY_PATTERN.match(key):
            raise UsageError("the form's key is malformed; reload the page")
        return f"{KEY_PREFIX}{key}"

    def find(self, key: str) -> int | None:
        """The image already recorded for a form key, if any."""
        return queries.image_id_for_shot_key(self.studio.engine, self.shot_key(key))

    def start(self, plan: ShotPlan, key: str) -> int:
        """Record ``plan`` as pending, make it in the background, and return its image id.

        Under the lock, so a form submitted twice at once records one shot: the second
        submission finds the first one's row.
        """
        shot_key = self.shot_key(key)
        with self._lock:
            already = self.find(key)  # a double submit, running or finished
            if already is not None:
                return already
            running = sum(t.is_alive() for t in self._threads.values())
            if running >= self.max_running:
                raise TooBusyError(
                    f"{running} shots are already running; start more when one finishes"
                )
            keyed = replace(plan, shot_key=shot_key)
            image_id = self.studio.record(keyed)
            thread = threading.Thread(
                target=self._run,
                args=(image_id, keyed),
                name=f"onmodel-shot-{key[:8]}",
                daemon=False,  # a shot in flight finishes and is recorded even at shutdown
            )
            self._threads[shot_key] = thread
            thread.start()
        return image_id

    def running(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads.values())

    def join(self, timeout: float | None = None) -> None:
        """Wait for every shot in flight (on shutdown, so none is left pending)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, image_id: int, plan: ShotPlan) -> None:
        assert plan.shot_key is not None
        try:
            self.studio.store(self.studio.call(image_id, plan))
        except GenerationError:
            pass  # recorded on the image row; the page shows it as a failed card
        except BaseException:
            print(f"onmodel serve: shot {plan.shot_key} crashed:", file=sys.stderr)
            traceback.print_exc()
        finally:
            with self._lock:
                self._threads.pop(plan.shot_key, None)
