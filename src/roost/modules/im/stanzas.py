"""The stanzas rosters and presence send (RFC 6121 §3, §4) and how they are routed.

- ``presence()`` builds the empty presence of a type the server sends on a user's behalf
  (probes §4.3, unavailable §4.5, subscription replies §3);
- ``with_to()`` readdresses a presence for one recipient of a broadcast (§4.2.2, §4.4.2);
- ``route_all()`` routes server-originated stanzas in order, through the router (so policy
  such as blocking applies to them), waiting only when one of them has to.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from roost.core.router import Router

Routing = Coroutine[Any, Any, None]


def presence(kind: str | None, sender: str, to: str | None = None) -> Element:
    """An empty ``<presence/>`` of ``kind`` (None: available)."""
    stanza = Element("presence", NS_CLIENT, {"from": sender})
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    return stanza


def with_to(stanza: Element, to: str) -> Element:
    """The same stanza (children shared) addressed to ``to``."""
    copy = stanza.shallow_copy()
    copy.attrs["to"] = to
    return copy


def route_all(
    router: Router, stanzas: Sequence[Element], still: Callable[[], bool] | None = None
) -> Routing | None:
    """Route server-originated stanzas in order; a coroutine when one of them must wait.
    After such a wait, the rest goes out only while ``still()`` holds (when given)."""
    for i, stanza in enumerate(stanzas):
        pending = router.route(stanza, None)
        if pending is not None:
            return _route_rest(router, pending, stanzas, i + 1, still)
    return None


async def _route_rest(
    router: Router,
    pending: Awaitable[None],
    stanzas: Sequence[Element],
    start: int,
    still: Callable[[], bool] | None,
) -> None:
    await pending
    for stanza in stanzas[start:]:
        if still is not None and not still():
            return
        more = router.route(stanza, None)
        if more is not None:
            await more
