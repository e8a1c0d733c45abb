"""XMPP Ping (XEP-0199 §4.2, §4.3): the server answers pings addressed to it."""

from __future__ import annotations

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import HOST, IqRequest
from roost.xml.ns import NS_PING


class Ping(Module):
    """Answer ``<ping xmlns='urn:xmpp:ping'/>`` to the server with an empty result."""

    name = "ping"
    implements = (Spec("XEP-0199", "2.0.1"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on_iq("get", HOST, NS_PING, "ping", self.pong)
        api.feature(NS_PING)

    def pong(self, request: IqRequest) -> None:
        """An empty result is the pong."""
        return
