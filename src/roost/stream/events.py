"""Actions a stream state machine returns to the code that drives it (h11/wsproto style).

An ``Element`` in an action list means "route this stanza"; everything else is one of the
frozen slotted dataclasses below. The driver performs the actions in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.errors import StanzaError
from roost.jid import JID
from roost.xml.element import Element


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTLS:
    """``<proceed/>`` was queued: flush it, then start TLS; drop any bytes already read.

    The driver resets its parser and calls ``tls_established()`` when the handshake is done.
    """


@dataclass(frozen=True, slots=True)
class ResetParser:
    """The stream restarts (after SASL success): reset the parser before feeding more bytes."""


@dataclass(frozen=True, slots=True)
class FetchCredentials:
    """Look up the stored credentials of ``jid`` (bare) and call ``credentials()``."""

    jid: JID


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """A SASL attempt failed (for per-IP accounting)."""

    condition: str
    username: str | None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """SASL succeeded for this bare JID; post-authentication limits apply from now on."""

    jid: JID
    mechanism: str


@dataclass(frozen=True, slots=True)
class BindRequest:
    """The client asks to bind a resource (None: the server chooses).

    The driver answers with ``bound(full_jid)`` or ``bind_failed(error)``.
    """

    resource: str | None


@dataclass(frozen=True, slots=True)
class Bound:
    """The session is established with this full JID."""

    jid: JID


@dataclass(frozen=True, slots=True)
class StanzaRejected:
    """A stanza got an error reply from the stream itself (never routed)."""

    error: StanzaError


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection after flushing what was sent.

    ``condition`` is the stream error sent, if any; ``peer_closed`` says the peer already sent
    its closing tag (so there is nothing to wait for).
    """

    condition: str | None = None
    peer_closed: bool = False


Action = (
    Element
    | Send
    | StartTLS
    | ResetParser
    | FetchCredentials
    | AuthFailed
    | Authenticated
    | BindRequest
    | Bound
    | StanzaRejected
    | Close
)
