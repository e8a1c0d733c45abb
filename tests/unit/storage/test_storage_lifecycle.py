"""Opening, closing, schema migrations, and several Storage instances on one database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from roost.storage import StorageError, open_storage, postgres, sqlite
from roost.storage.base import (
    USER_DATA_TABLES,
    Migration,
    RosterItem,
    load_migrations,
    newest_schema_version,
    pending_migrations,
)
from roost.storage.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SqliteStorage
from tests.unit.storage.storage_harness import (
    StorageTarget,
    binary_credentials,
    opened,
)

HOST = "example.org"


@pytest.mark.asyncio
async def test_open_migrates_to_the_newest_version(target: StorageTarget) -> None:
    storage = target.new()
    assert storage.schema_version == 0
    await storage.open()
    try:
        assert storage.schema_version == newest_schema_version(target.backend) >= 1
    finally:
        await storage.close()
    versions = await target.column("SELECT version FROM schema_version ORDER BY version")
    assert versions == [m.version for m in load_migrations(target.backend)]


@pytest.mark.asyncio
async def test_every_table_has_a_host_column(target: StorageTarget) -> None:
    async with opened(target):
        pass
    tables = await target.tables()
    if target.backend == "sqlite":
        missing = [
            t
            for t in tables
            if "host" not in await target.column(f"SELECT name FROM pragma_table_info('{t}')")
        ]
    else:
        with_host = await target.column(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'host'"
        )
        missing = [t for t in tables if t not in with_host]
    assert {"accounts", "credentials", "kv", *USER_DATA_TABLES} <= set(tables)
    assert missing == []


@pytest.mark.asyncio
async def test_reopened_storage_keeps_its_data(target: StorageTarget) -> None:
    async with opened(target) as storage:
        await storage.accounts.create(HOST, "alice", binary_credentials(1))
        await storage.kv.set(HOST, "alice", "private", "k", b"v")
    async with opened(target) as storage:
        assert await storage.accounts.get_credentials(HOST, "alice") == binary_credentials(1)
        assert await storage.kv.get(HOST, "alice", "private", "k") == b"v"


@pytest.mark.asyncio
async def test_opening_a_migrated_database_again_changes_nothing(target: StorageTarget) -> None:
    async with opened(target) as storage:
        await storage.accounts.create(HOST, "alice", {})
    async with opened(target) as storage:
        assert storage.schema_version == newest_schema_version(target.backend)
        assert await storage.accounts.list(HOST) == ["alice"]
    versions = await target.column("SELECT version FROM schema_version")
    assert len(versions) == len(load_migrations(target.backend))


@pytest.mark.asyncio
async def test_database_at_schema_1_is_migrated_to_2_keeping_its_data(
    target: StorageTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def up_to_schema_1(dialect: str, current: int, where: str) -> tuple[Migration, ...]:
        return tuple(m for m in pending_migrations(dialect, current, where) if m.version <= 1)

    with monkeypatch.context() as patch:  # the real runner, stopped after 0001
        for backend in (sqlite, postgres):
            patch.setattr(backend, "pending_migrations", up_to_schema_1)
        async with opened(target) as old:
            assert old.schema_version == 1
            await old.accounts.create(HOST, "alice", binary_credentials(1))
            await old.kv.set(HOST, "alice", "private", "k", b"v")
    assert "roster_items" not in await target.tables()
    async with opened(target) as storage:
        assert storage.schema_version == newest_schema_version(target.backend) >= 2
        assert await storage.accounts.get_credentials(HOST, "alice") == binary_credentials(1)
        assert await storage.kv.get(HOST, "alice", "private", "k") == b"v"
        assert await storage.roster.put(HOST, "alice", RosterItem("bob@x.example")) == 1
        assert await storage.offline.push(HOST, "alice", b"<message/>", limit=1)
        await storage.blocking.add(HOST, "alice", ["eve@x.example"])
        assert await storage.accounts.delete(HOST, "alice")
    versions = await target.column("SELECT version FROM schema_version ORDER BY version")
    assert versions == [m.version for m in load_migrations(target.backend)]


@pytest.mark.asyncio
async def test_simultaneous_opens_of_a_new_database_migrate_once(target: StorageTarget) -> None:
    storages = [target.new() for _ in range(3)]
    await asyncio.gather(*(s.open() for s in storages))
    try:
        await storages[0].accounts.create(HOST, "alice", {})
        for storage in storages:
            assert await storage.accounts.exists(HOST, "alice")
    finally:
        await asyncio.gather(*(s.close() for s in storages))
    versions = await target.column("SELECT version FROM schema_version")
    assert len(versions) == len(load_migrations(target.backend))


@pytest.mark.asyncio
async def test_database_newer_than_the_code_is_refused(target: StorageTarget) -> None:
    async with opened(target):
        pass
    await target.execute("INSERT INTO schema_version (version, name) VALUES (9999, 'future')")
    storage = target.new()
    with pytest.raises(StorageError, match="newer than this roost"):
        await storage.open()
    assert storage.schema_version == 0
    with pytest.raises(StorageError, match="not open"):
        await storage.accounts.list(HOST)


@pytest.mark.asyncio
async def test_stores_refuse_use_before_open_and_after_close(target: StorageTarget) -> None:
    storage = target.new()
    with pytest.raises(StorageError, match="not open"):
        await storage.accounts.exists(HOST, "alice")
    await storage.open()
    await storage.close()
    with pytest.raises(StorageError, match="not open"):
        await storage.kv.get(HOST, "alice", "s", "k")
    await storage.close()  # closing twice is harmless


def test_open_storage_rejects_unknown_backends_and_missing_locations() -> None:
    with pytest.raises(ValueError, match="unknown storage backend"):
        open_storage("mysql", dsn="mysql://localhost")
    with pytest.raises(ValueError, match="path"):
        open_storage("sqlite")
    with pytest.raises(ValueError, match="dsn"):
        open_storage("postgresql")


@pytest.mark.asyncio
async def test_unreachable_postgresql_raises_storage_error_without_password() -> None:
    # port 9 (discard) on loopback: nothing listens there, the connection is refused at once
    storage = open_storage("postgresql", dsn="postgresql://roost:s3cret@127.0.0.1:9/roost")
    with pytest.raises(StorageError, match="cannot connect") as info:
        await storage.open()
    assert "s3cret" not in str(info.value)


@pytest.mark.asyncio
async def test_sqlite_file_that_is_not_a_database_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "roost.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some text " * 100)
    with pytest.raises(StorageError, match=r"roost\.sqlite"):
        await open_storage("sqlite", path=path).open()


@pytest.mark.asyncio
async def test_malformed_postgresql_dsn_raises_storage_error_without_password() -> None:
    storage = open_storage("postgresql", dsn="postgresql://roost:s3cret@127.0.0.1:port/roost")
    with pytest.raises(StorageError, match="cannot connect") as info:
        await storage.open()
    assert "s3cret" not in str(info.value)


@pytest.mark.asyncio
async def test_sqlite_connection_is_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "roost.sqlite")
    await storage.open()
    try:
        async with storage.reading() as db:
            settings = [
                next(iter(await db.execute_fetchall(f"PRAGMA {name}")))[0]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
    finally:
        await storage.close()
    assert settings == ["wal", 2, 1, DEFAULT_BUSY_TIMEOUT_MS]  # synchronous 2 = FULL


@pytest.mark.asyncio
async def test_sqlite_second_storage_on_the_same_file_writes_beside_the_first(
    tmp_path: Path,
) -> None:
    # the server and `roost user add` both open the file
    target = StorageTarget("sqlite", path=tmp_path / "roost.sqlite")
    async with opened(target) as server, opened(target) as cli:
        await asyncio.gather(
            *(server.accounts.create(HOST, f"s{i}", binary_credentials(i)) for i in range(10)),
            *(cli.accounts.create(HOST, f"c{i}", binary_credentials(i)) for i in range(10)),
            *(server.kv.set(HOST, "s0", "st", f"k{i}", b"v") for i in range(10)),
        )
        expected = sorted([f"s{i}" for i in range(10)] + [f"c{i}" for i in range(10)])
        assert await server.accounts.list(HOST) == expected
        assert await cli.accounts.list(HOST) == expected
        assert await cli.accounts.get_credentials(HOST, "s3") == binary_credentials(3)
        assert len(await cli.kv.keys(HOST, "s0", "st")) == 10


@pytest.mark.asyncio
async def test_sqlite_writer_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    target = StorageTarget("sqlite", path=tmp_path / "roost.sqlite")
    async with (
        opened(target) as storage,
        aiosqlite.connect(target.path or "", isolation_level=None) as other,
    ):
        await other.execute("BEGIN IMMEDIATE")
        await other.execute("INSERT INTO accounts (host, username) VALUES ('example.org', 'bob')")
        create = asyncio.create_task(storage.accounts.create(HOST, "alice", {}))
        await asyncio.sleep(0.3)
        assert not create.done()  # waiting on busy_timeout, not failed with "locked"
        # WAL: readers are not blocked by the writer (the storage's own connection is busy)
        assert await target.column("SELECT username FROM accounts") == []
        await other.execute("COMMIT")
        await asyncio.wait_for(create, timeout=5)
        assert await storage.accounts.list(HOST) == ["alice", "bob"]
