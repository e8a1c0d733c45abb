"""Client-to-server stream negotiation as a sans-IO state machine (RFC 6120 §4–§7).

Theory of operation
-------------------
The machine is fed parse events (``StreamHeader``, stanza ``Element``s, ``StreamEnd``) by
``receive()`` and returns a list of actions (``roost.stream.events``); it never touches a
socket, so TCP, WebSocket and BOSH drive the same machine. States:

  AWAIT_HEADER ──header──► NEGOTIATING ──<starttls/>──► TLS_PENDING
  TLS_PENDING ──tls_established()──► AWAIT_HEADER
  NEGOTIATING ──<auth/>──► AUTHENTICATING ──<success/>──► AWAIT_HEADER (authenticated)
  NEGOTIATING (authenticated) ──<iq><bind/></iq>──► BINDING ──bound()──► ESTABLISHED
  any ──stream error / </stream:stream>──► CLOSED

- §4.7: the header must be ``<stream:stream>`` in the streams namespace (``invalid-namespace``)
  with ``jabber:client`` content (``invalid-namespace``), a ``to`` we serve (``host-unknown``;
  missing: ``improper-addressing``, as Prosody does) and version 1.x (``unsupported-version``).
  Errors found in the header are sent after our own response header (§4.9.1.2).
- §5: STARTTLS, required by default; then only STARTTLS is offered (§5.3.1). Bytes read after
  ``<starttls/>`` are discarded (the rest of that batch is dropped here, the driver drops what
  it reads before the handshake).
- §6: SASL through ``roost.stream.sasl``; failures keep the stream open up to the per-stream
  limit, then ``not-authorized`` closes it. Credentials are fetched by the driver
  (``FetchCredentials`` → ``credentials()``) because storage is asynchronous.
- §7: resource binding through the driver (``BindRequest`` → ``bound()``/``bind_failed()``),
  since conflicts and per-account limits are the session table's business. Events that arrive
  while the request is pending wait in the machine and are processed, in order, with the
  answer (§10.1). Driver callbacks that come after the stream closed return no actions.
- Established: every stanza gets its ``from`` stamped with the full JID; a different ``from``
  is ``invalid-from`` (§8.1.2.1). Anything but message/presence/iq is
  ``unsupported-stanza-type``; stanzas before authentication are ``not-authorized`` (§6.4.1);
  iq before binding gets a ``not-authorized`` stanza error and is never routed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from collections.abc import Callable, Collection, Sequence

from roost.auth.credentials import Credentials
from roost.errors import StanzaError, StreamError
from roost.jid import JID, JIDError, normalize_localpart, normalize_resource
from roost.stanzas import error_reply as stanza_error_reply
from roost.stream import events as ev
from roost.stream.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslServer,
    SaslStep,
    Success,
    offered_mechanisms,
)
from roost.xml.element import Element
from roost.xml.ns import (
    NS_BIND,
    NS_CLIENT,
    NS_SASL,
    NS_SASL_CB,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_TLS,
)
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader
from roost.xml.serializer import STREAM_CLOSE, serialize, stream_header

STANZA_NAMES = frozenset({"message", "presence", "iq"})


def _is_digits(text: str) -> bool:
    """1*DIGIT in ASCII (str.isdigit alone accepts '²' and '١')."""
    return text.isascii() and text.isdigit()


class State(enum.Enum):
    """Where the stream is in its negotiation."""

    AWAIT_HEADER = "await-header"
    NEGOTIATING = "negotiating"
    TLS_PENDING = "tls-pending"
    AUTHENTICATING = "authenticating"
    BINDING = "binding"
    ESTABLISHED = "established"
    CLOSED = "closed"


def stream_error_element(condition: str, text: str | None = None) -> Element:
    """Build ``<stream:error>`` for a condition of RFC 6120 §4.9.3."""
    err = Element("error", NS_STREAMS)
    err.sub(condition, NS_STREAM_ERRORS)
    if text:
        err.sub("text", NS_STREAM_ERRORS, text, **{"xml:lang": "en"})
    return err


class C2SStream:
    """One client stream, from the first header to the closing tag (any transport)."""

    __slots__ = (
        "_auth_failures",
        "_bind_id",
        "_cb_data",
        "_extra_features",
        "_hosts",
        "_max_auth_failures",
        "_pending",
        "_sasl",
        "_sasl_mechanism",
        "_tls_available",
        "_tls_required",
        "authenticated",
        "domain",
        "full_jid",
        "full_str",
        "lang",
        "limits_features",
        "secure",
        "state",
        "stream_id",
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
        extra_features: Callable[[C2SStream], Sequence[Element]] | None = None,
        limits_features: Element | None = None,
    ) -> None:
        self._hosts = hosts
        self._tls_available = tls_available
        self._tls_required = tls_required
        self._cb_data = cb_data
        self._max_auth_failures = max_auth_failures
        self._auth_failures = 0
        self._bind_id = ""
        self._pending: list[ParseEvent] = []
        self._sasl: SaslServer | None = None
        self._sasl_mechanism = ""
        self._extra_features = extra_features
        self.limits_features = limits_features
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

    # -- inputs ------------------------------------------------------------------------------
    def receive(self, events: list[ParseEvent]) -> list[ev.Action]:
        """Feed parse events; return the actions to perform, in order."""
        out: list[ev.Action] = []
        try:
            if self.state is State.ESTABLISHED:
                self._receive_established(events, out)
            else:
                for i, event in enumerate(events):
                    if self.state is State.TLS_PENDING or self.state is State.CLOSED:
                        break  # bytes after <starttls/> are discarded (RFC 6120 §5.4.3.3)
                    if self.state is State.BINDING:
                        self._pending.extend(events[i:])  # wait for bound() / bind_failed()
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
        self._cb_data = cb_data
        self.state = State.AWAIT_HEADER
        return []

    def credentials(self, creds: Credentials | None) -> list[ev.Action]:
        """Continue SASL with the credentials the driver fetched (None: no such account)."""
        out: list[ev.Action] = []
        if self._sasl is None or self.state is not State.AUTHENTICATING:
            return out
        try:
            self._sasl_result(self._sasl.credentials(creds), out)
        except StreamError as err:
            self._fail(err, out)
        return out

    def bound(self, jid: JID) -> list[ev.Action]:
        """The driver bound the session to ``jid`` (answer the pending bind iq)."""
        if self.state is not State.BINDING:
            return []  # closed meanwhile
        self.full_jid = jid
        self.full_str = str(jid)
        self.state = State.ESTABLISHED
        iq_id = self._bind_id
        result = Element("iq", NS_CLIENT, {"type": "result", "id": iq_id})
        result.sub("bind", NS_BIND).sub("jid", NS_BIND, self.full_str)
        return [ev.Send(serialize(result)), ev.Bound(jid), *self._receive_pending()]

    def bind_failed(self, error: StanzaError) -> list[ev.Action]:
        """The driver refused the bind request."""
        if self.state is not State.BINDING:
            return []  # closed meanwhile
        self.state = State.NEGOTIATING
        iq = Element("iq", NS_CLIENT, {"type": "set", "id": self._bind_id})
        out: list[ev.Action] = []
        self._reject(iq, error, out)
        out += self._receive_pending()
        return out

    def _receive_pending(self) -> list[ev.Action]:
        """Process what arrived while the bind request was pending (§10.1: in order)."""
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
            out.append(ev.Send(STREAM_CLOSE))
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
        out.append(ev.Send(stream_header(content_ns=NS_CLIENT, attrs=reply_attrs)))
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
        out.append(ev.Send(serialize(self._features())))

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

    def _features(self) -> Element:
        features = Element("features", NS_STREAMS)
        if self.authenticated is not None:
            features.sub("bind", NS_BIND)
            if self._extra_features is not None:
                features.children.extend(self._extra_features(self))
            return features
        if not self.secure and self._tls_available:
            starttls = features.sub("starttls", NS_TLS)
            if self._tls_required:
                starttls.sub("required", NS_TLS)
                return features  # §5.3.1: nothing else before TLS when it is mandatory
        if self._tls_required and not self.secure:
            return features  # no TLS possible and required: nothing can be negotiated
        mechs = features.sub("mechanisms", NS_SASL)
        for name in self._mechanisms():
            mechs.sub("mechanism", NS_SASL, name)
        if self._cb_data is not None:
            cb = features.sub("sasl-channel-binding", NS_SASL_CB)
            cb.sub("channel-binding", NS_SASL_CB, type="tls-server-end-point")
        if self.limits_features is not None:
            features.children.append(self.limits_features)
        return features

    def _mechanisms(self) -> list[str]:
        return offered_mechanisms(tls=self.secure, channel_binding=self._cb_data is not None)

    def _on_end(self, out: list[ev.Action]) -> None:
        was_closed = self.state is State.CLOSED
        self._open_if_awaiting_header(out)
        self.state = State.CLOSED
        if not was_closed:
            out.append(ev.Send(STREAM_CLOSE))
        out.append(ev.Close(peer_closed=True))

    def _on_negotiation_element(self, el: Element, out: list[ev.Action]) -> None:
        ns = el.xmlns
        if ns == NS_TLS and el.name == "starttls":
            self._on_starttls(out)
        elif ns == NS_SASL:
            self._on_sasl(el, out)
        elif self.authenticated is None:
            raise StreamError("not-authorized", "authenticate first")
        elif ns == NS_CLIENT and el.name == "iq" and self.state is State.NEGOTIATING:
            self._on_pre_bind_iq(el, out)
        elif ns == NS_CLIENT and el.name in STANZA_NAMES:
            if el.name == "iq" and el.get("type") in ("get", "set"):
                self._reject(el, StanzaError("not-authorized", "bind a resource first"), out)
            # messages and presence before binding are dropped, never routed
        else:
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not supported here")

    def _on_starttls(self, out: list[ev.Action]) -> None:
        if self.secure or self.authenticated is not None:
            raise StreamError("policy-violation", "TLS is already negotiated")
        if not self._tls_available:
            out.append(ev.Send(serialize(Element("failure", NS_TLS))))
            self.state = State.CLOSED
            out.append(ev.Send(STREAM_CLOSE))
            out.append(ev.Close())
            return
        out.append(ev.Send(serialize(Element("proceed", NS_TLS))))
        out.append(ev.StartTLS())
        self.state = State.TLS_PENDING

    def _on_pre_bind_iq(self, el: Element, out: list[ev.Action]) -> None:
        payload = el.first_element()
        if (
            el.get("type") == "set"
            and payload is not None
            and payload.xmlns == NS_BIND
            and payload.name == "bind"
        ):
            self._bind_id = el.get("id") or ""
            raw = payload.find_text("resource", NS_BIND)
            resource: str | None = None
            if raw:
                try:
                    resource = normalize_resource(raw)
                except JIDError:
                    error = StanzaError("bad-request", "the resource is not a valid resourcepart")
                    self._reject(el, error, out)
                    return
            self.state = State.BINDING
            out.append(ev.BindRequest(resource))
            return
        if el.get("type") in ("get", "set"):
            self._reject(el, StanzaError("not-authorized", "bind a resource first"), out)

    def _reject(self, el: Element, error: StanzaError, out: list[ev.Action]) -> None:
        """Answer a stanza with an error from the stream itself; it is never routed."""
        out.append(ev.Send(serialize(stanza_error_reply(el, error))))
        out.append(ev.StanzaRejected(error))

    # -- SASL --------------------------------------------------------------------------------
    def _on_sasl(self, el: Element, out: list[ev.Action]) -> None:
        if self.authenticated is not None:
            raise StreamError("policy-violation", "already authenticated")
        name = el.name
        if name == "auth":
            self._on_auth(el, out)
        elif name == "response" and self._sasl is not None and self.state is State.AUTHENTICATING:
            data = self._decode(el, out)
            if data is not None:
                self._sasl_result(self._sasl.respond(data), out)
        elif name == "abort" and self._sasl is not None:
            self._sasl_result(self._sasl.abort(), out)
        else:
            self._sasl_failure(Failure("malformed-request", f"unexpected <{name}/>"), out)

    def _on_auth(self, el: Element, out: list[ev.Action]) -> None:
        if self.state is State.AUTHENTICATING:
            self._sasl_failure(Failure("malformed-request", "an exchange is in progress"), out)
            return
        if self._tls_required and not self.secure:
            self._sasl_failure(Failure("encryption-required", "negotiate TLS first"), out)
            return
        mechanism = el.get("mechanism") or ""
        self._sasl_mechanism = mechanism
        self._sasl = SaslServer(
            mechanism,
            offered=self._mechanisms(),
            cb_data=self._cb_data,
            tls=self.secure,
        )
        self.state = State.AUTHENTICATING
        text = el.text.strip()
        if not text:
            self._sasl_result(self._sasl.start(None), out)
            return
        data = self._decode(el, out)
        if data is not None:
            self._sasl_result(self._sasl.start(data), out)

    def _decode(self, el: Element, out: list[ev.Action]) -> bytes | None:
        text = el.text.strip()
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self._sasl_failure(Failure("incorrect-encoding", "invalid base64"), out)
            return None

    def _sasl_result(self, step: SaslStep, out: list[ev.Action]) -> None:
        if type(step) is Challenge:
            challenge = Element("challenge", NS_SASL)
            challenge.add_text(base64.b64encode(step.data).decode() if step.data else "=")
            out.append(ev.Send(serialize(challenge)))
        elif type(step) is NeedCredentials:
            assert self.domain is not None
            try:
                jid = JID(normalize_localpart(step.username), self.domain)
            except JIDError:
                # An impossible username behaves exactly like an unknown one.
                self._sasl_result(self._sasl.credentials(None), out)  # type: ignore[union-attr]
                return
            out.append(ev.FetchCredentials(jid))
        elif type(step) is Success:
            self._sasl_success(step, out)
        elif type(step) is Failure:
            self._sasl_failure(step, out)

    def _sasl_success(self, step: Success, out: list[ev.Action]) -> None:
        assert self.domain is not None
        jid = JID(normalize_localpart(step.username), self.domain)
        if step.authzid:
            try:
                valid = JID.parse(step.authzid) == jid
            except JIDError:
                valid = False
            if not valid:
                self._sasl_failure(Failure("invalid-authzid", "authzid must be your own JID"), out)
                return
        success = Element("success", NS_SASL)
        if step.data:
            success.add_text(base64.b64encode(step.data).decode())
        out.append(ev.Send(serialize(success)))
        self._sasl = None
        self.authenticated = jid
        self.state = State.AWAIT_HEADER
        out.append(ev.Authenticated(jid, self._sasl_mechanism))
        out.append(ev.ResetParser())

    def _sasl_failure(self, failure: Failure, out: list[ev.Action]) -> None:
        self._sasl = None
        if self.state is State.AUTHENTICATING:
            self.state = State.NEGOTIATING
        element = Element("failure", NS_SASL)
        element.sub(failure.condition, NS_SASL)
        if failure.text:
            element.sub("text", NS_SASL, failure.text, **{"xml:lang": "en"})
        out.append(ev.Send(serialize(element)))
        if failure.condition == "aborted":
            return
        self._auth_failures += 1
        out.append(ev.AuthFailed(failure.condition, None))
        if self._auth_failures >= self._max_auth_failures:
            raise StreamError("not-authorized", "too many failed authentication attempts")

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
                raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not supported")
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
            out.append(ev.Send(stream_header(content_ns=NS_CLIENT, attrs=attrs)))

    def _fail(self, err: StreamError, out: list[ev.Action]) -> None:
        if self.state is State.CLOSED:
            return
        self._open_if_awaiting_header(out)
        self.state = State.CLOSED
        error = stream_error_element(err.condition, err.text)
        out.append(ev.Send(serialize(error) + STREAM_CLOSE))
        out.append(ev.Close(err.condition))
