"""Typed lifecycle events and the bus that runs their handlers in priority order.

Each host has its own bus (``host.hooks``, Prosody's ``hosts[h].events``) and the server has
a global one (``server.hooks``) for events that belong to no host. An event is a frozen
dataclass; its type is the key, so mypy checks every handler's signature (what ejabberd's
``tools/hook_deps.sh`` checks by script).

Direction: a higher priority runs first; handlers of equal priority run in registration
order. A handler that returns True stops the chain (the event was fully handled). A handler
may be ``async``: the rest of the chain waits for it, in order, and ``fire`` then returns an
awaitable that the caller awaits (or hands to ``api.spawn``). The named priorities are the
only ones modules should need:

- FILTER (1000): policy that may drop or rewrite a stanza before anyone sees it
  (blocking, privacy, rate limits) — must run before archiving so blocked traffic is
  not stored.
- ARCHIVE (100): observers that record what passes (MAM, carbons) — before delivery,
  after filters.
- DEFAULT (0): the module that owns the stanza and delivers or answers it.
- LATE (-100): cleanup after the owners ran (e.g. the roster cache is dropped after
  presence sent the last unavailable).
- FALLBACK (-1000): last resort (offline storage, error bounce) when nobody handled it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from roost.core.session import Session

FILTER: Final = 1000
ARCHIVE: Final = 100
DEFAULT: Final = 0
LATE: Final = -100
FALLBACK: Final = -1000

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E], "object | Awaitable[object]"]
_Entry = tuple[int, int, Callable[[object], object]]


@dataclass(frozen=True, slots=True)
class SessionBound:
    """A client session bound its resource and can now send and receive stanzas."""

    session: Session


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A bound session ended, for any reason (close, TCP cut, conflict, timeout, shutdown)."""

    session: Session
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
        self._handlers: dict[type, list[_Entry]] = {}

    def add(self, event: type[E], handler: Handler[E], priority: int = DEFAULT) -> None:
        """Register ``handler`` for events of type ``event``."""
        entries = self._handlers.setdefault(event, [])
        entries.append((priority, -len(entries), handler))  # type: ignore[arg-type]
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)

    def remove(self, event: type[E], handler: Handler[E]) -> None:
        """Unregister a handler (no error if absent)."""
        entries = self._handlers.get(event)
        if entries:
            entries[:] = [e for e in entries if e[2] is not handler]

    def has(self, event: type) -> bool:
        """Whether any handler listens for ``event`` (lets callers skip building it)."""
        return bool(self._handlers.get(event))

    def fire(self, event: object) -> bool | Awaitable[bool]:
        """Run the handlers of ``event``'s type in order.

        True if one of them stopped the chain; an awaitable of that answer when a handler
        had to wait (the later handlers run after it). A failing handler is logged once and
        the chain goes on.
        """
        entries = self._handlers.get(type(event))
        if not entries:
            return False
        return _run(list(entries), 0, event)


def _run(entries: list[_Entry], start: int, event: object) -> bool | Awaitable[bool]:
    for i in range(start, len(entries)):
        handler = entries[i][2]
        try:
            result = handler(event)
        except Exception:
            log.exception("hook handler %r failed on %s", handler, type(event).__name__)
            continue
        if result is True:
            return True
        if inspect.isawaitable(result):
            return _run_async(result, entries, i + 1, event)
    return False


async def _run_async(
    pending: Awaitable[object], entries: list[_Entry], start: int, event: object
) -> bool:
    try:
        if await pending is True:
            return True
    except Exception:
        log.exception("hook handler failed on %s", type(event).__name__)
    rest = _run(entries, start, event)
    return rest if isinstance(rest, bool) else await rest
