"""Iq requests the server itself sends, matched with their replies (RFC 6120 §8.2.3).

A reply answers a request only when its id *and* its sender match: the sender must be the
entity the request was addressed to (RFC 6120 §8.1.2.1; a request to a bare JID is answered
by the account or by one of its resources on its behalf, so a bare target also accepts its
full JIDs). Any other entity that guesses or sees an id cannot answer for someone else, and
its stanza is dropped like any unexpected result.
"""

from __future__ import annotations

import asyncio

from roost.jid import JID
from roost.xml.element import Element


class IqTracker:
    """Outstanding server-originated iqs: (id, expected sender) → future of the reply."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[JID, asyncio.Future[Element]]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, iq_id: str, sender: JID) -> asyncio.Future[Element]:
        """Register a request sent to ``sender``; the future its reply will resolve."""
        if iq_id in self._pending:
            raise ValueError(f"iq id {iq_id!r} is already waiting for a reply")
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = (sender, future)
        future.add_done_callback(lambda _: self._pending.pop(iq_id, None))
        return future

    def reply(self, stanza: Element, sender: JID) -> bool:
        """Resolve the request this result/error answers; False if nobody waits for it from
        ``sender``."""
        entry = self._pending.get(stanza.attrs.get("id", ""))
        if entry is None:
            return False
        expected, future = entry
        if future.done() or not _answers_for(sender, expected):
            return False
        future.set_result(stanza)
        return True


def _answers_for(sender: JID, expected: JID) -> bool:
    if sender == expected:
        return True
    return expected.resource is None and sender.bare == expected
