"""Schema versions per store, migrated at open, and the upgrade of databases from before them.

Each store owns its schema: a tuple of numbered ``Migration``s in its own file, written once
for both dialects (sql.py macros). The ``store_schema`` table records the migrations applied,
per store; ``migrate()`` applies the missing ones of every registered store in one
transaction, under a lock, so several processes or nodes opening a new database at once
migrate it exactly once, one after the other. A store whose recorded version is newer than
its newest migration is refused with a StorageError (an older roost must not write to a
schema it does not know); rows of stores this code does not register are left alone.

Before per-store schemas (roost up to d931bf1), one global version was kept in the
``schema_version`` table: 1 = accounts, credentials and kv; 2 = rosters, offline messages
and block lists. ``migrate()`` adopts such a database: the tables those versions created are
exactly the first migration of the stores in LEGACY_VERSIONS, so it records those store
versions and changes no table. It then records LEGACY_MARK as the global version, which
roost from before refuses to open ("newer than this roost knows") instead of writing to a
schema it would misread. New databases get the mark too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from roost.storage.sql import Database, StorageError, Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered change of a store's schema: ``sql`` brings version - 1 to ``version``.

    ``sql`` holds one or more statements in the stores' SQL (sql.py), without parameters.
    """

    version: int
    name: str
    sql: str


# The tables that record schema versions: the only ones without a host column.
BOOKKEEPING_TABLES: Final = ("schema_version", "store_schema")

# What each global version of roost before per-store schemas had created, as store versions.
LEGACY_VERSIONS: Final[Mapping[int, Mapping[str, int]]] = {
    1: {"accounts": 1, "kv": 1},
    2: {"roster": 1, "offline": 1, "blocking": 1},
}
LEGACY_MARK: Final = 1000  # the global version of databases with per-store schemas

_CREATE_STORE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS store_schema (
    store      TEXT        NOT NULL,
    version    INTEGER     NOT NULL CHECK (version > 0),
    name       TEXT        NOT NULL,
    applied_at {timestamp} NOT NULL DEFAULT {now},
    PRIMARY KEY (store, version)
)"""

_CREATE_LEGACY: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at {timestamp} NOT NULL DEFAULT {now}
)"""


def check_migrations(store: str, migrations: Sequence[Migration]) -> None:
    """Raise StorageError unless the store's migrations are numbered 1, 2, ... in order."""
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StorageError(f"store {store}: migrations must be numbered 1, 2, ...: {numbers}")


async def migrate(db: Database, schemas: Mapping[str, Sequence[Migration]]) -> dict[str, int]:
    """Bring every store named in ``schemas`` to its newest migration; the versions now."""
    for store, migrations in schemas.items():
        check_migrations(store, migrations)
    async with db.transaction() as tx:
        await tx.lock("roost", "schema")
        await tx.execute(_CREATE_STORE_SCHEMA)
        await _adopt_legacy(tx, db.where)
        rows = await tx.fetch("SELECT store, MAX(version) FROM store_schema GROUP BY store")
        current = {str(row[0]): int(row[1]) for row in rows}
        for store, migrations in schemas.items():
            await _migrate_store(tx, db.where, store, current.get(store, 0), migrations)
    return {store: len(migrations) for store, migrations in schemas.items()}


async def _migrate_store(
    tx: Transaction, where: str, store: str, version: int, migrations: Sequence[Migration]
) -> None:
    if version > len(migrations):
        raise StorageError(
            f"{where}: the schema of the {store} store is at version {version}, newer than "
            f"this roost knows (up to {len(migrations)}); upgrade roost, or use a database "
            "it created"
        )
    for migration in migrations[version:]:
        await tx.run_script(migration.sql)
        await _record(tx, store, migration.version, migration.name)
        log.info(
            "%s: %s schema migrated to %d (%s)", where, store, migration.version, migration.name
        )


async def _record(tx: Transaction, store: str, version: int, name: str) -> None:
    await tx.execute(
        "INSERT INTO store_schema (store, version, name) VALUES (?, ?, ?)", store, version, name
    )


async def _adopt_legacy(tx: Transaction, where: str) -> None:
    """Record the store versions of a database from before per-store schemas (see above)."""
    await tx.execute(_CREATE_LEGACY)
    legacy = int(await tx.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    if legacy == LEGACY_MARK:
        return
    if legacy > max(LEGACY_VERSIONS):
        raise StorageError(
            f"{where}: the database schema is at version {legacy}, newer than this roost "
            f"knows; upgrade roost, or use a database it created"
        )
    for global_version in range(1, legacy + 1):
        for store, version in LEGACY_VERSIONS[global_version].items():
            await _record(tx, store, version, f"adopted from schema {global_version:04d}")
    await tx.execute(
        "INSERT INTO schema_version (version, name) VALUES (?, ?)",
        LEGACY_MARK,
        "per-store schema versions: see store_schema",
    )
    if legacy:
        log.info("%s: schema %04d adopted as per-store schema versions", where, legacy)
