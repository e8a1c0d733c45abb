"""c2s resource binding (RFC 6120 §7) and the established stream (§8.1.2.1, §10.1)."""

from __future__ import annotations

import pytest

from roost.errors import StanzaError
from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, State
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_TLS
from roost.xml.parser import StreamEnd
from tests.unit.stream.test_c2s_driver import (
    BARE,
    DOMAIN,
    FULL,
    Binder,
    C2SDriver,
    bind_as_asked,
    bind_iq,
    elements,
    established,
    only_element,
    stanza_error,
    stream_error,
    xml,
)

STARTTLS = f"<starttls xmlns='{NS_TLS}'/>".encode()
MESSAGE = "<message to='romeo@example.com' id='m1'><body>hi</body></message>"


def logged_in(binder: Binder = bind_as_asked) -> C2SDriver:
    driver = C2SDriver(binder=binder)
    driver.login()
    return driver


def refuse(error: StanzaError) -> Binder:
    def binder(stream: C2SStream, resource: str | None) -> StanzaError:
        return error

    return binder


def bind_result_jid(el: Element) -> str | None:
    assert (el.name, el.get("type")) == ("iq", "result"), xml(el)
    bind = el.find("bind", NS_BIND)
    assert bind is not None, xml(el)
    return bind.find_text("jid", NS_BIND)


# --- binding --------------------------------------------------------------------------------


def test_bind_with_the_client_resource() -> None:
    driver = logged_in()
    events = driver.send(bind_iq("balcony", iq_id="b1"))
    reply = only_element(events)
    assert reply.get("id") == "b1"
    assert bind_result_jid(reply) == "juliet@example.com/balcony"
    assert driver.of_type(ev.BindRequest) == [ev.BindRequest("balcony")]
    assert driver.of_type(ev.Bound) == [ev.Bound(FULL)]
    assert driver.stream.established
    assert driver.stream.full_jid == FULL


def test_bind_without_resource_lets_the_server_choose() -> None:
    driver = logged_in()
    reply = only_element(driver.send(bind_iq(None)))
    assert driver.of_type(ev.BindRequest) == [ev.BindRequest(None)]
    assert bind_result_jid(reply) == "juliet@example.com/roost-1"


def test_bind_with_empty_resource_lets_the_server_choose() -> None:
    driver = logged_in()
    driver.send(bind_iq(""))
    assert driver.of_type(ev.BindRequest) == [ev.BindRequest(None)]


def test_bind_resource_is_prepared_before_the_request() -> None:
    driver = logged_in()
    driver.send(bind_iq("ﬁre"))  # OpaqueString: NFC, no case mapping
    assert driver.of_type(ev.BindRequest) == [ev.BindRequest("ﬁre")]


@pytest.mark.parametrize("resource", ["x" * 1024, "\u0378", "a\u200bb"])
def test_bind_with_an_invalid_resource_is_bad_request(resource: str) -> None:
    driver = logged_in()
    reply = only_element(driver.send(bind_iq(resource, iq_id="b2")))
    assert reply.get("id") == "b2"
    assert stanza_error(reply) == ("modify", "bad-request")
    assert driver.of_type(ev.BindRequest) == []
    assert [r.error.condition for r in driver.of_type(ev.StanzaRejected)] == ["bad-request"]
    assert driver.stream.state is State.NEGOTIATING
    assert driver.closed is None


@pytest.mark.parametrize(
    ("condition", "error_type"), [("conflict", "cancel"), ("resource-constraint", "wait")]
)
def test_bind_failed_is_an_error_iq(condition: str, error_type: str) -> None:
    driver = logged_in(binder=refuse(StanzaError(condition)))
    reply = only_element(driver.send(bind_iq("balcony", iq_id="b3")))
    assert (reply.name, reply.get("id")) == ("iq", "b3")
    assert stanza_error(reply) == (error_type, condition)
    assert [r.error.condition for r in driver.of_type(ev.StanzaRejected)] == [condition]
    assert driver.of_type(ev.Bound) == []
    assert driver.stream.state is State.NEGOTIATING
    assert driver.closed is None


def test_bind_may_be_retried_after_a_failure() -> None:
    answers: list[JID | StanzaError] = [StanzaError("conflict"), FULL]

    def binder(stream: C2SStream, resource: str | None) -> JID | StanzaError:
        return answers.pop(0)

    driver = logged_in(binder=binder)
    driver.send(bind_iq("balcony"))
    assert bind_result_jid(only_element(driver.send(bind_iq("balcony")))) == str(FULL)
    assert driver.stream.established


