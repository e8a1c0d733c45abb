"""The restricted streaming XML parser: bytes in, stream header / stanzas / stream end out.

Theory of operation (RFC 6120 §4, §11; limits from docs/configuration.md [limits]):

- One pyexpat parser per stream, in namespace mode with ``"\\x01"`` as separator, fed bytes as
  they arrive. ``feed()`` returns the events completed by those bytes, in order: a
  :class:`StreamHeader` once the ``<stream:stream ...>`` start tag is parsed (depth 0), one
  :class:`~roost.xml.element.Element` per top-level element (depth 1) as soon as its end tag is
  seen, and :class:`StreamEnd` when ``</stream:stream>`` arrives. ``reset()`` starts over on a
  fresh expat parser (stream restart after STARTTLS or SASL, RFC 6120 §5.4.3.3, §6.4.6).
- Restricted XML (§11.1) is refused with ``restricted-xml``: DOCTYPE (refused at its start, so a
  DTD is never parsed), entity and other declarations, references to undefined entities,
  comments and processing instructions. An XML declaration must say version 1.0 and, if it names
  an encoding, UTF-8 (§11.6). Everything expat finds malformed, including invalid UTF-8 and
  forbidden characters, is ``not-well-formed``; an unbound prefix is ``bad-namespace-prefix``.
- Limits are checked before anything big is built (``policy-violation``): stream header size,
  bytes per stanza (counted from the stanza's first byte, also while it is incomplete), depth
  (the stanza is at depth 1, its children at 2, ...), elements per stanza (the stanza included),
  attributes and namespace declarations per element. Input is handed to
  expat in slices no bigger than the stanza limit, so a single huge ``feed()`` cannot build more
  than one slice beyond the limit before it is refused.
- Elements in the stream's default namespace (``jabber:client``, ``jabber:server``,
  ``jabber:component:accept``) get the canonical ``xmlns`` ``jabber:client`` in memory.

``feed()`` raises only :class:`~roost.errors.StreamError`; after one, the parser stays failed
(every later ``feed()`` raises the same condition) until ``reset()``.
"""

from __future__ import annotations

import pyexpat
from dataclasses import dataclass
from typing import Final

from roost.errors import StreamError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_COMPONENT, NS_SERVER, NS_STREAMS, NS_XML

_SEP: Final = "\x01"
_XML_LANG: Final = NS_XML + _SEP + "lang"
_WHITESPACE: Final = " \t\r\n"
_CACHE_MAX: Final = 4096  # entries per shared name cache before it is cleared
_MAX_SLICE: Final = 65536  # most bytes handed to expat in one Parse() call

# Names split once: raw expat name -> (xmlns, local name), one cache per stream default namespace
# (the mapping to the canonical namespace depends on it). Shared by all parsers; the well-known
# content namespaces share one cache each, any other gets a parser-private cache.
_NAME_CACHES: Final[dict[str | None, dict[str, tuple[str, str]]]] = {
    ns: {} for ns in (NS_CLIENT, NS_SERVER, NS_COMPONENT, None)
}
# Namespaced attribute names: raw expat name -> "xml:lang" or "{uri}local".
_ATTR_KEYS: Final[dict[str, str]] = {}
# pyexpat's intern dict, shared so equal names are one object across streams; bounded.
_INTERN: Final[dict[str, str]] = {}

_codes = pyexpat.errors.codes
_EXPAT_CONDITIONS: Final[dict[int, str]] = {
    _codes[pyexpat.errors.XML_ERROR_UNBOUND_PREFIX]: "bad-namespace-prefix",
    _codes[pyexpat.errors.XML_ERROR_UNDECLARING_PREFIX]: "bad-namespace-prefix",
    _codes[pyexpat.errors.XML_ERROR_RESERVED_PREFIX_XML]: "bad-namespace-prefix",
    _codes[pyexpat.errors.XML_ERROR_RESERVED_PREFIX_XMLNS]: "bad-namespace-prefix",
    _codes[pyexpat.errors.XML_ERROR_RESERVED_NAMESPACE_URI]: "bad-namespace-prefix",
    _codes[pyexpat.errors.XML_ERROR_UNDEFINED_ENTITY]: "restricted-xml",
    _codes[pyexpat.errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING]: "restricted-xml",
    _codes[pyexpat.errors.XML_ERROR_INCORRECT_ENCODING]: "unsupported-encoding",
    _codes[pyexpat.errors.XML_ERROR_UNKNOWN_ENCODING]: "unsupported-encoding",
}
del _codes


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """The opening ``<stream:stream ...>`` tag (RFC 6120 §4.7)."""

    name: str  # local name, e.g. "stream"
    xmlns: str  # namespace of the header element (should be NS_STREAMS)
    attrs: dict[str, str]  # to, from, id, version, "xml:lang"
    content_ns: str | None  # the default namespace declared on the header


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """``</stream:stream>`` was received."""


