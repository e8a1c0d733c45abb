"""The pure rules of message delivery (RFC 6121 §8.5.2.1.1) and offline stamps (XEP-0203)."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

import pytest

from roost.jid import JID
from roost.modules.message import message_type, recipients
from roost.modules.offline import delay_stamp, with_delay
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_DELAY
from roost.xml.serializer import serialize


@dataclass
class Res:
    """A resource as delivery sees it: its presence (None: unavailable) and priority."""

    name: str
    priority: int = 0
    available: bool = True

    @property
    def presence(self) -> Element | None:
        return Element("presence") if self.available else None


def names(chosen: list[Res]) -> list[str]:
    return [r.name for r in chosen]


@pytest.mark.parametrize(
    ("resources", "kind", "expected"),
    [
        ([Res("a", 5), Res("b", 5), Res("c", 1)], "chat", ["a", "b"]),
        ([Res("a", 5), Res("b", 5), Res("c", 1)], "normal", ["a", "b"]),
        ([Res("a", 5), Res("b", 5), Res("c", 1)], "headline", ["a", "b", "c"]),
        ([Res("a", 0), Res("n", -1)], "chat", ["a"]),
        ([Res("a", 0), Res("n", -1)], "headline", ["a"]),
        ([Res("n", -1), Res("m", -128)], "chat", []),
        ([Res("n", -1)], "headline", []),
        ([Res("q", 10, available=False), Res("a", 0)], "chat", ["a"]),
        ([Res("q", 10, available=False)], "normal", []),
        ([], "chat", []),
    ],
)
def test_recipients_of_a_bare_jid_message(
    resources: list[Res], kind: str, expected: list[str]
) -> None:
    assert names(recipients(resources, kind)) == expected


@pytest.mark.parametrize(
    ("attrs", "kind"),
    [
        ({}, "normal"),
        ({"type": "chat"}, "chat"),
        ({"type": "headline"}, "headline"),
        ({"type": "groupchat"}, "groupchat"),
        ({"type": "error"}, "error"),
        ({"type": "bogus"}, "normal"),
    ],
)
def test_message_type_defaults_to_normal(attrs: dict[str, str], kind: str) -> None:
    assert message_type(Element("message", NS_CLIENT, attrs)) == kind


def test_delay_stamp_is_xep_0082_utc() -> None:
    assert delay_stamp(0) == "1970-01-01T00:00:00Z"
    assert delay_stamp(1_000_000_000.9) == "2001-09-09T01:46:40Z"
    now = time.time()
    assert abs(calendar.timegm(time.strptime(delay_stamp(now), "%Y-%m-%dT%H:%M:%SZ")) - now) < 1


def test_stored_copy_gets_delay_and_to_while_the_original_is_unchanged() -> None:
    original = Element("message", NS_CLIENT, {"from": "a@h/r", "id": "1"})
    original.sub("body", text="hi")
    before = serialize(original)
    stored = with_delay(original, JID.parse("b@h"), "h", 0)
    assert serialize(original) == before
    assert stored.get("to") == "b@h"
    delay = stored.find("delay", NS_DELAY)
    assert delay is not None
    assert delay.attrs == {"from": "h", "stamp": "1970-01-01T00:00:00Z"}
    assert delay.text == "Offline Storage"
    assert stored.find_text("body") == "hi"
    kept = with_delay(Element("message", NS_CLIENT, {"to": "b@h/x"}), JID.parse("b@h"), "h", 0)
    assert kept.get("to") == "b@h/x"
