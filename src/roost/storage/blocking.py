"""Each user's block list (XEP-0191): JIDs as given (bare, full or domain), normalised.

XEP-0227 1.1 defines no element for block lists: they are not exported (as before).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries
from roost.storage.store import SqlStore


class BlockingStore(Protocol):
    """Each user's block list (XEP-0191): JIDs as given (bare, full or domain), normalised."""

    async def list(self, host: str, user: str) -> builtins.list[str]:
        """The blocked JIDs, sorted by code point."""
        ...

    async def add(self, host: str, user: str, jids: Sequence[str]) -> None:
        """Block these JIDs (already blocked ones are fine)."""
        ...

    async def remove(self, host: str, user: str, jids: Sequence[str]) -> None:
        """Unblock these JIDs (absent ones are fine)."""
        ...

    async def clear(self, host: str, user: str) -> None:
        """Unblock everyone."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE blocked_jids (
            host     TEXT NOT NULL,
            username TEXT NOT NULL,
            jid      TEXT NOT NULL,
            PRIMARY KEY (host, username, jid)
        );
        """,
    ),
)


class SqlBlockingStore(SqlStore):
    """BlockingStore in SQL."""

    name = "blocking"
    protocol = BlockingStore
    schema = SCHEMA

    async def list(self, host: str, user: str) -> builtins.list[str]:
        rows = await self.db.fetch(
            "SELECT jid FROM blocked_jids WHERE host = ? AND username = ?", host, user
        )
        # sorted here, by code point: ORDER BY would follow PostgreSQL's collation
        return sorted(str(row[0]) for row in rows)

    async def add(self, host: str, user: str, jids: Sequence[str]) -> None:
        await self.db.executemany(
            "INSERT INTO blocked_jids (host, username, jid) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(host, user, jid) for jid in jids],
        )

    async def remove(self, host: str, user: str, jids: Sequence[str]) -> None:
        await self.db.executemany(
            "DELETE FROM blocked_jids WHERE host = ? AND username = ? AND jid = ?",
            [(host, user, jid) for jid in jids],
        )

    async def clear(self, host: str, user: str) -> None:
        await self.delete_user(self.db, host, user)

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute("DELETE FROM blocked_jids WHERE host = ? AND username = ?", host, user)
