"""StreamParser: literal XML in, events or stream errors out (RFC 6120 §4, §11)."""

from __future__ import annotations

import pytest

from roost.errors import StreamError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_COMPONENT, NS_SERVER, NS_STREAMS
from roost.xml.parser import ParseError, ParseEvent, StreamEnd, StreamHeader, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'"
    b" xml:lang='en'>"
)


def opened(**limits: int) -> StreamParser:
    """A parser that has consumed the client stream header."""
    parser = StreamParser(**limits)
    events = parser.feed(HEADER)
    assert len(events) == 1
    assert isinstance(events[0], StreamHeader)
    return parser


def elements(events: list[ParseEvent]) -> list[Element]:
    out = [e for e in events if isinstance(e, Element)]
    assert len(out) == len(events)
    return out


def one(parser: StreamParser, data: bytes) -> Element:
    (el,) = elements(parser.feed(data))
    return el


def refused(parser: StreamParser, data: bytes) -> str:
    with pytest.raises(StreamError) as info:
        parser.feed(data)
    return info.value.condition


# -- the stream header and end -----------------------------------------------------------------
def test_header_is_emitted_when_its_start_tag_is_parsed() -> None:
    parser = StreamParser()
    assert parser.feed(HEADER[:-1]) == []
    (header,) = parser.feed(HEADER[-1:])
    assert header == StreamHeader(
        name="stream",
        xmlns=NS_STREAMS,
        attrs={"to": "example.com", "version": "1.0", "xml:lang": "en"},
        content_ns=NS_CLIENT,
    )


def test_header_without_xml_declaration_is_accepted() -> None:
    parser = StreamParser()
    (header,) = parser.feed(HEADER[len(b"<?xml version='1.0'?>") :])
    assert isinstance(header, StreamHeader)


def test_header_reports_server_content_namespace() -> None:
    parser = StreamParser()
    (header,) = parser.feed(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
        b" xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>"
    )
    assert isinstance(header, StreamHeader)
    assert header.content_ns == NS_SERVER
    assert header.attrs == {"from": "a.example", "to": "b.example", "version": "1.0"}


def test_header_without_default_namespace_has_no_content_namespace() -> None:
    parser = StreamParser()
    (header,) = parser.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")
    assert isinstance(header, StreamHeader)
    assert header.content_ns is None
    (el,) = elements(parser.feed(b"<message/>"))
    assert el.xmlns == ""


def test_stream_end_is_reported() -> None:
    parser = opened()
    assert parser.feed(b"</stream:stream>") == [StreamEnd()]


def test_whitespace_after_stream_end_is_ignored() -> None:
    parser = opened()
    assert parser.feed(b"</stream:stream>") == [StreamEnd()]
    assert parser.feed(b" \n") == []


def test_data_after_stream_end_is_not_well_formed() -> None:
    parser = opened()
    parser.feed(b"</stream:stream>")
    assert refused(parser, b"<message/>") == "not-well-formed"


def test_stanzas_and_stream_end_in_one_feed_come_out_in_order() -> None:
    parser = StreamParser()
    events = parser.feed(HEADER + b"<message/><iq type='get' id='1'/></stream:stream>")
    assert [type(e) for e in events] == [StreamHeader, Element, Element, StreamEnd]


# -- stanzas -----------------------------------------------------------------------------------
def test_stanza_is_emitted_when_its_end_tag_closes() -> None:
    parser = opened()
    assert parser.feed(b"<message to='a@b'><body>hi</body>") == []
    el = one(parser, b"</message>")
    assert el.name == "message"
    assert el.xmlns == NS_CLIENT
    assert el.attrs == {"to": "a@b"}
    assert el.find_text("body") == "hi"


