"""What shots cost: one estimate per answer, and a session's total with its unknowns counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from onmodel.handles import Session
from onmodel.store import queries

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


@dataclass
class CostReport:
    """Known costs add up; images whose cost is unknown are counted, never taken as zero."""

    scope: str
    total: Decimal = Decimal(0)
    images: int = 0
    unknown: int = 0
    by_model: dict[str, Decimal] = field(default_factory=dict)

    def add(self, model: str, cost: str | None) -> None:
        self.images += 1
        if cost is None:
            self.unknown += 1
            return
        amount = Decimal(cost)
        self.total += amount
        self.by_model[model] = self.by_model.get(model, Decimal(0)) + amount

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "total_usd": str(self.total),
            "images": self.images,
            "unknown_cost_images": self.unknown,
            "by_model_usd": {k: str(v) for k, v in self.by_model.items()},
        }


class Costs:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def report(self, session: Session | None) -> CostReport:
        """A session's costs so far, or (``None``) every session's."""
        report = CostReport(scope=session.slug if session is not None else "all sessions")
        owner = session.id if session is not None else None
        for model, cost in queries.finished_costs(self.studio.engine, owner):
            report.add(model, cost)
        return report

    def of_result(self, provider: str, model: str, usage: dict[str, Any] | None) -> str | None:
        """Free providers cost nothing; otherwise an estimate, or None when it is unknown."""
        if not self.studio.provider(provider).billed:
            return "0"
        from onmodel.capabilities import estimate_cost, load_prices

        cost = estimate_cost(model, usage, load_prices(self.studio.paths.prices_file))
        return None if cost is None else str(cost)