ParseEvent = Element | StreamHeader | StreamEnd


def _split_name(raw: str, content_ns: str | None) -> tuple[str, str]:
    uri, sep, local = raw.partition(_SEP)
    if not sep:
        return "", raw
    if uri == content_ns:
        uri = NS_CLIENT
    return uri, local


def _attr_key(raw: str) -> str:
    key = _ATTR_KEYS.get(raw)
    if key is None:
        if len(_ATTR_KEYS) >= _CACHE_MAX:
            _ATTR_KEYS.clear()
        if raw == _XML_LANG:
            key = "xml:lang"
        else:
            uri, _, local = raw.partition(_SEP)
            key = "{" + uri + "}" + local
        _ATTR_KEYS[raw] = key
    return key


def _convert_attrs(attrs: dict[str, str]) -> dict[str, str]:
    """Rename namespaced attributes (expat's ``uri\\x01local``), keeping the order."""
    keys = _ATTR_KEYS
    return {
        ((keys.get(name) or _attr_key(name)) if _SEP in name else name): value
        for name, value in attrs.items()
    }


def _restricted(*_args: object) -> None:
    raise StreamError("restricted-xml")


def _restricted_external(
    _context: str, _base: str | None, _system_id: str | None, _public_id: str | None
) -> int:
    raise StreamError("restricted-xml")


def _check_xml_decl(version: str | None, encoding: str | None, _standalone: int) -> None:
    if version != "1.0":
        raise StreamError("not-well-formed", "XML version must be 1.0")
    if encoding is not None and encoding.lower() != "utf-8":
        raise StreamError("unsupported-encoding")


class ParseError(StreamError):
    """The input was refused; ``events`` completed before the error, in the same feed."""

    __slots__ = ("events",)

    def __init__(self, condition: str, text: str | None, events: list[ParseEvent]) -> None:
        super().__init__(condition, text)
        self.events = events