def test_several_stanzas_in_one_feed_all_come_out() -> None:
    parser = opened()
    events = parser.feed(
        b"<message id='1'/><presence/><iq id='2' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    assert [e.name for e in elements(events)] == ["message", "presence", "iq"]


def test_stanza_split_over_single_byte_feeds() -> None:
    parser = opened()
    data = "<message><body>caf\u00e9 \u2603 &amp; more</body></message>".encode()
    out: list[ParseEvent] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    (el,) = elements(out)
    body = el.find("body")
    assert body is not None
    assert body.children == ["caf\u00e9 \u2603 & more"]


def test_text_split_over_feeds_becomes_one_text_child() -> None:
    parser = opened()
    assert parser.feed(b"<message><body>one ") == []
    assert parser.feed(b"two ") == []
    el = one(parser, b"three<br/>four</body></message>")
    body = el.find("body")
    assert body is not None
    assert body.children[0] == "one two three"
    assert body.children[2] == "four"


def test_mixed_content_order_is_preserved() -> None:
    parser = opened()
    el = one(
        parser,
        b"<message><html xmlns='http://jabber.org/protocol/xhtml-im'>"
        b"<body xmlns='http://www.w3.org/1999/xhtml'>a<b>bold</b> and <i>it</i>!</body>"
        b"</html></message>",
    )
    html = el.find("html")
    assert html is not None
    body = html.find("body")
    assert body is not None
    assert [c if isinstance(c, str) else c.name for c in body.children] == [
        "a",
        "b",
        " and ",
        "i",
        "!",
    ]


def test_predefined_entities_and_character_references_are_decoded() -> None:
    el = one(opened(), b"<message><body>&lt;&gt;&amp;&apos;&quot;&#65;&#x263A;</body></message>")
    assert el.find_text("body") == "<>&'\"A\u263a"


def test_cdata_section_is_text() -> None:
    el = one(opened(), b"<message><body><![CDATA[<not markup>]]></body></message>")
    assert el.find_text("body") == "<not markup>"


def test_top_level_element_in_streams_namespace_keeps_it() -> None:
    el = one(
        opened(),
        b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    )
    assert (el.name, el.xmlns) == ("features", NS_STREAMS)
    child = el.first_element()
    assert child is not None
    assert child.xmlns == "urn:ietf:params:xml:ns:xmpp-bind"


# -- namespaces and attributes -----------------------------------------------------------------
@pytest.mark.parametrize("content_ns", [NS_SERVER, NS_COMPONENT, "urn:example:custom"])
def test_stream_content_namespace_becomes_jabber_client(content_ns: str) -> None:
    parser = StreamParser()
    parser.feed(f"<stream:stream xmlns='{content_ns}' xmlns:stream='{NS_STREAMS}'>".encode())
    el = one(parser, b"<message><body>x</body><x xmlns='jabber:x:oob'><url>u</url></x></message>")
    assert el.xmlns == NS_CLIENT
    body, x = list(el.elements())
    assert body.xmlns == NS_CLIENT
    assert x.xmlns == "jabber:x:oob"
    url = x.first_element()
    assert url is not None
    assert url.xmlns == "jabber:x:oob"


def test_client_and_server_streams_side_by_side_map_namespaces_independently() -> None:
    client = opened()
    server = StreamParser()
    server.feed(f"<stream:stream xmlns='jabber:server' xmlns:stream='{NS_STREAMS}'>".encode())
    for _ in range(2):
        assert one(server, b"<message/>").xmlns == NS_CLIENT
        assert one(client, b"<message xmlns='jabber:server'/>").xmlns == NS_SERVER
        assert one(server, b"<message xmlns='jabber:client'/>").xmlns == NS_CLIENT


def test_jabber_server_stanza_on_client_stream_keeps_its_namespace() -> None:
    el = one(opened(), b"<message xmlns='jabber:server'/>")
    assert el.xmlns == NS_SERVER


def test_prefixed_payload_element_gets_its_namespace() -> None:
    el = one(opened(), b"<iq xmlns:p='urn:x:p'><p:query/></iq>")
    query = el.first_element()
    assert query is not None
    assert (query.name, query.xmlns) == ("query", "urn:x:p")


def test_element_undeclaring_default_namespace_has_empty_namespace() -> None:
    el = one(opened(), b"<message><x xmlns=''/></message>")
    child = el.first_element()
    assert child is not None
    assert child.xmlns == ""


def test_attributes_plain_xml_lang_and_clark() -> None:
    el = one(
        opened(),
        b"<message to='a@b' xml:lang='de' xmlns:q='urn:q' q:flag='1' xml:space='preserve'/>",
    )
    assert el.attrs == {
        "to": "a@b",
        "xml:lang": "de",
        "{urn:q}flag": "1",
        "{http://www.w3.org/XML/1998/namespace}space": "preserve",
    }


def test_attribute_values_are_unescaped_and_whitespace_normalised() -> None:
    el = one(opened(), b"<message a='x&amp;y&#9;z' b='tab\there'/>")
    assert el.attrs == {"a": "x&y\tz", "b": "tab here"}


def test_unbound_element_prefix_is_bad_namespace_prefix() -> None:
    assert refused(opened(), b"<foo:message/>") == "bad-namespace-prefix"


def test_unbound_attribute_prefix_is_bad_namespace_prefix() -> None:
    assert refused(opened(), b"<message foo:bar='1'/>") == "bad-namespace-prefix"


# -- keepalives and text at stream level -------------------------------------------------------
def test_whitespace_keepalives_are_ignored() -> None:
    parser = opened()
    assert parser.feed(b" ") == []
    assert parser.feed(b"\n\r\t ") == []
    assert len(elements(parser.feed(b" <presence/> \n"))) == 1


def test_many_keepalives_do_not_add_up_to_a_stanza() -> None:
    parser = opened(max_stanza_bytes=100)
    for _ in range(500):
        assert parser.feed(b" ") == []
    assert len(elements(parser.feed(b"<presence/>"))) == 1


def test_text_between_stanzas_is_bad_format() -> None:
    assert refused(opened(), b"<presence/>hello") == "bad-format"


def test_non_breaking_space_between_stanzas_is_bad_format() -> None:
    assert refused(opened(), "\u00a0".encode()) == "bad-format"


# -- restricted XML (RFC 6120 §11.1) -----------------------------------------------------------
def test_doctype_is_restricted_xml() -> None:
    assert refused(StreamParser(), b"<?xml version='1.0'?><!DOCTYPE stream>") == "restricted-xml"


def test_entity_declaration_is_restricted_xml() -> None:
    bomb = (
        b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'aaaaaaaaaa'>"
        b"<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&b;"
    )
    assert refused(StreamParser(), bomb) == "restricted-xml"


def test_undefined_entity_reference_is_restricted_xml() -> None:
    assert refused(opened(), b"<message><body>&nbsp;</body></message>") == "restricted-xml"


def test_comment_is_restricted_xml() -> None:
    assert refused(opened(), b"<message><!-- hi --></message>") == "restricted-xml"


def test_comment_between_stanzas_is_restricted_xml() -> None:
    assert refused(opened(), b"<!-- hi -->") == "restricted-xml"


def test_comment_before_header_is_restricted_xml() -> None:
    assert refused(StreamParser(), b"<!-- hi --><stream:stream>") == "restricted-xml"


def test_processing_instruction_is_restricted_xml() -> None:
    assert refused(opened(), b"<message><?php echo 1; ?></message>") == "restricted-xml"


def test_processing_instruction_before_header_is_restricted_xml() -> None:
    parser = StreamParser()
    assert refused(parser, b"<?xml-stylesheet href='a'?>" + HEADER[21:]) == "restricted-xml"


def test_utf8_declaration_in_any_case_is_accepted() -> None:
    parser = StreamParser()
    data = HEADER.replace(b"version='1.0'?>", b"version='1.0' encoding='utf-8'?>", 1)
    assert len(parser.feed(data)) == 1


def test_other_encoding_declaration_is_unsupported_encoding() -> None:
    data = HEADER.replace(b"version='1.0'?>", b"version='1.0' encoding='ISO-8859-1'?>", 1)
    assert refused(StreamParser(), data) == "unsupported-encoding"


def test_xml_version_other_than_1_0_is_not_well_formed() -> None:
    data = HEADER.replace(b"version='1.0'?>", b"version='1.1'?>", 1)
    assert refused(StreamParser(), data) == "not-well-formed"


# -- malformed input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"<message></iq>",
        b"<message><body>\xff</body></message>",
        b"<message><body>\xc0\x80</body></message>",  # overlong NUL
        b"<message><body>\xed\xa0\x80</body></message>",  # UTF-8 encoded surrogate
        b"<message><body>\x01</body></message>",
        b"<message><body>&#1;</body></message>",
        b"<message a='1' a='2'/>",
        b"<message <body/>",
        b"</stream:stream><x/>",
    ],
)
def test_malformed_input_is_not_well_formed(data: bytes) -> None:
    assert refused(opened(), data) == "not-well-formed"


