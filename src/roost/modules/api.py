"""Contracts between modules: the events they fire and the services they provide.

A module that provides a service registers it with ``api.provide(RosterService, obj)``; one
that uses it declares the provider in ``depends`` and calls ``api.service(RosterService)``.
Events are fired on the host's hook bus (``api.fire(...)``) and received with
``api.hook(EventType, handler)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.jid import JID
    from roost.storage.base import Roster, RosterItem
    from roost.xml.element import Element


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InitialPresence:
    """A session sent its first available presence (RFC 6121 §4.2), after the broadcast and
    the probes went out. Offline messages (XEP-0160) are delivered on this event when the
    priority is non-negative; held subscription requests are redelivered (§3.1.3)."""

    session: Session


@dataclass(slots=True)
class OutgoingPresence:
    """A session's broadcast presence is about to be sent to its contacts (and stored as its
    current presence). Handlers may add payloads to ``stanza``, e.g. the XEP-0153 avatar
    hash; they must not remove the client's own."""

    session: Session
    stanza: Element


@dataclass(frozen=True, slots=True)
class RosterChanged:
    """A roster item was added, changed or removed (``item`` None) for ``user`` (bare)."""

    user: JID
    jid: str
    item: RosterItem | None


# -- services ----------------------------------------------------------------------------------
class RosterService(Protocol):
    """Read access to rosters for other modules (provided by the ``roster`` module)."""

    async def roster(self, user: JID) -> Roster:
        """The roster of ``user`` (bare JID)."""
        ...

    async def item(self, user: JID, contact: JID) -> RosterItem | None:
        """The item for ``contact`` (any JID; its bare form is looked up) on ``user``'s roster."""
        ...

    async def subscription(self, user: JID, contact: JID) -> str:
        """The subscription state: none, to, from or both (none when not on the roster).

        "from" or "both" means ``contact`` may see ``user``'s presence.
        """
        ...


class PresenceService(Protocol):
    """Presence actions other modules need (provided by the ``presence`` module)."""

    def send_current_presence(self, user: JID, to: JID) -> None:
        """Send the current presence of each available resource of ``user`` to ``to``
        (e.g. after ``to`` is unblocked, XEP-0191 §3.4)."""
        ...

    def send_unavailable(self, user: JID, to: JID) -> None:
        """Send unavailable presence from each available resource of ``user`` to ``to``
        (e.g. when ``to`` is blocked, XEP-0191 §3.3)."""
        ...
