"""The one interface every consistency check plugs into.

A checker looks at a finished image beside its character's anchor, model sheet and the shot's
request, and says, trait by trait, whether the character stayed on model. Like a provider, it
never touches the database or the blob store: the studio records a pending check row before
calling it (a judge costs money) and records whatever it returns or raises, so a malformed
answer, a refusal or an API error is a failed check on record, never a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from onmodel.errors import OnmodelError, UsageError
from onmodel.settings import Settings, is_set
from onmodel.sheet import ModelSheet, ShotRequest

if TYPE_CHECKING:
    from onmodel.composer import Composer

DEFAULT_MIN_SCORE = 80
"""The score a take must reach to pass when ``--min-score`` is not given."""


class Verdict(StrEnum):
    """What a check says of one trait. Only ``drifted`` counts against the shot."""

    SAME = "same"
    DRIFTED = "drifted"
    NOT_VISIBLE = "not visible"
    CHANGED = "changed by request"


@dataclass(frozen=True)
class TraitResult:
    """One trait of the sheet, as a check found it in the shot.

    ``trait`` names the sheet field (``hair_color``, ``outfit_colors``, ``must_keep``) and, for
    a list, which item (``outfit_colors: #2e86ab``, ``must_keep: hair clip``). ``expected`` and
    ``measured`` are what a measuring checker compared (hex colours for ``palette``), and
    ``delta_e`` their CIEDE2000 difference; a judging checker leaves them empty and says why
    in ``note``.
    """

    trait: str
    verdict: Verdict
    note: str = ""
    expected: str | None = None
    measured: str | None = None
    delta_e: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"trait": self.trait, "verdict": str(self.verdict)}
        if self.note:
            data["note"] = self.note
        for name in ("expected", "measured", "delta_e"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraitResult:
        """Read a stored result; a verdict this version does not know reads as drifted, the
        cautious reading, rather than failing the page that shows it."""
        try:
            verdict = Verdict(data.get("verdict", ""))
        except ValueError:
            verdict = Verdict.DRIFTED
        delta = data.get("delta_e")
        return cls(
            trait=str(data.get("trait", "")),
            verdict=verdict,
            note=str(data.get("note", "")),
            expected=data.get("expected"),
            measured=data.get("measured"),
            delta_e=float(delta) if isinstance(delta, int | float) else None,
        )


@dataclass(frozen=True)
class CheckSubject:
    """Everything a checker is given: the shot, what it must match, and what it asked for.

    ``anchor`` is the anchor the shot's request sent (or the character's anchor, for an image
    that sent none), ``sheet`` the model sheet version the shot was made with, and ``request``
    what the shot asked for on top of them: a checker reports the traits a request changes on
    purpose (a new outfit, a night scene) as ``changed by request``, not as drift.

    In a shot of several (see :meth:`Checker.check_cast`) there is one subject per member, the
    same ``image`` with that member's own anchor, sheet and name, and ``character_id`` says
    which member it is (None: the image's own character, as every single-figure image is).
    ``box`` is where the provider says it drew that member (left, top, right, bottom in the
    image's pixels; the preview says so): a hint a checker may use, never one it needs.
    """

    image: Path
    image_mime: str
    anchor: Path
    anchor_mime: str
    sheet: ModelSheet
    request: ShotRequest
    character_name: str = ""
    character_id: int | None = None
    box: tuple[int, int, int, int] | None = None


@dataclass
class CheckOutcome:
    """What a checker found. ``score`` is 0-100 (100: on model in every trait it could see)."""

    score: int
    traits: list[TraitResult]
    summary: str = ""
    model: str | None = None  # the model that judged (None for a measuring checker)
    usage: dict[str, Any] | None = None
    returned: dict[str, Any] = field(default_factory=dict)  # e.g. the judge's response id

    @property
    def drifted(self) -> list[TraitResult]:
        return [t for t in self.traits if t.verdict == Verdict.DRIFTED]


class CheckerError(OnmodelError):
    """A check could not be made: a refused or malformed answer, an API error, an unreadable
    file. ``kind`` says which, as a :class:`~onmodel.providers.base.ProviderError`'s does; the
    studio records it (with any ``usage`` already paid for) as a failed check."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        usage: dict[str, Any] | None = None,
        response_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.usage = usage
        self.response_id = response_id


@dataclass(frozen=True)
class CheckerContext:
    """What the studio hands every checker it builds: the data folder's own tables and
    templates (a judge's prompt is a template the user can override)."""

    composer: Composer | None = None
    models_file: Path | None = None
    prices_file: Path | None = None
    settings: Settings = field(default_factory=Settings.from_environment)


class Checker(ABC):
    """A consistency check, found by ``name`` through the ``onmodel.checkers`` entry points.

    A checker declares what it is (free or billed, offline or not, the key it needs) and the
    core asks, as it asks providers: adding one is a class registered under the entry-point
    group, with no edit to the studio, the CLI or the pages.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    """Bumped when the checker's method changes, so old scores can be told from new ones."""
    billed: ClassVar[bool] = False
    """Each check is paid for (a vision model); a free one costs nothing, always."""
    offline: ClassVar[bool] = True
    key_env: ClassVar[str | None] = None
    """The environment variable that must hold an API key (None: no key needed)."""

    def __init__(self, context: CheckerContext | None = None) -> None:
        self.context = context or CheckerContext()

    def has_key(self) -> bool:
        return self.key_env is None or is_set(self.key_env)

    @property
    def model(self) -> str | None:
        """The model this checker asks (None for one that measures pixels itself)."""
        return None

    def estimate_max_cost(self, subject: CheckSubject) -> Decimal | None:
        """The most one check of ``subject`` can cost (None: unknown, so a budget refuses)."""
        return None if self.billed else Decimal(0)

    def cost(self, usage: dict[str, Any] | None) -> str | None:
        """What a check that reported ``usage`` cost, in USD (None: unknown)."""
        return None if self.billed else "0"

    @abstractmethod
    def check(self, subject: CheckSubject) -> CheckOutcome:
        """Compare the shot with its anchor and sheet; raise :class:`CheckerError` when no
        answer can be had (it is recorded as a failed check)."""

    def check_cast(self, subjects: Sequence[CheckSubject]) -> list[CheckOutcome | CheckerError]:
        """Each member of a shot of several (``subjects``: one per member, in cast order, which
        is the order a preview draws them left to right), one answer per member: an outcome,
        or the :class:`CheckerError` that member's check failed with. Raising one fails every
        member (a single paid call that got no answer).

        This default checks each member alone against the whole picture; a checker that can
        tell the members apart (the palette finds each one's figure, the judge sees every
        anchor at once) says so by overriding it."""
        answers: list[CheckOutcome | CheckerError] = []
        for subject in subjects:
            try:
                answers.append(self.check(subject))
            except CheckerError as exc:
                answers.append(exc)
        return answers

    def estimate_cast_max_cost(self, subjects: Sequence[CheckSubject]) -> Decimal | None:
        """The most :meth:`check_cast` of these members can cost (None: unknown); by default
        the sum of a check of each."""
        total = Decimal(0)
        for subject in subjects:
            estimate = self.estimate_max_cost(subject)
            if estimate is None:
                return None
            total += estimate
        return total

    def describe(
        self, anchor: Path, mime: str, *, current: ModelSheet, character_name: str = ""
    ) -> ModelSheet:
        """Propose a model sheet from the anchor image (``character describe``): colours in
        hex, the rest of ``current`` kept where this checker cannot see better."""
        raise UsageError(f"checker {self.name!r} cannot describe a character")