def test_parser_stays_failed_after_an_error() -> None:
    parser = opened()
    assert refused(parser, b"<!-- x -->") == "restricted-xml"
    assert refused(parser, b"<presence/>") == "restricted-xml"


def test_stanzas_before_an_error_in_the_same_feed_come_with_the_error() -> None:
    # RFC 6120 §10.1: what was complete before the error is processed first.
    parser = opened()
    with pytest.raises(ParseError) as failure:
        parser.feed(b"<presence id='p1'/><message id='m1'/><!-- x -->")
    assert failure.value.condition == "restricted-xml"
    assert [e.get("id") for e in failure.value.events if isinstance(e, Element)] == ["p1", "m1"]
    with pytest.raises(ParseError) as again:
        parser.feed(b"<presence/>")
    assert again.value.events == []


# -- limits ------------------------------------------------------------------------------------
def test_incomplete_header_past_limit_is_policy_violation() -> None:
    parser = StreamParser(max_header_bytes=200)
    assert parser.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' ") == []
    assert refused(parser, b"a='" + b"x" * 300) == "policy-violation"


def test_complete_header_larger_than_limit_is_policy_violation() -> None:
    data = HEADER.replace(b"to='example.com'", b"to='" + b"x" * 300 + b"'")
    assert refused(StreamParser(max_header_bytes=200), data) == "policy-violation"