class StreamParser:
    """Incremental parser for one XML stream, enforcing RFC 6120 §11 and roost's limits."""

    __slots__ = (
        "_error",
        "_events",
        "_expat",
        "_fed",
        "_in_stream",
        "_mark",
        "_max_attrs",
        "_max_depth",
        "_max_elements",
        "_max_header_bytes",
        "_max_ns_decls",
        "_max_stanza_bytes",
        "_slice",
        "_started",
    )

    def __init__(
        self,
        *,
        max_stanza_bytes: int = 262144,
        max_depth: int = 64,
        max_header_bytes: int = 4096,
        max_elements: int = 10000,
        max_attrs: int = 64,
        max_ns_decls: int = 32,
    ) -> None:
        self._max_header_bytes = max_header_bytes
        self._max_attrs = max_attrs
        self._max_ns_decls = max_ns_decls
        self.set_limits(
            max_stanza_bytes=max_stanza_bytes, max_depth=max_depth, max_elements=max_elements
        )
        self.reset()

    def set_limits(self, *, max_stanza_bytes: int, max_depth: int, max_elements: int) -> None:
        """Change the per-stanza limits (the pre-auth to post-auth switch)."""
        self._max_stanza_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._slice = max(1, min(max_stanza_bytes, _MAX_SLICE))

    def reset(self) -> None:
        """Start a new stream on a fresh expat parser, keeping the limits."""
        p = pyexpat.ParserCreate("UTF-8", _SEP, intern=_INTERN)
        p.buffer_text = True
        # pyexpat's text buffer defaults to 8 KiB per parser, i.e. per connection; 1 KiB
        # keeps idle sessions small, and longer text arrives in pieces that on_end joins.
        p.buffer_size = 1024
        p.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        disable_deferral = getattr(p, "SetReparseDeferralEnabled", None)
        if disable_deferral is not None:  # expat >= 2.6 would hold back complete stanzas
            disable_deferral(False)
        p.XmlDeclHandler = _check_xml_decl
        p.StartDoctypeDeclHandler = _restricted
        p.EntityDeclHandler = _restricted
        p.UnparsedEntityDeclHandler = _restricted
        p.NotationDeclHandler = _restricted
        p.ElementDeclHandler = _restricted
        p.AttlistDeclHandler = _restricted
        p.SkippedEntityHandler = _restricted
        p.ExternalEntityRefHandler = _restricted_external
        p.CommentHandler = _restricted
        p.ProcessingInstructionHandler = _restricted
        self._expat = p
        self._error: StreamError | None = None
        self._started = False  # the header start tag was parsed
        self._in_stream = False  # ... and the stream end tag not yet
        self._fed = 0  # bytes handed to expat
        self._mark = 0  # byte index where the current stanza (or the gap before it) began
        self._events = _install_tree_builder(self, p)

    def feed(self, data: bytes) -> list[ParseEvent]:
        """Parse more bytes; return the events they complete.

        Raises only ``ParseError`` (a StreamError) carrying the events completed before the
        error in the same call, which the caller processes first (RFC 6120 §10.1 order).
        """
        if self._error is not None:
            raise ParseError(self._error.condition, self._error.text, [])
        try:
            if len(data) <= self._slice:
                self._parse(data)
            else:
                step = self._slice
                for start in range(0, len(data), step):
                    self._parse(data[start : start + step])
        except StreamError as err:
            self._error = err
            raise self._failed(err) from None
        except pyexpat.ExpatError as exc:
            condition = _EXPAT_CONDITIONS.get(exc.code, "not-well-formed")
            self._error = StreamError(condition, pyexpat.ErrorString(exc.code))
            raise self._failed(self._error) from None
        events = self._events
        if not events:
            return []
        done = events[:]
        events.clear()
        return done

    def _failed(self, err: StreamError) -> ParseError:
        done = self._events[:]
        self._events.clear()
        return ParseError(err.condition, err.text, done)

    def _parse(self, data: bytes) -> None:
        self._expat.Parse(data, False)
        self._fed += len(data)
        if self._started:  # also after the stream end: nothing may pile up in expat's buffer
            if self._fed - self._mark > self._max_stanza_bytes:
                raise StreamError("policy-violation", "stanza too large")
        elif self._fed > self._max_header_bytes:
            raise StreamError("policy-violation", "stream header too large")
        if len(_INTERN) > _CACHE_MAX:
            _INTERN.clear()


