"""What the router hands to handlers: addressing classes, iq requests, routed stanzas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from roost.jid import JID
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.core.host import Host
    from roost.core.session import Session

# How a stanza is addressed, relative to the host that receives it (Prosody's event names):
Addressing = Literal["host", "bare", "full", "self"]
HOST: Final = "host"  # the server itself: 'domain' or 'domain/resource'
BARE: Final = "bare"  # an account, from someone else: 'user@domain'
FULL: Final = "full"  # one session: 'user@domain/resource'
SELF: Final = "self"  # the sender's own account: no 'to', or 'to' = the sender's bare JID


@dataclass(slots=True)
class Routed:
    """A stanza on its way through a host, with its parsed addresses."""

    stanza: Element
    sender: JID
    to: JID
    host: Host
    origin: Session | None  # the local session it came from, if any
    addressing: str  # HOST, BARE, FULL or SELF

    @property
    def type(self) -> str | None:
        """The stanza's type attribute."""
        return self.stanza.attrs.get("type")


@dataclass(slots=True)
class IqRequest:
    """An iq get/set for a handler: reply with the returned payload or raise StanzaError."""

    stanza: Element
    payload: Element
    sender: JID
    to: JID
    host: Host
    origin: Session | None

    @property
    def type(self) -> str:
        """'get' or 'set'."""
        return self.stanza.attrs["type"]


@dataclass(slots=True)
class Outbound:
    """A stanza an account of ``host`` sends, before it is routed (to any domain, local or
    not): what pre-route handlers see (Prosody's ``pre-message/*``, ejabberd's
    ``user_send_packet``)."""

    stanza: Element
    sender: JID
    to: JID
    host: Host  # the sender's host
    origin: Session | None  # the session it came from (None: the server on its behalf)


IqResult = Element | None
IqHandler = Callable[[IqRequest], "IqResult | Awaitable[IqResult]"]
StanzaHandler = Callable[[Routed], "bool | Awaitable[bool | None] | None"]
# A filter sees every stanza to a host before dispatch (iq included); True: it was handled
# (dropped or answered) and goes no further.
StanzaFilter = StanzaHandler
# A pre-route handler: True when it handled (refused, consumed) the stanza.
PreRouteHandler = Callable[[Outbound], "bool | Awaitable[bool | None] | None"]
