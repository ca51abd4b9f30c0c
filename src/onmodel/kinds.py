"""What an anchor can be: a character, a creature, a prop or a set.

A series is rarely one character alone: Mia walks her dog Max with her guitar, in the bedroom
that must look the same on page 3 and page 30. All four are made, imported, sheeted and
anchored the same way; they differ in how a prompt names them and in how a picture holds
them. Characters and creatures are *figures* (drawn as someone in the scene, checked trait by
trait); a prop is held or placed; a set is the place itself, drawn behind everyone and never
stands in for a character.
"""

from __future__ import annotations

from typing import Literal

from onmodel.errors import UsageError

Kind = Literal["character", "creature", "prop", "set"]

KINDS: tuple[Kind, ...] = ("character", "creature", "prop", "set")
FIGURES: frozenset[str] = frozenset({"character", "creature"})
"""The kinds drawn as figures: a shot's subjects, whose traits a check measures."""
SET: Kind = "set"


def check_kind(kind: str) -> Kind:
    """``kind`` as one of :data:`KINDS`, refused in one line naming the choices."""
    for known in KINDS:
        if kind == known:
            return known
    raise UsageError(f"unknown kind {kind!r}; choose from: {', '.join(KINDS)}")


def is_figure(kind: str) -> bool:
    return kind in FIGURES


def is_subject(kind: str) -> bool:
    """Whether an anchor of this kind shows a subject on a background (all but a set, whose
    picture is all place): what anchor hygiene can judge and a check can find."""
    return kind != SET


def kind_label(kind: str) -> str:
    """``"a creature"``, ``"a set"``: how an error names what something is."""
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"
