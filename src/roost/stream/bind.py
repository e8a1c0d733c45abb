"""Resource binding on a c2s stream (RFC 6120 §7): the built-in negotiator for ``<bind/>``.

Offered after authentication (``Phase.PRE_BIND``), where it claims every ``jabber:client``
iq: the bind request (§7.2: type ``set``, one ``<bind/>`` child, an optional
``<resource/>``) becomes ``BindRequest`` for the driver, which answers ``bound()`` or
``bind_failed()`` on the machine (conflicts and per-account limits are the session
registry's business). A resource that is no valid resourcepart is ``bad-request`` (§7.7.2.1);
any other iq get/set before binding is ``not-authorized`` and never routed (§7.1).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final

from roost.errors import StanzaError
from roost.jid import JIDError, normalize_resource
from roost.stream import events as ev
from roost.stream.features import Phase, QName, State, reject
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT

if TYPE_CHECKING:
    from roost.stream.c2s import C2SStream

_BIND_CLAIMS: Final = frozenset({(NS_CLIENT, "iq")})


class BindNegotiator:
    """The bind iq becomes ``BindRequest``; any other iq get/set before binding is answered
    ``not-authorized`` (it is never routed)."""

    __slots__ = ()

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        return (Element("bind", NS_BIND),) if phase is Phase.PRE_BIND else ()

    def claims(self, phase: Phase) -> Collection[QName]:
        return _BIND_CLAIMS if phase is Phase.PRE_BIND else ()

    def receive(self, stream: C2SStream, element: Element, out: list[ev.Action]) -> None:
        payload = element.first_element()
        kind = element.get("type")
        is_bind = payload is not None and payload.xmlns == NS_BIND and payload.name == "bind"
        if kind == "set" and payload is not None and is_bind:
            stream.bind_id = element.get("id") or ""
            raw = payload.find_text("resource", NS_BIND)
            resource: str | None = None
            if raw:
                try:
                    resource = normalize_resource(raw)
                except JIDError:
                    error = StanzaError("bad-request", "the resource is not a valid resourcepart")
                    reject(element, error, out)
                    return
            stream.state = State.BINDING
            out.append(ev.BindRequest(resource))
        elif kind in ("get", "set"):
            reject(element, StanzaError("not-authorized", "bind a resource first"), out)

    def result(self, stream: C2SStream) -> Element:
        """The answer to the bind request, once bound."""
        result = Element("iq", NS_CLIENT, {"type": "result", "id": stream.bind_id})
        result.sub("bind", NS_BIND).sub("jid", NS_BIND, stream.full_str)
        return result

    def request(self, stream: C2SStream) -> Element:
        """The bind request as far as an error reply needs it (type and id)."""
        return Element("iq", NS_CLIENT, {"type": "set", "id": stream.bind_id})


BIND: Final = BindNegotiator()
