"""The PostgreSQL storage backend (production and the cluster, DESIGN.md §5), over asyncpg.

A small connection pool (1 to 10 connections) per Storage. Each write runs in one
transaction on one pooled connection; single reads go straight through the pool. Schema
migrations run under a transaction-scoped advisory lock, so several nodes starting at once
against a new database migrate it exactly once, one after the other.

Accounts and the key-value store are here; the roster, offline and blocking stores are in
postgres_im.py, on the same pool.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from roost.auth.credentials import Credentials
from roost.storage.base import (
    ROSTER_TOMBSTONES_KEPT,
    USER_DATA_TABLES,
    AccountExists,
    AccountNotFound,
    AccountStore,
    BlockingStore,
    KeyValueStore,
    OfflineStore,
    RosterStore,
    StorageError,
    credential_rows,
    credentials_from_rows,
    pending_migrations,
)
from roost.storage.postgres_im import (
    PostgresBlockingStore,
    PostgresOfflineStore,
    PostgresRosterStore,
)

log = logging.getLogger(__name__)

DIALECT: Final = "postgresql"
POOL_MIN_SIZE: Final = 1
POOL_MAX_SIZE: Final = 10
# pg_advisory_xact_lock key held while migrating: b"roost" read as an integer.
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"roost", "big")

# What asyncpg raises when the server or the connection fails.
_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

_CREATE_SCHEMA_VERSION: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, fit for error messages and logs."""
    try:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            return "(a dsn that is not a postgresql:// URL)"
        if parts.password is None:
            return dsn
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "(an unparsable dsn)"


def _row_count(status: str) -> int:
    """Rows affected, from a command status such as "INSERT 0 1" or "DELETE 3"."""
    return int(status.rpartition(" ")[2])