def test_bind_before_auth_is_not_authorized() -> None:
    driver = C2SDriver()
    driver.starttls()
    assert stream_error(driver.send(bind_iq("balcony"))) == "not-authorized"
    assert driver.of_type(ev.BindRequest) == []


def test_bind_iq_after_binding_is_routed_as_an_ordinary_iq() -> None:
    driver = established()
    events = driver.send(bind_iq("other"))  # the server's iq handlers answer it
    assert events == []
    assert len(driver.of_type(ev.BindRequest)) == 1
    assert driver.routed[-1].get("from") == str(FULL)


def test_iq_before_bind_is_a_not_authorized_stanza_error() -> None:
    driver = logged_in()
    events = driver.send(
        "<iq type='get' id='r1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    reply = only_element(events)
    assert (reply.get("id"), reply.get("from")) == ("r1", DOMAIN)
    assert stanza_error(reply) == ("auth", "not-authorized")
    assert [r.error.condition for r in driver.of_type(ev.StanzaRejected)] == ["not-authorized"]
    assert driver.routed == []
    assert driver.closed is None


@pytest.mark.parametrize("iq_type", ["get", "set"])
def test_iq_without_bind_payload_before_bind_is_not_authorized(iq_type: str) -> None:
    driver = logged_in()
    reply = only_element(driver.send(f"<iq type='{iq_type}' id='x'/>"))
    assert stanza_error(reply) == ("auth", "not-authorized")


def test_iq_result_and_error_before_bind_are_dropped() -> None:
    driver = logged_in()
    assert driver.send("<iq type='result' id='x'/><iq type='error' id='y'/>") == []
    assert driver.routed == []
    assert driver.closed is None


def test_message_and_presence_before_bind_are_dropped() -> None:
    driver = logged_in()
    assert driver.send(MESSAGE + "<presence/>") == []
    assert driver.routed == []
    assert driver.closed is None
    assert not driver.stream.established


def test_unknown_element_before_bind_is_unsupported_stanza_type() -> None:
    driver = logged_in()
    events = driver.send("<enable xmlns='urn:xmpp:sm:3'/>")
    assert stream_error(events) == "unsupported-stanza-type"


def test_stanzas_pipelined_after_the_bind_request_are_routed_once_bound() -> None:
    driver = logged_in()
    events = driver.send(bind_iq("balcony") + b"<presence/>" + MESSAGE.encode())
    assert bind_result_jid(only_element(events)) == str(FULL)
    assert [(r.name, r.get("from")) for r in driver.routed] == [
        ("presence", str(FULL)),
        ("message", str(FULL)),
    ]


def test_stanzas_pipelined_after_a_refused_bind_request_are_handled_as_before_bind() -> None:
    driver = logged_in(binder=refuse(StanzaError("conflict")))
    events = driver.send(bind_iq("balcony", iq_id="b") + b"<iq type='get' id='q'/><presence/>")
    assert [(e.get("id"), stanza_error(e)[1]) for e in elements(events)] == [
        ("b", "conflict"),
        ("q", "not-authorized"),
    ]
    assert driver.routed == []


def test_bound_after_the_stream_closed_does_nothing() -> None:
    driver = logged_in()
    pending = driver.stream.receive(driver.client_parser.feed(bind_iq("balcony")))
    assert pending == [ev.BindRequest("balcony")]  # not performed: the bind is "in flight"
    driver.call(driver.stream.close)
    assert driver.stream.bound(FULL) == []
    assert driver.stream.bind_failed(StanzaError("conflict")) == []
    assert not driver.stream.established
    assert driver.stream.full_jid is None


def test_tls_established_after_the_stream_closed_does_nothing() -> None:
    driver = C2SDriver()
    driver.open()
    pending = driver.stream.receive(driver.client_parser.feed(STARTTLS))
    assert pending[-1] == ev.StartTLS()  # not performed: the handshake is "in flight"
    driver.call(driver.stream.close)
    assert driver.stream.tls_established(b"cb") == []
    assert driver.stream.state is State.CLOSED


# --- the established stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    "stanza",
    [
        MESSAGE,
        "<presence/>",
        "<iq type='get' id='v' to='example.com'><query xmlns='jabber:iq:version'/></iq>",
    ],
)
def test_from_is_stamped_with_the_full_jid_on_every_stanza(stanza: str) -> None:
    driver = established()
    assert driver.send(stanza) == []
    (routed,) = driver.routed
    assert routed.get("from") == str(FULL)
    assert routed.xmlns == NS_CLIENT


