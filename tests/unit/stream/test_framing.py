"""The web framings: RFC 7395 frames and XEP-0124 bodies to and from stream events and bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from roost.errors import StreamError
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, stream_error_element
from roost.stream.framing import (
    CLOSE_FRAME,
    FrameParser,
    body_element,
    bosh_body,
    bosh_header,
    bosh_payload,
    frame_element,
    open_frame,
    qualify_stanza,
    websocket_event,
    websocket_header,
)
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_FRAMING, NS_HTTPBIND, NS_STREAMS
from roost.xml.parser import StreamEnd, StreamHeader
from roost.xml.serializer import serialize

OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0' xml:lang='de'/>".encode()


def parser(max_bytes: int = 10_000, max_depth: int = 8, max_elements: int = 32) -> FrameParser:
    return FrameParser(max_bytes=max_bytes, max_depth=max_depth, max_elements=max_elements)


def condition(frame: bytes, p: FrameParser | None = None) -> str:
    with pytest.raises(StreamError) as info:
        (p or parser()).parse(frame)
    return info.value.condition


# -- input -----------------------------------------------------------------------------------
def test_open_frame_is_a_stream_header() -> None:
    element = parser().parse(OPEN)
    assert element is not None
    header = websocket_event(element)
    assert header == StreamHeader(
        "stream", NS_STREAMS, {"to": "localhost", "version": "1.0", "xml:lang": "de"}, NS_CLIENT
    )


def test_close_frame_is_the_stream_end() -> None:
    element = parser().parse(CLOSE_FRAME)
    assert element is not None
    assert websocket_event(element) == StreamEnd()


def test_stanza_frame_is_the_stanza_in_jabber_client() -> None:
    frame = b"<message xmlns='jabber:client' to='a@localhost'><body>hi &amp; bye</body></message>"
    element = parser().parse(frame)
    assert element is not None
    assert websocket_event(element) is element
    assert (element.name, element.xmlns, element.find_text("body")) == (
        "message",
        NS_CLIENT,
        "hi & bye",
    )


def test_unqualified_stanza_is_taken_as_jabber_client() -> None:
    element = parser().parse(b"<presence/>")
    assert element is not None
    assert element.xmlns == NS_CLIENT


def test_xml_declaration_before_the_element_is_accepted() -> None:
    element = parser().parse(b"<?xml version='1.0'?>\n<presence xmlns='jabber:client'/>")
    assert element is not None
    assert element.name == "presence"


def test_whitespace_frame_is_nothing() -> None:
    assert parser().parse(b" \r\n") is None


@pytest.mark.parametrize(
    "frame",
    [
        b"<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",
        b"<message xmlns='jabber:client'><body>cut",
        b"<message xmlns='jabber:client'>",
        b"</message>",
        b"hello",
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>",
    ],
    ids=["two-elements", "incomplete", "start-tag-only", "end-tag-only", "text", "tcp-header"],
)
def test_frame_that_is_not_one_element_is_refused(frame: bytes) -> None:
    assert condition(frame) in ("not-well-formed", "bad-format")


def test_restricted_xml_is_refused_in_frames() -> None:
    assert condition(b"<!--c--><presence/>") == "restricted-xml"
    assert condition(b"<presence><?pi x?></presence>") == "restricted-xml"
    assert condition(b"<presence>&ext;</presence>") == "restricted-xml"
    # A DTD cannot even start inside the wrapper: refused before anything is declared.
    assert condition(b"<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>") == "not-well-formed"


def test_frame_over_the_size_limit_is_a_policy_violation() -> None:
    frame = b"<message><body>" + b"x" * 200 + b"</body></message>"
    assert condition(frame, parser(max_bytes=100)) == "policy-violation"


def test_depth_and_element_limits_apply_to_frames() -> None:
    assert condition(b"<a><b><c/></b></a>", parser(max_depth=2)) == "policy-violation"
    assert condition(b"<a><b/><b/><b/></a>", parser(max_elements=3)) == "policy-violation"


def test_set_limits_raises_the_frame_limit() -> None:
    p = parser(max_bytes=50)
    frame = b"<message><body>" + b"x" * 100 + b"</body></message>"
    assert condition(frame, p) == "policy-violation"
    p.set_limits(max_bytes=1000, max_depth=8, max_elements=32)
    assert p.max_bytes == 1000
    assert p.parse(frame) is not None


def test_parser_is_reusable_after_an_error() -> None:
    p = parser()
    assert condition(b"<a>", p) == "not-well-formed"
    assert p.parse(b"<presence/>") is not None


def test_frames_in_sequence_are_parsed_on_their_own() -> None:
    p = parser()
    first = p.parse(b"<iq xmlns='jabber:client' xmlns:x='urn:x' type='get' id='1'><x:q/></iq>")
    second = p.parse(b"<presence xmlns='jabber:client'/>")
    assert first is not None
    assert second is not None
    assert [first.name, second.name] == ["iq", "presence"]
    # A prefix declared in one frame does not reach the next.
    assert condition(b"<iq xmlns='jabber:client'><x:q/></iq>", p) == "bad-namespace-prefix"
    assert p.parse(b"<presence/>") is not None


def test_bosh_body_children_are_its_stanzas() -> None:
    frame = (
        f"<body xmlns='{NS_HTTPBIND}' rid='5' sid='s'>"
        "<message xmlns='jabber:client' to='a@localhost'><body>hi</body></message>"
        "<presence><status>bare</status></presence></body>"
    ).encode()
    body = parser().parse(frame)
    assert body is not None
    assert (body.name, body.xmlns, body.get("rid")) == ("body", NS_HTTPBIND, "5")
    message, presence = bosh_payload(body)
    assert (message.name, message.xmlns) == ("message", NS_CLIENT)
    assert (presence.name, presence.xmlns) == ("presence", NS_CLIENT)
    status = presence.find("status", NS_CLIENT)
    assert status is not None  # descendants left in the httpbind namespace are requalified
    assert status.text == "bare"


def test_bosh_header_from_creation_attributes() -> None:
    frame = (
        f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='localhost' "
        "xml:lang='fr' xmpp:version='1.0' wait='60' hold='1'/>"
    ).encode()
    body = parser().parse(frame)
    assert body is not None
    assert bosh_header(body) == StreamHeader(
        "stream", NS_STREAMS, {"to": "localhost", "xml:lang": "fr", "version": "1.0"}, NS_CLIENT
    )


def test_bosh_header_without_xmpp_version_has_no_version() -> None:
    body = Element("body", NS_HTTPBIND, {"to": "localhost", "rid": "1"})
    assert bosh_header(body).attrs == {"to": "localhost"}


# -- output ----------------------------------------------------------------------------------
def test_open_frame_carries_the_header_attributes() -> None:
    attrs = {"id": "abc", "version": "1.0", "xml:lang": "en", "from": "localhost"}
    root = ET.fromstring(open_frame(attrs))
    assert root.tag == f"{{{NS_FRAMING}}}open"
    assert root.attrib == {
        "id": "abc",
        "version": "1.0",
        "{http://www.w3.org/XML/1998/namespace}lang": "en",
        "from": "localhost",
    }


def test_stanza_frame_gets_the_jabber_client_namespace() -> None:
    message = Element("message", NS_CLIENT, {"to": "a@localhost"})
    message.sub("body", text="1 < 2")
    assert frame_element(message) == (
        b"<message xmlns='jabber:client' to='a@localhost'><body>1 &lt; 2</body></message>"
    )


def test_element_with_its_own_namespace_keeps_it() -> None:
    success = Element("success", "urn:ietf:params:xml:ns:xmpp-sasl")
    assert frame_element(success) == b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def test_stream_prefixed_elements_declare_the_prefix() -> None:
    features = Element("features", NS_STREAMS)
    features.sub("bind", "urn:ietf:params:xml:ns:xmpp-bind")
    assert frame_element(features) == (
        b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
        b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    )


def test_stream_error_frame_is_a_standalone_document() -> None:
    root = ET.fromstring(frame_element(stream_error_element("conflict", "replaced")))
    assert root.tag == f"{{{NS_STREAMS}}}error"
    assert [c.tag for c in root] == [
        "{urn:ietf:params:xml:ns:xmpp-streams}conflict",
        "{urn:ietf:params:xml:ns:xmpp-streams}text",
    ]


def test_forwarded_stanza_inside_a_stanza_keeps_its_namespace() -> None:
    outer = Element("message", NS_CLIENT, {"to": "a@x"})
    forwarded = outer.sub("forwarded", "urn:xmpp:forward:0")
    forwarded.sub("message", NS_CLIENT, **{"from": "b@x"}).sub("body", text="inner")
    root = ET.fromstring(frame_element(outer))
    assert root.tag == f"{{{NS_CLIENT}}}message"
    assert root[0][0].tag == f"{{{NS_CLIENT}}}message"
    assert root[0][0][0].text == "inner"


def stanzas() -> list[Element]:
    message = Element("message", NS_CLIENT, {"to": "a@x", "type": "chat"})
    message.sub("body", text="it's <b>")
    bare_iq = Element("iq", NS_CLIENT)
    bare_iq.sub("a", "urn:example:a", b="1")  # a short child with attributes, no iq attributes
    named = Element("presence", NS_CLIENT)
    named.sub("x", "urn:example:x")
    return [message, Element("presence", NS_CLIENT), bare_iq, named, Element("iq", NS_CLIENT)]


@pytest.mark.parametrize("stanza", stanzas(), ids=lambda e: serialize(e).decode())
def test_qualified_serialized_stanza_is_its_frame(stanza: Element) -> None:
    """Fan-out's bytes (serialized once, default-namespace form) become the same frame."""
    assert qualify_stanza(serialize(stanza)) == frame_element(stanza)


