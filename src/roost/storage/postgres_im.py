"""The instant-messaging stores on PostgreSQL (schema 0002): rosters, offline messages, block lists.

Writes run in one transaction each on a pooled connection (PostgresStorage.writing(), READ
COMMITTED). Concurrent writers of one user are serialized on a row or an advisory lock:
roster changes lock the user's roster_versions row before they touch the items, offline
pushes take a transaction-scoped advisory lock per user so the count they check is still
true when they insert. Reads that need the counter and the items together are one
statement, hence one snapshot.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from roost.storage.base import (
    Roster,
    RosterChange,
    RosterItem,
    checked_roster_item,
    roster_item_from_row,
)

if TYPE_CHECKING:
    from roost.storage.postgres import PostgresStorage

# First key of pg_advisory_xact_lock(int, int) while pushing an offline message (b"offl" read
# as an integer); the second is a hash of the user's JID. The two-int4 key space never
# conflicts with the bigint key of the migration lock.
OFFLINE_LOCK_CLASS: Final = int.from_bytes(b"offl", "big")


def _row_count(status: str) -> int:
    """Rows affected, from a command status such as "UPDATE 1" or "DELETE 3"."""
    return int(status.rpartition(" ")[2])


def _roster_item(row: Sequence[Any]) -> RosterItem:
    """A RosterItem from a row starting with _ITEM_COLUMNS (groups: a text[])."""
    return roster_item_from_row(row, row[5])


def _by_jid(item: RosterItem) -> str:
    return item.jid


_ITEM_COLUMNS: Final = "i.jid, i.name, i.subscription, i.ask, i.approved, i.groups"


class PostgresRosterStore:
    """RosterStore on PostgreSQL: the current items and tombstones in roster_items, the
    counter in roster_versions (see the 0002 migration)."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def get(self, host: str, user: str) -> Roster:
        rows = await self._storage.fetch(
            f"SELECT {_ITEM_COLUMNS}, v.version FROM roster_versions AS v"
            " LEFT JOIN roster_items AS i"
            " ON i.host = v.host AND i.username = v.username AND NOT i.removed"
            " WHERE v.host = $1 AND v.username = $2",
            host,
            user,
        )
        version = int(rows[0][6]) if rows else 0
        # sorted here, by code point: ORDER BY would follow the database's collation
        items = sorted((_roster_item(row) for row in rows if row[0] is not None), key=_by_jid)
        return Roster(version, {item.jid: item for item in items})

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        item = checked_roster_item(item)
        async with self._storage.writing() as conn:
            # the upsert locks the counter row: a concurrent change of this roster waits here
            version = int(
                await conn.fetchval(
                    "INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1)"
                    " ON CONFLICT (host, username)"
                    " DO UPDATE SET version = roster_versions.version + 1 RETURNING version",
                    host,
                    user,
                )
            )
            await conn.execute(
                "INSERT INTO roster_items (host, username, jid, name, subscription, ask,"
                " approved, groups, removed, version)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9)"
                " ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name,"
                " subscription = excluded.subscription, ask = excluded.ask,"
                " approved = excluded.approved, groups = excluded.groups, removed = false,"
                " version = excluded.version",
                host,
                user,
                item.jid,
                item.name,
                item.subscription,
                item.ask,
                item.approved,
                list(item.groups),
                version,
            )
        return version

    async def remove(self, host: str, user: str, jid: str) -> int | None:
        async with self._storage.writing() as conn:
            current = await conn.fetchval(
                "SELECT version FROM roster_versions WHERE host = $1 AND username = $2 FOR UPDATE",
                host,
                user,
            )
            if current is None:
                return None
            version = int(current) + 1
            status = await conn.execute(
                "UPDATE roster_items SET removed = true, name = NULL, subscription = 'none',"
                " ask = false, approved = false, groups = '{}', version = $1"
                " WHERE host = $2 AND username = $3 AND jid = $4 AND NOT removed",
                version,
                host,
                user,
                jid,
            )
            if not _row_count(status):
                return None
            await conn.execute(
                "UPDATE roster_versions SET version = $1 WHERE host = $2 AND username = $3",
                version,
                host,
                user,
            )
            await self._prune_tombstones(conn, host, user)
        return version

    async def _prune_tombstones(self, conn: Any, host: str, user: str) -> None:
        cutoff = await conn.fetchval(
            "SELECT version FROM roster_items WHERE host = $1 AND username = $2 AND removed"
            " ORDER BY version DESC LIMIT 1 OFFSET $3",
            host,
            user,
            self._storage.roster_tombstones,
        )
        if cutoff is None:
            return
        # the newest tombstone beyond the ones kept: versions up to it are no longer answerable
        await conn.execute(
            "DELETE FROM roster_items"
            " WHERE host = $1 AND username = $2 AND removed AND version <= $3",
            host,
            user,
            cutoff,
        )
        await conn.execute(
            "UPDATE roster_versions SET oldest_version = $1 WHERE host = $2 AND username = $3",
            cutoff,
            host,
            user,
        )

    async def changes_since(self, host: str, user: str, version: int) -> list[RosterChange] | None:
        rows = await self._storage.fetch(
            f"SELECT {_ITEM_COLUMNS}, i.removed, i.version, v.version, v.oldest_version"
            " FROM roster_versions AS v LEFT JOIN roster_items AS i"
            " ON i.host = v.host AND i.username = v.username AND i.version > $3"
            " WHERE v.host = $1 AND v.username = $2 ORDER BY i.version",
            host,
            user,
            version,
        )
        current, oldest = (int(rows[0][8]), int(rows[0][9])) if rows else (0, 0)
        if not oldest <= version <= current:
            return None
        return [
            RosterChange(str(row[0]), None if row[6] else _roster_item(row), int(row[7]))
            for row in rows
            if row[0] is not None
        ]

    async def pending_in(self, host: str, user: str) -> dict[str, bytes]:
        rows = await self._storage.fetch(
            "SELECT jid, stanza FROM roster_pending_in WHERE host = $1 AND username = $2",
            host,
            user,
        )
        return dict(sorted((str(row[0]), bytes(row[1])) for row in rows))

    async def set_pending_in(self, host: str, user: str, jid: str, stanza: bytes | None) -> None:
        if stanza is None:
            await self._storage.execute(
                "DELETE FROM roster_pending_in WHERE host = $1 AND username = $2 AND jid = $3",
                host,
                user,
                jid,
            )
        else:
            await self._storage.execute(
                "INSERT INTO roster_pending_in (host, username, jid, stanza)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza",
                host,
                user,
                jid,
                stanza,
            )


