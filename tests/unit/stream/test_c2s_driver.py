"""An in-memory driver for the c2s machine (bytes in, elements and actions out), and its tests.

``C2SDriver`` plays transport and session for one ``C2SStream`` without sockets: the client's
bytes go through a ``StreamParser`` into ``receive()``; what the machine writes
(``OpenStream``, ``SendElement``, ``CloseStream``) is written as TCP would and parsed by a
second ``StreamParser`` (the server's output stream) so tests assert on elements, and it fails
the test at once if the server ever writes malformed XML. Credentials come from an in-memory
dict of accounts made with ``derive``; ``VerifyPassword`` is computed at once;
``BindRequest`` is answered by a binder function; ``Claimed`` elements are handed to their
negotiator with the driver as the session, its answer written, then ``claim_finished()``;
``StartTLS`` is a handshake that completes at once (both parsers reset, ``tls_established``);
``ResetParser`` resets both parsers (the server's next bytes open a new stream too).

The driver also checks what every driver may rely on: ``Close`` is the last action ever
performed, and a closed machine returns nothing.

The other ``test_c2s_*`` modules import from here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import pytest
from scramp import ScramClient

from roost.auth.credentials import Credentials, derive, verify_password
from roost.errors import StanzaError, StreamError
from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, State
from roost.xml.element import Element
from roost.xml.ns import (
    NS_BIND,
    NS_CLIENT,
    NS_SASL,
    NS_STANZAS,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_TLS,
)
from roost.xml.parser import ParseError, ParseEvent, StreamEnd, StreamHeader, StreamParser
from roost.xml.serializer import STREAM_CLOSE, serialize, serialize_str, stream_header

DOMAIN: Final = "example.com"
OTHER_DOMAIN: Final = "example.net"
HOSTS: Final = frozenset({DOMAIN, OTHER_DOMAIN})
USER: Final = "juliet"
PASSWORD: Final = "r0m30myr0m30"
BARE: Final = JID(USER, DOMAIN)
FULL: Final = JID(USER, DOMAIN, "balcony")
ACCOUNTS: Final[dict[JID, Credentials]] = {
    BARE: derive(PASSWORD),
    JID("romeo", DOMAIN): derive("montague"),
}
CB_TYPE: Final = "tls-server-end-point"
CB_DATA: Final = bytes(range(32))
NS_SASL_CB: Final = "urn:xmpp:sasl-cb:0"  # XEP-0440
NS_STREAM_LIMITS: Final = "urn:xmpp:stream-limits:0"  # XEP-0478

_A = TypeVar("_A")
Binder = Callable[[C2SStream, str | None], JID | StanzaError]


def bind_as_asked(stream: C2SStream, resource: str | None) -> JID:
    """The session table's answer when nothing conflicts: the resource asked, or one chosen."""
    assert stream.authenticated is not None
    return JID(stream.authenticated.local, stream.authenticated.domain, resource or "roost-1")


def make_stream(
    *, tls_available: bool = True, tls_required: bool = True, **kwargs: Any
) -> C2SStream:
    return C2SStream(HOSTS, tls_available=tls_available, tls_required=tls_required, **kwargs)


# --- client bytes ---------------------------------------------------------------------------


def header(
    *,
    stream_ns: str = NS_STREAMS,
    content_ns: str | None = NS_CLIENT,
    xml_decl: bool = True,
    **attrs: str | None,
) -> bytes:
    """A client stream header; ``to`` and ``version`` default to DOMAIN and 1.0, None omits."""
    return stream_start(attrs, stream_ns=stream_ns, content_ns=content_ns, xml_decl=xml_decl)


def stream_start(
    attrs: dict[str, str | None],
    *,
    stream_ns: str = NS_STREAMS,
    content_ns: str | None = NS_CLIENT,
    xml_decl: bool = True,
) -> bytes:
    """See ``header``; ``xml_lang`` is written ``xml:lang``."""
    values: dict[str, str | None] = {"to": DOMAIN, "version": "1.0"}
    values.update(attrs)
    text = "<?xml version='1.0'?>" if xml_decl else ""
    text += f"<stream:stream xmlns:stream='{stream_ns}'"
    if content_ns is not None:
        text += f" xmlns='{content_ns}'"
    for name, value in values.items():
        if value is not None:
            text += f" {name.replace('_', ':')}='{value}'"
    return (text + ">").encode()


def auth(mechanism: str, initial: bytes | None = None) -> bytes:
    """``<auth/>``; ``initial`` is base64-encoded, b"" becomes "=" (RFC 6120 §6.4.2)."""
    payload = "" if initial is None else base64.b64encode(initial).decode() or "="
    return f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{payload}</auth>".encode()


def response(data: bytes) -> bytes:
    payload = base64.b64encode(data).decode() or "="
    return f"<response xmlns='{NS_SASL}'>{payload}</response>".encode()


def plain(username: str = USER, password: str = PASSWORD, authzid: str = "") -> bytes:
    return auth("PLAIN", f"{authzid}\0{username}\0{password}".encode())