def _install_tree_builder(sp: StreamParser, p: pyexpat.XMLParserType) -> list[ParseEvent]:
    """Set the element handlers on ``p``; return the list they append events to.

    The handlers are closures over local state rather than methods: this is the per-element hot
    path, and cell lookups cost less than attribute lookups on ``self``. Stream-level state
    (``_mark``, ``_started``, ``_in_stream``) and the limits live on the StreamParser ``sp``.
    """
    events: list[ParseEvent] = []
    stack: list[Element] = []  # the open elements of the current stanza
    decls: dict[str | None, str | None] = {}  # namespace declarations for the next start tag
    fragmented: dict[int, Element] = {}  # elements whose text arrived in more than one piece
    names = _NAME_CACHES[NS_CLIENT]
    content_ns: str | None = None
    count = 0  # elements in the current stanza
    sep = _SEP

    def on_header(raw: str, attrs: dict[str, str]) -> None:
        nonlocal names, content_ns
        content_ns = decls.get(None)
        _check_counts(sp, attrs, decls)
        attrs = _convert_attrs(attrs)
        size = _header_size(raw, attrs, decls)
        if size > sp._max_header_bytes:
            raise StreamError("policy-violation", "stream header too large")
        decls.clear()
        shared = _NAME_CACHES.get(content_ns)
        names = {} if shared is None else shared
        xmlns, name = _split_name(raw, None)
        sp._started = sp._in_stream = True
        sp._mark = p.CurrentByteIndex + size
        p.StartElementHandler = on_start
        events.append(StreamHeader(name, xmlns, attrs, content_ns))

    def on_start(raw: str, attrs: dict[str, str]) -> None:
        nonlocal count
        if decls or len(attrs) > sp._max_attrs:
            _check_counts(sp, attrs, decls)
            decls.clear()
        split = names.get(raw)
        if split is None:
            split = _cache_name(names, raw, content_ns)
        for name in attrs:
            if sep in name:
                attrs = _convert_attrs(attrs)
                break
        el = Element(split[1], split[0], attrs)
        if stack:
            if len(stack) >= sp._max_depth:
                raise StreamError("policy-violation", "too deep")
            count += 1
            if count > sp._max_elements:
                raise StreamError("policy-violation", "too many elements")
            stack[-1].children.append(el)
        else:
            sp._mark = p.CurrentByteIndex
            count = 1
        stack.append(el)

    def on_end(raw: str) -> None:
        if len(stack) > 1:
            stack.pop()
        elif stack:
            el = stack.pop()
            end = p.CurrentByteIndex + len(el.name) + 3  # approximately past "</name>"
            if end - sp._mark > sp._max_stanza_bytes:
                raise StreamError("policy-violation", "stanza too large")
            sp._mark = end
            if fragmented:
                _join_text(fragmented)
            events.append(el)
        else:
            sp._in_stream = False
            sp._mark = p.CurrentByteIndex
            events.append(StreamEnd())

    def on_text(data: str) -> None:
        if stack:
            top = stack[-1]
            children = top.children
            if children and type(children[-1]) is str:
                fragmented[id(top)] = top
            children.append(data)
        elif sp._in_stream:
            if data.strip(_WHITESPACE):
                raise StreamError("bad-format", "text between stanzas")
            sp._mark = p.CurrentByteIndex  # whitespace keepalive: a stanza may follow

    p.StartElementHandler = on_header
    p.EndElementHandler = on_end
    p.CharacterDataHandler = on_text
    p.StartNamespaceDeclHandler = decls.__setitem__  # counted by the next start tag
    return events


def _header_size(raw: str, attrs: dict[str, str], decls: dict[str | None, str | None]) -> int:
    """About the length of the header start tag (exact when written with single spaces)."""
    uri, _, local = raw.rpartition(_SEP)
    size = len(local) + 2  # "<" local ">"
    for prefix, value in decls.items():
        if prefix is None:
            size += len(value or "") + 9  # " xmlns='...'"
        else:
            size += len(prefix) + len(value or "") + 10  # " xmlns:p='...'"
            if value == uri:
                size += len(prefix) + 1  # "p:" before the local name
                uri = ""
    return size + sum(len(k) + len(v) + 4 for k, v in attrs.items())


def _check_counts(
    sp: StreamParser, attrs: dict[str, str], decls: dict[str | None, str | None]
) -> None:
    if len(attrs) > sp._max_attrs:
        raise StreamError("policy-violation", "too many attributes")
    if len(decls) > sp._max_ns_decls:
        raise StreamError("policy-violation", "too many namespace declarations")


def _cache_name(
    names: dict[str, tuple[str, str]], raw: str, content_ns: str | None
) -> tuple[str, str]:
    if len(names) >= _CACHE_MAX:
        names.clear()
    split = names[raw] = _split_name(raw, content_ns)
    return split


def _join_text(fragmented: dict[int, Element]) -> None:
    """Merge adjacent text pieces in the children of these elements."""
    for el in fragmented.values():
        merged: list[Element | str] = []
        texts: list[str] = []
        for child in el.children:
            if isinstance(child, str):
                texts.append(child)
                continue
            if texts:
                merged.append("".join(texts))
                texts.clear()
            merged.append(child)
        if texts:
            merged.append("".join(texts))
        el.children[:] = merged
    fragmented.clear()


_FRAGMENT_WRAPPER: Final = (
    f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode()
)


def parse_fragment(data: bytes) -> Element:
    """Parse back one element that ``serialize(element)`` wrote (stored XML: vCards,
    private storage, offline messages). The data was accepted inside a stanza before, so
    only generous bounds apply; ValueError (a StreamError) when it holds no element."""
    parser = StreamParser(
        max_stanza_bytes=len(data) + 64, max_depth=1024, max_elements=len(data) + 1
    )
    for event in parser.feed(_FRAGMENT_WRAPPER + data):
        if isinstance(event, Element):
            return event
    raise ValueError("no element in the stored data")
