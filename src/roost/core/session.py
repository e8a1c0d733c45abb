"""A bound client session, separate from the connection that carries it (docs/architecture.md).

A ``Session`` is what the rest of the server knows of a logged-in resource (RFC 6120 §7):
its full JID, its host, its presence and priority (RFC 6121 §4), per-module state, and the
outgoing chain that ``router.deliver`` runs before the stanza reaches the ``Carrier``. The
carrier is whatever moves the session's stanzas today: a client connection (TCP, WebSocket,
BOSH: ``roost.core.c2s``), later a stream-management hibernation queue (XEP-0198 §5), or a
proxy for a session held by another node of a cluster. Because the session does not own a
socket, a later feature can move it to another carrier (resumption) without the modules
noticing.

Per-module state is keyed by type (``session.state_of(SmState)``) so that a module keeps
what it needs on the session without a dict of its own keyed by session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from roost.jid import JID
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.core.host import Host
    from roost.errors import StreamError

T = TypeVar("T")

# One step of an outgoing chain: the stanza to pass on (the same, or another one), or None
# when the step consumed it (queued, dropped).
OutgoingFilter = Callable[["Session", Element], "Element | None"]


class Carrier(Protocol):
    """What carries a session's stanzas to the client (a connection, a queue, a proxy)."""

    @property
    def peer(self) -> str:
        """The client's address as the carrier knows it (an IP, or "" when none)."""
        ...

    def send_stanza(self, stanza: Element, data: bytes | None) -> None:
        """Write one stanza; ``data`` is its serialized form when the caller has it."""
        ...

    def close(self, error: StreamError | None = None) -> None:
        """End the stream (with a stream error, or cleanly)."""
        ...


class Session:
    """One bound resource: the server's view of a logged-in client."""

    __slots__ = (
        "__weakref__",
        "carrier",
        "closed",
        "host",
        "jid",
        "jid_str",
        "outgoing",
        "presence",
        "priority",
        "state",
    )

    def __init__(self, host: Host, jid: JID, carrier: Carrier) -> None:
        self.host = host
        self.jid = jid
        self.jid_str = str(jid)
        self.carrier = carrier
        self.presence: Element | None = None  # last broadcast presence (None: unavailable)
        self.priority = 0
        self.closed = False
        self.outgoing: list[OutgoingFilter] = []  # run by router.deliver, in order
        self.state: dict[type, object] = {}

    def __repr__(self) -> str:
        return f"<Session {self.jid_str}>"

    def state_of(self, kind: type[T]) -> T | None:
        """The state a module keeps on this session under the type ``kind``, if any."""
        return self.state.get(kind)  # type: ignore[return-value]

    def set_state(self, value: object) -> None:
        """Keep ``value`` on this session, keyed by its type."""
        self.state[type(value)] = value

    def close(self, error: StreamError | None = None) -> None:
        """End the session's stream (the carrier reports the end to the server)."""
        if not self.closed:
            self.carrier.close(error)
