"""Shots started from the web UI run in background threads, so a page never waits on an API.

The request records the pending row itself (the pipeline's first step) and answers with its
id; a thread then asks the provider and stores the image. Each web shot carries a ``shot_key``
(``web-`` and 32 hex digits the form generated), the row's idempotency key, which turns a
double-submitted form into the same shot instead of two paid ones. A retry runs
:meth:`Studio.retry` on a thread, and the request waits only for its row (see
:meth:`ShotRunner.retry`).
"""

from __future__ import annotations

import re
import sys
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass, replace

from onmodel.errors import GenerationError, OnmodelError, UsageError
from onmodel.handles import Image
from onmodel.status import ImageStatus
from onmodel.store import queries
from onmodel.studio import ShotPlan, Studio

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
KEY_PREFIX = "web-"
RETRY_LOOK = 0.05  # seconds between looks for a retry's row while the library plans it
RETRY_CHANGES = 100  # the session's changes looked through for it at each look
RETRIES_KEPT = 1_000  # form keys of retries remembered, so a form sent twice is one retry


class TooBusyError(UsageError):
    """More shots are running than the server lets one person start at once."""


@dataclass
class _Outcome:
    """How a retry's call ended, set by its thread: the image it made, or what it raised."""

    image: Image | None = None
    error: BaseException | None = None


class ShotRunner:
    def __init__(self, studio: Studio, *, max_running: int = 4) -> None:
        self.studio = studio
        self.max_running = max_running
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._retried: OrderedDict[str, int] = OrderedDict()  # form key -> the retry's id

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
            self._check_room()
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

    def retry(self, failed: Image, key: str) -> int:
        """Run :meth:`Studio.retry` on ``failed`` in the background; the new image's id.

        The library records the retry's row and asks the provider in one call, so the call
        runs on a thread from the start, and this waits (under the lock, as :meth:`start`
        records) only until the row is there or the call has ended: a retry the library
        refuses (no key, a retired model, an image that is not failed) is raised here for the
        page to show, and no request waits on the provider.

        The retry's row carries the failed shot's own key (a batch finds its retried shots by
        it), so the form's key cannot be stored on it: it is remembered here instead, for the
        last :data:`RETRIES_KEPT` retries, which a form sent twice at once or a moment later
        finds.
        """
        shot_key = self.shot_key(key)
        session_id = failed.session_id
        with self._lock:
            known = self._retried.get(shot_key)
            if known is not None:
                return known
            if session_id is None:
                raise UsageError(
                    f"image {failed.id} is a character's anchor, in no session: "
                    f"retry it with `onmodel retry {failed.id}`"
                )
            self._check_room()
            stamp = self.studio.session_stamp(session_id)  # before the row it looks for
            outcome = _Outcome()
            thread = threading.Thread(
                target=self._retry,
                args=(failed.id, shot_key, outcome),
                name=f"onmodel-retry-{key[:8]}",
                daemon=False,  # as a shot's: finished and recorded even at shutdown
            )
            self._threads[shot_key] = thread
            thread.start()
            image_id = self._recorded(failed.id, session_id, stamp, thread, outcome)
            self._retried[shot_key] = image_id
            while len(self._retried) > RETRIES_KEPT:
                self._retried.popitem(last=False)
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

    def _check_room(self) -> None:
        running = sum(t.is_alive() for t in self._threads.values())
        if running >= self.max_running:
            raise TooBusyError(f"{running} shots are already running; start more when one finishes")

    def _recorded(
        self,
        failed_id: int,
        session_id: int,
        stamp: str,
        thread: threading.Thread,
        outcome: _Outcome,
    ) -> int:
        """The id of the row the retry on ``thread`` records: the image its call returned or
        failed with, or, while the provider is still being asked, the pending retry of
        image ``failed_id`` among its session's images changed since ``stamp``."""
        while True:
            thread.join(RETRY_LOOK)
            if outcome.image is not None:
                return outcome.image.id
            error = outcome.error
            if isinstance(error, GenerationError) and error.image_id is not None:
                return error.image_id  # recorded, and failed again: its card says why
            if isinstance(error, OnmodelError):
                raise error
            if error is not None:
                raise OnmodelError(f"the retry of image {failed_id} crashed: {error!r}")
            changed = self.studio.images_changed_since(session_id, stamp, RETRY_CHANGES)
            for image in changed:
                if image.retry_of_id == failed_id and image.status == ImageStatus.PENDING:
                    return image.id

    def _retry(self, image_id: int, shot_key: str, outcome: _Outcome) -> None:
        try:
            outcome.image = self.studio.retry(image_id)
        except BaseException as exc:
            outcome.error = exc  # a refusal, for the request; a failure is on the image row
            if not isinstance(exc, OnmodelError):
                print(f"onmodel serve: retry of image {image_id} crashed:", file=sys.stderr)
                traceback.print_exc()
        finally:
            with self._lock:
                self._threads.pop(shot_key, None)

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
