"""The provider registry: names users type, mapped to the classes that serve them.

Providers are found through the ``onmodel.providers`` entry-point group, the built-in ones
included (see ``pyproject.toml``), so a separate package adds one the same way, as ``llm``
plugins add models. Only the names are read at start-up; a provider's module is imported when
it is first asked for, so ``onmodel --help`` never pays for the openai SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points

from onmodel.errors import UsageError
from onmodel.providers.base import Provider, ProviderContext
from onmodel.settings import Settings

ENTRY_POINT_GROUP = "onmodel.providers"

Factory = Callable[[ProviderContext], Provider]


class _EntryFactory:
    """Builds a provider from its entry point, loading the class on first use only."""

    def __init__(self, entry: EntryPoint) -> None:
        self.entry = entry

    @cached_property
    def provider_class(self) -> type[Provider]:
        loaded = self.entry.load()
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            raise UsageError(
                f"provider plugin {self.entry.name!r} ({self.entry.value}) is not a Provider"
            )
        return loaded

    def __call__(self, context: ProviderContext) -> Provider:
        return self.provider_class(context=context)


def _discover() -> dict[str, Factory]:
    factories: dict[str, Factory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        factories.setdefault(entry.name, _EntryFactory(entry))
    return factories


FACTORIES: dict[str, Factory] = _discover()
"""Every registered provider by name; tests put stand-ins here."""


def provider_names() -> list[str]:
    return sorted(FACTORIES)


def provider_class(name: str) -> type[Provider]:
    """The class registered under ``name`` (its module imported, nothing built): what a
    provider declares about itself, read without making one."""
    factory = FACTORIES.get(name)
    if factory is None:
        get_provider(name)  # raises the usual "unknown provider" error
    if isinstance(factory, _EntryFactory):
        return factory.provider_class
    return type(get_provider(name))  # a stand-in a test registered


def get_provider(name: str, context: ProviderContext | None = None) -> Provider:
    """A new provider (cheap: clients are built on first use) that reads ``context``'s tables."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        known = ", ".join(provider_names()) or "none (reinstall onmodel)"
        raise UsageError(f"unknown provider {name!r}; choose one of: {known}") from None
    return factory(context or ProviderContext())


def is_manual(name: str) -> bool:
    """True for providers whose shots wait, pending, for the user to ``attach`` the picture.

    A plugin that cannot be loaded (its SDK uninstalled, say) is not manual: asking must not
    break every command that lists pending shots; using it reports why it cannot load.
    """
    if name not in FACTORIES:
        return False
    try:
        return get_provider(name).manual
    except Exception:
        return False


def manual_provider_names() -> frozenset[str]:
    return frozenset(name for name in FACTORIES if is_manual(name))


def default_provider_name() -> str:
    """The real API once a key is configured, the offline preview until then."""
    if Settings.from_environment().has_openai_key and "openai-images" in FACTORIES:
        return "openai-images"
    return offline_provider_name()


def offline_provider_name() -> str:
    """The provider that draws without a network or a key: the demo's and the tests'."""
    return "preview"


def warm_up_in_background(names: Iterable[str]) -> threading.Thread:
    """Load these providers and let each build its client, on a thread of their own.

    A batch's first requests all start at once, and each would wait for the SDK to load, for
    its client to be built (most of it reading the system's certificates, which frees the
    interpreter for other threads) and for the modules the SDK loads on first use. Done while
    the batch is still being planned, much of that is over before the first request is due
    (with a client ready in advance, a 200-shot batch's first round ends about 0.08 s sooner).
    Failures are left to the first real request, which records and reports them.
    """
    chosen = sorted(set(names))

    def warm_up() -> None:
        for name in chosen:
            try:
                get_provider(name).warm_up()
            except Exception:  # the real request meets it again, and records it
                continue

    thread = threading.Thread(target=warm_up, name="onmodel-warm-up", daemon=True)
    thread.start()
    return thread