def bind_iq(resource: str | None = None, iq_id: str = "bind1") -> bytes:
    inner = "" if resource is None else f"<resource>{resource}</resource>"
    return f"<iq type='set' id='{iq_id}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>".encode()


# --- reading the server's output ------------------------------------------------------------


def xml(el: Element) -> str:
    """The element as the server would write it in a jabber:client stream."""
    return serialize_str(el)


def elements(events: Sequence[ParseEvent]) -> list[Element]:
    return [e for e in events if isinstance(e, Element)]


def only_element(events: Sequence[ParseEvent]) -> Element:
    found = elements(events)
    assert len(found) == 1, f"expected one element, got {[xml(e) for e in found]}"
    return found[0]


def stream_error(events: Sequence[ParseEvent]) -> str | None:
    """The condition of the ``<stream:error/>`` among these events, if any."""
    for el in elements(events):
        if el.xmlns == NS_STREAMS and el.name == "error":
            condition = el.first_element()
            assert condition is not None
            assert condition.xmlns == NS_STREAM_ERRORS
            return condition.name
    return None


def sasl_failure(el: Element) -> str:
    """The condition of a SASL ``<failure/>``."""
    assert (el.xmlns, el.name) == (NS_SASL, "failure"), xml(el)
    condition = el.first_element()
    assert condition is not None
    assert condition.xmlns == NS_SASL
    return condition.name


def stanza_error(el: Element) -> tuple[str | None, str]:
    """(type, condition) of a stanza error reply."""
    assert el.get("type") == "error", xml(el)
    error = el.find("error", NS_CLIENT)
    assert error is not None, xml(el)
    condition = error.find_ns(NS_STANZAS)
    assert condition is not None, xml(el)
    return error.get("type"), condition.name


def features_of(events: Sequence[ParseEvent]) -> Element:
    found = [e for e in elements(events) if (e.xmlns, e.name) == (NS_STREAMS, "features")]
    assert len(found) == 1, f"expected <stream:features/> in {events}"
    return found[0]


def feature_names(features: Element) -> list[tuple[str, str]]:
    return [(f.xmlns, f.name) for f in features.elements()]


def mechanisms(features: Element) -> list[str]:
    mechs = features.find("mechanisms", NS_SASL)
    return [] if mechs is None else [m.text for m in mechs.elements()]


# --- the driver -----------------------------------------------------------------------------


