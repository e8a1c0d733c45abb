"""c2s negotiation (roost.stream.c2s): stream headers, features, STARTTLS and closing.

Bytes in, elements and actions out, through the in-memory driver of ``test_c2s_driver``.
SASL is in ``test_c2s_sasl``, binding and the established stream in ``test_c2s_session``,
the property tests in ``test_c2s_fuzz``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from roost.errors import StreamError
from roost.stream import events as ev
from roost.stream.c2s import State
from roost.stream.features import FeatureOffer, Phase, StaticOffer
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_STREAMS, NS_TLS
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader
from tests.unit.stream.test_c2s_driver import (
    CB_DATA,
    CB_TYPE,
    DOMAIN,
    NS_SASL_CB,
    NS_STREAM_LIMITS,
    OTHER_DOMAIN,
    C2SDriver,
    elements,
    established,
    feature_names,
    features_of,
    header,
    make_stream,
    mechanisms,
    plain,
    stream_error,
)

STARTTLS = f"<starttls xmlns='{NS_TLS}'/>"
SCRAM = ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"]
SCRAM_PLUS = [m + "-PLUS" for m in SCRAM]


def response_header(events: Sequence[object]) -> StreamHeader:
    headers = [e for e in events if isinstance(e, StreamHeader)]
    assert len(headers) == 1, events
    return headers[0]


def assert_closed_with(driver: C2SDriver, events: Sequence[ParseEvent], condition: str) -> None:
    """A stream error: sent, then our closing tag, then Close(condition)."""
    assert stream_error(events) == condition
    assert isinstance(events[-1], StreamEnd)
    assert driver.closed == ev.Close(condition)
    assert driver.stream.state is State.CLOSED


# --- the response header (RFC 6120 §4.7) ----------------------------------------------------


def test_response_header_has_id_from_version_and_lang() -> None:
    driver = C2SDriver()
    reply = response_header(driver.open())
    assert reply.xmlns == NS_STREAMS
    assert reply.content_ns == NS_CLIENT
    assert reply.attrs["from"] == DOMAIN
    assert reply.attrs["version"] == "1.0"
    assert reply.attrs["xml:lang"] == "en"
    assert len(reply.attrs["id"]) >= 16  # §4.7.3: unpredictable, enough entropy
    assert "to" not in reply.attrs  # the client sent no 'from'
    assert driver.closed is None


def test_response_header_to_echoes_the_client_from() -> None:
    reply = response_header(C2SDriver().open(**{"from": "juliet@example.com"}))
    assert reply.attrs["to"] == "juliet@example.com"


def test_response_header_from_is_the_normalised_domain_asked_for() -> None:
    reply = response_header(C2SDriver().open(to="Example.NET."))
    assert reply.attrs["from"] == OTHER_DOMAIN


def test_each_stream_restart_gets_a_new_stream_id() -> None:
    driver = C2SDriver()
    driver.login()
    ids = [e.attrs["id"] for e in driver.output if isinstance(e, StreamHeader)]
    assert len(ids) == 3
    assert len(set(ids)) == 3


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.10", "01.0"])  # §4.7.5: leading zeros
def test_version_1_x_is_accepted_and_answered_with_1_0(version: str) -> None:
    driver = C2SDriver()
    events = driver.open(version=version)
    assert response_header(events).attrs["version"] == "1.0"
    assert features_of(events) is not None
    assert driver.closed is None


@pytest.mark.parametrize("version", ["2.0", "0.9", "1", "1.x", "one.zero", "².0", "١.0"])
def test_version_other_than_1_x_is_unsupported_version(version: str) -> None:
    driver = C2SDriver()
    events = driver.open(version=version)
    response_header(events)
    assert_closed_with(driver, events, "unsupported-version")


def test_missing_version_is_unsupported_version() -> None:
    driver = C2SDriver()
    events = driver.open(version=None)
    response_header(events)
    assert_closed_with(driver, events, "unsupported-version")


def test_unknown_host_is_host_unknown_after_our_header() -> None:
    driver = C2SDriver()
    events = driver.open(to="example.org")
    assert "from" not in response_header(events).attrs
    assert_closed_with(driver, events, "host-unknown")


@pytest.mark.parametrize("to", ["juliet@example.com", "example.com/res", "not a domain"])
def test_to_that_is_not_a_served_domain_is_host_unknown(to: str) -> None:
    driver = C2SDriver()
    assert_closed_with(driver, driver.open(to=to), "host-unknown")


def test_missing_to_is_improper_addressing() -> None:
    driver = C2SDriver()
    events = driver.open(to=None)
    response_header(events)
    assert_closed_with(driver, events, "improper-addressing")


def test_wrong_stream_namespace_is_invalid_namespace() -> None:
    driver = C2SDriver()
    events = driver.send(header(stream_ns="urn:example:not-streams"))
    response_header(events)
    assert_closed_with(driver, events, "invalid-namespace")


@pytest.mark.parametrize("content_ns", ["jabber:server", "urn:example", None])
def test_wrong_content_namespace_is_invalid_namespace(content_ns: str | None) -> None:
    driver = C2SDriver()
    events = driver.send(header(content_ns=content_ns))
    response_header(events)
    assert_closed_with(driver, events, "invalid-namespace")


def test_a_stanza_instead_of_a_header_is_an_error_after_our_header() -> None:
    driver = C2SDriver()
    events = driver.send(f"<message xmlns='{NS_CLIENT}' to='romeo@example.com'/>")
    response_header(events)
    assert_closed_with(driver, events, "invalid-namespace")


def test_garbage_before_the_header_is_reported_after_a_header_of_ours() -> None:
    driver = C2SDriver()
    events = driver.send(b"GET / HTTP/1.1\r\n\r\n")
    reply = response_header(events)  # §4.9.1.2
    assert reply.attrs["version"] == "1.0"
    assert_closed_with(driver, events, "not-well-formed")


def test_garbage_after_a_stream_restart_is_reported_after_a_new_header() -> None:
    driver = C2SDriver()
    driver.open()
    driver.send(STARTTLS)
    events = driver.send(b"\x16\x03\x01 not xml")
    response_header(events)
    assert_closed_with(driver, events, "not-well-formed")


def second_header() -> StreamHeader:
    """A header event in a running stream (a framing layer could produce one)."""
    return StreamHeader("stream", NS_STREAMS, {"to": DOMAIN, "version": "1.0"}, NS_CLIENT)


def test_a_second_header_while_negotiating_is_an_error() -> None:
    driver = C2SDriver()
    driver.open()
    assert_closed_with(driver, driver.events([second_header()]), "not-well-formed")


def test_a_second_header_after_establishment_is_an_error() -> None:
    driver = established()
    assert_closed_with(driver, driver.events([second_header()]), "not-well-formed")
    assert driver.routed == []


def test_a_second_stream_tag_in_bytes_after_establishment_is_an_error() -> None:
    driver = established()
    events = driver.send(header(xml_decl=False) + b"</stream:stream>")
    assert_closed_with(driver, events, "unsupported-stanza-type")
    assert driver.routed == []


# --- stream features ------------------------------------------------------------------------


def test_features_when_tls_is_required_offer_only_starttls_required() -> None:
    features = features_of(C2SDriver().open())
    assert feature_names(features) == [(NS_TLS, "starttls")]
    starttls = features.find("starttls", NS_TLS)
    assert starttls is not None
    assert [(c.xmlns, c.name) for c in starttls.elements()] == [(NS_TLS, "required")]


def test_features_when_tls_is_optional_offer_starttls_and_mechanisms_without_plain() -> None:
    driver = C2SDriver(make_stream(tls_required=False))
    features = features_of(driver.open())
    assert feature_names(features) == [(NS_TLS, "starttls"), (NS_SASL, "mechanisms")]
    starttls = features.find("starttls", NS_TLS)
    assert starttls is not None
    assert starttls.children == []
    assert mechanisms(features) == SCRAM  # no PLAIN, no -PLUS without TLS


def test_features_when_tls_is_required_but_unavailable_offer_nothing() -> None:
    driver = C2SDriver(make_stream(tls_available=False))
    assert feature_names(features_of(driver.open())) == []


def test_features_after_tls_with_channel_binding_offer_plus_plain_and_xep_0440() -> None:
    features = features_of(C2SDriver(cb_data=CB_DATA).starttls())
    assert feature_names(features) == [
        (NS_SASL, "mechanisms"),
        (NS_SASL_CB, "sasl-channel-binding"),
    ]
    assert mechanisms(features) == [*SCRAM_PLUS, *SCRAM, "PLAIN"]
    binding = features.find("sasl-channel-binding", NS_SASL_CB)
    assert binding is not None
    assert [(c.name, c.get("type")) for c in binding.elements()] == [("channel-binding", CB_TYPE)]


def test_features_after_tls_without_channel_binding_offer_no_plus() -> None:
    features = features_of(C2SDriver(cb_data=None).starttls())
    assert feature_names(features) == [(NS_SASL, "mechanisms")]
    assert mechanisms(features) == [*SCRAM, "PLAIN"]


def test_features_on_direct_tls_offer_mechanisms_at_once() -> None:
    driver = C2SDriver(make_stream(secure=True, cb_data=CB_DATA))
    assert mechanisms(features_of(driver.open())) == [*SCRAM_PLUS, *SCRAM, "PLAIN"]


def test_features_include_the_xep_0478_limits_element_when_given() -> None:
    limits = Element("limits", NS_STREAM_LIMITS)
    limits.sub("max-bytes", text="262144")
    offer = StaticOffer({Phase.PRE_AUTH: (limits,)})
    driver = C2SDriver(make_stream(negotiators=lambda domain: [offer]))
    features = features_of(driver.starttls())
    assert (NS_STREAM_LIMITS, "limits") in feature_names(features)
    advertised = features.find("limits", NS_STREAM_LIMITS)
    assert advertised is not None
    assert advertised.find_text("max-bytes", NS_STREAM_LIMITS) == "262144"


def test_features_without_limits_element_when_none_given() -> None:
    features = features_of(C2SDriver().starttls())
    assert (NS_STREAM_LIMITS, "limits") not in feature_names(features)


def test_features_after_auth_offer_bind_and_the_extra_features() -> None:
    seen: list[tuple[object, str]] = []

    def offer(name: str, ns: str) -> FeatureOffer:
        def feature(stream: object) -> Element:
            seen.append((stream, name))
            return Element(name, ns)

        return FeatureOffer(feature)

    extra = [offer("sm", "urn:xmpp:sm:3"), offer("csi", "urn:xmpp:csi:0")]
    domains: list[str] = []

    def negotiators(domain: str) -> list[FeatureOffer]:
        domains.append(domain)
        return extra

    driver = C2SDriver(make_stream(negotiators=negotiators))
    features = features_of(driver.login())
    assert feature_names(features) == [
        (NS_BIND, "bind"),
        ("urn:xmpp:sm:3", "sm"),
        ("urn:xmpp:csi:0", "csi"),
    ]
    # asked once each, after authentication only, for the stream's domain
    assert seen == [(driver.stream, "sm"), (driver.stream, "csi")]
    assert set(domains) == {DOMAIN}


def test_features_after_auth_offer_no_mechanisms_or_starttls() -> None:
    features = features_of(C2SDriver().login())
    assert feature_names(features) == [(NS_BIND, "bind")]


# --- STARTTLS (RFC 6120 §5) -----------------------------------------------------------------


def test_starttls_proceeds_then_the_client_restarts_the_stream() -> None:
    driver = C2SDriver()
    driver.open()
    events = driver.send(STARTTLS)
    assert [(e.xmlns, e.name) for e in elements(events)] == [(NS_TLS, "proceed")]
    assert driver.of_type(ev.StartTLS) == [ev.StartTLS()]
    assert driver.stream.secure
    assert driver.stream.state is State.AWAIT_HEADER
    events = driver.open()
    assert response_header(events).attrs["from"] == DOMAIN
    assert mechanisms(features_of(events))


def test_starttls_when_tls_is_unavailable_fails_and_closes() -> None:
    driver = C2SDriver(make_stream(tls_available=False, tls_required=False))
    driver.open()
    events = driver.send(STARTTLS)
    assert [(e.xmlns, e.name) for e in elements(events)] == [(NS_TLS, "failure")]
    assert isinstance(events[-1], StreamEnd)
    assert driver.closed == ev.Close()
    assert driver.of_type(ev.StartTLS) == []


def test_starttls_twice_is_policy_violation() -> None:
    driver = C2SDriver()
    driver.starttls()
    assert_closed_with(driver, driver.send(STARTTLS), "policy-violation")
    assert driver.tls_handshakes == 1


def test_starttls_after_authentication_without_tls_is_policy_violation() -> None:
    driver = C2SDriver(make_stream(tls_required=False))
    driver.open()
    assert driver.scram().name == "success"
    driver.open()
    assert_closed_with(driver, driver.send(STARTTLS), "policy-violation")
    assert driver.tls_handshakes == 0


def test_bytes_after_starttls_in_the_same_batch_are_dropped() -> None:
    driver = C2SDriver()
    driver.open()
    events = driver.send(STARTTLS + plain().decode() + "<message xmlns='jabber:client'/>")
    assert [e.name for e in elements(events)] == ["proceed"]
    assert driver.lookups == []
    assert driver.stream.state is State.AWAIT_HEADER
    assert driver.closed is None
    assert mechanisms(features_of(driver.open()))


# --- closing --------------------------------------------------------------------------------


def test_client_closing_tag_is_answered_with_ours_while_negotiating() -> None:
    driver = C2SDriver()
    driver.open()
    events = driver.send("</stream:stream>")
    assert events == [StreamEnd()]
    assert driver.closed == ev.Close(peer_closed=True)


def test_client_closing_tag_is_answered_with_ours_when_established() -> None:
    driver = established()
    events = driver.send("</stream:stream>")
    assert events == [StreamEnd()]
    assert driver.closed == ev.Close(peer_closed=True)
    assert driver.stream.state is State.CLOSED


def test_server_close_without_error_sends_the_closing_tag() -> None:
    driver = established()
    events = driver.call(driver.stream.close)
    assert events == [StreamEnd()]
    assert driver.closed == ev.Close()


def test_server_close_with_error_sends_the_error_then_the_closing_tag() -> None:
    driver = established()
    events = driver.call(driver.stream.close, StreamError("system-shutdown", "bye"))
    assert_closed_with(driver, events, "system-shutdown")
    error = elements(events)[0]
    assert [c.name for c in error.elements()] == ["system-shutdown", "text"]


def test_server_close_twice_closes_once() -> None:
    driver = established()
    driver.call(driver.stream.close)
    assert driver.stream.close(StreamError("conflict")) == []


def test_server_close_before_the_client_header_opens_our_stream_first() -> None:
    driver = C2SDriver()
    events = driver.call(driver.stream.close, StreamError("system-shutdown"))
    response_header(events)
    assert_closed_with(driver, events, "system-shutdown")


def test_server_close_without_error_before_the_client_header_opens_our_stream_first() -> None:
    driver = C2SDriver()
    events = driver.call(driver.stream.close)
    response_header(events)
    assert isinstance(events[-1], StreamEnd)
    assert driver.closed == ev.Close()


def test_server_close_after_sasl_success_opens_the_restarted_stream_first() -> None:
    driver = C2SDriver()
    driver.starttls()
    driver.send(plain())
    assert driver.stream.state is State.AWAIT_HEADER
    events = driver.call(driver.stream.close)
    assert isinstance(events[0], StreamHeader)
    assert isinstance(events[-1], StreamEnd)


def test_peer_closed_without_closing_tag_closes_quietly() -> None:
    driver = established()
    events = driver.call(driver.stream.peer_closed)
    assert events == []
    assert driver.closed == ev.Close(peer_closed=True)
    assert driver.stream.state is State.CLOSED
    assert driver.stream.close() == []


def test_peer_closed_after_we_closed_asks_for_nothing_more() -> None:
    driver = established()
    driver.call(driver.stream.close)
    assert driver.stream.peer_closed() == []


def test_nothing_is_processed_after_the_stream_is_closed() -> None:
    driver = C2SDriver()
    driver.open(to="example.org")
    assert driver.stream.receive([Element("message", NS_CLIENT)]) == []
    assert driver.stream.credentials(None) == []
