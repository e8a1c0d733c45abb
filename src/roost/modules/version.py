"""Software Version (XEP-0092 §2): the server's name and version.

The operating system is not disclosed (XEP-0092 §5 notes the privacy concern; Prosody
hides it too unless configured).
"""

from __future__ import annotations

import roost
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import HOST, IqRequest
from roost.xml.element import Element
from roost.xml.ns import NS_VERSION


class Version(Module):
    """Answer ``jabber:iq:version`` queries to the server."""

    name = "version"
    implements = (Spec("XEP-0092", "1.1"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on_iq("get", HOST, NS_VERSION, "query", self.version)
        api.feature(NS_VERSION)

    def version(self, request: IqRequest) -> Element:
        """Name and version of this server."""
        query = Element("query", NS_VERSION)
        query.sub("name", text="roost")
        query.sub("version", text=roost.__version__)
        return query