class C2SDriver:
    """Transport and session for one c2s machine, in memory (see the module docstring)."""

    def __init__(
        self,
        stream: C2SStream | None = None,
        *,
        accounts: dict[JID, Credentials] = ACCOUNTS,
        cb_data: bytes | None = CB_DATA,
        binder: Binder = bind_as_asked,
    ) -> None:
        self.stream = make_stream() if stream is None else stream
        self.accounts = accounts
        self.cb_data = cb_data  # what the simulated TLS handshake yields
        self.binder = binder
        self.client_parser = StreamParser()
        self.server_parser = StreamParser()
        self.output: list[ParseEvent] = []  # the server's stream, parsed (across restarts)
        self.actions: list[ev.Action] = []  # every action performed, in order
        self.routed: list[Element] = []
        self.lookups: list[JID] = []
        self.closed: ev.Close | None = None
        self.tls_handshakes = 0
        self.claimed: list[Element] = []  # handed to a negotiator, in order

    # -- input --------------------------------------------------------------------------------
    def send(self, data: bytes | str) -> list[ParseEvent]:
        """Feed client bytes; return what the server wrote in answer, parsed."""
        mark = len(self.output)
        raw = data.encode() if isinstance(data, str) else data
        try:
            events = self.client_parser.feed(raw)
        except ParseError as err:
            if err.events:  # what was complete before the error is processed first
                self.call(self.stream.receive, err.events)
            self.call(self.stream.close, err)
        else:
            if events:
                self.call(self.stream.receive, events)
        return self.output[mark:]

    def events(self, events: list[ParseEvent]) -> list[ParseEvent]:
        """Feed parse events directly (what no parser would produce, too)."""
        mark = len(self.output)
        self.call(self.stream.receive, events)
        return self.output[mark:]

    def call(self, method: Callable[..., list[ev.Action]], *args: Any) -> list[ParseEvent]:
        """Call a machine method, check its result and perform it; return the new output."""
        mark = len(self.output)
        was_closed = self.stream.state is State.CLOSED
        actions = method(*args)
        if was_closed:
            assert actions == [], f"{method.__name__} on a closed stream returned {actions}"
        for action in actions[:-1]:
            assert not isinstance(action, ev.Close), f"Close is not last in {actions}"
        self.perform(actions)
        return self.output[mark:]

    # -- actions ------------------------------------------------------------------------------
    def perform(self, actions: list[ev.Action]) -> None:
        for action in actions:
            assert self.closed is None, f"{action!r} after {self.closed!r}"
            self.actions.append(action)
            if isinstance(action, Element):
                bound = self.of_type(ev.Bound)
                assert bound, f"routed before binding: {xml(action)}"
                assert action.get("from") == str(bound[-1].jid), f"not stamped: {xml(action)}"
                self.routed.append(action)
            elif isinstance(action, ev.OpenStream):
                self._write(stream_header(content_ns=NS_CLIENT, attrs=action.attrs))
            elif isinstance(action, ev.SendElement):
                self._write(serialize(action.element))
            elif isinstance(action, ev.CloseStream):
                self._write(STREAM_CLOSE)
            elif isinstance(action, ev.StartTLS):
                self.tls_handshakes += 1
                self.client_parser.reset()
                self.server_parser.reset()
                self.call(self.stream.tls_established, self.cb_data)
            elif isinstance(action, ev.ResetParser):
                self.client_parser.reset()
                self.server_parser.reset()
            elif isinstance(action, ev.FetchCredentials):
                self.lookups.append(action.jid)
                self.call(self.stream.credentials, self.accounts.get(action.jid))
            elif isinstance(action, ev.VerifyPassword):
                valid = verify_password(action.credentials, action.password)
                self.call(self.stream.password_checked, valid)
            elif isinstance(action, ev.Claimed):
                self._claimed(action)
            elif isinstance(action, ev.BindRequest):
                result = self.binder(self.stream, action.resource)
                if isinstance(result, JID):
                    self.call(self.stream.bound, result)
                else:
                    self.call(self.stream.bind_failed, result)
            elif isinstance(action, ev.Close):
                self.closed = action

    def _claimed(self, action: ev.Claimed) -> None:
        self.claimed.append(action.element)
        reply = action.negotiator.handle(self, action.element)
        assert isinstance(reply, Sequence), "the toys answer at once"
        for element in reply:
            self._write(serialize(element))
        self.call(self.stream.claim_finished)

    def _write(self, data: bytes) -> None:
        try:
            self.output.extend(self.server_parser.feed(data))
        except StreamError as err:
            pytest.fail(f"the server wrote malformed XML ({err}): {data!r}")

    def of_type(self, kind: type[_A]) -> list[_A]:
        """The actions of one kind performed so far."""
        return [a for a in self.actions if isinstance(a, kind)]

    # -- scripted negotiation -----------------------------------------------------------------
    def open(self, **attrs: str | None) -> list[ParseEvent]:
        return self.send(stream_start(attrs))

    def starttls(self) -> list[ParseEvent]:
        """Open, STARTTLS, and open the encrypted stream; return the new stream's output."""
        self.open()
        assert elements(self.send(f"<starttls xmlns='{NS_TLS}'/>"))[0].name == "proceed"
        return self.open()

    def login(self, username: str = USER, password: str = PASSWORD) -> list[ParseEvent]:
        """TLS (when not secure yet), PLAIN, restart; return the restarted stream's output."""
        if self.stream.secure:
            self.open()
        else:
            self.starttls()
        assert elements(self.send(plain(username, password)))[0].name == "success"
        return self.open()

    def establish(self, resource: str | None = "balcony") -> list[ParseEvent]:
        self.login()
        events = self.send(bind_iq(resource))
        assert self.stream.established, events
        return events

    def scram(
        self,
        mechanism: str = "SCRAM-SHA-256",
        username: str = USER,
        password: str = PASSWORD,
        channel_binding: tuple[str, bytes] | None = None,
    ) -> Element:
        """Run a SCRAM exchange with scramp's client; return the server's last SASL element.

        On ``<success/>`` the server's signature is checked by the client.
        """
        client = ScramClient([mechanism], username, password, channel_binding=channel_binding)
        first = client.get_client_first().encode()
        challenge = only_element(self.send(auth(mechanism, first)))
        if challenge.name != "challenge":
            return challenge
        client.set_server_first(base64.b64decode(challenge.text).decode())
        outcome = only_element(self.send(response(client.get_client_final().encode())))
        if outcome.name == "success":
            client.set_server_final(base64.b64decode(outcome.text).decode())
        return outcome


def established(**kwargs: Any) -> C2SDriver:
    """A driver whose stream is bound to FULL."""
    driver = C2SDriver(**kwargs)
    driver.establish(FULL.resource)
    assert driver.stream.full_jid == FULL
    return driver


# --- the driver's own checks ----------------------------------------------------------------


def test_driver_fails_the_test_when_the_server_writes_malformed_xml() -> None:
    driver = C2SDriver()
    driver.open()
    with pytest.raises(pytest.fail.Exception, match="malformed XML"):
        driver.perform([ev.SendElement(Element("two words", NS_CLIENT))])


def test_driver_refuses_actions_after_close() -> None:
    driver = C2SDriver()
    driver.perform([ev.Close()])
    with pytest.raises(AssertionError, match="after Close"):
        driver.perform([ev.CloseStream()])


def test_driver_restarts_the_server_stream_after_sasl_success() -> None:
    driver = C2SDriver()
    events = driver.login()
    headers = [e for e in driver.output if isinstance(e, StreamHeader)]
    assert len(headers) == 3  # initial, after TLS, after SASL
    assert feature_names(features_of(events)) == [(NS_BIND, "bind")]
    assert not any(isinstance(e, StreamEnd) for e in driver.output)
