"""The SQLite storage backend (the default: one file in the data directory), over aiosqlite.

One connection per Storage, whose calls run on aiosqlite's thread. Every operation holds an
asyncio lock for its whole transaction, so coroutines sharing the connection never interleave
inside one; writes run in ``BEGIN IMMEDIATE`` transactions, taking SQLite's write lock up
front, which with ``busy_timeout`` lets a second process (``roost user add`` while the server
runs) wait its turn instead of failing with "database is locked". WAL mode lets readers run
beside that writer.

Accounts and the key-value store are here; the roster, offline and blocking stores are in
sqlite_im.py, on the same connection and lock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import aiosqlite

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
from roost.storage.sqlite_im import SqliteBlockingStore, SqliteOfflineStore, SqliteRosterStore

log = logging.getLogger(__name__)

CONFIGURE_ATTEMPTS: Final = 10
DIALECT: Final = "sqlite"
DEFAULT_BUSY_TIMEOUT_MS: Final = 10_000

_CREATE_SCHEMA_VERSION: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
)"""


def split_statements(script: str) -> Iterator[str]:
    """Cut a migration script into single statements (sqlite3 executes one at a time).

    executescript() cannot be used: it commits the open transaction first, and migrations
    must run inside the transaction that also checked the schema version.
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
        raise StorageError(f"incomplete SQL statement at the end of a migration: {leftover!r}")


class SqliteStorage:
    """Storage in one SQLite database file.

    ``roster_tombstones``: how many removed contacts each roster remembers for
    RosterStore.changes_since() (base.ROSTER_TOMBSTONES_KEPT; smaller in tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        roster_tombstones: int = ROSTER_TOMBSTONES_KEPT,
    ) -> None:
        self.path = path
        self.roster_tombstones = roster_tombstones
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._version = 0
        self.accounts: AccountStore = SqliteAccountStore(self)
        self.kv: KeyValueStore = SqliteKeyValueStore(self)
        self.roster: RosterStore = SqliteRosterStore(self)
        self.offline: OfflineStore = SqliteOfflineStore(self)
        self.blocking: BlockingStore = SqliteBlockingStore(self)

    @property
    def schema_version(self) -> int:
        return self._version

    async def open(self) -> None:
        if self._db is not None:
            raise StorageError(f"{self.path}: the storage is already open")
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{self.path}: cannot open the database: {exc}") from exc
        try:
            await self._configure_retrying(db)
            self._version = await self._migrate(db)
        except sqlite3.Error as exc:
            await db.close()
            raise StorageError(f"{self.path}: cannot open the database: {exc}") from exc
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
            log.warning("%s: WAL mode unavailable, journal mode is %s", self.path, rows[0][0])
        # In WAL mode, synchronous=NORMAL syncs the log only at checkpoints: a commit survives
        # a crash of the process but not of the machine. What the server acknowledged as
        # stored (offline messages, archive, stream-management acks, DESIGN.md §4) must be
        # on disk before the sender is told, so every commit syncs the log: FULL.
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")

    async def _migrate(self, db: aiosqlite.Connection) -> int:
        # IMMEDIATE: the write lock is taken before the version is read, so two processes
        # opening a new database at once apply the migrations one after the other.
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(_CREATE_SCHEMA_VERSION)
            rows = list(
                await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            )
            version = int(rows[0][0])
            for migration in pending_migrations(DIALECT, version, str(self.path)):
                for statement in split_statements(migration.sql):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
                version = migration.version
                log.info("%s: schema migrated to %04d_%s", self.path, version, migration.name)
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        return version

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError(f"{self.path}: the storage is not open")
        return self._db

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for statements that only read."""
        db = self._connection()
        async with self._lock:
            try:
                yield db
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: {exc}") from exc

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection inside a write transaction, committed when the block ends."""
        db = self._connection()
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: {exc}") from exc


async def _changed(db: aiosqlite.Connection, sql: str, params: tuple[str | bytes, ...]) -> int:
    """Run one statement; the number of rows it changed."""
    async with db.execute(sql, params) as cursor:
        return cursor.rowcount


_INSERT_CREDENTIALS: Final = (
    "INSERT INTO credentials (host, username, hash_name, salt, iterations, stored_key,"
    " server_key) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteAccountStore:
    """AccountStore on SQLite."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def create(self, host: str, user: str, creds: Credentials) -> None:
        async with self._storage.writing() as db:
            inserted = await _changed(
                db,
                "INSERT INTO accounts (host, username) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (host, user),
            )
            if not inserted:
                raise AccountExists(f"account {user}@{host} already exists")
            await db.executemany(
                _INSERT_CREDENTIALS, [(host, user, *row) for row in credential_rows(creds)]
            )

    async def set_credentials(self, host: str, user: str, creds: Credentials) -> None:
        async with self._storage.writing() as db:
            found = await db.execute_fetchall(
                "SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, user)
            )
            if not list(found):
                raise AccountNotFound(f"account {user}@{host} does not exist")
            await db.execute(
                "DELETE FROM credentials WHERE host = ? AND username = ?", (host, user)
            )
            await db.executemany(
                _INSERT_CREDENTIALS, [(host, user, *row) for row in credential_rows(creds)]
            )

    async def get_credentials(self, host: str, user: str) -> Credentials | None:
        async with self._storage.reading() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key"
                    " FROM accounts AS a LEFT JOIN credentials AS c"
                    " ON c.host = a.host AND c.username = a.username"
                    " WHERE a.host = ? AND a.username = ?",
                    (host, user),
                )
            )
        if not rows:
            return None
        return credentials_from_rows(rows)

    async def exists(self, host: str, user: str) -> bool:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, user)
            )
        return bool(list(rows))

    async def delete(self, host: str, user: str) -> bool:
        async with self._storage.writing() as db:
            for table in USER_DATA_TABLES:
                await db.execute(
                    f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, user)
                )
            # credentials go with the account: ON DELETE CASCADE
            deleted = await _changed(
                db, "DELETE FROM accounts WHERE host = ? AND username = ?", (host, user)
            )
        return deleted > 0

    async def list(self, host: str) -> list[str]:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT username FROM accounts WHERE host = ?", (host,)
            )
        return sorted(str(row[0]) for row in rows)


class SqliteKeyValueStore:
    """KeyValueStore on SQLite."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None:
        async with self._storage.reading() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT value FROM kv"
                    " WHERE host = ? AND username = ? AND store = ? AND key = ?",
                    (host, user, store, key),
                )
            )
        return bytes(rows[0][0]) if rows else None

    async def set(self, host: str, user: str, store: str, key: str, value: bytes) -> None:
        async with self._storage.writing() as db:
            await db.execute(
                "INSERT INTO kv (host, username, store, key, value) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (host, username, store, key) DO UPDATE SET value = excluded.value",
                (host, user, store, key, value),
            )

    async def delete(self, host: str, user: str, store: str, key: str) -> None:
        async with self._storage.writing() as db:
            await db.execute(
                "DELETE FROM kv WHERE host = ? AND username = ? AND store = ? AND key = ?",
                (host, user, store, key),
            )

    async def keys(self, host: str, user: str, store: str) -> list[str]:
        async with self._storage.reading() as db:
            rows = await db.execute_fetchall(
                "SELECT key FROM kv WHERE host = ? AND username = ? AND store = ?",
                (host, user, store),
            )
        return sorted(str(row[0]) for row in rows)
