"""What shots cost: one estimate per answer, and a session's total with its unknowns counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from onmodel.handles import Session
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import ImageRow

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
        finished = [ImageStatus.SUCCEEDED, ImageStatus.FAILED]
        query = select(ImageRow).where(col(ImageRow.status).in_(finished))
        scope = "all sessions"
        if session is not None:
            query = query.where(ImageRow.session_id == session.id)
            scope = session.slug
        with transaction(self.studio.engine) as db:
            rows = db.exec(query).all()
        report = CostReport(scope=scope)
        for row in rows:
            report.add(row.model or row.provider, row.cost_usd)
        return report

    def of_result(self, provider: str, model: str, usage: dict[str, Any] | None) -> str | None:
        """Free providers cost nothing; otherwise an estimate, or None when it is unknown."""
        if not self.studio.provider(provider).billed:
            return "0"
        from onmodel.capabilities import estimate_cost, load_prices

        cost = estimate_cost(model, usage, load_prices(self.studio.paths.prices_file))
        return None if cost is None else str(cost)
