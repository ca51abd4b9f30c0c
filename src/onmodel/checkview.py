"""How a consistency check reads, in one place for the CLI, the web pages and the export.

A check is shown two ways: a badge beside an image ("on model 96", "drifted 41: hair colour",
"check failed") and, where there is room, a line per trait. Both come from here, so a score
reads the same in ``tree``, ``show``, a page and ``index.html``.

A shot of several figures is checked per member; its check reads member by member ("Mia on
model 92 · Rin drifted 61: hair colour"), and its badge is its worst member's ("Rin drifted
61: hair colour"), the whole line in the tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onmodel.checkers.base import TraitResult, Verdict

if TYPE_CHECKING:
    from onmodel.store.records import CheckRecord

VERDICT_MARKS: dict[Verdict, str] = {
    Verdict.SAME: "✓",
    Verdict.DRIFTED: "✗",
    Verdict.NOT_VISIBLE: "·",
    Verdict.CHANGED: "~",
}


@dataclass(frozen=True)
class CheckBadge:
    """A check in a few words. ``tone`` is what a page colours it by: ok, drift, failed,
    pending."""

    text: str
    tone: str
    title: str  # the longer form, for a tooltip


def trait_name(trait: str) -> str:
    """``hair_color`` reads "hair colour"; an item of a list keeps its item
    ("must_keep: hair clip" reads "must keep: hair clip")."""
    field, _, item = trait.partition(":")
    words = field.strip().replace("_", " ").replace("color", "colour")
    return f"{words}:{item}" if item else words


def traits_of(record: CheckRecord) -> list[TraitResult]:
    return [TraitResult.from_dict(item) for item in record.traits]


def drifted_names(record: CheckRecord) -> list[str]:
    """The drifted traits' names, a palette colour left out when a named trait of the same
    colour drifted with it: hair off model reads "hair colour", not also "palette: #f0a04b"."""
    drifted = [t for t in traits_of(record) if t.verdict == Verdict.DRIFTED]
    named = {t.expected for t in drifted if not t.trait.startswith("palette") and t.expected}
    return [
        trait_name(t.trait)
        for t in drifted
        if not (t.trait.startswith("palette") and t.expected in named)
    ]


def members_of(record: CheckRecord) -> tuple[CheckRecord, ...]:
    """The member checks of a shot of several (a ``ShotCheck``'s), else the check itself."""
    members: tuple[CheckRecord, ...] = getattr(record, "members", ())
    return members or (record,)


def member_name(record: CheckRecord) -> str:
    """Whom a member's check measured, as it was named then ('' for an image's own
    character, whose check names no one)."""
    if record.character_id is None:
        return ""
    return str(record.returned.get("member") or f"character {record.character_id}")


def badge(record: CheckRecord) -> CheckBadge:
    """The badge for a check: its outcome, score and, when it drifted, in what. A shot of
    several shows its worst member, named unless every member is on model."""
    members = members_of(record)
    if len(members) == 1 and members[0] is record:
        return _badge(record)
    shown = _badge(record)
    title = " · ".join(member_text(member) for member in members)
    name = member_name(record)
    text = shown.text if shown.tone == "ok" or not name else f"{name} {shown.text}"
    return CheckBadge(text, shown.tone, title)


def member_text(record: CheckRecord) -> str:
    """One member's check in words: "Rin drifted 61: hair colour"."""
    name = member_name(record)
    text = _badge(record).text
    return f"{name} {text}" if name else text


def _badge(record: CheckRecord) -> CheckBadge:
    who = record.checker if record.model is None else f"{record.checker} ({record.model})"
    if record.status == "failed":
        why = record.error_message or record.error_type or "no answer"
        return CheckBadge("check failed", "failed", f"{who}: {why}")
    if record.status != "succeeded" or record.score is None:
        return CheckBadge(f"check {record.status}", "pending", who)
    drifted = drifted_names(record)
    mark = f" (pass mark {record.min_score})" if record.min_score is not None else ""
    if record.passed and not drifted:
        return CheckBadge(f"on model {record.score}", "ok", f"{who}: {record.score}/100{mark}")
    label = f"drifted {record.score}" + (f": {', '.join(drifted)}" if drifted else "")
    return CheckBadge(label, "drift", f"{who}: {record.score}/100{mark}")


def trait_line(trait: TraitResult) -> str:
    """One trait as a line: mark, name, verdict and what was measured."""
    measured = ""
    if trait.measured:
        measured = f" ({trait.expected or '?'} → {trait.measured}"
        measured += f", ΔE {trait.delta_e:.1f})" if trait.delta_e is not None else ")"
    elif trait.expected and trait.verdict == Verdict.DRIFTED:
        measured = f" ({trait.expected} → not found)"
    elif trait.expected and trait.expected not in trait.trait:  # changed on purpose, or
        measured = f" ({trait.expected})"  # not to be seen: what the sheet says, once
    note = f" — {trait.note}" if trait.note else ""
    return (
        f"{VERDICT_MARKS[trait.verdict]} {trait_name(trait.trait)}: {trait.verdict}{measured}{note}"
    )


def check_dict(record: CheckRecord) -> dict[str, Any]:
    """A check as JSON (``show --json``, ``check --json``, ``series.json``). A shot of
    several is its worst member's check (``passed`` and ``score`` are the shot's, ``cost_usd``
    the whole check's), with every member's under ``members``, in cast order."""
    data = _record_dict(record)
    members = members_of(record)
    if len(members) > 1 or members[0] is not record:
        data["members"] = [_record_dict(member) for member in members]
    return data


def _record_dict(record: CheckRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "image_id": record.image_id,
        "character_id": record.character_id,
        "member": member_name(record) or None,
        "checker": record.checker,
        "version": record.version,
        "model": record.model,
        "status": record.status,
        "score": record.score,
        "min_score": record.min_score,
        "passed": record.passed,
        "drifted": drifted_names(record),
        "traits": record.traits,
        "summary": record.summary,
        "cost_usd": record.cost_usd,
        "usage": record.usage,
        "latency_ms": record.latency_ms,
        "error": None
        if record.status != "failed"
        else {"type": record.error_type, "message": record.error_message},
        "created_at": record.created_at.isoformat(),
    }
