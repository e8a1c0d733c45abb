"""A virtual host: its handlers, disco data and stream features (Prosody's ``hosts[h]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.core.stanza import StanzaFilter, StanzaHandler

if TYPE_CHECKING:
    from roost.core.module import Module, ModuleAPI, StreamFeature
    from roost.core.server import ServerCore
    from roost.core.stanza import IqHandler

StanzaKey = tuple[str, str]  # (kind, addressing)
IqKey = tuple[str, str, str, str]  # (type, addressing, payload xmlns, payload name)


class Host:
    """One served domain and everything registered on it."""

    def __init__(self, server: ServerCore, name: str) -> None:
        self.server = server
        self.name = name
        self.iq_handlers: dict[IqKey, IqHandler] = {}
        self.stanza_handlers: dict[StanzaKey, list[StanzaHandler]] = {}
        self._priorities: dict[StanzaKey, list[tuple[int, int, StanzaHandler]]] = {}
        self.filters: list[StanzaFilter] = []
        self._filter_priorities: list[tuple[int, int, StanzaFilter]] = []
        self.services: dict[type, object] = {}
        self.features: list[str] = []
        self.account_features: list[str] = []
        self.identities: list[tuple[str, str, str | None]] = []
        self.stream_features: list[StreamFeature] = []
        self.modules: dict[str, tuple[Module, ModuleAPI]] = {}

    def add_stanza_handler(self, key: StanzaKey, handler: StanzaHandler, priority: int) -> None:
        """Insert a handler, keeping the per-key list sorted by priority (highest first)."""
        entries = self._priorities.setdefault(key, [])
        entries.append((priority, -len(entries), handler))
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
        self.stanza_handlers[key] = [e[2] for e in entries]

    def remove_stanza_handler(self, key: StanzaKey, handler: StanzaHandler) -> None:
        """Remove a handler registered with ``add_stanza_handler``."""
        entries = [e for e in self._priorities.get(key, []) if e[2] is not handler]
        self._priorities[key] = entries
        if entries:
            self.stanza_handlers[key] = [e[2] for e in entries]
        else:
            self.stanza_handlers.pop(key, None)

    def add_filter(self, fn: StanzaFilter, priority: int) -> None:
        """Insert a filter, keeping the list sorted by priority (highest first)."""
        entries = self._filter_priorities
        entries.append((priority, -len(entries), fn))
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
        self.filters[:] = [e[2] for e in entries]

    def remove_filter(self, fn: StanzaFilter) -> None:
        """Remove a filter registered with ``add_filter``."""
        self._filter_priorities[:] = [e for e in self._filter_priorities if e[2] is not fn]
        self.filters[:] = [e[2] for e in self._filter_priorities]
