"""An image's status, and the one mark every output shows for it.

The values are the strings stored in ``image.status``, and a ``StrEnum`` member equals its
string, so rows, JSON and existing comparisons keep working while new code names the four
statuses instead of spelling them.
"""

from __future__ import annotations

from enum import StrEnum


class ImageStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


STATUS_MARKS: dict[str, str] = {
    ImageStatus.SUCCEEDED: "✓",
    ImageStatus.FAILED: "✗",
    ImageStatus.PENDING: "…",
    ImageStatus.INTERRUPTED: "!",
}


def status_mark(status: str) -> str:
    """The mark for ``status``; a status this version does not know (a newer database) is
    shown as ``?`` rather than refused."""
    return STATUS_MARKS.get(status, "?")
