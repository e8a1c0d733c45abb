"""Framing of client streams for the web transports: RFC 7395 (WebSocket), XEP-0124/0206 (BOSH).

Theory of operation
-------------------
The c2s machine (``roost.stream.c2s``) speaks a TCP-style stream: it takes a stream header,
stanzas and a stream end, and writes a header, top-level elements and ``</stream:stream>``.
The web transports carry the same conversation as separate XML documents, so this module
translates in both directions, without I/O.

Input: every WebSocket message (RFC 7395 §3.3.3) and every BOSH request body (XEP-0124 §4) is
one complete XML document holding one element. ``FrameParser.parse()`` parses it on a fresh
``StreamParser`` inside a synthetic stream header whose default namespace is ``jabber:client``,
so the restrictions (RFC 6120 §11.1) and the size, depth and element limits of
``roost.xml.parser`` apply unchanged, and an incomplete frame or one with two elements is
``not-well-formed``. Then:

- WebSocket (``websocket_event``): ``<open/>`` in the framing namespace becomes a
  ``StreamHeader`` (§3.4; also the restart after SASL, §3.5), ``<close/>`` a ``StreamEnd``
  (§3.6), anything else is a stanza or negotiation element.
- BOSH (``bosh_payload``): the children of ``<body/>`` are the stanzas; children left in the
  httpbind namespace by a client that did not qualify them are taken as ``jabber:client``
  (as Prosody does). Session creation and ``xmpp:restart`` become stream headers
  (``bosh_header``, XEP-0206 §3, §5).

Output (``split_output``): what the machine and the sessions write follows the serializer's
contract (``roost.xml.serializer``): each write is a stream header, whole top-level elements,
or the closing tag, with ``<``/``>`` escaped in all text and attribute values, so tags alone
delimit the elements. Each element becomes a standalone document (RFC 7395 §3.3.3; inside a
BOSH ``<body/>`` the same, as XEP-0206 wants stanzas qualified by ``jabber:client``): stanzas
get ``xmlns='jabber:client'``, ``<stream:features/>`` and ``<stream:error/>`` declare the
``stream`` prefix. A header becomes ``StreamOpened`` (RFC 7395: ``<open/>``; BOSH: the
session-creation attributes), the closing tag ``StreamClosed`` (``<close/>``; BOSH:
``type='terminate'``). ``websocket_frames`` and ``bosh_body`` assemble the wire form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from roost.errors import StreamError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_FRAMING, NS_HTTPBIND, NS_STREAMS, NS_XBOSH
from roost.xml.parser import ParseError, ParseEvent, StreamEnd, StreamHeader, StreamParser
from roost.xml.serializer import STREAM_CLOSE, escape_attr, serialize

# XEP-0124 / XEP-0206 (to move to roost.xml.ns with the other namespaces).

XBOSH_RESTART: Final = "{" + NS_XBOSH + "}restart"
XBOSH_VERSION: Final = "{" + NS_XBOSH + "}version"

_WRAP_OPEN: Final = f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode()
_XML_DECL: Final = re.compile(rb"\s*<\?xml\s[^>]*\?>")
_SENTINEL_NS: Final = "urn:x-roost:frame-end"
_SENTINEL: Final = f"<end xmlns='{_SENTINEL_NS}'/>".encode()
_NAME: Final = re.compile(rb"<[^\s/>]+")
_XMLNS_STREAM: Final = f" xmlns:stream='{NS_STREAMS}'".encode()
_XMLNS_CLIENT: Final = f" xmlns='{NS_CLIENT}'".encode()
_STREAM_PREFIX: Final = b"<stream:"
_STREAM_ERROR: Final = b"<stream:error"
_WHITESPACE: Final = b" \t\r\n"

CLOSE_FRAME: Final = f"<close xmlns='{NS_FRAMING}'/>".encode()


# -- input -----------------------------------------------------------------------------------
class FrameParser:
    """Parses frames: complete XML documents of one element each, under roost's limits.

    One ``StreamParser`` inside a synthetic stream header serves all the frames of a
    connection. After each frame an empty sentinel element is fed: it comes out as an element
    of its own only if the frame closed everything it opened, so an incomplete frame, or one
    with more than one element, is ``not-well-formed``. After an error the parser starts over.
    """

    __slots__ = ("_max_bytes", "_open", "_parser")

    def __init__(self, *, max_bytes: int, max_depth: int, max_elements: int) -> None:
        self._parser = StreamParser(
            max_stanza_bytes=max_bytes,
            max_depth=max_depth,
            max_header_bytes=len(_WRAP_OPEN) + 1,
            max_elements=max_elements,
        )
        self._max_bytes = max_bytes
        self._open = False  # the synthetic header was fed

    @property
    def max_bytes(self) -> int:
        """The largest frame accepted now."""
        return self._max_bytes

    def set_limits(self, *, max_bytes: int, max_depth: int, max_elements: int) -> None:
        """Change the limits (the pre-authentication to post-authentication switch)."""
        self._max_bytes = max_bytes
        self._parser.set_limits(
            max_stanza_bytes=max_bytes, max_depth=max_depth, max_elements=max_elements
        )

    def parse(self, frame: bytes) -> Element | None:
        """The frame's element; None for a frame of whitespace only.

        Raises ``StreamError``: ``policy-violation`` over the limits, ``not-well-formed`` (and
        the other conditions of the parser) when the frame is not one complete element.
        """
        if len(frame) > self._max_bytes:
            raise StreamError("policy-violation", "frame too large")
        if frame.startswith(b"<?xml") or frame[:1].isspace():
            declaration = _XML_DECL.match(frame)  # a document may begin with one
            if declaration is not None:
                frame = frame[declaration.end() :]
            if not frame.strip(_WHITESPACE):
                return None
        parser = self._parser
        try:
            if not self._open:
                parser.reset()
                parser.feed(_WRAP_OPEN)
                self._open = True
            events = parser.feed(frame)
            events += parser.feed(_SENTINEL)
        except ParseError as err:
            self._open = False
            raise StreamError(err.condition, err.text) from None
        if len(events) != 2 or type(events[0]) is not Element or not _is_sentinel(events[1]):
            self._open = False
            raise StreamError("not-well-formed", "a frame must hold exactly one element")
        return events[0]


def _is_sentinel(event: ParseEvent) -> bool:
    return type(event) is Element and event.xmlns == _SENTINEL_NS and not event.children


def websocket_event(element: Element) -> ParseEvent:
    """RFC 7395 §3.4–§3.6: ``<open/>`` is the stream header, ``<close/>`` its end."""
    if element.xmlns == NS_FRAMING:
        if element.name == "open":
            return StreamHeader("stream", NS_STREAMS, dict(element.attrs), NS_CLIENT)
        if element.name == "close":
            return StreamEnd()
    return element


def bosh_header(body: Element) -> StreamHeader:
    """The stream header a session-creation or restart body stands for (XEP-0206 §3, §5)."""
    attrs = body.attrs
    header: dict[str, str] = {}
    for key in ("to", "from", "xml:lang"):
        value = attrs.get(key)
        if value is not None:
            header[key] = value
    version = attrs.get(XBOSH_VERSION)
    if version is not None:  # absent: a pre-1.0 client (XEP-0206 §3), refused by the machine
        header["version"] = version
    return StreamHeader("stream", NS_STREAMS, header, NS_CLIENT)


def bosh_payload(body: Element) -> list[Element]:
    """The stanzas in a request body, in ``jabber:client`` when the client left them bare."""
    payload = list(body.elements())
    for element in payload:
        if element.xmlns == NS_HTTPBIND:
            _requalify(element)
    return payload


def _requalify(element: Element) -> None:
    stack = [element]
    while stack:
        el = stack.pop()
        if el.xmlns == NS_HTTPBIND:
            el.xmlns = NS_CLIENT
            stack.extend(el.elements())


# -- output ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The server's stream header, with its attributes (from, id, version, xml:lang)."""

    attrs: dict[str, str]


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The server's ``</stream:stream>``."""