class PostgresOfflineStore:
    """OfflineStore on PostgreSQL. ``push`` counts and inserts in one transaction, under a
    per-user advisory lock, committed before it returns."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def push(self, host: str, user: str, stanza: bytes, *, limit: int) -> bool:
        async with self._storage.writing() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2 || '@' || $3))",
                OFFLINE_LOCK_CLASS,
                user,
                host,
            )
            stored = await conn.fetchval(
                "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2",
                host,
                user,
            )
            if int(stored) >= limit:
                return False
            await conn.execute(
                "INSERT INTO offline_messages (host, username, stored_at, stanza)"
                " VALUES ($1, $2, to_timestamp($3::double precision), $4)",
                host,
                user,
                time.time(),
                stanza,
            )
        return True

    async def fetch(self, host: str, user: str) -> list[tuple[int, bytes]]:
        rows = await self._storage.fetch(
            "SELECT id, stanza FROM offline_messages WHERE host = $1 AND username = $2 ORDER BY id",
            host,
            user,
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def delete(self, host: str, user: str, ids: Sequence[int]) -> None:
        if ids:
            await self._storage.execute(
                "DELETE FROM offline_messages"
                " WHERE host = $1 AND username = $2 AND id = ANY($3::bigint[])",
                host,
                user,
                [int(message_id) for message_id in ids],
            )

    async def count(self, host: str, user: str) -> int:
        rows = await self._storage.fetch(
            "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2",
            host,
            user,
        )
        return int(rows[0][0])

    async def expire(self, before: float) -> int:
        status = await self._storage.execute(
            "DELETE FROM offline_messages WHERE stored_at < to_timestamp($1::double precision)",
            float(before),
        )
        return _row_count(status)


class PostgresBlockingStore:
    """BlockingStore on PostgreSQL: each call is one statement."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def list(self, host: str, user: str) -> builtins.list[str]:
        rows = await self._storage.fetch(
            "SELECT jid FROM blocked_jids WHERE host = $1 AND username = $2", host, user
        )
        # sorted here, by code point: ORDER BY would follow the database's collation
        return sorted(str(row[0]) for row in rows)

    async def add(self, host: str, user: str, jids: Sequence[str]) -> None:
        if jids:
            await self._storage.execute(
                "INSERT INTO blocked_jids (host, username, jid)"
                " SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                host,
                user,
                list(jids),
            )

    async def remove(self, host: str, user: str, jids: Sequence[str]) -> None:
        if jids:
            await self._storage.execute(
                "DELETE FROM blocked_jids WHERE host = $1 AND username = $2"
                " AND jid = ANY($3::text[])",
                host,
                user,
                list(jids),
            )

    async def clear(self, host: str, user: str) -> None:
        await self._storage.execute(
            "DELETE FROM blocked_jids WHERE host = $1 AND username = $2", host, user
        )
