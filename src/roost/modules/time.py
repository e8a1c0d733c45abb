"""Entity Time (XEP-0202 §3): the server's UTC time and offset (XEP-0082 formats)."""

from __future__ import annotations

import datetime

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import HOST, IqRequest
from roost.xml.element import Element
from roost.xml.ns import NS_TIME


class EntityTime(Module):
    """Answer ``<time xmlns='urn:xmpp:time'/>`` queries to the server."""

    name = "time"
    implements = (Spec("XEP-0202", "2.0"),)

    def setup(self, api: ModuleAPI) -> None:
        api.on_iq("get", HOST, NS_TIME, "time", self.time)
        api.feature(NS_TIME)

    def time(self, request: IqRequest) -> Element:
        """The current time: offset of the server's zone and UTC, to the millisecond."""
        now = datetime.datetime.now(datetime.UTC)
        local = now.astimezone()
        offset = local.utcoffset() or datetime.timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        tzo = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        result = Element("time", NS_TIME)
        result.sub("tzo", text=tzo)
        result.sub(
            "utc", text=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        )
        return result
