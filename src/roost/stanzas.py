"""Builders for the stanzas every layer needs: error replies and iq results (RFC 6120 §8)."""

from __future__ import annotations

from roost.errors import StanzaError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STANZAS


def error_reply(stanza: Element, error: StanzaError, by: str | None = None) -> Element:
    """The error reply to ``stanza`` (§8.3.1): addresses swapped, same id, type='error'.

    A message or presence keeps its payload (§8.3.1 allows it and clients match on it);
    an iq reply carries only the error.
    """
    reply = Element(stanza.name, NS_CLIENT, {"type": "error"})
    attrs = stanza.attrs
    if "id" in attrs:
        reply.attrs["id"] = attrs["id"]
    if "from" in attrs:
        reply.attrs["to"] = attrs["from"]
    if "to" in attrs:
        reply.attrs["from"] = attrs["to"]
    if stanza.name != "iq":
        reply.children.extend(c for c in stanza.children if type(c) is Element)
    err = reply.sub("error", NS_CLIENT, type=error.type)
    if by:
        err.attrs["by"] = by
    err.sub(error.condition, NS_STANZAS)
    if error.text:
        err.sub("text", NS_STANZAS, error.text, **{"xml:lang": "en"})
    return reply


def iq_result(request: Element, payload: Element | None = None) -> Element:
    """The result reply to an iq get/set (§8.2.3), with an optional payload."""
    attrs = request.attrs
    reply = Element("iq", NS_CLIENT, {"type": "result", "id": attrs.get("id", "")})
    if "from" in attrs:
        reply.attrs["to"] = attrs["from"]
    if "to" in attrs:
        reply.attrs["from"] = attrs["to"]
    if payload is not None:
        reply.children.append(payload)
    return reply


def is_error_or_result(stanza: Element) -> bool:
    """Stanzas that must never be answered with an error (§8.3.1, §8.2.3)."""
    kind = stanza.attrs.get("type")
    return kind == "error" or (stanza.name == "iq" and kind == "result")
