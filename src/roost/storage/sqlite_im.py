"""The instant-messaging stores on SQLite (schema 0002): rosters, offline messages, block lists.

They share SqliteStorage's one connection and lock (sqlite.py): reads under ``reading()``,
every write one ``BEGIN IMMEDIATE`` transaction under ``writing()``, committed with
synchronous=FULL before the call returns.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import aiosqlite

from roost.storage.base import (
    Roster,
    RosterChange,
    RosterItem,
    checked_roster_item,
    roster_item_from_row,
)

if TYPE_CHECKING:
    from roost.storage.sqlite import SqliteStorage


async def _changed(db: aiosqlite.Connection, sql: str, params: tuple[object, ...]) -> int:
    """Run one statement; the number of rows it changed."""
    async with db.execute(sql, params) as cursor:
        return cursor.rowcount


class SqliteRosterStore:
    """RosterStore on SQLite: the current items and tombstones in roster_items, the counter
    in roster_versions (see the 0002 migration). Each write is one BEGIN IMMEDIATE
    transaction, so a version and its change are committed together."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def get(self, host: str, user: str) -> Roster:
        async with self._storage.reading() as db:
            version = await _roster_version(db, host, user)
            rows = await db.execute_fetchall(
                f"SELECT {_ITEM_COLUMNS} FROM roster_items"
                " WHERE host = ? AND username = ? AND NOT removed ORDER BY jid",
                (host, user),
            )
        items = {item.jid: item for item in map(_roster_item, rows)}
        return Roster(version[0] if version else 0, items)

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        item = checked_roster_item(item)
        async with self._storage.writing() as db:
            rows = list(
                await db.execute_fetchall(
                    "INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1)"
                    " ON CONFLICT (host, username) DO UPDATE SET version = version + 1"
                    " RETURNING version",
                    (host, user),
                )
            )
            version = int(rows[0][0])
            await db.execute(
                "INSERT INTO roster_items (host, username, jid, name, subscription, ask,"
                " approved, groups, removed, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
                " ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name,"
                " subscription = excluded.subscription, ask = excluded.ask,"
                " approved = excluded.approved, groups = excluded.groups, removed = 0,"
                " version = excluded.version",
                (
                    host,
                    user,
                    item.jid,
                    item.name,
                    item.subscription,
                    int(item.ask),
                    int(item.approved),
                    json.dumps(item.groups),
                    version,
                ),
            )
        return version

    async def remove(self, host: str, user: str, jid: str) -> int | None:
        async with self._storage.writing() as db:
            current = await _roster_version(db, host, user)
            if current is None:
                return None
            version = current[0] + 1
            removed = await _changed(
                db,
                "UPDATE roster_items SET removed = 1, name = NULL, subscription = 'none',"
                " ask = 0, approved = 0, groups = '[]', version = ?"
                " WHERE host = ? AND username = ? AND jid = ? AND NOT removed",
                (version, host, user, jid),
            )
            if not removed:
                return None
            await db.execute(
                "UPDATE roster_versions SET version = ? WHERE host = ? AND username = ?",
                (version, host, user),
            )
            await self._prune_tombstones(db, host, user)
        return version

    async def _prune_tombstones(self, db: aiosqlite.Connection, host: str, user: str) -> None:
        rows = list(
            await db.execute_fetchall(
                "SELECT version FROM roster_items WHERE host = ? AND username = ? AND removed"
                " ORDER BY version DESC LIMIT 1 OFFSET ?",
                (host, user, self._storage.roster_tombstones),
            )
        )
        if not rows:
            return
        # the newest tombstone beyond the ones kept: versions up to it are no longer answerable
        cutoff = int(rows[0][0])
        await db.execute(
            "DELETE FROM roster_items WHERE host = ? AND username = ? AND removed AND version <= ?",
            (host, user, cutoff),
        )
        await db.execute(
            "UPDATE roster_versions SET oldest_version = ? WHERE host = ? AND username = ?",
            (cutoff, host, user),
        )

    async def changes_since(self, host: str, user: str, version: int) -> list[RosterChange] | None:
        async with self._storage.reading() as db:
            current, oldest = await _roster_version(db, host, user) or (0, 0)
            if not oldest <= version <= current:
                return None
            rows = await db.execute_fetchall(
                f"SELECT {_ITEM_COLUMNS}, removed, version FROM roster_items"
                " WHERE host = ? AND username = ? AND version > ? ORDER BY version",
                (host, user, version),
            )
        return [
            RosterChange(str(row[0]), None if row[6] else _roster_item(row), int(row[7]))
            for row in rows
        ]

    async def pending_in(self, host: str, user: str) -> dict[str, bytes]:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT jid, stanza FROM roster_pending_in WHERE host = ? AND username = ?"
                " ORDER BY jid",
                (host, user),
            )
        return {str(row[0]): bytes(row[1]) for row in rows}

    async def set_pending_in(self, host: str, user: str, jid: str, stanza: bytes | None) -> None:
        async with self._storage.writing() as db:
            if stanza is None:
                await db.execute(
                    "DELETE FROM roster_pending_in WHERE host = ? AND username = ? AND jid = ?",
                    (host, user, jid),
                )
            else:
                await db.execute(
                    "INSERT INTO roster_pending_in (host, username, jid, stanza)"
                    " VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza",
                    (host, user, jid, stanza),
                )


