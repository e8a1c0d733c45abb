"""Serializer: element trees to default-namespace XML, literal round trips."""

from __future__ import annotations

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_SERVER, NS_STREAM_ERRORS, NS_STREAMS, NS_XML
from roost.xml.parser import StreamEnd, StreamHeader, StreamParser
from roost.xml.serializer import (
    STREAM_CLOSE,
    escape_attr,
    escape_text,
    serialize,
    serialize_str,
    stream_header,
)


def parse_one(data: bytes) -> Element:
    parser = StreamParser()
    parser.feed(stream_header(content_ns=NS_CLIENT, attrs={}))
    (el,) = parser.feed(data)
    assert isinstance(el, Element)
    return el


def roundtrip(xml: str) -> str:
    """Parse a stanza written on a jabber:client stream and serialize it again."""
    return serialize_str(parse_one(xml.encode()))


# -- default-namespace form -----------------------------------------------------------------------
def test_stanza_in_default_namespace_has_no_xmlns() -> None:
    msg = Element("message", NS_CLIENT, {"to": "juliet@example.com"})
    msg.sub("body", text="hi")
    assert serialize(msg) == b"<message to='juliet@example.com'><body>hi</body></message>"


def test_payload_namespace_is_declared_once_on_the_payload() -> None:
    iq = Element("iq", NS_CLIENT, {"type": "result", "id": "1"})
    query = iq.sub("query", "jabber:iq:roster")
    query.sub("item", jid="a@b").sub("group", text="Friends")
    assert serialize_str(iq) == (
        "<iq type='result' id='1'><query xmlns='jabber:iq:roster'>"
        "<item jid='a@b'><group>Friends</group></item></query></iq>"
    )


def test_child_back_in_outer_namespace_redeclares_it() -> None:
    outer = Element("a", "urn:a")
    outer.sub("b", "urn:b").sub("c", "urn:a")
    assert serialize_str(outer) == "<a xmlns='urn:a'><b xmlns='urn:b'><c xmlns='urn:a'/></b></a>"


def test_element_without_namespace_undeclares_the_default() -> None:
    assert serialize_str(Element("x", "")) == "<x xmlns=''/>"
    assert serialize_str(Element("x", ""), default_ns="") == "<x/>"


def test_default_ns_is_the_namespace_in_scope() -> None:
    assert serialize_str(Element("message", NS_CLIENT), default_ns=NS_SERVER) == (
        "<message xmlns='jabber:client'/>"
    )
    assert serialize_str(Element("message", NS_SERVER), default_ns=NS_SERVER) == "<message/>"


def test_stanza_from_server_stream_is_written_without_xmlns() -> None:
    parser = StreamParser()
    parser.feed(stream_header(content_ns=NS_SERVER, attrs={}))
    (el,) = parser.feed(b"<message from='a@x' to='b@y'><body>hi</body></message>")
    assert isinstance(el, Element)
    assert serialize(el) == b"<message from='a@x' to='b@y'><body>hi</body></message>"


def test_no_generated_element_prefixes() -> None:
    out = roundtrip("<iq xmlns:p='urn:x:p'><p:query><p:item/></p:query></iq>")
    assert out == "<iq><query xmlns='urn:x:p'><item/></query></iq>"


def test_empty_element_is_self_closing() -> None:
    assert serialize_str(Element("presence")) == "<presence/>"


# -- the streams namespace ---------------------------------------------------------------------
def test_top_level_stream_element_uses_stream_prefix() -> None:
    features = Element("features", NS_STREAMS)
    features.sub("starttls", "urn:ietf:params:xml:ns:xmpp-tls").sub("required")
    assert serialize_str(features) == (
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
        "<required/></starttls></stream:features>"
    )


def test_stream_error_is_written_with_prefix() -> None:
    error = Element("error", NS_STREAMS)
    error.sub("not-authorized", NS_STREAM_ERRORS)
    assert serialize(error) == (
        b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error>"
    )


def test_prefixed_stream_element_keeps_default_namespace_for_children() -> None:
    features = Element("features", NS_STREAMS)
    features.sub("x", NS_CLIENT)
    assert serialize_str(features) == "<stream:features><x/></stream:features>"


def test_standalone_stream_element_declares_the_prefix() -> None:
    error = Element("error", NS_STREAMS)
    assert serialize_str(error, standalone=True) == (
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>"
    )


def test_nested_stream_namespace_element_is_declared_not_prefixed() -> None:
    msg = Element("message")
    msg.sub("features", NS_STREAMS)
    assert serialize_str(msg) == (
        "<message><features xmlns='http://etherx.jabber.org/streams'/></message>"
    )