@pytest.mark.parametrize(
    "own", [str(FULL), str(BARE), "Juliet@EXAMPLE.com/balcony", "JULIET@example.com"]
)
def test_own_full_or_bare_jid_as_from_is_accepted_and_stamped_full(own: str) -> None:
    driver = established()
    driver.send(f"<message from='{own}' to='romeo@example.com'/>")
    assert [r.get("from") for r in driver.routed] == [str(FULL)]
    assert driver.closed is None


@pytest.mark.parametrize(
    "other",
    [
        "romeo@example.com",
        "juliet@example.com/other",
        "juliet@example.net/balcony",
        "example.com",
        "@bad",
        "",
    ],
)
def test_other_from_is_invalid_from(other: str) -> None:
    driver = established()
    events = driver.send(f"<message from='{other}' to='romeo@example.com'/>")
    assert stream_error(events) == "invalid-from"
    assert isinstance(events[-1], StreamEnd)
    assert driver.closed == ev.Close("invalid-from")
    assert driver.routed == []


@pytest.mark.parametrize(
    "element",
    [
        "<foo/>",
        "<body>hi</body>",
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<message xmlns='urn:example:not-client'/>",
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGp1bGlldABwdw==</auth>",
    ],
)
def test_unknown_top_level_element_is_unsupported_stanza_type(element: str) -> None:
    driver = established()
    events = driver.send(element)
    assert stream_error(events) == "unsupported-stanza-type"
    assert driver.closed == ev.Close("unsupported-stanza-type")
    assert driver.routed == []


def test_several_stanzas_in_one_batch_come_out_in_order() -> None:
    driver = established()
    batch = "".join(f"<message id='m{i}' to='romeo@example.com'/>" for i in range(5))
    batch += "<presence id='p'/><iq type='get' id='q' to='example.com'/>"
    driver.send(batch)
    assert [r.get("id") for r in driver.routed] == ["m0", "m1", "m2", "m3", "m4", "p", "q"]
    assert all(r.get("from") == str(FULL) for r in driver.routed)


def test_stanzas_before_an_invalid_one_in_the_batch_are_routed() -> None:
    driver = established()
    events = driver.send("<message id='a'/><presence from='romeo@example.com'/><message id='b'/>")
    assert [r.get("id") for r in driver.routed] == ["a"]
    assert stream_error(events) == "invalid-from"


def test_stanzas_after_the_closing_tag_are_not_routed() -> None:
    driver = established()
    events = driver.events(
        [Element("message", NS_CLIENT, {"id": "a"}), StreamEnd(), Element("message", NS_CLIENT)]
    )
    assert [r.get("id") for r in driver.routed] == ["a"]
    assert events == [StreamEnd()]
    assert driver.closed == ev.Close(peer_closed=True)


def test_payload_is_routed_untouched() -> None:
    driver = established()
    payload = (
        "<body>a &amp; b</body><html xmlns='http://jabber.org/protocol/xhtml-im'>"
        "<body xmlns='http://www.w3.org/1999/xhtml'><p>one <b>two</b> three</p></body></html>"
    )
    driver.send(f"<message to='romeo@example.com' id='x'>{payload}</message>")
    (routed,) = driver.routed
    assert xml(routed) == (
        f"<message to='romeo@example.com' id='x' from='{FULL}'>{payload}</message>"
    )


def test_stanzas_completed_before_a_parse_error_in_the_same_read_are_routed() -> None:
    driver = established()
    events = driver.send(b"<message id='a'/><a></b>")
    assert stream_error(events) == "not-well-formed"
    assert [r.get("id") for r in driver.routed] == ["a"]


def test_stanzas_read_before_a_parse_error_are_routed() -> None:
    driver = established()
    driver.send(b"<message id='a'/>")
    events = driver.send(b"<a></b>")
    assert stream_error(events) == "not-well-formed"
    assert [r.get("id") for r in driver.routed] == ["a"]
