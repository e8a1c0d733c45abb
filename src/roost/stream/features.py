"""Stream features as negotiators: what a c2s stream offers and who handles which element.

Implements the feature side of RFC 6120 §4.3 (stream features and restarts), §5 (STARTTLS),
§6 (SASL, through ``roost.stream.sasl``) and §7 (resource binding); the shape is Twisted's
initializers and ejabberd's ``xmpp_stream_in`` callbacks.

Theory of operation
-------------------
A negotiator says, for each ``Phase`` of the stream, what it offers in
``<stream:features/>`` and which top-level elements it claims (by namespace and name; the
name ``ANY`` claims the whole namespace). Phases: ``PRE_AUTH`` (before SASL success),
``PRE_BIND`` (authenticated, no resource bound yet) and ``BOUND``. Features are offered after
each stream header (RFC 6120 §4.3.2), so only in the first two phases. Two kinds:

- ``StreamNegotiator``: sans-IO, built in, run by the machine itself (``STARTTLS`` and
  ``SASL`` below, ``BIND`` in ``roost.stream.bind``). They keep their per-stream state on the
  ``C2SStream`` (one shared, stateless instance each) and append actions to the machine's
  output.
- ``FeatureNegotiator``: from outside (a module registers one with ``api.stream_feature``;
  the stream gets a callable returning its host's negotiators). Handling needs the live
  connection, so the machine returns ``Claimed(negotiator, element)`` and the driver
  (``roost.core.c2s.C2SConnection``) calls ``handle(connection, element)``, writes the
  elements it answers (at once, or when the awaitable it returned is done) and calls
  ``claim_finished()``. A claim before binding (XEP-0198 ``<resume/>``) makes later input
  wait until then; such a negotiator may bind the stream itself with
  ``stream.establish(full_jid)``. After binding only elements outside the three
  ``jabber:client`` stanzas can be claimed (XEP-0198 ``<enable/>``, ``<r/>``, ``<a/>``;
  XEP-0352 ``<active/>``/``<inactive/>``), so routing never looks at claims; one that no
  negotiator claims is ``unsupported-stanza-type``, as before negotiators existed.

Built-in negotiators are asked first, in the order STARTTLS, SASL, bind; then the outside
ones, in the order the callable gives. In ``PRE_AUTH`` with TLS required and not in place,
only STARTTLS is offered (§5.3.1). An unclaimed element is the machine's business:
``not-authorized`` before authentication, dropped stanzas before binding, otherwise
``unsupported-stanza-type``.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, runtime_checkable

from roost.auth.credentials import Credentials
from roost.errors import StanzaError, StreamError
from roost.jid import JID, JIDError, normalize_localpart
from roost.stanzas import error_reply
from roost.stream import events as ev
from roost.stream.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslServer,
    SaslStep,
    Success,
    VerifyPassword,
    offered_mechanisms,
)
from roost.xml.element import Element
from roost.xml.ns import NS_SASL, NS_SASL_CB, NS_STREAM_ERRORS, NS_STREAMS, NS_TLS

if TYPE_CHECKING:
    from roost.stream.c2s import C2SStream

ANY: Final = "*"
QName = tuple[str, str]  # (namespace, local name or ANY)
Reply = Sequence[Element]  # what a negotiator answers on the stream, in order
S_contra = TypeVar("S_contra", contravariant=True)


class State(enum.Enum):
    """Where the stream is in its negotiation (the transitions: ``roost.stream.c2s``)."""

    AWAIT_HEADER = "await-header"
    NEGOTIATING = "negotiating"
    TLS_PENDING = "tls-pending"
    AUTHENTICATING = "authenticating"
    BINDING = "binding"
    CLAIMED = "claimed"  # an outside negotiator handles an element; later input waits
    ESTABLISHED = "established"
    CLOSED = "closed"


class Phase(enum.Enum):
    """The phases in which a negotiator offers features and claims elements."""

    PRE_AUTH = "pre-auth"
    PRE_BIND = "pre-bind"
    BOUND = "bound"


@runtime_checkable
class FeatureNegotiator(Protocol[S_contra]):
    """A stream feature from outside the stream; ``S_contra`` is the driver's connection type."""

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        """The children of ``<stream:features/>`` offered in ``phase``."""
        ...

    def claims(self, phase: Phase) -> Collection[QName]:
        """The top-level elements this negotiator handles in ``phase``."""
        ...

    def handle(self, connection: S_contra, element: Element) -> Reply | Awaitable[Reply]:
        """Handle a claimed element on the live connection; answer with elements to write."""
        ...


