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
from onmodel.checkers.base import (
    Checker,
    CheckerContext,
    CheckerError,
    CheckOutcome,
    CheckSubject,
)
from onmodel.errors import BudgetError, MissingKeyError, UsageError
from onmodel.handles import Character, Image, Session
from onmodel.imagefile import MIME_TYPES
from onmodel.kinds import is_figure
from onmodel.limits import check_amount
from onmodel.providers.base import UNBILLED_FAILURES
from onmodel.status import ImageStatus
from onmodel.store import checks as check_store
from onmodel.store import queries
from onmodel.store.records import CheckRecord
from onmodel.studio.editing import SheetVersion

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


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
        its character's anchor), the sheet it was made with and what it asked for. For a shot
        of several, its first figure's (see :meth:`subjects`)."""
        return self.subjects(image)[0]

    def subjects(self, image: Image) -> list[CheckSubject]:
        """One subject per figure ``image`` shows, in cast order: each measured against its
        own anchor and the sheet it was made with. A set (the place) is not checked, nor is
        a prop (held or placed, it is part of its figure's outline and cannot be found
        apart). A picture of one figure gives one subject, ``character_id`` None when it is
        the image's own character, so its check reads as it always has; a ``--cast rin``
        shot's one figure is Rin, checked as Rin."""
        studio = self.studio
        if image.status != ImageStatus.SUCCEEDED or image.path is None or image.row.format is None:
            state = {"failed": "failed", "interrupted": "was interrupted"}.get(
                image.status, f"is {image.status}"
            )
            raise UsageError(
                f"image {image.id} {state}: only an image that was made can be checked"
            )
        figures = [
            (member, version) for member, version in self._cast(image) if is_figure(member.kind)
        ]
        if image.kind in ("anchor", "import") or not figures:
            figures = [(studio.character(image.character_id), image.row.sheet_version_id)]
        anchors = self._anchors_sent(image)
        boxes = _drawn_at(image) if len(figures) > 1 else {}
        subjects = []
        for member, version_id in figures:
            anchor = anchors.get(member.id) or self._anchor_of(image, member)
            if anchor.path is None or anchor.row.format is None:
                raise UsageError(
                    f"the anchor of {member.name} in image {image.id} (image {anchor.id}) "
                    "has no file"
                )
            version = queries.sheet_version(studio.engine, version_id) if version_id else None
            own = len(figures) == 1 and member.id == image.character_id
            subjects.append(
                CheckSubject(
                    image=image.path,
                    image_mime=MIME_TYPES[image.row.format],
                    anchor=anchor.path,
                    anchor_mime=MIME_TYPES[anchor.row.format],
                    sheet=SheetVersion.from_record(version).sheet
                    if version is not None
                    else member.sheet,
                    request=image.request,
                    character_name=member.name,
                    character_id=None if own else member.id,
                    box=boxes.get(member.slug),
                )
            )
        return subjects

    def not_checked(self, image: Image) -> list[Character]:
        """Who is in a shot but not checked: its set, its props (see :meth:`subjects`)."""
        if image.kind in ("anchor", "import"):
            return []
        return [member for member, _ in self._cast(image) if not is_figure(member.kind)]

    def _cast(self, image: Image) -> list[tuple[Character, int | None]]:
        """Who is in ``image``, in order, each with the sheet version it was made with."""
        cast = check_store.member_sheets(self.studio.engine, image.id)
        people = self.studio.lookups.characters_by_id([member for member, _ in cast])
        return [(people[member], version) for member, version in cast if member in people]

    def _over_budget(
        self,
        checker: Checker,
        image: Image,
        subjects: list[CheckSubject],
        spent: Decimal,
        limit: Decimal,
    ) -> str | None:
        """Why checking ``image`` could take what is spent past ``limit`` (None: it cannot).
        A check whose cost cannot be estimated says so, and how to price it."""
        if not checker.billed:
            return None
        estimate = _estimate(checker, subjects)
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
        """The most one check can cost (every member of a shot of several); a free checker's
        is 0 without looking at an image."""
        if not checker.billed:
            return Decimal(0)
        if image is None:
            return None
        return _estimate(checker, self.subjects(image))

    def check(
        self,
        image_ref: int | str | Image,
        checker_name: str,
        *,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
        spent: Decimal = Decimal(0),
    ) -> CheckRecord:
        """Check one image; the rows are written pending first and always finished. A paid
        check that could take ``spent`` past ``max_cost`` is refused first (a
        :class:`BudgetError`), with nothing recorded.

        A shot of several figures is checked per member, a row each, in one round; what is
        returned then is a :class:`~onmodel.store.checks.ShotCheck`: its worst member, at
        what the round cost, with every member's row."""
        image = self.studio.image(image_ref)
        checker = self.ready(checker_name)
        subjects = self.subjects(image)
        if max_cost is not None:
            limit = check_amount(max_cost, "--max-cost")
            problem = self._over_budget(checker, image, subjects, spent, limit)
            if problem is not None:
                raise BudgetError(problem)
        check_ids = check_store.insert_pending_checks(
            self.studio.engine,
            [
                {
                    "image_id": image.id,
                    "character_id": subject.character_id,
                    "checker": checker.name,
                    "version": checker.version,
                    "model": checker.model,
                    "min_score": min_score,
                }
                for subject in subjects
            ],
        )
        started = time.monotonic()
        answers: list[CheckOutcome | CheckerError | Exception]
        try:
            if len(check_ids) == 1 and subjects[0].character_id is None:
                answers = [checker.check(subjects[0])]
            else:
                answers = list(checker.check_cast(subjects))
        except CheckerError as exc:  # one paid call for every member: it fails them all
            answers = [exc, *(_shared_failure(exc) for _ in subjects[1:])]
        except (KeyboardInterrupt, SystemExit):
            for check_id in check_ids:
                check_store.finish_check(
                    self.studio.engine,
                    check_id,
                    {"status": "interrupted", "error_type": "interrupted"},
                )
            raise
        except Exception as exc:  # a checker's bug is a failed check, not a lost shot
            answers = [exc for _ in subjects]
        latency = int((time.monotonic() - started) * 1000)
        for check_id, subject, answer in zip(check_ids, subjects, answers, strict=True):
            values = _finished(checker, answer)
            values["latency_ms"] = latency
            if subject.character_id is not None:
                values["returned"] = {
                    **values.get("returned", {}),
                    "member": subject.character_name,
                }
            check_store.finish_check(self.studio.engine, check_id, values)
        records = [check_store.check_by_id(self.studio.engine, each) for each in check_ids]
        return check_store.shot_check(records)

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
        """Every check of these images, oldest first, by image id (a query per 500 ids); a
        shot of several has a row per member in each round (``character_id`` set)."""
        return check_store.checks_of(self.studio.engine, image_ids)

    def latest(self, image_ids: Iterable[int]) -> dict[int, CheckRecord]:
        """Each image's newest finished check, by image id: what a badge shows. One record
        per image still for a shot of several: its newest round as a
        :class:`~onmodel.store.checks.ShotCheck`, the worst member's row (a drifted member
        before a failed check, then the lowest score) with every member's in ``members``."""
        return check_store.latest_checks(self.studio.engine, image_ids)

    def _anchors_sent(self, image: Image) -> dict[int, Image]:
        """The anchors ``image``'s request sent, by the member each is the anchor of: a
        shot of several sends each member's (an anchor is its own character's image)."""
        if image.kind in ("anchor", "import"):
            return {image.character_id: image}
        sent: dict[int, Image] = {}
        for reference in image.references:
            if reference.role == "anchor" and reference.image_id is not None:
                anchor = self.studio.image(reference.image_id)
                sent.setdefault(anchor.character_id, anchor)
        return sent

    def _anchor_of(self, image: Image, member: Character) -> Image:
        """``member``'s anchor, for a shot that did not send it (a continued conversation
        sends a member's anchor only on the turn where it first appears)."""
        anchor_id = member.row.anchor_image_id
        if anchor_id is None:
            raise UsageError(f"{member.name} in image {image.id} has no anchor to check it against")
        return self.studio.image(anchor_id)


