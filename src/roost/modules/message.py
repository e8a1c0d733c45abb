"""Message delivery to accounts (RFC 6121 §8.5.2, §8.5.3.2) — first part.

For a message to a bare JID (or to a full JID that is not bound, §8.5.3.2.1):
- normal and chat: the available resources with the highest non-negative priority;
- headline: every available resource with non-negative priority;
- groupchat: ``service-unavailable`` (§8.5.2.1.1);
- error: silently dropped;
- no available resource or no such account: ``service-unavailable`` (offline storage
  comes with XEP-0160).
"""

from __future__ import annotations

from collections.abc import Awaitable

from roost.core.hooks import DEFAULT
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, SELF, Routed
from roost.errors import StanzaError
from roost.xml.serializer import serialize


class Message(Module):
    """Deliver messages addressed to accounts."""

    name = "message"
    implements = (Spec("RFC 6121", "§8.5", status="partial", note="no offline storage yet"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on("message", BARE, self.to_account, DEFAULT)
        api.on("message", SELF, self.to_account, DEFAULT)

    def to_account(self, routed: Routed) -> bool | Awaitable[bool]:
        """Deliver to the account's resources per §8.5.2."""
        stanza = routed.stanza
        kind = stanza.attrs.get("type", "normal")
        if kind == "error":
            return True
        if kind == "groupchat":
            raise StanzaError("service-unavailable")
        resources = self.api.server.sessions.resources(str(routed.to.bare))
        available = [s for s in resources if s.presence is not None and s.priority >= 0]
        if not available:
            raise StanzaError("service-unavailable")
        if kind != "headline":
            top = max(s.priority for s in available)
            available = [s for s in available if s.priority == top]
        data = serialize(stanza)
        for session in available:
            session.send_raw(data)
        return True
