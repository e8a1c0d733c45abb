"""Properties of the parser and serializer (hypothesis): no crash on any input, round trips."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.errors import StreamError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STREAMS
from roost.xml.parser import ParseEvent, StreamParser
from roost.xml.serializer import serialize, stream_header

HEADER = stream_header(content_ns=NS_CLIENT, attrs={"to": "example.com", "version": "1.0"})
VALID_STREAM = (
    HEADER
    + b"<message to='a@example.com' xml:lang='en' id='1'><body>caf\xc3\xa9 &amp; &lt;x&gt;</body>"
    + b"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    + b"a<b>b</b>c</body></html></message> \n"
    + b"<iq type='get' id='2' xmlns:p='urn:p'><p:query p:a='1'/></iq>"
    + b"<presence><![CDATA[x]]></presence></stream:stream>"
)
BOUNDED = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def feed_in_pieces(parser: StreamParser, data: bytes, cuts: list[int]) -> list[ParseEvent]:
    """Feed ``data`` split at the given offsets; return all events."""
    events: list[ParseEvent] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += parser.feed(data[start:cut])
        start = max(start, cut)
    return events


def only_stream_errors(data: bytes, cuts: list[int], **limits: int) -> None:
    parser = StreamParser(**limits)
    try:
        feed_in_pieces(parser, data, cuts)
    except StreamError:
        pass


# -- robustness ----------------------------------------------------------------------------------
@BOUNDED
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_raise_only_stream_errors(data: bytes, cuts: list[int]) -> None:
    only_stream_errors(data, cuts)


@BOUNDED
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_after_header_raise_only_stream_errors(data: bytes, cuts: list[int]) -> None:
    only_stream_errors(HEADER + data, cuts, max_stanza_bytes=200, max_depth=4, max_elements=8)


mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.integers(min_value=0, max_value=len(VALID_STREAM)),
    st.binary(min_size=1, max_size=4),
)


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, chunk in edits:
        pos %= len(buf) + 1
        if kind == "insert":
            buf[pos:pos] = chunk
        elif kind == "delete":
            del buf[pos : pos + len(chunk)]
        else:
            buf[pos : pos + len(chunk)] = chunk
    return bytes(buf)


@BOUNDED
@given(st.lists(mutation, min_size=1, max_size=6), st.lists(st.integers(min_value=0), max_size=8))
def test_mutated_stream_raises_only_stream_errors(
    edits: list[tuple[str, int, bytes]], cuts: list[int]
) -> None:
    only_stream_errors(mutate(VALID_STREAM, edits), cuts)


@BOUNDED
@given(st.lists(st.integers(min_value=0), max_size=12))
def test_valid_stream_gives_same_events_however_it_is_split(cuts: list[int]) -> None:
    whole = StreamParser().feed(VALID_STREAM)
    pieces = feed_in_pieces(StreamParser(), VALID_STREAM, cuts)
    assert [type(e) for e in pieces] == [type(e) for e in whole]
    for a, b in zip(whole, pieces, strict=True):
        if isinstance(a, Element):
            assert isinstance(b, Element)
            assert same_tree(a, b)
        else:
            assert a == b


# -- round trips ---------------------------------------------------------------------------------
def normalised(children: list[Element | str]) -> list[Element | str]:
    """Children with adjacent text merged and empty text dropped."""
    out: list[Element | str] = []
    for child in children:
        if isinstance(child, str):
            if not child:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += child
                continue
        out.append(child)
    return out


def same_tree(a: Element, b: Element) -> bool:
    """Structural equality: names, namespaces, attributes and children in order (iterative)."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if (x.name, x.xmlns, x.attrs) != (y.name, y.xmlns, y.attrs):
            return False
        xs, ys = normalised(x.children), normalised(y.children)
        if len(xs) != len(ys):
            return False
        for cx, cy in zip(xs, ys, strict=True):
            if isinstance(cx, str) or isinstance(cy, str):
                if cx != cy:
                    return False
            else:
                pairs.append((cx, cy))
    return True


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,7}", fullmatch=True).filter(
    lambda n: not n.lower().startswith("xml")
)
NAMESPACES = st.sampled_from(
    [
        NS_CLIENT,
        NS_CLIENT,
        "",
        "urn:a",
        "urn:b&c",
        "http://jabber.org/protocol/muc#user",
        NS_STREAMS,
    ]
)
XML_CHARS = st.characters(min_codepoint=0x20, codec="utf-8").filter(
    lambda c: c not in "\ufffe\uffff"
) | st.sampled_from("\t\n\r&<>\"']]>")
TEXT = st.text(XML_CHARS, max_size=12)
ATTR_KEYS = NAMES | st.just("xml:lang") | st.builds("{{urn:q}}{}".format, NAMES)
ATTR_KEYS |= st.builds("{{urn:r}}{}".format, NAMES)
ATTRS = st.dictionaries(ATTR_KEYS, TEXT, max_size=4)


def build(name: str, xmlns: str, attrs: dict[str, str], children: list[Element | str]) -> Element:
    return Element(name, xmlns, attrs, normalised(children))


TREES = st.recursive(
    st.builds(build, NAMES, NAMESPACES, ATTRS, st.lists(TEXT, max_size=1)),
    lambda kids: st.builds(build, NAMES, NAMESPACES, ATTRS, st.lists(kids | TEXT, max_size=5)),
    max_leaves=20,
)


def parse_stanza(data: bytes) -> Element:
    parser = StreamParser()
    parser.feed(HEADER)
    (el,) = parser.feed(data)
    assert isinstance(el, Element)
    return el


@settings(max_examples=200, deadline=2000)
@given(TREES)
def test_parse_of_serialize_gives_the_same_tree(tree: Element) -> None:
    assert same_tree(parse_stanza(serialize(tree)), tree)


@settings(max_examples=200, deadline=2000)
@given(TREES)
def test_serialize_parse_serialize_is_stable(tree: Element) -> None:
    once = serialize(tree)
    assert serialize(parse_stanza(once)) == once
