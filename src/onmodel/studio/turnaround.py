"""Turnarounds: reference views of a character (front, three-quarter, side, back) drawn from
its anchor, which later shots attach beside it.

One anchor shows the character from one side; a shot that turns it around has to invent the
rest, and that is where it drifts. Each view is one request with the anchor attached, made
through the same steps as a shot (:meth:`Pipeline.execute`): recorded pending before anything
is spent, and a failure is a failed row. A view's row belongs to no session, hangs from the
anchor it was drawn from, and its request names the view (``ShotRequest.view``).

A character's views are the newest succeeded, shown view of each name drawn from its
*current* anchor: once another anchor is promoted, views of the old one may show a character
that no longer matches it, so they stop counting (their rows stay, as every image's do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.composer import VIEW_TEMPLATE
from onmodel.errors import GenerationError, UsageError
from onmodel.handles import Character, Image
from onmodel.kinds import SET
from onmodel.providers import default_provider_name
from onmodel.providers.base import VIEWS
from onmodel.sheet import ShotRequest
from onmodel.store import queries
from onmodel.studio.plans import ShotPlan

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


def make_turnaround(
    studio: Studio,
    character: Character,
    *,
    views: Sequence[str] | None = None,
    provider: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
) -> list[Image]:
    """See :meth:`Studio.turnaround`."""
    if character.kind == SET:
        raise UsageError(
            f"{character.slug!r} is a set: a turnaround turns a figure around; for more of "
            "a place, import pictures of it as sets of their own"
        )
    anchor = studio.planning.anchor_of(character)
    names = checked_views(VIEWS if views is None else views)
    # every view is planned, so checked, before the first one is recorded or paid for
    plans = [
        plan_view(studio, character, anchor, name, provider=provider, model=model, params=params)
        for name in names
    ]
    made: list[Image] = []
    for plan in plans:
        try:
            made.append(studio.execute(plan))
        except GenerationError as exc:
            if exc.image_id is None or not exc.retryable:
                raise  # the next views would fail the same way (an exhausted quota)
            made.append(studio.image(exc.image_id))
    return made


def plan_view(
    studio: Studio,
    character: Character,
    anchor: Image,
    view: str,
    *,
    provider: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
) -> ShotPlan:
    """One view's request: the view template, with the anchor (and only it) attached.

    Drawn, unless told otherwise, by the provider and model that drew the anchor
    (:func:`drawn_by`), else by those a new character's anchor would be."""
    planning = studio.planning
    drew = drawn_by(studio, anchor) if provider is None else None
    source = provider or (drew[0] if drew else default_provider_name())
    if model is None and drew is not None:
        model = drew[1]
    return planning.plan(
        kind="view",
        character=character,
        session=None,
        parent=anchor,
        request=ShotRequest(view=view),
        provider=source,
        model=model or planning.default_model(source),
        params=studio.provider(source).resolve_params(params or {}, Path.cwd()),
        template=VIEW_TEMPLATE,
        inputs=planning.lineage_inputs(anchor, anchor),
        anchor=anchor,
    )


def drawn_by(studio: Studio, anchor: Image) -> tuple[str, str] | None:
    """The provider and model that drew ``anchor``, when they can draw its views too: a
    character made with FLUX gets FLUX views, not the default provider's. None for an
    imported anchor, one a manual route made, or one whose provider is no longer installed."""
    from onmodel.providers import FACTORIES, is_manual

    name = anchor.row.provider
    if name not in FACTORIES or is_manual(name):
        return None
    return name, anchor.row.model


def views_of(studio: Studio, anchor: Image) -> list[Image]:
    """The views drawn from ``anchor`` that count: the newest succeeded, shown one of each
    name, in :data:`VIEWS` order (the order later shots attach them in)."""
    newest: dict[str, Image] = {}
    for record in queries.finished_views(studio.engine, anchor.id):  # a later one replaces
        view = Image(studio, record)
        newest[view.request.view] = view
    return [newest[name] for name in VIEWS if name in newest]


def character_views(studio: Studio, character: Character) -> list[Image]:
    """See :meth:`Studio.views`."""
    anchor_id = character.anchor_image_id
    return views_of(studio, studio.image(anchor_id)) if anchor_id is not None else []


def checked_views(views: Sequence[str]) -> list[str]:
    """The views asked for, each once, in the order given; an unknown one is refused."""
    names = list(dict.fromkeys(name.strip() for name in views if name.strip()))
    unknown = [name for name in names if name not in VIEWS]
    if unknown or not names:
        what = f"unknown view {unknown[0]!r}" if unknown else "no view named"
        raise UsageError(f"{what}; choose from: {', '.join(VIEWS)}")
    return names
