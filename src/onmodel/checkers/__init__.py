"""The checker registry: names users type (``--checker palette``), mapped to their classes.

Checkers are found through the ``onmodel.checkers`` entry-point group, the built-in ones
included (see ``pyproject.toml``), exactly as providers are: a separate package adds one the
same way, and a checker's module is imported only when it is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from onmodel.checkers.base import Checker, CheckerContext
from onmodel.errors import UsageError

ENTRY_POINT_GROUP = "onmodel.checkers"
DEFAULT_CHECKER = "palette"
"""Offline and free: the check a shot gets when none is named."""

Factory = Callable[[CheckerContext], Checker]


def _discover() -> dict[str, Factory]:
    factories: dict[str, Factory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):

        def factory(context: CheckerContext, entry: object = entry) -> Checker:
            checker_class = entry.load()  # type: ignore[attr-defined]
            return checker_class(context=context)  # type: ignore[no-any-return]

        factories.setdefault(entry.name, factory)
    return factories


FACTORIES: dict[str, Factory] = _discover()
"""Every registered checker by name; tests put stand-ins here."""


def checker_names() -> list[str]:
    return sorted(FACTORIES)


def get_checker(name: str, context: CheckerContext | None = None) -> Checker:
    """A new checker (cheap: clients and tables are loaded on first use)."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        known = ", ".join(checker_names()) or "none (reinstall onmodel)"
        raise UsageError(f"unknown checker {name!r}; choose one of: {known}") from None
    return factory(context or CheckerContext())