# -- attributes --------------------------------------------------------------------------------
def test_xml_lang_is_written_as_xml_lang() -> None:
    assert serialize_str(Element("message", NS_CLIENT, {"xml:lang": "en"})) == (
        "<message xml:lang='en'/>"
    )


def test_clark_attributes_get_declared_prefixes() -> None:
    el = Element("x", "urn:x", {"{urn:a}one": "1", "{urn:b}two": "2", "{urn:a}three": "3"})
    assert serialize_str(el) == (
        "<x xmlns='urn:x' xmlns:ns1='urn:a' ns1:one='1' xmlns:ns2='urn:b' ns2:two='2'"
        " ns1:three='3'/>"
    )


def test_clark_attribute_in_xml_namespace_uses_xml_prefix() -> None:
    el = Element("body", NS_CLIENT, {f"{{{NS_XML}}}space": "preserve"})
    assert serialize_str(el) == "<body xml:space='preserve'/>"


def test_clark_attributes_round_trip() -> None:
    xml = "<message xmlns:q='urn:q' q:flag='1' to='a@b'/>"
    el = parse_one(xml.encode())
    assert el.attrs == {"{urn:q}flag": "1", "to": "a@b"}
    assert parse_one(serialize(el)).attrs == el.attrs


# -- escaping ----------------------------------------------------------------------------------
def test_text_escapes_markup_characters() -> None:
    assert escape_text("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert escape_text("plain 'quoted' \"text\"") == "plain 'quoted' \"text\""


def test_text_escapes_carriage_return_so_it_survives_parsing() -> None:
    assert escape_text("a\r\nb") == "a&#13;\nb"
    el = Element("body", NS_CLIENT, children=["line\r\nnext\r"])
    assert parse_one(serialize(el)).children == ["line\r\nnext\r"]


def test_attribute_values_escape_quotes_and_whitespace_controls() -> None:
    assert escape_attr("a&b<c>d\"e'f\tg\nh\ri") == (
        "a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i"
    )
    assert escape_attr("juliet@example.com/balcony") == "juliet@example.com/balcony"


def test_escaped_attribute_values_survive_parsing() -> None:
    value = "a&b<c>d\"e'f\tg\nh\ri  j"
    el = Element("message", NS_CLIENT, {"id": value})
    assert serialize_str(el) == (
        "<message id='a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i  j'/>"
    )
    assert parse_one(serialize(el)).attrs == {"id": value}


def test_namespace_values_are_escaped() -> None:
    assert serialize_str(Element("x", "urn:a&b")) == "<x xmlns='urn:a&amp;b'/>"


def test_non_ascii_is_written_as_utf8() -> None:
    el = Element("body", NS_CLIENT, children=["caf\u00e9 \U0001f600"])
    assert serialize(el) == "<body>caf\u00e9 \U0001f600</body>".encode()


# -- mixed content and depth -------------------------------------------------------------------
def test_mixed_content_round_trips_in_order() -> None:
    xml = (
        "<message><html xmlns='http://jabber.org/protocol/xhtml-im'>"
        "<body xmlns='http://www.w3.org/1999/xhtml'>a<b>bold</b> &amp; <i>it</i>!</body>"
        "</html></message>"
    )
    assert roundtrip(xml) == xml


def test_ten_thousand_levels_serialize_without_recursion() -> None:
    depth = 10_000
    root = Element("a", NS_CLIENT)
    el = root
    for _ in range(depth - 1):
        el = el.sub("a")
    el.add_text("x")
    out = serialize_str(root)
    assert out == "<a>" * depth + "x" + "</a>" * depth


# -- stream header -----------------------------------------------------------------------------
def test_stream_header_declares_both_namespaces_and_given_attributes() -> None:
    header = stream_header(
        content_ns=NS_CLIENT,
        attrs={"from": "example.com", "id": "abc", "version": "1.0", "xml:lang": "en"},
    )
    assert header == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='abc'"
        b" version='1.0' xml:lang='en'>"
    )


def test_stream_header_is_parsed_back() -> None:
    parser = StreamParser()
    (header,) = parser.feed(
        stream_header(content_ns=NS_SERVER, attrs={"to": "a&b", "version": "1.0"})
    )
    assert isinstance(header, StreamHeader)
    assert header.content_ns == NS_SERVER
    assert header.attrs == {"to": "a&b", "version": "1.0"}


def test_stream_close_ends_the_stream() -> None:
    assert STREAM_CLOSE == b"</stream:stream>"
    parser = StreamParser()
    events = parser.feed(stream_header(content_ns=NS_CLIENT, attrs={}) + STREAM_CLOSE)
    assert [type(e) for e in events] == [StreamHeader, StreamEnd]