class StreamNegotiator(Protocol):
    """A built-in, sans-IO negotiator run by the machine itself."""

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        """The children of ``<stream:features/>`` offered in ``phase``."""
        ...

    def claims(self, phase: Phase) -> Collection[QName]:
        """The top-level elements this negotiator handles in ``phase``."""
        ...

    def receive(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> None:
        """Handle a claimed element: change the stream, append actions (may raise
        ``StreamError``)."""
        ...


def claimed(claims: Collection[QName], element: Element) -> bool:
    """True if ``claims`` covers ``element``."""
    return (element.xmlns, element.name) in claims or (element.xmlns, ANY) in claims


def features_element(
    stream: C2SStream,
    phase: Phase,
    builtin: Sequence[StreamNegotiator],
    extra: Sequence[FeatureNegotiator[Any]],
) -> Element:
    """``<stream:features/>`` for ``phase``: the built-in offers, then the others'."""
    features = Element("features", NS_STREAMS)
    if phase is Phase.PRE_AUTH and stream.tls_required and not stream.secure:
        # §5.3.1: nothing but mandatory STARTTLS (nothing at all when TLS is unavailable).
        features.children.extend(STARTTLS.offer(stream, phase))
        return features
    for own in builtin:
        features.children.extend(own.offer(stream, phase))
    for negotiator in extra:
        features.children.extend(negotiator.offer(stream, phase))
    return features


def reject(element: Element, error: StanzaError, out: list[ev.Action]) -> None:
    """Answer a stanza with an error from the stream itself; it is never routed."""
    out.append(ev.SendElement(error_reply(element, error)))
    out.append(ev.StanzaRejected(error))


def stream_error_element(condition: str, text: str | None = None) -> Element:
    """Build ``<stream:error>`` for a condition of RFC 6120 §4.9.3."""
    err = Element("error", NS_STREAMS)
    err.sub(condition, NS_STREAM_ERRORS)
    if text:
        err.sub("text", NS_STREAM_ERRORS, text, **{"xml:lang": "en"})
    return err


# -- offer-only negotiators ------------------------------------------------------------------
class FeatureOffer:
    """An offer-only negotiator from a function of the stream (after authentication): the
    form modules used before negotiators (roster ``<ver/>``, pre-approval ``<sub/>``)."""

    __slots__ = ("_offer", "phase")

    def __init__(
        self, offer: Callable[[C2SStream], Element | None], phase: Phase = Phase.PRE_BIND
    ) -> None:
        self._offer = offer
        self.phase = phase

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        found = self._offer(stream) if phase is self.phase else None
        return () if found is None else (found,)

    def claims(self, phase: Phase) -> Collection[QName]:
        return ()

    def handle(self, connection: object, element: Element) -> Reply:
        return ()  # claims nothing, so never called


class StaticOffer:
    """An offer-only negotiator with fixed elements per phase (XEP-0478 ``<limits/>``)."""

    __slots__ = ("_elements",)

    def __init__(self, elements: dict[Phase, Sequence[Element]]) -> None:
        self._elements = elements

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        return self._elements.get(phase, ())

    def claims(self, phase: Phase) -> Collection[QName]:
        return ()

    def handle(self, connection: object, element: Element) -> Reply:
        return ()  # claims nothing, so never called


# -- STARTTLS (RFC 6120 §5) ------------------------------------------------------------------
_TLS_CLAIMS: Final = frozenset({(NS_TLS, "starttls")})


class StartTlsNegotiator:
    """``<starttls/>``: ``<proceed/>`` and ``StartTLS``, or ``<failure/>`` and the end."""

    __slots__ = ()

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        if phase is not Phase.PRE_AUTH or stream.secure or not stream.tls_available:
            return ()
        starttls = Element("starttls", NS_TLS)
        if stream.tls_required:
            starttls.sub("required", NS_TLS)
        return (starttls,)

    def claims(self, phase: Phase) -> Collection[QName]:
        return () if phase is Phase.BOUND else _TLS_CLAIMS

    def receive(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> None:
        if stream.secure or stream.authenticated is not None:
            raise StreamError("policy-violation", "TLS is already negotiated")
        if not stream.tls_available:
            out.append(ev.SendElement(Element("failure", NS_TLS)))
            stream.state = State.CLOSED
            out.append(ev.CloseStream())
            out.append(ev.Close())
            return
        out.append(ev.SendElement(Element("proceed", NS_TLS)))
        out.append(ev.StartTLS())
        stream.state = State.TLS_PENDING


# -- SASL (RFC 6120 §6) ----------------------------------------------------------------------
_SASL_CLAIMS: Final = frozenset({(NS_SASL, ANY)})


def mechanisms(stream: C2SStream) -> list[str]:
    """The SASL mechanisms this stream offers, most preferred first."""
    return offered_mechanisms(tls=stream.secure, channel_binding=stream.cb_data is not None)


class SaslNegotiator:
    """``<auth/>``, ``<response/>``, ``<abort/>`` through ``roost.stream.sasl``; failures keep
    the stream open up to ``stream.max_auth_failures``, then ``not-authorized`` closes it."""

    __slots__ = ()

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        if phase is not Phase.PRE_AUTH:
            return ()
        mechs = Element("mechanisms", NS_SASL)
        for name in mechanisms(stream):
            mechs.sub("mechanism", NS_SASL, name)
        if stream.cb_data is None:
            return (mechs,)
        binding = Element("sasl-channel-binding", NS_SASL_CB)
        binding.sub("channel-binding", NS_SASL_CB, type="tls-server-end-point")
        return (mechs, binding)

    def claims(self, phase: Phase) -> Collection[QName]:
        return () if phase is Phase.BOUND else _SASL_CLAIMS

    def receive(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> None:
        if stream.authenticated is not None:
            raise StreamError("policy-violation", "already authenticated")
        name, sasl = element.name, stream.sasl
        if name == "auth":
            self._auth(stream, element, out)
        elif name == "response" and sasl is not None and stream.state is State.AUTHENTICATING:
            data = self._decode(stream, element, out)
            if data is not None:
                self._step(stream, sasl.respond(data), out)
        elif name == "abort" and sasl is not None:
            self._step(stream, sasl.abort(), out)
        else:
            self._failure(stream, Failure("malformed-request", f"unexpected <{name}/>"), out)

    def credentials(
        self, stream: C2SStream, creds: Credentials | None, out: list[ev.Action]
    ) -> None:
        """The driver fetched the credentials asked for (None: no such account)."""
        if stream.sasl is not None:
            self._step(stream, stream.sasl.credentials(creds), out)

    def password_checked(self, stream: C2SStream, valid: bool, out: list[ev.Action]) -> None:
        """The driver checked the password asked for."""
        if stream.sasl is not None:
            self._step(stream, stream.sasl.password_checked(valid), out)

    def _auth(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> None:
        if stream.state is State.AUTHENTICATING:
            self._failure(stream, Failure("malformed-request", "an exchange is in progress"), out)
            return
        if stream.tls_required and not stream.secure:
            self._failure(stream, Failure("encryption-required", "negotiate TLS first"), out)
            return
        stream.sasl_mechanism = element.get("mechanism") or ""
        stream.sasl = sasl = SaslServer(
            stream.sasl_mechanism,
            offered=mechanisms(stream),
            cb_data=stream.cb_data,
            tls=stream.secure,
        )
        stream.state = State.AUTHENTICATING
        if not element.text.strip():
            self._step(stream, sasl.start(None), out)
            return
        data = self._decode(stream, element, out)
        if data is not None:
            self._step(stream, sasl.start(data), out)

    def _decode(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> bytes | None:
        text = element.text.strip()
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self._failure(stream, Failure("incorrect-encoding", "invalid base64"), out)
            return None

    def _step(self, stream: C2SStream, step: SaslStep, out: list[ev.Action]) -> None:
        if isinstance(step, Challenge):
            challenge = Element("challenge", NS_SASL)
            challenge.add_text(base64.b64encode(step.data).decode() if step.data else "=")
            out.append(ev.SendElement(challenge))
        elif isinstance(step, NeedCredentials):
            self._need_credentials(stream, step.username, out)
        elif isinstance(step, VerifyPassword):
            out.append(step)  # the driver checks it off the event loop
        elif isinstance(step, Success):
            self._success(stream, step, out)
        else:
            self._failure(stream, step, out)

    def _need_credentials(self, stream: C2SStream, username: str, out: list[ev.Action]) -> None:
        assert stream.domain is not None
        assert stream.sasl is not None
        try:
            jid = JID(normalize_localpart(username), stream.domain)
        except JIDError:
            # An impossible username behaves exactly like an unknown one.
            self._step(stream, stream.sasl.credentials(None), out)
            return
        out.append(ev.FetchCredentials(jid))

    def _success(self, stream: C2SStream, step: Success, out: list[ev.Action]) -> None:
        assert stream.domain is not None
        jid = JID(normalize_localpart(step.username), stream.domain)
        if step.authzid:
            try:
                valid = JID.parse(step.authzid) == jid
            except JIDError:
                valid = False
            if not valid:
                failure = Failure("invalid-authzid", "authzid must be your own JID")
                self._failure(stream, failure, out)
                return
        success = Element("success", NS_SASL)
        if step.data:
            success.add_text(base64.b64encode(step.data).decode())
        out.append(ev.SendElement(success))
        stream.sasl = None
        stream.authenticated = jid
        stream.state = State.AWAIT_HEADER
        out.append(ev.Authenticated(jid, stream.sasl_mechanism))
        out.append(ev.ResetParser())

    def _failure(self, stream: C2SStream, failure: Failure, out: list[ev.Action]) -> None:
        stream.sasl = None
        if stream.state is State.AUTHENTICATING:
            stream.state = State.NEGOTIATING
        element = Element("failure", NS_SASL)
        element.sub(failure.condition, NS_SASL)
        if failure.text:
            element.sub("text", NS_SASL, failure.text, **{"xml:lang": "en"})
        out.append(ev.SendElement(element))
        if failure.condition == "aborted":
            return
        stream.auth_failures += 1
        out.append(ev.AuthFailed(failure.condition, None))
        if stream.auth_failures >= stream.max_auth_failures:
            raise StreamError("not-authorized", "too many failed authentication attempts")


STARTTLS: Final = StartTlsNegotiator()
SASL: Final = SaslNegotiator()