def test_qualify_leaves_an_already_qualified_stanza_alone() -> None:
    data = b"<message xmlns='jabber:client' to='a@x'/>"
    assert qualify_stanza(data) == data


def test_qualify_finds_the_end_of_another_name() -> None:
    assert qualify_stanza(b"<other a='1'/>") == b"<other xmlns='jabber:client' a='1'/>"


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_websocket_header_is_an_unmasked_final_text_frame(length: int, header: bytes) -> None:
    assert websocket_header(length) == header  # RFC 6455 §5.2: FIN, opcode 1, no mask bit


def test_websocket_frames_for_a_whole_negotiation_are_standalone_documents() -> None:
    stream = C2SStream({"localhost"}, tls_available=False, tls_required=False, secure=True)
    header = StreamHeader("stream", NS_STREAMS, {"to": "localhost", "version": "1.0"}, NS_CLIENT)
    frames: list[bytes] = []
    for action in stream.receive([header]) + stream.close():
        if isinstance(action, ev.OpenStream):
            frames.append(open_frame(action.attrs))
        elif isinstance(action, ev.SendElement):
            frames.append(frame_element(action.element))
        elif isinstance(action, ev.CloseStream):
            frames.append(CLOSE_FRAME)
    assert [ET.fromstring(f).tag for f in frames] == [
        f"{{{NS_FRAMING}}}open",
        f"{{{NS_STREAMS}}}features",
        f"{{{NS_FRAMING}}}close",
    ]
    assert ET.fromstring(frames[0]).attrib["from"] == "localhost"


