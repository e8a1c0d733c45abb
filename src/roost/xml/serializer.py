"""The serializer: element trees to the default-namespace XML that XMPP peers expect.

Rules (RFC 6120 §4.8, §11):
- An element whose namespace differs from the default namespace in scope carries
  ``xmlns='...'``; one equal to it carries none; no generated element prefixes (no ``ns0:``).
  The only prefixed element names are top-level elements in the streams namespace
  (``<stream:features>``, ``<stream:error>``), written with the ``stream:`` prefix that the stream
  header binds; they do not change the default namespace for their children.
- Attributes: plain names as-is, ``xml:lang`` as ``xml:lang``, Clark names ``{uri}local`` with a
  prefix (``ns1``, ``ns2``, ...) declared on the element that uses it.
- Escaping: text escapes ``& < >`` and ``\\r`` (expat would turn a raw CR into LF); attribute
  values are single-quoted and escape ``& < > " '`` and tab, LF, CR as character references.
- Iterative (an explicit stack), so tree depth never hits the recursion limit; one list of str
  parts joined once; strings without special characters are written without escaping work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Final

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STREAMS, NS_XML

STREAM_CLOSE: Final = b"</stream:stream>"

_XML_DECL: Final = "<?xml version='1.0'?>"
_attr_special: Final = re.compile("[&<>\"'\t\n\r]").search
_ATTR_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def escape_text(text: str) -> str:
    """Escape character data for element content."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return (
            text.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("\r", "&#13;")
        )
    return text


def escape_attr(value: str) -> str:
    """Escape an attribute value for a single-quoted attribute."""
    if _attr_special(value) is None:
        return value
    return value.translate(_ATTR_ESCAPES)


def _write_attrs(write: Callable[[str], None], attrs: dict[str, str]) -> None:
    prefixes: dict[str, str] | None = None
    for key, value in attrs.items():
        if _attr_special(value) is not None:
            value = value.translate(_ATTR_ESCAPES)
        if "{" in key:
            if prefixes is None:
                prefixes = {}
            key = _clark_to_prefixed(write, key, prefixes)
        write(f" {key}='{value}'")


def _clark_to_prefixed(write: Callable[[str], None], key: str, prefixes: dict[str, str]) -> str:
    """Turn ``{uri}local`` into ``prefix:local``, declaring a new prefix on first use."""
    uri, _, local = key[1:].rpartition("}")  # a URI may hold "}", an XML name never
    if uri == NS_XML:
        return "xml:" + local
    if not uri:
        return local
    prefix = prefixes.get(uri)
    if prefix is None:
        prefix = prefixes[uri] = f"ns{len(prefixes) + 1}"
        write(f" xmlns:{prefix}='{escape_attr(uri)}'")
    return f"{prefix}:{local}"


def serialize_str(el: Element, default_ns: str = NS_CLIENT, *, standalone: bool = False) -> str:
    """Serialize one element; ``default_ns`` is the default namespace in scope around it.

    Stanzas live in memory in ``jabber:client`` whatever stream they came from, so pass the
    default ``NS_CLIENT`` when writing on any stream (c2s, s2s, component): they are written
    without ``xmlns`` and take the stream's own content namespace (``jabber:server``, ...).

    A top-level element in the streams namespace is written as ``<stream:name>`` relying on the
    stream header's ``xmlns:stream``; ``standalone=True`` declares the prefix on the element
    itself (for a document of its own, such as a WebSocket frame, RFC 7395).
    """
    out: list[str] = []
    write = out.append
    if el.xmlns == NS_STREAMS and default_ns != NS_STREAMS:
        name = "stream:" + el.name
        write(f"<{name} xmlns:stream='{NS_STREAMS}'" if standalone else "<" + name)
        ns = default_ns  # a prefixed element leaves the default namespace as it was
    else:
        name = el.name
        ns = el.xmlns
        write("<" + name if ns == default_ns else f"<{name} xmlns='{escape_attr(ns)}'")
    if el.attrs:
        _write_attrs(write, el.attrs)
    if el.children:
        write(">")
        _write_content(write, el, ns, name)
    else:
        write("/>")
    return "".join(out)


def _write_content(write: Callable[[str], None], el: Element, ns: str, name: str) -> None:
    """Write the children and end tag of ``el`` (whose start tag is written) without recursion."""
    stack: list[tuple[Iterator[Element | str], str, str]] = [(iter(el.children), ns, name)]
    while stack:
        children, ns, name = stack[-1]
        for child in children:
            if isinstance(child, str):
                write(escape_text(child))
                continue
            cname = child.name
            cns = child.xmlns
            write("<" + cname if cns == ns else f"<{cname} xmlns='{escape_attr(cns)}'")
            if child.attrs:
                _write_attrs(write, child.attrs)
            if child.children:
                write(">")
                stack.append((iter(child.children), cns, cname))
                break  # continue with the child's content
            write("/>")
        else:
            write(f"</{name}>")
            stack.pop()


def serialize(el: Element, default_ns: str = NS_CLIENT, *, standalone: bool = False) -> bytes:
    """Serialize one element to UTF-8 bytes (see :func:`serialize_str`)."""
    return serialize_str(el, default_ns, standalone=standalone).encode()


def stream_header(*, content_ns: str, attrs: dict[str, str]) -> bytes:
    """The XML declaration and ``<stream:stream>`` start tag (RFC 6120 §4.7).

    ``attrs`` holds the attributes to write (from, to, id, version, xml:lang), in order;
    leave out the absent ones.
    """
    out = [
        _XML_DECL,
        "<stream:stream xmlns='",
        escape_attr(content_ns),
        "' xmlns:stream='" + NS_STREAMS + "'",
    ]
    _write_attrs(out.append, attrs)
    out.append(">")
    return "".join(out).encode()
