"""The SQLite database (the default: one file in the data directory), over aiosqlite.

One connection per Storage, whose calls run on aiosqlite's thread. Every statement and
transaction holds an asyncio lock for its whole length, so coroutines sharing the connection
never interleave inside one; writes run in ``BEGIN IMMEDIATE`` transactions, taking SQLite's
write lock up front, which with ``busy_timeout`` lets a second process (``roost user add``
while the server runs) wait its turn instead of failing with "database is locked". WAL mode
lets readers run beside that writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiosqlite

from roost.storage.sql import (
    SQLITE,
    Dialect,
    Queries,
    Row,
    StatementsThrough,
    StorageError,
    Transaction,
)

log = logging.getLogger(__name__)

CONFIGURE_ATTEMPTS: Final = 10
DEFAULT_BUSY_TIMEOUT_MS: Final = 10_000


def split_statements(script: str) -> Iterator[str]:
    """Cut a script into single statements (sqlite3 executes one at a time).

    executescript() cannot be used: it commits the open transaction first, and migrations
    must run inside the transaction that also checked the schema versions.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""
    leftover = "".join(
        line for line in statement.splitlines() if not line.lstrip().startswith("--")
    )
    if leftover.strip():
        raise StorageError(f"incomplete SQL statement at the end of a script: {leftover!r}")


class _Statements:
    """Statements on the connection, translated from the stores' SQL (no locking here)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._db.execute_fetchall(SQLITE.translate(sql), args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        async with self._db.execute(SQLITE.translate(sql), args) as cursor:
            row: Row | None = await cursor.fetchone()
        return row

    async def fetchval(self, sql: str, *args: object) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: object) -> int:
        async with self._db.execute(SQLITE.translate(sql), args) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        await self._db.executemany(SQLITE.translate(sql), args)

    async def lock(self, scope: str, key: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE holds the database's write lock already."""

    async def run_script(self, script: str) -> None:
        for statement in split_statements(SQLITE.translate(script)):
            await self._db.execute(statement)


class SqliteDatabase(StatementsThrough):
    """One SQLite database file (sql.Database)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.dialect: Dialect = SQLITE
        self.path = path
        self.where = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            raise StorageError(f"{self.where}: the storage is already open")
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{self.where}: cannot open the database: {exc}") from exc
        try:
            await self._configure_retrying(db)
        except sqlite3.Error as exc:
            await db.close()
            raise StorageError(f"{self.where}: cannot open the database: {exc}") from exc
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    async def _configure_retrying(self, db: aiosqlite.Connection) -> None:
        # Switching a new database to WAL needs an exclusive lock, and SQLite can report
        # "database is locked" for it without calling the busy handler while another
        # connection is creating the file (seen with three processes opening at once).
        for attempt in range(1, CONFIGURE_ATTEMPTS + 1):
            try:
                await self._configure(db)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == CONFIGURE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)

    async def _configure(self, db: aiosqlite.Connection) -> None:
        # First, so that the journal mode change below also waits for other writers.
        await db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
        if str(rows[0][0]).lower() != "wal":
            log.warning("%s: WAL mode unavailable, journal mode is %s", self.where, rows[0][0])
        # In WAL mode, synchronous=NORMAL syncs the log only at checkpoints: a commit survives
        # a crash of the process but not of the machine. What the server acknowledged as
        # stored (offline messages, archive, stream-management acks, docs/architecture.md) must be
        # on disk before the sender is told, so every commit syncs the log: FULL.
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError(f"{self.where}: the storage is not open")
        return self._db

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Queries]:
        db = self._connection()
        async with self._lock:
            try:
                yield _Statements(db)
            except sqlite3.Error as exc:
                raise StorageError(f"{self.where}: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        db = self._connection()
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield _Statements(db)
                except BaseException:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.where}: {exc}") from exc

    def _writing(self) -> AbstractAsyncContextManager[Queries]:
        return self.transaction()