# -- BOSH bodies ------------------------------------------------------------------------------
def test_bosh_body_without_payload_is_empty() -> None:
    assert bosh_body({}) == f"<body xmlns='{NS_HTTPBIND}'/>".encode()


def test_bosh_body_declares_the_xmpp_prefix_and_escapes_attributes() -> None:
    body = bosh_body({"sid": "a'b", "xmpp:version": "1.0"}, [b"<presence xmlns='jabber:client'/>"])
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS_HTTPBIND}}}body"
    assert root.attrib == {"sid": "a'b", "{urn:xmpp:xbosh}version": "1.0"}
    assert root[0].tag == f"{{{NS_CLIENT}}}presence"


def test_bosh_body_with_features_is_namespace_well_formed() -> None:
    features = Element("features", NS_STREAMS)
    features.sub("bind", "urn:ietf:params:xml:ns:xmpp-bind")
    root = ET.fromstring(bosh_body({"type": "terminate"}, [body_element(features)]))
    assert root[0].tag == f"{{{NS_STREAMS}}}features"
    assert root[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-bind}bind"


def test_bosh_body_element_qualifies_stanzas_and_unqualified_children() -> None:
    presence = Element("presence", NS_CLIENT)
    presence.sub("c", "")  # no namespace: must not fall into the body's
    root = ET.fromstring(bosh_body({}, [body_element(presence)]))
    assert root[0].tag == f"{{{NS_CLIENT}}}presence"
    assert root[0][0].tag == "c"
