"""A served domain: its handlers, hooks, disco data and stream features (Prosody's ``hosts[h]``).

Two kinds share this shape (docs/architecture.md, the route table):
- a *user host* (``[server].domains``) has accounts, accepts c2s logins, and applies the
  RFC 6121 §8.5 delivery rules to what no module handled (``roost.core.routes.UserHost``);
- a *service host* (``[services]``: MUC, PubSub, upload) has no accounts and no logins; what
  its modules do not handle gets the RFC 6120 §8.4 / §10.3 answers
  (``roost.core.routes.ServiceHost``).

Registrations are kept sorted by priority at registration time (highest first, equal
priorities in registration order), never per stanza.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from roost.core.hooks import HookBus
from roost.core.stanza import PreRouteHandler, StanzaFilter, StanzaHandler

if TYPE_CHECKING:
    from roost.core.module import Module, ModuleAPI, StreamFeature
    from roost.core.router import Pending, Router
    from roost.core.server import ServerCore
    from roost.core.session import OutgoingFilter
    from roost.core.stanza import IqHandler, Routed

StanzaKey = tuple[str, str]  # (kind, addressing)
IqKey = tuple[str, str, str, str]  # (type, addressing, payload xmlns, payload name)
H = TypeVar("H")


class Ordered(Generic[H]):
    """A list of handlers kept in priority order (highest first, then registration order)."""

    __slots__ = ("_entries", "handlers")

    def __init__(self) -> None:
        self._entries: list[tuple[int, int, H]] = []
        self.handlers: list[H] = []  # what dispatch iterates; replaced in place

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def add(self, handler: H, priority: int) -> None:
        """Insert ``handler`` at its place."""
        entries = self._entries
        entries.append((priority, -len(entries), handler))
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
        self.handlers[:] = [e[2] for e in entries]

    def remove(self, handler: H) -> None:
        """Remove ``handler`` (no error if absent)."""
        self._entries[:] = [e for e in self._entries if e[2] is not handler]
        self.handlers[:] = [e[2] for e in self._entries]


class Host(ABC):
    """One served domain and everything registered on it (``UserHost`` or ``ServiceHost``)."""

    kind: ClassVar[str] = "host"
    accepts_logins: ClassVar[bool] = False

    def __init__(self, server: ServerCore, name: str) -> None:
        self.server = server
        self.name = name
        self.hooks = HookBus()
        self.iq_handlers: dict[IqKey, IqHandler] = {}
        self.stanza_handlers: dict[StanzaKey, list[StanzaHandler]] = {}
        self._stanza_order: dict[StanzaKey, Ordered[StanzaHandler]] = {}
        self._filters: Ordered[StanzaFilter] = Ordered()
        self.filters = self._filters.handlers  # every stanza to this host, before dispatch
        self._pre_route: Ordered[PreRouteHandler] = Ordered()
        self.pre_route = self._pre_route.handlers  # every stanza its accounts send, anywhere
        self._outgoing: Ordered[OutgoingFilter] = Ordered()
        self.outgoing = self._outgoing.handlers  # every stanza delivered to its sessions
        self.services: dict[type, object] = {}
        self.features: list[str] = []
        self.account_features: list[str] = []
        self.identities: list[tuple[str, str, str | None]] = []
        self.stream_features: list[StreamFeature] = []
        self.modules: dict[str, tuple[Module, ModuleAPI]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- registrations (through ModuleAPI, which records them for unload) ---------------------
    def add_stanza_handler(self, key: StanzaKey, handler: StanzaHandler, priority: int) -> None:
        """Handle message/presence of ``key`` = (kind, addressing)."""
        order = self._stanza_order.get(key)
        if order is None:
            order = self._stanza_order[key] = Ordered()
        order.add(handler, priority)
        self.stanza_handlers[key] = order.handlers

    def remove_stanza_handler(self, key: StanzaKey, handler: StanzaHandler) -> None:
        """Remove a handler registered with ``add_stanza_handler``."""
        order = self._stanza_order.get(key)
        if order is not None:
            order.remove(handler)
            if not order:
                self.stanza_handlers.pop(key, None)
                del self._stanza_order[key]

    def add_filter(self, fn: StanzaFilter, priority: int) -> None:
        """See every stanza addressed to this host before dispatch."""
        self._filters.add(fn, priority)

    def remove_filter(self, fn: StanzaFilter) -> None:
        """Remove a filter registered with ``add_filter``."""
        self._filters.remove(fn)

    def add_pre_route(self, fn: PreRouteHandler, priority: int) -> None:
        """See every stanza an account of this host sends, before it is routed anywhere."""
        self._pre_route.add(fn, priority)

    def remove_pre_route(self, fn: PreRouteHandler) -> None:
        """Remove a handler registered with ``add_pre_route``."""
        self._pre_route.remove(fn)

    def add_outgoing(self, fn: OutgoingFilter, priority: int) -> None:
        """See every stanza delivered to a session of this host, before its own chain."""
        self._outgoing.add(fn, priority)

    def remove_outgoing(self, fn: OutgoingFilter) -> None:
        """Remove a filter registered with ``add_outgoing``."""
        self._outgoing.remove(fn)

    # -- what nobody handled -----------------------------------------------------------------
    @abstractmethod
    def unhandled(self, router: Router, routed: Routed, addressing: str) -> Pending:
        """Message or presence that no handler took (see the subclasses)."""

    @abstractmethod
    def unhandled_iq(self, router: Router, routed: Routed) -> Pending:
        """An iq get/set that no handler took (see the subclasses)."""

    @abstractmethod
    def iq_response(self, router: Router, routed: Routed) -> Pending:
        """An iq result/error to an address of this host that is not the server itself."""