def test_stanza_larger_than_limit_is_policy_violation() -> None:
    parser = opened(max_stanza_bytes=1000)
    assert refused(parser, b"<message><body>" + b"x" * 1000 + b"</body></message>") == (
        "policy-violation"
    )


def test_stanza_at_limit_is_accepted() -> None:
    parser = opened(max_stanza_bytes=1000)
    stanza = b"<message><body>" + b"x" * (1000 - 32) + b"</body></message>"
    assert len(stanza) == 1000
    assert len(elements(parser.feed(stanza))) == 1


def test_incomplete_stanza_fails_once_past_the_limit() -> None:
    parser = opened(max_stanza_bytes=1000)
    assert parser.feed(b"<message><body>") == []
    for _ in range(9):
        assert parser.feed(b"x" * 100) == []
    assert refused(parser, b"x" * 100) == "policy-violation"


def test_endless_start_tag_fails_once_past_the_limit() -> None:
    parser = opened(max_stanza_bytes=1000)
    assert parser.feed(b"<message a='") == []
    for _ in range(9):
        assert parser.feed(b"y" * 100) == []
    assert refused(parser, b"y" * 100) == "policy-violation"


def test_one_huge_feed_is_refused() -> None:
    parser = opened(max_stanza_bytes=1000)
    data = b"<message><body>" + b"x" * 1_000_000
    assert refused(parser, data) == "policy-violation"


def test_stanza_limit_counts_each_stanza_separately() -> None:
    parser = opened(max_stanza_bytes=100)
    stanza = b"<message><body>" + b"x" * 60 + b"</body></message>"
    assert len(elements(parser.feed(stanza * 50))) == 50


