"""Presence availability of the server's own sessions (RFC 6121 §4.2, §4.5 — first part).

This first part records, for each session, its last broadcast presence and priority, which
message delivery needs (RFC 6121 §8.5); broadcast to contacts, probes and subscriptions
come with rosters.
"""

from __future__ import annotations

from roost.core.hooks import SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import SELF, Routed


class Presence(Module):
    """Track availability and priority of local sessions."""

    name = "presence"
    implements = (Spec("RFC 6121", "§4", status="partial", note="availability only"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on("presence", SELF, self.own_presence)
        api.hook(SessionEnded, self.ended)

    def own_presence(self, routed: Routed) -> bool | None:
        """Presence without 'to' is the session's broadcast presence (§4.2, §4.5)."""
        session = routed.origin
        stanza = routed.stanza
        if session is None or "to" in stanza.attrs:
            return None
        kind = stanza.attrs.get("type")
        if kind is None:
            text = stanza.find_text("priority")
            try:
                priority = int(text) if text else 0
            except ValueError:
                priority = 0
            session.priority = max(-128, min(127, priority))
            session.presence = stanza
        elif kind == "unavailable":
            session.presence = None
        return True

    def ended(self, event: SessionEnded) -> None:
        """A session that ends is unavailable."""
        event.session.presence = None
