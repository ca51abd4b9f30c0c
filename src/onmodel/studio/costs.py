"""What shots cost: one estimate per answer, and totals the database adds up.

A session's report is its own images; its character's anchors belong to no session, so the
report names what they cost beside it (``anchor``) rather than counting them in, which would
count them once per session. "Everything" counts every image, anchors included, and a
breakdown totals everything (or one session) by character, session or month, anchors under
their character. Known costs add up exactly (see ``store.costs``); images whose cost is
unknown are counted, never taken as zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from onmodel.handles import Session
from onmodel.store.costs import check_cost_totals, cost_totals
from onmodel.store.listing import character_slugs, session_slugs
from onmodel.store.records import CostTotal

if TYPE_CHECKING:
    from onmodel.studio.core import Studio

Breakdown = Literal["character", "session", "month"]
BREAKDOWNS: tuple[Breakdown, ...] = ("character", "session", "month")


@dataclass(frozen=True)
class CostLine:
    """One total: known costs summed, and how many images, ``unknown`` of them unpriced."""

    label: str
    total: Decimal = Decimal(0)
    images: int = 0
    unknown: int = 0  # images, and paid checks, whose cost is unknown
    checks: int = 0  # paid consistency checks (a vision judge), counted in ``total``

    @classmethod
    def summed(
        cls, label: str, totals: Iterable[CostTotal], checks: Iterable[CostTotal] = ()
    ) -> CostLine:
        parts, paid = list(totals), list(checks)
        return cls(
            label,
            sum((part.total for part in (*parts, *paid)), Decimal(0)),
            sum(part.images for part in parts),
            sum(part.unknown for part in (*parts, *paid)),
            sum(part.images for part in paid),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "total_usd": str(self.total),
            "images": self.images,
            "unknown_cost_images": self.unknown,
            "paid_checks": self.checks,
        }


@dataclass
class CostReport:
    """A session's (or everything's) spend so far, by model; for a session, also what its
    character's anchors cost (``anchor``), which are in no session."""

    scope: str
    total: Decimal = Decimal(0)
    images: int = 0
    unknown: int = 0
    by_model: dict[str, Decimal] = field(default_factory=dict)
    anchor: CostLine | None = None
    checks: int = 0  # paid consistency checks, their cost in ``total`` and ``by_model``

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "scope": self.scope,
            "total_usd": str(self.total),
            "images": self.images,
            "unknown_cost_images": self.unknown,
            "paid_checks": self.checks,
            "by_model_usd": {k: str(v) for k, v in self.by_model.items()},
        }
        if self.anchor is not None:
            found["anchor"] = self.anchor.to_dict()
            found["with_anchor_usd"] = str(self.total + self.anchor.total)
        return found


@dataclass(frozen=True)
class CostBreakdown:
    """Totals by character, session or month, and their sum."""

    by: Breakdown
    scope: str
    lines: list[CostLine]
    total: CostLine

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "scope": self.scope,
            "lines": [line.to_dict() for line in self.lines],
            "total": self.total.to_dict(),
        }


class Costs:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def report(self, session: Session | None) -> CostReport:
        """A session's costs so far, by model, with its character's anchors beside them; or
        (``None``) everything's, anchors included."""
        engine = self.studio.engine
        owner = session.id if session is not None else None
        models = cost_totals(engine, "model", session_id=owner)
        checks = check_cost_totals(engine, "model", session_id=owner)
        line = CostLine.summed("", models, checks)
        by_model = {str(t.key[0]): t.total for t in models if t.images > t.unknown}
        by_model.update({f"{t.key[0]} (checks)": t.total for t in checks if t.images > t.unknown})
        report = CostReport(
            scope=session.slug if session is not None else "everything",
            total=line.total,
            images=line.images,
            unknown=line.unknown,
            by_model=by_model,
            checks=line.checks,
        )
        if session is not None:
            character = session.character_id
            report.anchor = CostLine.summed(
                f"{session.character.slug} anchor",
                cost_totals(engine, "character", anchors_of=character),
                check_cost_totals(engine, "character", anchors_of=character),
            )
        return report

    def breakdown(self, by: Breakdown, session: Session | None) -> CostBreakdown:
        """Everything's (or one session's) costs by character, session or month."""
        owner = session.id if session else None
        totals = cost_totals(self.studio.engine, by, session_id=owner)
        checks = check_cost_totals(self.studio.engine, by, session_id=owner)
        labels = self._labels(by, [*totals, *checks])
        lines = [
            CostLine.summed(
                label,
                [t for t in totals if labels[t.key] == label],
                [t for t in checks if labels[t.key] == label],
            )
            for label in sorted(set(labels.values()))
        ]
        scope = session.slug if session is not None else "everything"
        return CostBreakdown(by, scope, lines, CostLine.summed("total", totals, checks))

    def _labels(self, by: Breakdown, totals: list[CostTotal]) -> dict[tuple[Any, ...], str]:
        """What each group is called: a character's or session's slug (a character's anchors,
        in no session: ``slug anchor``), or ``2026-05``."""
        if by == "month":
            return {t.key: f"{t.key[0]:04d}-{t.key[1]:02d}" for t in totals}
        engine = self.studio.engine
        if by == "character":
            characters = character_slugs(engine, sorted({t.key[0] for t in totals}))
            return {t.key: characters[t.key[0]] for t in totals}
        sessions = session_slugs(engine, sorted({t.key[0] for t in totals if t.key[0]}))
        owners = character_slugs(engine, sorted({t.key[1] for t in totals if not t.key[0]}))
        return {
            t.key: sessions[t.key[0]] if t.key[0] else f"{owners[t.key[1]]} anchor" for t in totals
        }

    def of_result(
        self,
        provider: str,
        model: str,
        usage: dict[str, Any] | None,
        returned: Mapping[str, Any] | None = None,
    ) -> Decimal | None:
        """What a request cost, as its provider prices what came back (free ones cost
        nothing); None when it is unknown."""
        from onmodel.capabilities import load_prices

        return self.studio.provider(provider).cost(
            model, usage, returned or {}, load_prices(self.studio.paths.prices_file)
        )