_ITEM_COLUMNS: Final = "jid, name, subscription, ask, approved, groups"


def _roster_item(row: Sequence[Any]) -> RosterItem:
    """A RosterItem from a row of _ITEM_COLUMNS (groups: a JSON array)."""
    return roster_item_from_row(row, json.loads(row[5]))


async def _roster_version(db: aiosqlite.Connection, host: str, user: str) -> tuple[int, int] | None:
    """(version, oldest answerable version) of the user's roster; None if it never had one."""
    rows = list(
        await db.execute_fetchall(
            "SELECT version, oldest_version FROM roster_versions WHERE host = ? AND username = ?",
            (host, user),
        )
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


class SqliteOfflineStore:
    """OfflineStore on SQLite. ``push`` counts and inserts in one BEGIN IMMEDIATE transaction,
    committed (synchronous=FULL: on disk) before it returns."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def push(self, host: str, user: str, stanza: bytes, *, limit: int) -> bool:
        async with self._storage.writing() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?",
                    (host, user),
                )
            )
            if int(rows[0][0]) >= limit:
                return False
            await db.execute(
                "INSERT INTO offline_messages (host, username, stored_at, stanza)"
                " VALUES (?, ?, ?, ?)",
                (host, user, time.time(), stanza),
            )
        return True

    async def fetch(self, host: str, user: str) -> list[tuple[int, bytes]]:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT id, stanza FROM offline_messages WHERE host = ? AND username = ?"
                " ORDER BY id",
                (host, user),
            )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def delete(self, host: str, user: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._storage.writing() as db:
            await db.executemany(
                "DELETE FROM offline_messages WHERE host = ? AND username = ? AND id = ?",
                [(host, user, int(message_id)) for message_id in ids],
            )

    async def count(self, host: str, user: str) -> int:
        async with self._storage.reading() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?",
                    (host, user),
                )
            )
        return int(rows[0][0])

    async def expire(self, before: float) -> int:
        async with self._storage.writing() as db:
            return await _changed(
                db, "DELETE FROM offline_messages WHERE stored_at < ?", (float(before),)
            )


class SqliteBlockingStore:
    """BlockingStore on SQLite."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def list(self, host: str, user: str) -> builtins.list[str]:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT jid FROM blocked_jids WHERE host = ? AND username = ?", (host, user)
            )
        return sorted(str(row[0]) for row in rows)

    async def add(self, host: str, user: str, jids: Sequence[str]) -> None:
        async with self._storage.writing() as db:
            await db.executemany(
                "INSERT INTO blocked_jids (host, username, jid) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(host, user, jid) for jid in jids],
            )

    async def remove(self, host: str, user: str, jids: Sequence[str]) -> None:
        async with self._storage.writing() as db:
            await db.executemany(
                "DELETE FROM blocked_jids WHERE host = ? AND username = ? AND jid = ?",
                [(host, user, jid) for jid in jids],
            )

    async def clear(self, host: str, user: str) -> None:
        async with self._storage.writing() as db:
            await db.execute(
                "DELETE FROM blocked_jids WHERE host = ? AND username = ?", (host, user)
            )
