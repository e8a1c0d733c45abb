"""Builders for the stanzas every layer needs: error replies and iq results (RFC 6120 §8)."""

from __future__ import annotations

from typing import Final

from roost.errors import STANZA_CONDITIONS, StanzaError
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_STANZAS

STANZA_TYPES: Final = frozenset({"auth", "cancel", "continue", "modify", "wait"})


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


def error_of(reply: Element) -> StanzaError:
    """The ``StanzaError`` a ``type='error'`` reply carries (RFC 6120 §8.3.2); a condition
    this server does not know reads as ``undefined-condition``."""
    err = reply.find("error", NS_CLIENT)
    condition, text = "undefined-condition", None
    if err is not None:
        for child in err.elements():
            if child.xmlns != NS_STANZAS:
                continue
            if child.name == "text":
                text = child.text
            elif child.name in STANZA_CONDITIONS:
                condition = child.name
    type_ = None if err is None else err.attrs.get("type")
    return StanzaError(condition, text, type_ if type_ in STANZA_TYPES else None)