Output = bytes | StreamOpened | StreamClosed
"""One unit of output: a standalone element, the header or the closing tag."""


def split_output(data: bytes) -> list[Output]:
    """Split what a stream wrote into its units, each element made a standalone document."""
    out: list[Output] = []
    pos, size = 0, len(data)
    while pos < size:
        start = data.find(b"<", pos)
        if start < 0:
            break
        if data.startswith(STREAM_CLOSE, start):
            out.append(StreamClosed())
            pos = start + len(STREAM_CLOSE)
        elif data.startswith(b"<?xml", start) or data.startswith(b"<stream:stream", start):
            pos = _header_end(data, start)
            out.append(StreamOpened(_header_attrs(data[start:pos])))
        else:
            pos = _element_end(data, start)
            out.append(standalone(data[start:pos]))
    return out


def _header_end(data: bytes, start: int) -> int:
    tag = data.find(b"<stream:stream", start)
    end = data.find(b">", tag)
    return len(data) if tag < 0 or end < 0 else end + 1


def _header_attrs(header: bytes) -> dict[str, str]:
    try:
        events = StreamParser().feed(header)
    except ParseError:
        return {}
    first = events[0] if events else None
    return dict(first.attrs) if type(first) is StreamHeader else {}


def _element_end(data: bytes, start: int) -> int:
    """The index just past the element that starts at ``start`` (tags delimit elements)."""
    name = _NAME.match(data, start)
    if name is not None and data.count(name.group(), start) == 1:
        # The usual write, one element: its name occurs once, so it ends the data.
        close = b"</" + name.group()[1:] + b">"
        first_end = data.find(b">", start)
        if data.endswith(close) or (first_end == len(data) - 1 and data[first_end - 1] == 47):
            return len(data)
    depth, pos, find = 0, start, data.find
    while True:
        lt = find(b"<", pos)
        gt = find(b">", lt + 1) if lt >= 0 else -1
        if gt < 0:
            return len(data)
        if data[lt + 1] == 47:  # "</"
            depth -= 1
        elif data[gt - 1] != 47:  # not "/>"
            depth += 1
        pos = gt + 1
        if depth <= 0:
            return pos


