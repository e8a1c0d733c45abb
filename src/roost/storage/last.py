"""When each account was last online: the time and status of its last logout (XEP-0012 §3).

One row per account, overwritten at each logout. The record is kept as the JSON the
``last`` module wrote to the generic key-value store before this store existed (``{"time":
Unix time, "status": text}``), so the first migration moves those rows here as they are,
in SQL both dialects share. Last activity is not portable data (XEP-0227 has no place for
it): nothing is exported or imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries, StorageError
from roost.storage.store import SqlStore


@dataclass(frozen=True, slots=True)
class Logout:
    """An account's last logout: when (Unix time) and the status of its unavailable presence."""

    time: float
    status: str = ""


class LastActivityStore(Protocol):
    """The last logout of each account (XEP-0012)."""

    async def get(self, host: str, user: str) -> Logout | None:
        """The user's last logout, or None when none was recorded."""
        ...

    async def set(self, host: str, user: str, logout: Logout) -> None:
        """Record a logout (the previous one is forgotten)."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE last_logouts (
            host     TEXT    NOT NULL,
            username TEXT    NOT NULL,
            record   {bytes} NOT NULL,
            PRIMARY KEY (host, username)
        );
        INSERT INTO last_logouts (host, username, record)
            SELECT host, username, value FROM kv WHERE store = 'last' AND key = 'logout';
        DELETE FROM kv WHERE store = 'last';
        """,
    ),
)


def encode_logout(logout: Logout) -> bytes:
    """The stored record of a logout."""
    return json.dumps({"time": logout.time, "status": logout.status}).encode()


def decode_logout(data: bytes) -> Logout:
    """A stored record read back; StorageError when it is not one."""
    try:
        record = json.loads(data)
        return Logout(float(record["time"]), str(record.get("status", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(f"not a last-activity record: {data[:100]!r}") from exc


class SqlLastActivityStore(SqlStore):
    """LastActivityStore in SQL."""

    name = "last"
    protocol = LastActivityStore
    schema = SCHEMA

    async def get(self, host: str, user: str) -> Logout | None:
        value = await self.db.fetchval(
            "SELECT record FROM last_logouts WHERE host = ? AND username = ?", host, user
        )
        return None if value is None else decode_logout(bytes(value))

    async def set(self, host: str, user: str, logout: Logout) -> None:
        await self.db.execute(
            "INSERT INTO last_logouts (host, username, record) VALUES (?, ?, ?)"
            " ON CONFLICT (host, username) DO UPDATE SET record = excluded.record",
            host,
            user,
            encode_logout(logout),
        )

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute("DELETE FROM last_logouts WHERE host = ? AND username = ?", host, user)
