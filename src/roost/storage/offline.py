"""Messages held for a user who has no available resource (XEP-0160).

``push`` commits before it returns, so the sender may be told the message was accepted
(docs/architecture.md). It counts and inserts in one transaction under a per-user lock
(``tx.lock``: an advisory lock on PostgreSQL, the write lock on SQLite), so concurrent
pushes never exceed the limit. Ids increase with each push and are never reused
(AUTOINCREMENT, an identity column), so deleting ids fetched earlier can never remove a
message pushed since.

In XEP-0227 (§4.4) they are ``<offline-messages>`` with ``jabber:client`` messages, oldest
first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries
from roost.storage.store import ImportContext, SqlStore
from roost.xep0227 import NS_PIE, PIE_NAMESPACES
from roost.xml.element import Element
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize


class OfflineStore(Protocol):
    """Messages held for a user who has no available resource (XEP-0160).

    Delivery is at least once: ``fetch``, deliver, then ``delete`` the delivered ids.
    """

    async def push(self, host: str, user: str, stanza: bytes, *, limit: int) -> bool:
        """Store one serialized message (with its <delay/>); False when the user already has
        ``limit`` messages stored (nothing is stored then). The check and the insert are one
        transaction: concurrent pushes never exceed the limit."""
        ...

    async def fetch(self, host: str, user: str) -> list[tuple[int, bytes]]:
        """The stored messages, oldest first, with their ids."""
        ...

    async def delete(self, host: str, user: str, ids: Sequence[int]) -> None:
        """Forget delivered messages."""
        ...

    async def count(self, host: str, user: str) -> int:
        """How many messages are stored for the user."""
        ...

    async def expire(self, before: float) -> int:
        """Delete messages stored before this Unix time (all users); how many were deleted."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE offline_messages (
            id        {serial},
            host      TEXT        NOT NULL,
            username  TEXT        NOT NULL,
            stored_at {timestamp} NOT NULL,
            stanza    {bytes}     NOT NULL
        );
        CREATE INDEX offline_messages_by_user ON offline_messages (host, username, id);
        CREATE INDEX offline_messages_by_time ON offline_messages (stored_at);
        """,
    ),
)


class SqlOfflineStore(SqlStore):
    """OfflineStore in SQL."""

    name = "offline"
    protocol = OfflineStore
    schema = SCHEMA

    async def push(self, host: str, user: str, stanza: bytes, *, limit: int) -> bool:
        async with self.db.transaction() as tx:
            await tx.lock("offline", f"{user}@{host}")
            stored = await tx.fetchval(
                "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?",
                host,
                user,
            )
            if int(stored) >= limit:
                return False
            await tx.execute(
                "INSERT INTO offline_messages (host, username, stored_at, stanza)"
                " VALUES (?, ?, {time_param}, ?)",
                host,
                user,
                time.time(),
                stanza,
            )
        return True

    async def fetch(self, host: str, user: str) -> list[tuple[int, bytes]]:
        rows = await self.db.fetch(
            "SELECT id, stanza FROM offline_messages WHERE host = ? AND username = ? ORDER BY id",
            host,
            user,
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def delete(self, host: str, user: str, ids: Sequence[int]) -> None:
        if ids:
            await self.db.executemany(
                "DELETE FROM offline_messages WHERE host = ? AND username = ? AND id = ?",
                [(host, user, int(message_id)) for message_id in ids],
            )

    async def count(self, host: str, user: str) -> int:
        stored = await self.db.fetchval(
            "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?", host, user
        )
        return int(stored)

    async def expire(self, before: float) -> int:
        return await self.db.execute(
            "DELETE FROM offline_messages WHERE stored_at < {time_param}", float(before)
        )

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute("DELETE FROM offline_messages WHERE host = ? AND username = ?", host, user)

    # -- XEP-0227 §4.4: <offline-messages/> ---------------------------------------------------

    def xep0227_claims(self, element: Element) -> bool:
        return element.name == "offline-messages" and element.xmlns in PIE_NAMESPACES

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        messages: list[Element | str] = [
            parse_fragment(data) for _, data in await self.fetch(host, user)
        ]
        return [Element("offline-messages", NS_PIE, {}, messages)] if messages else []

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        limit = context.offline_limit
        for element in elements:
            for message in element.elements():
                if message.name != "message":
                    continue
                if not await self.push(host, user, serialize(message), limit=limit):
                    context.notes.append(f"{context.jid}: offline messages beyond {limit} left out")
                    return
