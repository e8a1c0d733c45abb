"""The module registry: every module the server can load, by name (docs/architecture.md).

Two sources, one table: the built-in modules (``roost.modules.BUILTIN``, one line each) and
the modules other packages declare as entry points in the group ``roost.modules``::

    # a third-party module's pyproject.toml
    [project.entry-points."roost.modules"]
    motd = "roost_motd:MessageOfTheDay"

A name is unique across both; an entry point that cannot be loaded, or that is not a
``Module`` subclass with the name it is registered under, is a configuration error naming
the distribution, so a broken plug-in stops the start instead of going unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Final

from roost.config import ConfigError
from roost.core.module import Module

ENTRY_POINT_GROUP: Final = "roost.modules"


def discover(
    builtin: Mapping[str, type[Module]], found: Iterable[EntryPoint] | None = None
) -> dict[str, type[Module]]:
    """The built-in modules and those of the installed entry points."""
    modules = dict(builtin)
    for point in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
        origin = f"entry point {point.name!r} ({point.value})"
        try:
            cls = point.load()
        except Exception as exc:  # noqa: BLE001 - whatever a plug-in raises on import
            raise ConfigError(f"{origin} cannot be loaded: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise ConfigError(f"{origin} is not a roost Module class")
        if getattr(cls, "name", None) != point.name:
            raise ConfigError(f"{origin}: the class's name is {getattr(cls, 'name', None)!r}")
        if point.name in modules and modules[point.name] is not cls:
            raise ConfigError(f"{origin}: a module named {point.name!r} exists already")
        modules[point.name] = cls
    return modules


def module_order(
    known: Mapping[str, type[Module]], enabled: Iterable[str] | None, file: str = "roost.toml"
) -> list[type[Module]]:
    """The module classes to load, dependencies first; ConfigError for unknown names."""
    names = list(known) if enabled is None else list(enabled)
    ordered: list[type[Module]] = []

    def add(name: str, chain: tuple[str, ...]) -> None:
        cls = known.get(name)
        if cls is None:
            listed = ", ".join(sorted(known))
            raise ConfigError(
                f"{file}: [modules].enabled: unknown module {name!r} (known: {listed})"
            )
        if cls in ordered:
            return
        if name in chain:
            raise ConfigError(
                f"{file}: [modules].enabled: circular dependency {' -> '.join(chain)}"
            )
        for dep in cls.depends:
            add(dep, (*chain, name))
        ordered.append(cls)

    for name in names:
        add(name, ())
    return ordered