class PostgresStorage:
    """Storage in one PostgreSQL database.

    ``roster_tombstones``: how many removed contacts each roster remembers for
    RosterStore.changes_since() (base.ROSTER_TOMBSTONES_KEPT; smaller in tests).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = POOL_MIN_SIZE,
        max_size: int = POOL_MAX_SIZE,
        roster_tombstones: int = ROSTER_TOMBSTONES_KEPT,
    ) -> None:
        self.dsn = dsn
        self.roster_tombstones = roster_tombstones
        self.where = redact_dsn(dsn)
        self._pool_size = (min_size, max_size)
        self._pool: Any = None  # asyncpg.Pool
        self._version = 0
        self.accounts: AccountStore = PostgresAccountStore(self)
        self.kv: KeyValueStore = PostgresKeyValueStore(self)
        self.roster: RosterStore = PostgresRosterStore(self)
        self.offline: OfflineStore = PostgresOfflineStore(self)
        self.blocking: BlockingStore = PostgresBlockingStore(self)

    @property
    def schema_version(self) -> int:
        return self._version

    async def open(self) -> None:
        if self._pool is not None:
            raise StorageError(f"{self.where}: the storage is already open")
        min_size, max_size = self._pool_size
        try:
            pool = await asyncpg.create_pool(self.dsn, min_size=min_size, max_size=max_size)
        except (*_DRIVER_ERRORS, ValueError) as exc:  # ValueError: a malformed dsn
            raise StorageError(f"{self.where}: cannot connect: {exc}") from exc
        try:
            self._version = await self._migrate(pool)
        except _DRIVER_ERRORS as exc:
            await pool.close()
            raise StorageError(f"{self.where}: cannot migrate the schema: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self, pool: Any) -> int:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(_CREATE_SCHEMA_VERSION)
            version = int(
                await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            )
            for migration in pending_migrations(DIALECT, version, self.where):
                await conn.execute(migration.sql)  # no arguments: may hold several statements
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                version = migration.version
                log.info("%s: schema migrated to %04d_%s", self.where, version, migration.name)
        return version

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise StorageError(f"{self.where}: the storage is not open")
        return self._pool

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Any]:
        """A pooled connection inside a transaction, committed when the block ends."""
        pool = self._open_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except _DRIVER_ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def execute(self, sql: str, *args: object) -> str:
        """Run one statement on its own (PostgreSQL commits it atomically); its status."""
        pool = self._open_pool()
        try:
            return str(await pool.execute(sql, *args))
        except _DRIVER_ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def fetch(self, sql: str, *args: object) -> builtins.list[Any]:
        """The rows of one query (asyncpg Records)."""
        pool = self._open_pool()
        try:
            rows: builtins.list[Any] = await pool.fetch(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return rows


_INSERT_CREDENTIALS: Final = (
    "INSERT INTO credentials (host, username, hash_name, salt, iterations, stored_key,"
    " server_key) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


class PostgresAccountStore:
    """AccountStore on PostgreSQL."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def create(self, host: str, user: str, creds: Credentials) -> None:
        async with self._storage.writing() as conn:
            status = await conn.execute(
                "INSERT INTO accounts (host, username) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                host,
                user,
            )
            if not _row_count(status):
                raise AccountExists(f"account {user}@{host} already exists")
            await _insert_credentials(conn, host, user, creds)

    async def set_credentials(self, host: str, user: str, creds: Credentials) -> None:
        async with self._storage.writing() as conn:
            # FOR UPDATE: a concurrent delete() of the account waits for this transaction.
            found = await conn.fetchval(
                "SELECT 1 FROM accounts WHERE host = $1 AND username = $2 FOR UPDATE", host, user
            )
            if found is None:
                raise AccountNotFound(f"account {user}@{host} does not exist")
            await conn.execute(
                "DELETE FROM credentials WHERE host = $1 AND username = $2", host, user
            )
            await _insert_credentials(conn, host, user, creds)

    async def get_credentials(self, host: str, user: str) -> Credentials | None:
        rows = await self._storage.fetch(
            "SELECT c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key"
            " FROM accounts AS a LEFT JOIN credentials AS c"
            " ON c.host = a.host AND c.username = a.username"
            " WHERE a.host = $1 AND a.username = $2",
            host,
            user,
        )
        if not rows:
            return None
        return credentials_from_rows(rows)

    async def exists(self, host: str, user: str) -> bool:
        rows = await self._storage.fetch(
            "SELECT 1 FROM accounts WHERE host = $1 AND username = $2", host, user
        )
        return bool(rows)

    async def delete(self, host: str, user: str) -> bool:
        async with self._storage.writing() as conn:
            for table in USER_DATA_TABLES:
                await conn.execute(
                    f"DELETE FROM {table} WHERE host = $1 AND username = $2", host, user
                )
            # credentials go with the account: ON DELETE CASCADE
            status = await conn.execute(
                "DELETE FROM accounts WHERE host = $1 AND username = $2", host, user
            )
        return _row_count(status) > 0

    async def list(self, host: str) -> builtins.list[str]:
        rows = await self._storage.fetch("SELECT username FROM accounts WHERE host = $1", host)
        # sorted here, by code point: ORDER BY would follow the database's collation
        return sorted(str(row[0]) for row in rows)


async def _insert_credentials(conn: Any, host: str, user: str, creds: Credentials) -> None:
    rows = [(host, user, *row) for row in credential_rows(creds)]
    if rows:
        await conn.executemany(_INSERT_CREDENTIALS, rows)


class PostgresKeyValueStore:
    """KeyValueStore on PostgreSQL."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None:
        rows = await self._storage.fetch(
            "SELECT value FROM kv WHERE host = $1 AND username = $2 AND store = $3 AND key = $4",
            host,
            user,
            store,
            key,
        )
        return bytes(rows[0][0]) if rows else None

    async def set(self, host: str, user: str, store: str, key: str, value: bytes) -> None:
        await self._storage.execute(
            "INSERT INTO kv (host, username, store, key, value) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (host, username, store, key) DO UPDATE SET value = excluded.value",
            host,
            user,
            store,
            key,
            value,
        )

    async def delete(self, host: str, user: str, store: str, key: str) -> None:
        await self._storage.execute(
            "DELETE FROM kv WHERE host = $1 AND username = $2 AND store = $3 AND key = $4",
            host,
            user,
            store,
            key,
        )

    async def keys(self, host: str, user: str, store: str) -> list[str]:
        rows = await self._storage.fetch(
            "SELECT key FROM kv WHERE host = $1 AND username = $2 AND store = $3",
            host,
            user,
            store,
        )
        return sorted(str(row[0]) for row in rows)
