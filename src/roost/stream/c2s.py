"""Client-to-server stream negotiation as a sans-IO state machine (RFC 6120 §4–§7).

Theory of operation
-------------------
The machine is fed parse events (``StreamHeader``, stanza ``Element``s, ``StreamEnd``) by
``receive()`` and returns a list of actions (``roost.stream.events``); it never touches a
socket, so TCP, WebSocket and BOSH drive the same machine. Its output is element-level
(``OpenStream``, ``SendElement``, ``CloseStream``): each transport writes it in its own
framing. States (``roost.stream.features.State``):

  AWAIT_HEADER ──header──► NEGOTIATING ──<starttls/>──► TLS_PENDING
  TLS_PENDING ──tls_established()──► AWAIT_HEADER
  NEGOTIATING ──<auth/>──► AUTHENTICATING ──<success/>──► AWAIT_HEADER (authenticated)
  NEGOTIATING (authenticated) ──<iq><bind/></iq>──► BINDING ──bound()──► ESTABLISHED
  NEGOTIATING ──element claimed by an outside negotiator──► CLAIMED ──claim_finished()──►
      NEGOTIATING, or ESTABLISHED (``Bound``) when the negotiator called ``establish()``
  any ──stream error / </stream:stream>──► CLOSED

What is offered and who handles which element is decided by negotiators: STARTTLS and SASL
(``roost.stream.features``) and bind (``roost.stream.bind``) are built in; the others come
from the ``negotiators`` callable (the host's modules) and are handled by the driver
(``Claimed``).

- §4.7: the header must be ``<stream:stream>`` in the streams namespace (``invalid-namespace``)
  with ``jabber:client`` content (``invalid-namespace``), a ``to`` we serve (``host-unknown``;
  missing: ``improper-addressing``, as Prosody does) and version 1.x (``unsupported-version``).
  Errors found in the header are sent after our own response header (§4.9.1.2).
- §5–§7: bytes read after ``<starttls/>`` are discarded (the rest of that batch here, the
  driver drops what it reads before the handshake). What needs the world outside is the
  driver's: credentials (``FetchCredentials`` → ``credentials()``), PLAIN's PBKDF2 off the
  event loop (``VerifyPassword`` → ``password_checked()``), binding (``BindRequest`` →
  ``bound()``/``bind_failed()``). Events that arrive meanwhile (or during a claim before
  binding) wait in the machine and are processed, in order, with the answer (§10.1). Driver
  callbacks that come after the stream closed return no actions.
- Established: every stanza gets its ``from`` stamped with the full JID; a different ``from``
  is ``invalid-from`` (§8.1.2.1). Any other element is ``unsupported-stanza-type``
  unless a negotiator claims it; stanzas before authentication are ``not-authorized``
  (§6.4.1); iq before binding gets a ``not-authorized`` stanza error and is never routed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

from roost.auth.credentials import Credentials
from roost.errors import StanzaError, StreamError
from roost.jid import JID, JIDError
from roost.stream import events as ev
from roost.stream.bind import BIND
from roost.stream.features import (
    SASL,
    STARTTLS,
    FeatureNegotiator,
    Phase,
    State,
    StreamNegotiator,
    claimed,
    features_element,
    reject,
    stream_error_element,
)
from roost.stream.sasl import SaslServer
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STREAMS
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader

__all__ = ["STANZA_NAMES", "C2SStream", "Negotiators", "State", "stream_error_element"]

STANZA_NAMES = frozenset({"message", "presence", "iq"})
BUILTIN: Final[tuple[StreamNegotiator, ...]] = (STARTTLS, SASL, BIND)  # asked in this order
Negotiators = Callable[[str], Sequence[FeatureNegotiator[Any]]]  # domain → its negotiators


def _is_digits(text: str) -> bool:
    """1*DIGIT in ASCII (str.isdigit alone accepts '²' and '١')."""
    return text.isascii() and text.isdigit()


class C2SStream:
    """One client stream, from the first header to the closing tag (any transport).

    The attributes without underscore are also read and set by the built-in negotiators.
    """

    __slots__ = (
        "_hosts",
        "_negotiators",
        "_pending",
        "auth_failures",
        "authenticated",
        "bind_id",
        "cb_data",
        "domain",
        "full_jid",
        "full_str",
        "lang",
        "max_auth_failures",
        "sasl",
        "sasl_mechanism",
        "secure",
        "state",
        "stream_id",
        "tls_available",
        "tls_required",
    )

    def __init__(
        self,
        hosts: Collection[str],
        *,
        tls_available: bool,
        tls_required: bool,
        secure: bool = False,
        cb_data: bytes | None = None,
        max_auth_failures: int = 5,
        negotiators: Negotiators | None = None,
    ) -> None:
        self._hosts = hosts
        self._negotiators = negotiators
        self._pending: list[ParseEvent] = []
        self.tls_available = tls_available
        self.tls_required = tls_required
        self.cb_data = cb_data
        self.max_auth_failures = max_auth_failures
        self.auth_failures = 0
        self.bind_id = ""
        self.sasl: SaslServer | None = None
        self.sasl_mechanism = ""
        self.secure = secure
        self.state = State.AWAIT_HEADER
        self.domain: str | None = None
        self.stream_id = ""
        self.lang = "en"
        self.authenticated: JID | None = None
        self.full_jid: JID | None = None
        self.full_str = ""

    @property
    def established(self) -> bool:
        """True once a resource is bound."""
        return self.state is State.ESTABLISHED

    @property
    def phase(self) -> Phase:
        """The phase negotiators offer and claim in."""
        if self.state is State.ESTABLISHED:
            return Phase.BOUND
        return Phase.PRE_AUTH if self.authenticated is None else Phase.PRE_BIND

    # -- inputs ------------------------------------------------------------------------------
    def receive(self, events: list[ParseEvent]) -> list[ev.Action]:
        """Feed parse events; return the actions to perform, in order."""
        out: list[ev.Action] = []
        try:
            if self.state is State.ESTABLISHED:
                self._receive_established(events, out)
            else:
                for i, event in enumerate(events):
                    state = self.state
                    if state is State.TLS_PENDING or state is State.CLOSED:
                        break  # bytes after <starttls/> are discarded (RFC 6120 §5.4.3.3)
                    if state is State.BINDING or state is State.CLAIMED:
                        self._pending.extend(events[i:])  # wait for the driver's answer
                        break
                    self._receive_one(event, out)
                    if self.established:
                        self._receive_established(events[i + 1 :], out)
                        break
        except StreamError as err:
            self._fail(err, out)
        return out

    def tls_established(self, cb_data: bytes | None) -> list[ev.Action]:
        """The TLS handshake finished: the client now sends a new header."""
        if self.state is not State.TLS_PENDING:
            return []  # closed meanwhile
        self.secure = True
        self.cb_data = cb_data
        self.state = State.AWAIT_HEADER
        return []

    def credentials(self, creds: Credentials | None) -> list[ev.Action]:
        """Continue SASL with the credentials the driver fetched (None: no such account)."""
        return self._continue_sasl(SASL.credentials, creds)

    def password_checked(self, valid: bool) -> list[ev.Action]:
        """Continue SASL PLAIN with the result of ``VerifyPassword``."""
        return self._continue_sasl(SASL.password_checked, valid)

    def _continue_sasl(self, step: Callable[..., None], arg: object) -> list[ev.Action]:
        out: list[ev.Action] = []
        if self.sasl is None or self.state is not State.AUTHENTICATING:
            return out
        try:
            step(self, arg, out)
        except StreamError as err:
            self._fail(err, out)
        return out

    def bound(self, jid: JID) -> list[ev.Action]:
        """The driver bound the session to ``jid`` (answer the pending bind iq)."""
        if self.state is not State.BINDING:
            return []  # closed meanwhile
        self.establish(jid)
        self.state = State.ESTABLISHED
        return [ev.SendElement(BIND.result(self)), ev.Bound(jid), *self._receive_pending()]

    def bind_failed(self, error: StanzaError) -> list[ev.Action]:
        """The driver refused the bind request."""
        if self.state is not State.BINDING:
            return []  # closed meanwhile
        self.state = State.NEGOTIATING
        out: list[ev.Action] = []
        reject(BIND.request(self), error, out)
        out += self._receive_pending()
        return out

    def establish(self, jid: JID) -> None:
        """Bind the stream to ``jid`` without a bind request: what a negotiator holding a
        claim before binding does when it established the session itself (XEP-0198
        resumption; its own answer says so). It takes effect with ``claim_finished()``."""
        if self.state is State.BINDING or self.state is State.CLAIMED:
            self.full_jid = jid
            self.full_str = str(jid)

    def claim_finished(self) -> list[ev.Action]:
        """The driver handled a ``Claimed`` element: go on with what waited behind it."""
        if self.state is State.ESTABLISHED:
            return self._receive_pending()  # claimed after binding: nothing waited
        if self.state is not State.CLAIMED:
            return []  # closed meanwhile
        if self.full_jid is None:
            self.state = State.NEGOTIATING
            return self._receive_pending()
        self.state = State.ESTABLISHED
        return [ev.Bound(self.full_jid), *self._receive_pending()]

    def _receive_pending(self) -> list[ev.Action]:
        """Process what arrived while the driver was asked (§10.1: in order)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        return self.receive(pending)

    def close(self, error: StreamError | None = None) -> list[ev.Action]:
        """Close the stream from our side (shutdown, timeout, conflict, limits)."""
        out: list[ev.Action] = []
        if self.state is State.CLOSED:
            return out
        if error is None:
            self._open_if_awaiting_header(out)
            self.state = State.CLOSED
            out.append(ev.CloseStream())
            out.append(ev.Close())
        else:
            self._fail(error, out)
        return out

    def peer_closed(self) -> list[ev.Action]:
        """The connection ended without a closing tag."""
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        return [ev.Close(peer_closed=True)]

    # -- negotiation -------------------------------------------------------------------------
    def _receive_one(self, event: ParseEvent, out: list[ev.Action]) -> None:
        if type(event) is StreamHeader:
            self._on_header(event, out)
        elif type(event) is StreamEnd:
            self._on_end(out)
        elif self.state is State.AWAIT_HEADER:
            raise StreamError("not-well-formed", "expected a stream header")
        elif type(event) is Element:
            self._on_negotiation_element(event, out)

    def _on_header(self, header: StreamHeader, out: list[ev.Action]) -> None:
        if self.state is not State.AWAIT_HEADER:
            raise StreamError("not-well-formed", "unexpected stream header")
        self.stream_id = secrets.token_urlsafe(16)
        self.lang = header.attrs.get("xml:lang") or "en"
        to = header.attrs.get("to")
        domain = self._served_domain(to)
        if self.domain is None:
            self.domain = domain
        reply_attrs = {"id": self.stream_id, "version": "1.0", "xml:lang": "en"}
        if self.domain is not None:
            reply_attrs["from"] = self.domain
        frm = header.attrs.get("from")
        if frm is not None:
            reply_attrs["to"] = frm
        out.append(ev.OpenStream(reply_attrs))
        self.state = State.NEGOTIATING
        if header.xmlns != NS_STREAMS or header.name != "stream":
            raise StreamError("invalid-namespace", "the stream namespace must be " + NS_STREAMS)
        if header.content_ns != NS_CLIENT:
            raise StreamError("invalid-namespace", "the content namespace must be jabber:client")
        if to is None:
            raise StreamError("improper-addressing", "a 'to' attribute is required")
        if domain is None or domain != self.domain:
            raise StreamError("host-unknown", "this server does not serve " + to)
        version = header.attrs.get("version")
        if version is None:
            raise StreamError("unsupported-version", "XMPP 0.9 streams are not supported")
        major, _, minor = version.partition(".")
        if not (_is_digits(major) and _is_digits(minor)) or major.lstrip("0") != "1":
            raise StreamError("unsupported-version", "only version 1.0 is supported")
        features = features_element(self, self.phase, BUILTIN, self._outside(domain))
        out.append(ev.SendElement(features))

    def _served_domain(self, to: str | None) -> str | None:
        if to is None:
            return None
        try:
            jid = JID.parse(to)
        except JIDError:
            return None
        if jid.local is not None or jid.resource is not None or jid.domain not in self._hosts:
            return None
        return jid.domain

    def _outside(self, domain: str | None) -> Sequence[FeatureNegotiator[Any]]:
        """The negotiators from outside the stream (the host's modules)."""
        if self._negotiators is None or domain is None:
            return ()
        return self._negotiators(domain)

    def _on_end(self, out: list[ev.Action]) -> None:
        was_closed = self.state is State.CLOSED
        self._open_if_awaiting_header(out)
        self.state = State.CLOSED
        if not was_closed:
            out.append(ev.CloseStream())
        out.append(ev.Close(peer_closed=True))

    def _on_negotiation_element(self, el: Element, out: list[ev.Action]) -> None:
        phase = self.phase
        for builtin in BUILTIN:
            if claimed(builtin.claims(phase), el):
                builtin.receive(self, el, out)
                return
        if self._claim(phase, el, out):
            self.state = State.CLAIMED  # later input waits: the claim may change the stream
        elif self.authenticated is None:
            raise StreamError("not-authorized", "authenticate first")
        elif el.xmlns != NS_CLIENT or el.name not in STANZA_NAMES:
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not supported here")
        # messages and presence before binding are dropped, never routed (iq: BIND)

    def _claim(self, phase: Phase, el: Element, out: list[ev.Action]) -> bool:
        """Hand ``el`` to the outside negotiator that claims it, if any."""
        for negotiator in self._outside(self.domain):
            if claimed(negotiator.claims(phase), el):
                out.append(ev.Claimed(negotiator, el))
                return True
        return False

    # -- established -------------------------------------------------------------------------
    def _receive_established(self, events: Sequence[ParseEvent], out: list[ev.Action]) -> None:
        full = self.full_str
        for el in events:
            if type(el) is not Element:
                if type(el) is StreamEnd:
                    self._on_end(out)
                    return
                raise StreamError("not-well-formed", "unexpected stream header")
            if el.xmlns != NS_CLIENT or el.name not in STANZA_NAMES:
                if not self._claim(Phase.BOUND, el, out):
                    raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not supported")
                continue
            attrs = el.attrs
            frm = attrs.get("from")
            if frm is not None and frm != full:
                self._check_from(frm)
            attrs["from"] = full
            out.append(el)

    def _check_from(self, frm: str) -> None:
        try:
            jid = JID.parse(frm)
        except JIDError:
            raise StreamError("invalid-from", "the 'from' address is not valid") from None
        own = self.full_jid
        if own is None or (jid != own and jid != own.bare):
            raise StreamError("invalid-from", "the 'from' address is not yours")

    def _open_if_awaiting_header(self, out: list[ev.Action]) -> None:
        """§4.9.1.2: an error or closing tag before our header follows a header of our own.

        The same holds after a restart (TLS, SASL): the new stream is not open yet.
        """
        if self.state is State.AWAIT_HEADER:
            self.stream_id = secrets.token_urlsafe(16)
            attrs = {"id": self.stream_id, "version": "1.0"}
            if self.domain:
                attrs["from"] = self.domain
            out.append(ev.OpenStream(attrs))

    def _fail(self, err: StreamError, out: list[ev.Action]) -> None:
        if self.state is State.CLOSED:
            return
        self._open_if_awaiting_header(out)
        self.state = State.CLOSED
        out.append(ev.SendElement(stream_error_element(err.condition, err.text)))
        out.append(ev.CloseStream())
        out.append(ev.Close(err.condition))
