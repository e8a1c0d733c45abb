"""The PostgreSQL database (production and the cluster, docs/architecture.md), over asyncpg.

A small connection pool (1 to 10 connections) per Storage. Each transaction runs on one
pooled connection (READ COMMITTED); single statements go straight through the pool, and
PostgreSQL commits each on its own. ``tx.lock(scope, key)`` is a transaction-scoped advisory
lock on the two int4 hashes of scope and key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from roost.storage.sql import (
    POSTGRESQL,
    Dialect,
    Queries,
    Row,
    StatementsThrough,
    StorageError,
    Transaction,
)

POOL_MIN_SIZE: Final = 1
POOL_MAX_SIZE: Final = 10

# What asyncpg raises when the server or the connection fails.
_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


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
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


class _Statements:
    """Statements on a pool or on one connection (their methods are the same in asyncpg)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows: list[Row] = await self._conn.fetch(POSTGRESQL.translate(sql), *args)
        return rows

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        row: Row | None = await self._conn.fetchrow(POSTGRESQL.translate(sql), *args)
        return row

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._conn.fetchval(POSTGRESQL.translate(sql), *args)

    async def execute(self, sql: str, *args: object) -> int:
        return _row_count(str(await self._conn.execute(POSTGRESQL.translate(sql), *args)))

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        rows = list(args)
        if rows:
            await self._conn.executemany(POSTGRESQL.translate(sql), rows)

    async def lock(self, scope: str, key: str) -> None:
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", scope, key
        )

    async def run_script(self, script: str) -> None:
        await self._conn.execute(POSTGRESQL.translate(script))  # no arguments: several statements


class PostgresDatabase(StatementsThrough):
    """One PostgreSQL database (sql.Database)."""

    def __init__(
        self, dsn: str, *, min_size: int = POOL_MIN_SIZE, max_size: int = POOL_MAX_SIZE
    ) -> None:
        self.dialect: Dialect = POSTGRESQL
        self.dsn = dsn
        self.where = redact_dsn(dsn)
        self._pool_size = (min_size, max_size)
        self._pool: Any = None  # asyncpg.Pool

    async def open(self) -> None:
        if self._pool is not None:
            raise StorageError(f"{self.where}: the storage is already open")
        min_size, max_size = self._pool_size
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=min_size, max_size=max_size)
        except (*_DRIVER_ERRORS, ValueError) as exc:  # ValueError: a malformed dsn
            raise StorageError(f"{self.where}: cannot connect: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Queries]:
        if self._pool is None:
            raise StorageError(f"{self.where}: the storage is not open")
        try:
            yield _Statements(self._pool)
        except _DRIVER_ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        if self._pool is None:
            raise StorageError(f"{self.where}: the storage is not open")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Statements(conn)
        except _DRIVER_ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    def _writing(self) -> AbstractAsyncContextManager[Queries]:
        return self._reading()  # PostgreSQL commits a single statement atomically
