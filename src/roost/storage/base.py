"""The Storage: one database (SQLite or PostgreSQL) with every registered store on it.

``open_storage(backend, path=..., dsn=...)`` makes the Storage for the configured backend;
``await storage.open()`` connects and migrates each store's schema (schema.py). Modules
reach a store by its Protocol, ``storage.store(RosterStore)``; the stores of the first
release are also attributes (``storage.accounts``, ``.roster``, ``.offline``, ``.blocking``,
``.kv``, ``.archive``).

Hosts and usernames arrive already normalised by the JID rules (RFC 7622): the stores
compare them byte for byte and never normalise again. Both backends run the same SQL
through the dialect layer (sql.py) and the same test suite (docs/architecture.md).

The records and protocols are defined with their stores (accounts.py, roster.py, ...) and
re-exported here, where the rest of roost imports them from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from roost.storage.accounts import AccountExists, AccountNotFound, AccountStore
from roost.storage.archive import ArchiveStore
from roost.storage.blocking import BlockingStore
from roost.storage.kv import KeyValueStore
from roost.storage.offline import OfflineStore
from roost.storage.registry import STORES
from roost.storage.roster import (
    ROSTER_TOMBSTONES_KEPT,
    SUBSCRIPTIONS,
    Roster,
    RosterChange,
    RosterItem,
    RosterStore,
    roster_groups,
)
from roost.storage.schema import migrate
from roost.storage.sql import Database, StorageError
from roost.storage.store import StoreSet

__all__ = [
    "ROSTER_TOMBSTONES_KEPT",
    "SUBSCRIPTIONS",
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "ArchiveStore",
    "BlockingStore",
    "KeyValueStore",
    "OfflineStore",
    "Roster",
    "RosterChange",
    "RosterItem",
    "RosterStore",
    "Storage",
    "StorageError",
    "open_storage",
    "roster_groups",
]

T = TypeVar("T")


class Storage:
    """One database and the stores of the registry on it, opened and closed together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stores = StoreSet(db, STORES)
        self._versions: dict[str, int] = {}
        self.accounts = self.store(AccountStore)
        self.kv = self.store(KeyValueStore)
        self.roster = self.store(RosterStore)
        self.offline = self.store(OfflineStore)
        self.blocking = self.store(BlockingStore)
        self.archive = self.store(ArchiveStore)

    def store(self, kind: type[T]) -> T:
        """The store implementing ``kind`` (its Protocol, or its SQL class)."""
        return self.stores.get(kind)

    async def open(self) -> None:
        """Connect and migrate every store's schema to its newest version."""
        await self.db.open()
        try:
            self._versions = await migrate(self.db, {s.name: s.schema for s in self.stores})
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        """Close every connection; the stores cannot be used afterwards (closing twice is fine)."""
        self._versions = {}
        await self.db.close()

    @property
    def schema_versions(self) -> dict[str, int]:
        """Each store's schema version in the open database (empty before open())."""
        return dict(self._versions)

    @property
    def schema_version(self) -> str:
        """The schema versions as one line ("accounts 1, kv 1, ..."), for `roost check`."""
        return ", ".join(f"{name} {version}" for name, version in sorted(self._versions.items()))


def open_storage(backend: str, *, path: Path | None = None, dsn: str = "") -> Storage:
    """Make the storage named by the configuration ([storage].backend); open() connects.

    "sqlite" needs ``path`` (the database file), "postgresql" a ``dsn``
    (``postgresql://user@host:port/database``). Raise ValueError otherwise.
    """
    if backend == "sqlite":
        if path is None:
            raise ValueError("the sqlite storage backend needs the path of the database file")
        from roost.storage.sqlite_db import SqliteDatabase

        return Storage(SqliteDatabase(path))
    if backend == "postgresql":
        if not dsn:
            raise ValueError("the postgresql storage backend needs a dsn (postgresql://...)")
        from roost.storage.postgres_db import PostgresDatabase

        return Storage(PostgresDatabase(dsn))
    raise ValueError(f"unknown storage backend {backend!r} (known: 'sqlite', 'postgresql')")