def _drawn_at(image: Image) -> dict[str, tuple[int, int, int, int]]:
    """Where the provider says it drew each member, by slug (the preview does, in
    ``returned["figures"]``); what is not four numbers is left out: it is only a hint."""
    boxes: dict[str, tuple[int, int, int, int]] = {}
    figures = image.returned.get("figures")
    for figure in figures if isinstance(figures, list) else []:
        box = figure.get("box") if isinstance(figure, dict) else None
        if isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box):
            boxes[str(figure.get("member"))] = (box[0], box[1], box[2], box[3])
    return boxes


def _estimate(checker: Checker, subjects: list[CheckSubject]) -> Decimal | None:
    """The most one check of these subjects (one image's) can cost."""
    if len(subjects) == 1 and subjects[0].character_id is None:
        return checker.estimate_max_cost(subjects[0])
    return checker.estimate_cast_max_cost(subjects)


def _shared_failure(exc: CheckerError) -> CheckerError:
    """A member's part of a failed call that checked every member at once: the same failure,
    its cost on the first member's row alone."""
    return CheckerError(str(exc), kind=exc.kind, usage={}, response_id=exc.response_id)


def _finished(checker: Checker, answer: CheckOutcome | Exception) -> dict[str, Any]:
    """A check row's values for what the checker answered, or what it failed with."""
    if isinstance(answer, CheckerError):
        return {
            "status": "failed",
            "error_type": answer.kind,
            "error_message": str(answer),
            "usage": answer.usage or None,
            "cost_usd": "0"
            if not answer.usage and (answer.usage is not None or answer.kind in UNBILLED_FAILURES)
            else checker.cost(answer.usage),
            "returned": {"response_id": answer.response_id} if answer.response_id else {},
        }
    if isinstance(answer, Exception):
        return {
            "status": "failed",
            "error_type": "unexpected",
            "error_message": f"{type(answer).__name__}: {answer}",
        }
    return {
        "status": "succeeded",
        "score": max(0, min(100, int(answer.score))),
        "traits": [trait.to_dict() for trait in answer.traits],
        "summary": answer.summary,
        "model": answer.model or checker.model,
        "usage": answer.usage,
        "returned": answer.returned,
        "cost_usd": "0" if answer.usage == {} else checker.cost(answer.usage),
    }
