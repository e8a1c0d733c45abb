"""What the storage tests share: the backends to run against, and raw access to a database.

Every storage test runs once per backend: "sqlite" on a file in tmp_path, "postgresql" on a
fresh database of the session's throw-away cluster (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiosqlite
import asyncpg
import pytest

from roost.auth.credentials import Credentials, ScramKeys
from roost.storage import Storage, open_storage
from roost.storage.roster import SqlRosterStore
from roost.storage.schema import BOOKKEEPING_TABLES
from roost.storage.sqlite_db import split_statements

# The migrations of roost before per-store schemas (d931bf1), to make databases as it did.
LEGACY_SCHEMA: Final = Path(__file__).parent / "legacy_schema"

BACKENDS: Final = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@dataclass(frozen=True, slots=True)
class StorageTarget:
    """One database of one backend; new() makes another Storage on the same database."""

    backend: str
    path: Path | None = None
    dsn: str = ""

    def new(self, *, roster_tombstones: int | None = None) -> Storage:
        """A Storage on this database, made by open_storage()."""
        storage = open_storage(self.backend, path=self.path, dsn=self.dsn)
        if roster_tombstones is not None:
            storage.store(SqlRosterStore).tombstones_kept = roster_tombstones
        return storage

    async def execute(self, sql: str) -> None:
        """Run SQL on the database directly, behind roost's back."""
        if self.path is not None:
            async with aiosqlite.connect(self.path) as db:
                await db.execute(sql)
                await db.commit()
        else:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

    async def column(self, sql: str) -> list[object]:
        """The first column of a query's rows, read directly."""
        if self.path is not None:
            async with aiosqlite.connect(self.path) as db:
                return [row[0] for row in await db.execute_fetchall(sql)]
        conn = await asyncpg.connect(self.dsn)
        try:
            return [row[0] for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def create_legacy(self, up_to: int) -> None:
        """Make the database as roost before per-store schemas did: its migration files
        0001..``up_to`` applied, each recorded in schema_version."""
        statements = [
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        ]
        for path in sorted((LEGACY_SCHEMA / self.backend).glob("*.sql"))[:up_to]:
            version, _, name = path.stem.partition("_")
            statements.extend(split_statements(path.read_text(encoding="utf-8")))
            statements.append(f"INSERT INTO schema_version VALUES ({int(version)}, '{name}')")
        for statement in statements:
            await self.execute(statement)

    async def tables(self) -> list[str]:
        """The names of the database's tables, the schema bookkeeping excepted."""
        if self.path is not None:  # sqlite_sequence & co. belong to SQLite (AUTOINCREMENT)
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        names = [str(name) for name in await self.column(sql)]
        return sorted(name for name in names if name not in BOOKKEEPING_TABLES)


def make_target(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """The target for the backend a fixture is parametrised with (BACKENDS)."""
    backend = str(request.param)
    if backend == "sqlite":
        return StorageTarget(backend, path=tmp_path / "roost.sqlite")
    dsn = request.getfixturevalue("postgres_dsn")
    return StorageTarget(backend, dsn=str(dsn))


@asynccontextmanager
async def opened(target: StorageTarget) -> AsyncIterator[Storage]:
    """A new Storage on the target, open for the block."""
    storage = target.new()
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


def binary_credentials(seed: int) -> Credentials:
    """Credentials for all three hashes whose bytes include NUL, 0xff and every byte value."""
    sizes = {"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}
    return {
        name: ScramKeys(
            salt=bytes((seed + i) % 256 for i in range(256)),
            iterations=4096 + seed,
            stored_key=bytes((seed * 7 + i) % 256 for i in range(size - 1)) + b"\x00",
            server_key=b"\xff" + bytes((seed * 13 + i) % 256 for i in range(size - 1)),
        )
        for name, size in sizes.items()
    }