def test_endless_comment_fails_once_past_the_limit() -> None:
    parser = opened(max_stanza_bytes=1000)
    assert parser.feed(b"<!--") == []
    for _ in range(9):
        assert parser.feed(b"z" * 100) == []
    assert refused(parser, b"z" * 100) == "policy-violation"


def test_endless_data_after_stream_end_fails_once_past_the_limit() -> None:
    parser = opened(max_stanza_bytes=1000)
    assert parser.feed(b"</stream:stream><!--") == [StreamEnd()]
    for _ in range(9):
        assert parser.feed(b"z" * 100) == []
    assert refused(parser, b"z" * 100) == "policy-violation"


def test_depth_past_limit_is_policy_violation() -> None:
    parser = opened(max_depth=4)
    assert len(elements(parser.feed(b"<a><b><c><d/></c></b></a>"))) == 1
    assert refused(parser, b"<a><b><c><d><e/></d></c></b></a>") == "policy-violation"


def test_element_count_past_limit_is_policy_violation() -> None:
    parser = opened(max_elements=5)
    assert len(elements(parser.feed(b"<a><b/><b/><b/><b/></a>"))) == 1
    assert refused(parser, b"<a><b/><b/><b/><b/><b/></a>") == "policy-violation"


def test_attribute_count_past_limit_is_policy_violation() -> None:
    parser = opened(max_attrs=3)
    assert len(elements(parser.feed(b"<a x='1' y='2' z='3'/>"))) == 1
    assert refused(parser, b"<a><b w='0' x='1' y='2' z='3'/></a>") == "policy-violation"


def test_namespace_declaration_count_past_limit_is_policy_violation() -> None:
    parser = opened(max_ns_decls=2)
    assert len(elements(parser.feed(b"<a xmlns:p='urn:p' xmlns:q='urn:q'/>"))) == 1
    data = b"<a><b xmlns='urn:b' xmlns:p='urn:p' xmlns:q='urn:q'/></a>"
    assert refused(parser, data) == "policy-violation"


def test_set_limits_switches_from_pre_auth_to_post_auth() -> None:
    parser = opened(max_stanza_bytes=10000, max_depth=8, max_elements=32)
    deep = b"<a>" * 10 + b"</a>" * 10
    assert refused(parser, deep) == "policy-violation"
    parser = opened(max_stanza_bytes=10000, max_depth=8, max_elements=32)
    parser.set_limits(max_stanza_bytes=262144, max_depth=64, max_elements=10000)
    assert len(elements(parser.feed(deep))) == 1
    assert len(elements(parser.feed(b"<a>" + b"<b/>" * 100 + b"</a>"))) == 1


def test_deep_tree_is_built_without_recursion_when_depth_limit_is_raised() -> None:
    depth = 10_000
    parser = opened(max_depth=depth + 1, max_elements=depth + 1, max_stanza_bytes=1 << 20)
    el = one(parser, b"<a>" * depth + b"text" + b"</a>" * depth)
    levels = 1
    while (child := el.first_element()) is not None:
        el = child
        levels += 1
    assert levels == depth
    assert el.children == ["text"]


# -- reset -------------------------------------------------------------------------------------
def test_reset_accepts_a_new_stream_header() -> None:
    parser = opened()
    parser.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    parser.reset()
    (header,) = parser.feed(HEADER)
    assert isinstance(header, StreamHeader)
    assert len(elements(parser.feed(b"<presence/>"))) == 1


def test_reset_clears_a_failure_and_keeps_limits() -> None:
    parser = opened(max_depth=2)
    assert refused(parser, b"<!-- x -->") == "restricted-xml"
    parser.reset()
    parser.feed(HEADER)
    assert refused(parser, b"<a><b><c/></b></a>") == "policy-violation"


def test_reset_drops_a_partial_stanza() -> None:
    parser = opened()
    parser.feed(b"<message><body>half")
    parser.reset()
    parser.feed(HEADER)
    el = one(parser, b"<presence/>")
    assert el.name == "presence"
