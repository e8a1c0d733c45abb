"""Legacy session establishment (RFC 3921 §3, kept optional per RFC 6121 Appendix E).

Old clients send ``<session/>`` after binding; RFC 6121 removed the step, so the feature is
advertised with ``<optional/>`` (draft-cridland-xmpp-session-01) and answered with an empty
result, as Prosody and ejabberd do.
"""

from __future__ import annotations

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import SELF, IqRequest
from roost.stream.c2s import C2SStream
from roost.xml.element import Element
from roost.xml.ns import NS_SESSION


class LegacySession(Module):
    """Accept the RFC 3921 session request."""

    name = "session"
    implements = (Spec("RFC 3921", "§3", note="optional, for old clients"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on_iq("set", SELF, NS_SESSION, "session", self.establish)
        api.stream_feature(self.feature)

    def feature(self, stream: C2SStream) -> Element | None:
        """``<session><optional/></session>`` in the post-authentication features."""
        element = Element("session", NS_SESSION)
        element.sub("optional")
        return element

    def establish(self, request: IqRequest) -> None:
        """Nothing to do: the session is already established by binding."""
        return
