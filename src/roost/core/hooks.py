"""Typed lifecycle events and the bus that runs their handlers in priority order.

Direction: a higher priority runs first; handlers of equal priority run in registration
order. A handler that returns True stops the chain (the event was fully handled). The
named priorities are the only ones modules should need:

- FILTER (1000): policy that may drop or rewrite a stanza before anyone sees it
  (blocking, privacy, rate limits) — must run before archiving so blocked traffic is
  not stored.
- ARCHIVE (100): observers that record what passes (MAM, carbons) — before delivery,
  after filters.
- DEFAULT (0): the module that owns the stanza and delivers or answers it.
- FALLBACK (-1000): last resort (offline storage, error bounce) when nobody handled it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from roost.core.session import C2SSession

FILTER: Final = 1000
ARCHIVE: Final = 100
DEFAULT: Final = 0
FALLBACK: Final = -1000

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E], object]


@dataclass(frozen=True, slots=True)
class SessionBound:
    """A client session bound its resource and can now send and receive stanzas."""

    session: C2SSession


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A bound session ended, for any reason (close, TCP cut, conflict, timeout, shutdown)."""

    session: C2SSession
    reason: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A client stream authenticated (before binding)."""

    jid: str
    mechanism: str
    address: str


class HookBus:
    """Handlers per event type, kept sorted at registration (never per dispatch)."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[type, list[tuple[int, int, Callable[[object], object]]]] = {}

    def add(self, event: type[E], handler: Callable[[E], object], priority: int = DEFAULT) -> None:
        """Register ``handler`` for events of type ``event``."""
        entries = self._handlers.setdefault(event, [])
        entries.append((priority, -len(entries), handler))  # type: ignore[arg-type]
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)

    def remove(self, event: type[E], handler: Callable[[E], object]) -> None:
        """Unregister a handler (no error if absent)."""
        entries = self._handlers.get(event)
        if entries:
            entries[:] = [e for e in entries if e[2] is not handler]

    def fire(self, event: object) -> bool:
        """Run the handlers of ``event``'s type; True if one of them stopped the chain."""
        entries = self._handlers.get(type(event))
        if not entries:
            return False
        for _, _, handler in entries:
            try:
                if handler(event) is True:
                    return True
            except Exception:
                log.exception("hook handler %r failed on %s", handler, type(event).__name__)
        return False
