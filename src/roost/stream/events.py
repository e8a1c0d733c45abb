"""Actions a stream state machine returns to the code that drives it (h11/wsproto style).

An ``Element`` in an action list means "route this stanza"; everything else is one of the
frozen slotted dataclasses below. The driver performs the actions in order.

Output is element-level (docs/architecture.md §2): ``OpenStream``, ``SendElement`` and
``CloseStream`` say what to write, and each transport writes it in its own framing
(RFC 6120 §4 text on TCP, RFC 7395 frames, XEP-0124/0206 bodies), so nothing ever re-scans
written bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roost.auth.credentials import Credentials
from roost.errors import StanzaError
from roost.jid import JID
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.stream.features import FeatureNegotiator


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Write the server's stream header (RFC 6120 §4.7.1) with these attributes, in order:
    id, version, xml:lang, from, to (the absent ones left out)."""

    attrs: dict[str, str]


@dataclass(frozen=True, slots=True)
class SendElement:
    """Write one top-level element: a nonza (features, SASL, errors) or a stanza."""

    element: Element


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Write the end of the stream (``</stream:stream>``; RFC 7395 ``<close/>``)."""


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
class VerifyPassword:
    """Run ``verify_password(credentials, password)`` off the event loop (PBKDF2) and call
    ``password_checked()`` with the result; later input waits (RFC 6120 §10.1). Also the step
    PLAIN answers in ``roost.stream.sasl`` (an unknown user's keys are fake: the same cost)."""

    credentials: Credentials = field(repr=False)
    password: str = field(repr=False)


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
class Claimed:
    """A negotiator from outside the stream claimed this element (``roost.stream.features``).

    The driver calls ``negotiator.handle(connection, element)``, writes the elements it answers
    and then calls ``claim_finished()``; before binding, later input waits for that.
    """

    negotiator: FeatureNegotiator[Any]
    element: Element


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
    | OpenStream
    | SendElement
    | CloseStream
    | StartTLS
    | ResetParser
    | FetchCredentials
    | VerifyPassword
    | AuthFailed
    | Authenticated
    | BindRequest
    | Bound
    | StanzaRejected
    | Claimed
    | Close
)