def standalone(element: bytes) -> bytes:
    """Declare what a top-level element relies on from the stream header."""
    name = _NAME.match(element)
    if name is None:
        return element
    end = name.end()
    if element.startswith(_STREAM_PREFIX):
        return element[:end] + _XMLNS_STREAM + element[end:]
    if element.startswith(b" xmlns=", end):
        return element
    return element[:end] + _XMLNS_CLIENT + element[end:]


def is_stream_error(element: bytes) -> bool:
    """True for a standalone ``<stream:error/>``."""
    return element.startswith(_STREAM_ERROR)


def stream_error_condition(element: bytes) -> str:
    """The defined condition of a standalone ``<stream:error/>``."""
    parser = FrameParser(max_bytes=len(element) + 1, max_depth=8, max_elements=64)
    try:
        error = parser.parse(element)
    except StreamError:
        return "undefined-condition"
    if error is None:
        return "undefined-condition"
    return next((c.name for c in error.elements() if c.name != "text"), "undefined-condition")


# -- wire forms ------------------------------------------------------------------------------
def open_frame(attrs: Mapping[str, str]) -> bytes:
    """RFC 7395 §3.4: the server's ``<open/>`` (from, id, version, xml:lang)."""
    return serialize(Element("open", NS_FRAMING, dict(attrs)))


def websocket_frames(data: bytes) -> list[bytes]:
    """The WebSocket messages for what a stream wrote (RFC 7395 §3.3.3)."""
    frames: list[bytes] = []
    for unit in split_output(data):
        if type(unit) is bytes:
            frames.append(unit)
        elif type(unit) is StreamOpened:
            frames.append(open_frame(unit.attrs))
        else:
            frames.append(CLOSE_FRAME)
    return frames


def bosh_body(attrs: Mapping[str, str], payload: Iterable[bytes] = ()) -> bytes:
    """A response ``<body/>`` (XEP-0124 §7): attributes, then standalone elements.

    Keys ``xmpp:version``/``xmpp:restartlogic`` are written with the ``xmpp`` prefix of
    XEP-0206, declared on the body.
    """
    parts = [b"<body xmlns='", NS_HTTPBIND.encode(), b"'"]
    if any(key.startswith("xmpp:") for key in attrs):
        parts.append(f" xmlns:xmpp='{NS_XBOSH}'".encode())
    parts.extend(f" {key}='{escape_attr(value)}'".encode() for key, value in attrs.items())
    content = b"".join(payload)
    if not content:
        parts.append(b"/>")
        return b"".join(parts)
    parts += [b">", content, b"</body>"]
    return b"".join(parts)
