"""Deep and wide trees: nothing recurses per nesting level, memory grows with the input only.

A tree 10,000 levels deep (ten times Python's default recursion limit) goes through the
serializer, the parser (with its depth limit raised), ``copy()`` and deallocation without a
RecursionError or a crash: a real crash in a peer server. Parsing keeps to a bounded number
of bytes of memory per element, so no stanza can make the server use memory out of
proportion to its size (issue 6, item 4).
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable

import pytest

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT
from roost.xml.parser import StreamParser
from roost.xml.serializer import serialize, stream_header

DEPTH = 10_000
HEADER = stream_header(content_ns=NS_CLIENT, attrs={"to": "example.com", "version": "1.0"})
BYTES_PER_ELEMENT = 600  # an Element (~370 bytes with its attrs dict and children list)


def deep_tree(depth: int) -> Element:
    """<message><a><a>...x...</a></a></message>, built without recursion."""
    root = Element("message", NS_CLIENT, {"id": "deep"})
    node = root
    for i in range(depth - 1):
        node = node.sub("a", "urn:example:deep" if i == 0 else None)
    node.add_text("bottom")
    return root


def depth_of(el: Element) -> tuple[int, str]:
    """How many levels deep the first-child chain goes, and the text at its bottom."""
    depth = 1
    while (child := el.first_element()) is not None:
        el, depth = child, depth + 1
    return depth, el.text


def parser_for(depth: int, size: int) -> StreamParser:
    return StreamParser(max_stanza_bytes=size + 1, max_depth=depth + 1, max_elements=depth + 1)


def parse_one(data: bytes, depth: int) -> Element:
    events = parser_for(depth, len(data)).feed(HEADER + data)
    stanza = events[-1]
    assert isinstance(stanza, Element)
    return stanza


def test_recursion_limit_is_below_the_depth_tested() -> None:
    assert sys.getrecursionlimit() < DEPTH  # else the tests below would prove nothing


def test_ten_thousand_levels_serialize_and_parse_back() -> None:
    tree = deep_tree(DEPTH)
    data = serialize(tree)
    assert data.startswith(b"<message id='deep'><a xmlns='urn:example:deep'><a><a>")
    assert data.endswith(b"bottom" + b"</a>" * (DEPTH - 1) + b"</message>")
    parsed = parse_one(data, DEPTH)
    assert depth_of(parsed) == (DEPTH, "bottom")
    assert serialize(parsed) == data


def test_ten_thousand_levels_copy_and_free() -> None:
    tree = deep_tree(DEPTH)
    copy = tree.copy()
    assert depth_of(copy) == (DEPTH, "bottom")
    del tree, copy  # deallocating a deep chain must not overflow the C stack


def test_ten_thousand_levels_refused_at_the_default_depth_limit() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    with pytest.raises(Exception, match="policy-violation: too deep"):
        parser.feed(serialize(deep_tree(DEPTH)))


def peak_memory(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def wide(count: int) -> bytes:
    return b"<message>" + b"<x a='1'>t</x>" * (count - 1) + b"</message>"


def deep(count: int) -> bytes:
    return b"<message>" + b"<x>" * (count - 1) + b"</x>" * (count - 1) + b"</message>"


@pytest.mark.parametrize("shape", [wide, deep], ids=["wide", "deep"])
def test_parse_memory_is_proportional_to_the_elements(shape: Callable[[int], bytes]) -> None:
    small, large = shape(1000), shape(DEPTH)
    parse_one(small, DEPTH)  # warm the name caches
    peak_small = peak_memory(lambda: parse_one(small, DEPTH))
    peak_large = peak_memory(lambda: parse_one(large, DEPTH))
    assert peak_large < DEPTH * BYTES_PER_ELEMENT + 4 * len(large)
    assert peak_large < 15 * peak_small  # ten times the elements: about ten times the memory


def test_stanza_at_the_post_auth_limits_stays_small() -> None:
    """The worst stanza the defaults allow (256 KiB, 10,000 elements) costs a few MiB."""
    data = b"<message>" + b"<x/>" * 9_999 + b"</message>"
    parser = StreamParser()
    parser.feed(HEADER)
    peak = peak_memory(lambda: parser.feed(data))
    assert peak < 10_000 * BYTES_PER_ELEMENT
