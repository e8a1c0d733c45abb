"""XML layer: µs per stanza for parsing a stream and for serializing a message (DESIGN.md §3).

Parsing feeds a stream of small message stanzas in chunks of about ten stanzas, as a socket
read would deliver them, through roost's ``StreamParser`` (pyexpat with a Python tree builder,
restricted XML refused, limits enforced) and, for comparison, through ElementTree's
``XMLPullParser`` (C tree builder). XMLPullParser cannot refuse a DOCTYPE or entity
declarations before it has processed them (it reports comments and PIs only as events after
the fact), which is why roost's parser is on pyexpat; the figures show what that costs.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STREAMS
from roost.xml.parser import StreamParser
from roost.xml.serializer import serialize, stream_header

STANZAS = 100_000
PER_CHUNK = 10
ROUNDS = 3
SERIALIZE_LOOPS = 100_000

_HEADER = stream_header(
    content_ns=NS_CLIENT, attrs={"to": "capulet.lit", "version": "1.0", "xml:lang": "en"}
)
_STANZA = (
    "<message to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat'"
    " id='m{}' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
)


def _chunks() -> list[bytes]:
    stanzas = [_STANZA.format(i).encode() for i in range(STANZAS)]
    return [b"".join(stanzas[i : i + PER_CHUNK]) for i in range(0, STANZAS, PER_CHUNK)]


def _parse_roost(chunks: list[bytes]) -> int:
    parser = StreamParser()
    parser.feed(_HEADER)
    count = 0
    for chunk in chunks:
        count += len(parser.feed(chunk))
    return count


def _parse_pull(chunks: list[bytes], convert: bool) -> int:
    """XMLPullParser; stanzas detached from the stream root, optionally converted to Element."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    parser.feed(_HEADER)
    depth = 0
    count = 0
    root: ET.Element | None = None
    for chunk in chunks:
        parser.feed(chunk)
        for event in parser.read_events():
            el = event[-1]
            if not isinstance(el, ET.Element):
                continue
            if event[0] == "start":
                if depth == 0:
                    root = el
                depth += 1
                continue
            depth -= 1
            if depth == 1 and root is not None:
                root.remove(el)
                if convert:
                    _to_element(el)
                count += 1
    return count


def _to_element(top: ET.Element) -> Element:
    """Convert an ElementTree element (text/tail model) to roost's Element, iteratively."""
    uri, _, name = top.tag[1:].rpartition("}")
    root = Element(name, uri, dict(top.attrib))
    stack = [(top, root)]
    while stack:
        src, dst = stack.pop()
        if src.text:
            dst.children.append(src.text)
        for child in src:
            uri, _, name = child.tag[1:].rpartition("}")
            new = Element(name, uri, dict(child.attrib))
            dst.children.append(new)
            stack.append((child, new))
            if child.tail:
                dst.children.append(child.tail)
    return root


def _best(fn: Callable[[], int], units: int) -> float:
    """Best of ROUNDS runs, in µs per unit."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        done = fn()
        elapsed = time.perf_counter() - start
        if done != units:
            raise RuntimeError(f"expected {units} units, got {done}")
        best = min(best, elapsed)
    return best / units * 1e6


def _message() -> Element:
    msg = Element(
        "message",
        NS_CLIENT,
        {
            "to": "juliet@capulet.lit/balcony",
            "from": "romeo@montague.lit/orchard",
            "type": "chat",
            "id": "m1234",
            "xml:lang": "en",
        },
    )
    msg.sub("body", text="Art thou not Romeo, and a Montague?")
    msg.sub("active", "http://jabber.org/protocol/chatstates")
    return msg


def _serialize_loop(msg: Element) -> int:
    for _ in range(SERIALIZE_LOOPS):
        serialize(msg)
    return SERIALIZE_LOOPS


def _tostring_loop(msg: ET.Element) -> int:
    for _ in range(SERIALIZE_LOOPS // 10):
        ET.tostring(msg)
    return SERIALIZE_LOOPS // 10


def _report(label: str, fn: Callable[[], int], units: int) -> None:
    print(f"  {label:<36}{_best(fn, units):6.2f} µs/stanza")


def run() -> None:
    """Measure and print the XML layer figures."""
    chunks = _chunks()
    size = sum(map(len, chunks)) / STANZAS
    print(f"xml: parse {STANZAS} stanzas (~{size:.0f} B each), {PER_CHUNK} per feed, best of 3")
    _report("roost StreamParser (pyexpat)", lambda: _parse_roost(chunks), STANZAS)
    _report("ElementTree XMLPullParser", lambda: _parse_pull(chunks, False), STANZAS)
    _report("XMLPullParser + convert to Element", lambda: _parse_pull(chunks, True), STANZAS)
    msg = _message()
    print(f"xml: serialize a message stanza ({len(serialize(msg))} B), best of 3")
    _report("roost serialize", lambda: _serialize_loop(msg), SERIALIZE_LOOPS)
    et_msg = ET.fromstring(serialize(msg, default_ns=NS_STREAMS))
    _report("ElementTree.tostring", lambda: _tostring_loop(et_msg), SERIALIZE_LOOPS // 10)
