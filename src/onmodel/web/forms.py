"""What the new-shot forms offer besides the request, and the check of what comes back.

A form offers only what can be sent: the registered providers, the sizes and qualities the
session's model takes in the capability table (``home/models.yaml`` over the packaged one, as
``onmodel models`` lists them), and the session's cast: who may join the lead (as ``shot
--with``) and the sets it may take place in (``--set``), a member that cannot be in a shot yet
(no finished anchor, or hidden) shown disabled with the reason. A value the form never offered (an
edited page, a script) is refused with a sentence naming the choices, before anything is
planned; blank keeps the session's own setting (and the lead alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onmodel.capabilities import load_capabilities
from onmodel.errors import UsageError
from onmodel.handles import Character, Session
from onmodel.kinds import SET
from onmodel.lineage import member_name
from onmodel.presentation import unusable
from onmodel.providers import provider_names
from onmodel.providers.base import Provider
from onmodel.studio import Studio

SHOWN_VALUE = 40  # characters of a refused value a message quotes
WITH_FIELD = "with:"  # a form's checkbox ``with:rin`` puts rin in the shot


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    unusable: str = ""  # why it is shown but cannot be chosen ('' when it can)


@dataclass(frozen=True)
class ShotChoices:
    """The choices a new-shot form offers for one session, and that session's settings (the
    form's defaults: ``size`` and ``quality`` None when the session leaves them to the
    model)."""

    model: str
    provider: str
    size: str | None
    quality: str | None
    providers: tuple[Choice, ...]
    sizes: tuple[str, ...]  # empty: the model is not in the table, only its default is sent
    qualities: tuple[str, ...]
    joining: tuple[Choice, ...] = ()  # the cast's members who may join the lead in a shot
    sets: tuple[Choice, ...] = ()  # the cast's sets a shot may take place in

    def chosen(self, form: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
        """The provider (None: the session's) and the parameters a posted form asks for."""
        provider = _pick(form, "provider", [c.value for c in self.providers], "the provider")
        params = {
            name: value
            for name, allowed in (("size", self.sizes), ("quality", self.qualities))
            if (value := _pick(form, name, allowed, f"the {name} of a {self.model} image"))
        }
        return provider, params

    def cast(self, form: Mapping[str, str]) -> tuple[list[str], str]:
        """Who a posted form puts in the shot besides the lead (``with_``), and its set."""
        offered = {choice.value for choice in self.joining}
        asked = [
            name[len(WITH_FIELD) :]
            for name, on in form.items()
            if name.startswith(WITH_FIELD) and on
        ]
        if unknown := [name for name in asked if name not in offered]:
            names = ", ".join(sorted(offered)) or "no one (the session's cast is the lead alone)"
            raise UsageError(f"who joins the lead is one of {names}, not {_quoted(unknown[0])}")
        place = _pick(form, "set", [choice.value for choice in self.sets], "the set")
        return asked, place or ""


def shot_choices(studio: Studio, session: Session) -> ShotChoices:
    """What a new shot in ``session`` may choose. The table is read once per version of the
    user's file (``load_capabilities`` caches it), so a page pays nothing for it."""
    capability = load_capabilities(studio.paths.models_file).find(session.model)
    defaults = session.params
    members = session.members
    anchors = studio.lookups.images_by_id(  # one query for the whole cast
        [m.anchor_image_id for m in members if m.anchor_image_id is not None]
    )

    def choice(member: Character, label: str) -> Choice:
        key = member.anchor_image_id
        anchor = anchors.get(key) if key is not None else None
        return Choice(member.slug, label, unusable(member, anchor))

    return ShotChoices(
        model=session.model,
        provider=session.provider,
        size=_text(defaults.get("size")),
        quality=_text(defaults.get("quality")),
        providers=tuple(_provider_choices(studio)),
        sizes=capability.sizes if capability is not None else (),
        qualities=capability.qualities if capability is not None else (),
        joining=tuple(choice(m, member_name(m)) for m in members if m.kind != SET),
        sets=tuple(choice(m, m.name) for m in members if m.kind == SET),
    )


def _provider_choices(studio: Studio) -> list[Choice]:
    """Every provider that loads; a plugin that cannot (its SDK uninstalled) is left out of
    the form rather than break the page (``onmodel providers`` says why)."""
    found = []
    for name in provider_names():
        try:
            found.append(Choice(name, f"{name} ({_kind(studio.provider(name))})"))
        except Exception:
            continue
    return found


def _kind(provider: Provider) -> str:
    """What choosing the provider means, said from what it declares (never its name)."""
    if provider.manual:
        return "messages to paste into ChatGPT"
    if provider.offline:
        return "drawn offline, free"
    return "API, billed" if provider.billed else "API, free"


def _pick(form: Mapping[str, str], name: str, allowed: Sequence[str], what: str) -> str | None:
    """The form's ``name`` if it is one of ``allowed``; None when blank or absent."""
    value = form.get(name, "").strip()
    if not value:
        return None
    if value in allowed:
        return value
    if not allowed:
        raise UsageError(f"{what} cannot be chosen here: leave it to the session's setting")
    raise UsageError(f"{what} is one of {', '.join(allowed)}, not {_quoted(value)}")


def _quoted(value: str) -> str:
    """A refused value as a message quotes it, cut short."""
    return repr(value if len(value) <= SHOWN_VALUE else value[:SHOWN_VALUE] + "…")


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
