"""Checks: an image is compared with its anchor and sheet, and the outcome is a row.

The steps mirror the generation pipeline's: the check is recorded pending before a checker is
asked (a vision judge costs money), and whatever comes back, a score, a refusal, a malformed
answer or an exception, is written to that row. A failed check is an answer too ("could not
tell"), never a crash of the shot or batch that asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from onmodel.checkers import get_checker
from onmodel.checkers.base import Checker, CheckerContext, CheckerError, CheckSubject
from onmodel.errors import BudgetError, MissingKeyError, UsageError
from onmodel.handles import Image, Session
from onmodel.imagefile import MIME_TYPES
from onmodel.limits import check_amount
from onmodel.status import ImageStatus
from onmodel.store import checks as check_store
from onmodel.store.records import CheckRecord

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


UNBILLED_FAILURES = frozenset(
    {"auth", "quota", "rate_limit", "server", "connection", "invalid_request", "config"}
)
"""Failures a billed checker's API refuses before the model answers: they cost nothing, so
they are not "of unknown cost" in the reports (a timeout or a cut-off answer may be billed)."""


class Checks:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._checkers: dict[str, Checker] = {}

    def checker(self, name: str) -> Checker:
        """The named checker, reading this studio's templates and price table; one per name
        for the studio's life, so what it learns once (the palette's measurement of an
        anchor, the judge's client) serves every check of a batch."""
        found = self._checkers.get(name)
        if found is None:
            paths = self.studio.paths
            found = self._checkers[name] = get_checker(
                name,
                CheckerContext(
                    composer=self.studio.composer,
                    models_file=paths.models_file,
                    prices_file=paths.prices_file,
                ),
            )
        return found

    def ready(self, name: str) -> Checker:
        """The named checker, refused while it lacks the API key it declares it needs."""
        checker = self.checker(name)
        if not checker.has_key():
            variable = checker.key_env or "its API key"
            raise MissingKeyError(
                f"checker {name!r} needs an API key and {variable} is not set: export "
                f"{variable}=... (or use --checker palette, which works offline and is free)",
                variable=variable,
            )
        return checker

    def subject(self, image: Image) -> CheckSubject:
        """What a checker is shown for ``image``: its file, the anchor its request sent (or
        its character's anchor), the sheet it was made with and what it asked for."""
        studio = self.studio
        if image.status != ImageStatus.SUCCEEDED or image.path is None or image.row.format is None:
            state = {"failed": "failed", "interrupted": "was interrupted"}.get(
                image.status, f"is {image.status}"
            )
            raise UsageError(
                f"image {image.id} {state}: only an image that was made can be checked"
            )
        anchor = self._anchor_of(image)
        if anchor.path is None or anchor.row.format is None:
            raise UsageError(f"the anchor of image {image.id} (image {anchor.id}) has no file")
        version = studio.sheet_of(image)
        sheet = version.sheet if version is not None else studio.character(image.character_id).sheet
        return CheckSubject(
            image=image.path,
            image_mime=MIME_TYPES[image.row.format],
            anchor=anchor.path,
            anchor_mime=MIME_TYPES[anchor.row.format],
            sheet=sheet,
            request=image.request,
            character_name=studio.character(image.character_id).name,
        )

    def _over_budget(
        self, checker: Checker, image: Image, subject: CheckSubject, spent: Decimal, limit: Decimal
    ) -> str | None:
        """Why checking ``image`` could take what is spent past ``limit`` (None: it cannot).
        A check whose cost cannot be estimated says so, and how to price it."""
        if not checker.billed:
            return None
        estimate = checker.estimate_max_cost(subject)
        if estimate is None:
            return (
                f"the cost of a {checker.name} check of image {image.id} cannot be estimated "
                f"({checker.model or checker.name} lacks a price, such as input_image_tokens, "
                f"in the price table), so --max-cost {limit} cannot be kept: add it to "
                f"{self.studio.paths.prices_file}, or leave out --max-cost"
            )
        if spent + estimate <= limit:
            return None
        done = f" on top of ${spent} spent" if spent else ""
        return (
            f"a {checker.name} check of image {image.id} could cost up to ${estimate}{done}, "
            f"over --max-cost {limit}"
        )

    def estimate(self, checker: Checker, image: Image | None = None) -> Decimal | None:
        """The most one check can cost; a free checker's is 0 without looking at an image."""
        if not checker.billed:
            return Decimal(0)
        if image is None:
            return None
        return checker.estimate_max_cost(self.subject(image))

    def check(
        self,
        image_ref: int | str | Image,
        checker_name: str,
        *,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
        spent: Decimal = Decimal(0),
    ) -> CheckRecord:
        """Check one image; the row is written pending first and always finished. A paid
        check that could take ``spent`` past ``max_cost`` is refused first (a
        :class:`BudgetError`), with nothing recorded."""
        image = self.studio.image(image_ref)
        checker = self.ready(checker_name)
        subject = self.subject(image)
        if max_cost is not None:
            limit = check_amount(max_cost, "--max-cost")
            problem = self._over_budget(checker, image, subject, spent, limit)
            if problem is not None:
                raise BudgetError(problem)
        check_id = check_store.insert_pending_check(
            self.studio.engine,
            {
                "image_id": image.id,
                "checker": checker.name,
                "version": checker.version,
                "model": checker.model,
                "min_score": min_score,
            },
        )
        started = time.monotonic()
        values: dict[str, Any]
        try:
            outcome = checker.check(subject)
        except CheckerError as exc:
            values = {
                "status": "failed",
                "error_type": exc.kind,
                "error_message": str(exc),
                "usage": exc.usage,
                "cost_usd": "0"
                if exc.usage is None and exc.kind in UNBILLED_FAILURES
                else checker.cost(exc.usage),
                "returned": {"response_id": exc.response_id} if exc.response_id else {},
            }
        except (KeyboardInterrupt, SystemExit):
            check_store.finish_check(
                self.studio.engine, check_id, {"status": "interrupted", "error_type": "interrupted"}
            )
            raise
        except Exception as exc:  # a checker's bug is a failed check, not a lost shot
            values = {
                "status": "failed",
                "error_type": "unexpected",
                "error_message": f"{type(exc).__name__}: {exc}",
            }
        else:
            values = {
                "status": "succeeded",
                "score": max(0, min(100, int(outcome.score))),
                "traits": [trait.to_dict() for trait in outcome.traits],
                "summary": outcome.summary,
                "model": outcome.model or checker.model,
                "usage": outcome.usage,
                "returned": outcome.returned,
                "cost_usd": checker.cost(outcome.usage),
            }
        values["latency_ms"] = int((time.monotonic() - started) * 1000)
        check_store.finish_check(self.studio.engine, check_id, values)
        return check_store.check_by_id(self.studio.engine, check_id)

    def check_each(
        self,
        images: Iterable[Image],
        checker_name: str,
        *,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
    ) -> Iterator[tuple[Image, CheckRecord]]:
        """Check images one after another, each as :meth:`check` does, yielding each with its
        check as it is made; ``max_cost`` bounds them all together: the first check that
        could pass it is refused (a :class:`BudgetError`), the ones before it stand."""
        self.ready(checker_name)  # a missing key: refused before anything is recorded
        spent = Decimal(0)
        for image in images:
            record = self.check(
                image, checker_name, min_score=min_score, max_cost=max_cost, spent=spent
            )
            spent += Decimal(record.cost_usd or 0)
            yield image, record

    def session_shots(self, session: Session) -> Iterator[Image]:
        """A session's finished shots in id order, read a page at a time: what
        ``check --session`` checks."""
        return (
            image
            for image in self.studio.iter_session_images(session)
            if image.succeeded and image.kind not in ("anchor", "import")
        )

    def of(self, image_ids: Iterable[int]) -> dict[int, list[CheckRecord]]:
        """Every check of these images, oldest first, by image id (a query per 500 ids)."""
        return check_store.checks_of(self.studio.engine, image_ids)

    def latest(self, image_ids: Iterable[int]) -> dict[int, CheckRecord]:
        """Each image's newest finished check, by image id: what a badge shows."""
        return check_store.latest_checks(self.studio.engine, image_ids)

    def _anchor_of(self, image: Image) -> Image:
        studio = self.studio
        if image.kind in ("anchor", "import"):
            return image
        sent = next((r for r in image.references if r.role == "anchor" and r.image_id), None)
        if sent is not None and sent.image_id is not None:
            return studio.image(sent.image_id)
        anchor_id = studio.character(image.character_id).row.anchor_image_id
        if anchor_id is None:
            raise UsageError(f"image {image.id}'s character has no anchor to check it against")
        return studio.image(anchor_id)
