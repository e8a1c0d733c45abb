"""Iq requests the server itself sends, matched with their replies by id (RFC 6120 §8.2.3)."""

from __future__ import annotations

import asyncio

from roost.xml.element import Element


class IqTracker:
    """Outstanding server-originated iqs: id → future of the reply."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Element]] = {}

    def expect(self, iq_id: str) -> asyncio.Future[Element]:
        """Register an id and return the future its reply will resolve."""
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = future
        future.add_done_callback(lambda _: self._pending.pop(iq_id, None))
        return future

    def reply(self, stanza: Element) -> bool:
        """Resolve the request this result/error answers; False if nobody waits for it."""
        future = self._pending.get(stanza.attrs.get("id", ""))
        if future is None or future.done():
            return False
        future.set_result(stanza)
        return True
