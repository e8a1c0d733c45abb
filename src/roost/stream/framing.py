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

Output is element-level (``roost.stream.events``): the transports write what the machine
and the sessions hand them, each unit a standalone document (RFC 7395 §3.3.3; inside a BOSH
``<body/>`` the same, as XEP-0206 §4 wants stanzas qualified by ``jabber:client``), so no
written bytes are ever re-scanned. ``frame_element`` and ``body_element`` serialize an element
for a frame or a body (stanzas get ``xmlns='jabber:client'``, ``<stream:features/>`` and
``<stream:error/>`` declare the ``stream`` prefix); ``qualify_stanza`` adds the namespace to a
stanza serialized once for many recipients in the stream's default-namespace form. The stream
header becomes ``open_frame`` (RFC 7395 §3.4; BOSH: the session-creation attributes), the end
``CLOSE_FRAME`` (§3.6; BOSH: ``type='terminate'``). ``websocket_header`` heads a frame for the
coalesced writer; ``bosh_body`` assembles a response body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from roost.errors import StreamError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_FRAMING, NS_HTTPBIND, NS_STREAMS, NS_XBOSH
from roost.xml.parser import ParseError, ParseEvent, StreamEnd, StreamHeader, StreamParser
from roost.xml.serializer import escape_attr, serialize

# XEP-0124 / XEP-0206 (to move to roost.xml.ns with the other namespaces).

XBOSH_RESTART: Final = "{" + NS_XBOSH + "}restart"
XBOSH_VERSION: Final = "{" + NS_XBOSH + "}version"

_WRAP_OPEN: Final = f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode()
_XML_DECL: Final = re.compile(rb"\s*<\?xml\s[^>]*\?>")
_SENTINEL_NS: Final = "urn:x-roost:frame-end"
_SENTINEL: Final = f"<end xmlns='{_SENTINEL_NS}'/>".encode()
_XMLNS_CLIENT: Final = f" xmlns='{NS_CLIENT}'".encode()
_STANZA_NAME_END: Final = {ord("m"): len(b"<message"), ord("p"): len(b"<presence"), ord("i"): 3}
_NAME_END: Final = frozenset(b"/> \t\r\n")
_TEXT_FRAME: Final = b"\x81"  # FIN, opcode 1 (text)
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
def frame_element(element: Element) -> bytes:
    """A top-level element as a standalone document (RFC 7395 §3.3.3): stanzas carry
    ``xmlns='jabber:client'``, ``<stream:features/>`` and ``<stream:error/>`` declare the
    ``stream`` prefix."""
    return serialize(element, "", standalone=True)


def body_element(element: Element) -> bytes:
    """A top-level element for a BOSH ``<body/>`` (XEP-0206 §4: stanzas qualified by
    ``jabber:client``), its namespace declared against the body's."""
    return serialize(element, NS_HTTPBIND, standalone=True)


def qualify_stanza(data: bytes) -> bytes:
    """A stanza the serializer wrote in the stream's default-namespace form, made
    standalone: ``xmlns='jabber:client'`` after its name (no re-parsing)."""
    end = _STANZA_NAME_END.get(data[1], 1)
    if data[end] not in _NAME_END:  # not message, presence or iq: find where the name ends
        end = 1
        while data[end] not in _NAME_END:
            end += 1
    if data.startswith(b" xmlns=", end):
        return data
    return data[:end] + _XMLNS_CLIENT + data[end:]


def websocket_header(length: int) -> bytes:
    """The header of an unmasked, final text frame from the server (RFC 6455 §5.2)."""
    if length < 126:
        return _TEXT_FRAME + length.to_bytes(1)
    if length < 65536:
        return _TEXT_FRAME + b"\x7e" + length.to_bytes(2)
    return _TEXT_FRAME + b"\x7f" + length.to_bytes(8)


# -- wire forms ------------------------------------------------------------------------------
def open_frame(attrs: Mapping[str, str]) -> bytes:
    """RFC 7395 §3.4: the server's ``<open/>`` (from, id, version, xml:lang)."""
    return serialize(Element("open", NS_FRAMING, dict(attrs)))


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
