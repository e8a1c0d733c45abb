"""Opening, closing, per-store schema migrations, and several Storage instances on one database.

Databases made by roost before per-store schemas (the migration files of d931bf1, in
legacy_schema/) open with all their data (schema.py: adoption of the global version).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from roost.storage import StorageError, open_storage
from roost.storage.private import PrivateStore
from roost.storage.registry import STORES
from roost.storage.roster import RosterChange, RosterItem
from roost.storage.schema import LEGACY_MARK
from roost.storage.sqlite_db import DEFAULT_BUSY_TIMEOUT_MS
from tests.unit.storage.legacy_data import check_legacy_data, write_legacy_data
from tests.unit.storage.storage_harness import (
    StorageTarget,
    binary_credentials,
    opened,
)

HOST = "example.org"
NEWEST = {store.name: len(store.schema) for store in STORES}


async def _recorded(target: StorageTarget) -> dict[str, list[int]]:
    """store → the versions recorded in store_schema, in order."""
    rows = await target.column(
        "SELECT store || ':' || CAST(version AS TEXT) FROM store_schema ORDER BY store, version"
    )
    found: dict[str, list[int]] = {}
    for row in rows:
        store, _, version = str(row).partition(":")
        found.setdefault(store, []).append(int(version))
    return found


@pytest.mark.asyncio
async def test_open_migrates_every_store_to_its_newest_version(target: StorageTarget) -> None:
    storage = target.new()
    assert storage.schema_versions == {}
    await storage.open()
    try:
        assert storage.schema_versions == NEWEST
        assert all(version >= 1 for version in NEWEST.values())
        assert "roster 2" in storage.schema_version
    finally:
        await storage.close()
    assert await _recorded(target) == {name: list(range(1, n + 1)) for name, n in NEWEST.items()}
    # roost from before per-store schemas finds a version it does not know, and refuses
    assert await target.column("SELECT MAX(version) FROM schema_version") == [LEGACY_MARK]


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
    assert {"accounts", "credentials", "kv", "roster_items", "offline_messages"} <= set(tables)
    assert {"blocked_jids", "archive", "roster_version_floors"} <= set(tables)
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
    before = await _recorded(target)
    async with opened(target) as storage:
        assert storage.schema_versions == NEWEST
        assert await storage.accounts.list(HOST) == ["alice"]
    assert await _recorded(target) == before
    assert await target.column("SELECT version FROM schema_version") == [LEGACY_MARK]


@pytest.mark.asyncio
async def test_database_of_the_global_schema_2_opens_with_all_its_data(
    target: StorageTarget,
) -> None:
    await target.create_legacy(up_to=2)
    await write_legacy_data(target)
    async with opened(target) as storage:
        assert storage.schema_versions == NEWEST
        await check_legacy_data(storage)
    recorded = await _recorded(target)
    assert recorded["accounts"] == recorded["kv"] == recorded["offline"] == [1]
    assert recorded["roster"] == [1, 2]  # 1 adopted, 2 (version floors) applied
    legacy = await target.column("SELECT version FROM schema_version ORDER BY version")
    assert legacy == [1, 2, LEGACY_MARK]


@pytest.mark.asyncio
async def test_database_of_the_global_schema_1_gets_the_newer_stores(
    target: StorageTarget,
) -> None:
    await target.create_legacy(up_to=1)
    await target.execute(
        "INSERT INTO kv (host, username, store, key, value) VALUES"
        " ('example.org', 'alice', 'private', 'k', X'76')"
        if target.backend == "sqlite"
        else "INSERT INTO kv VALUES ('example.org', 'alice', 'private', 'k', '\\x76'::bytea)"
    )
    assert "roster_items" not in await target.tables()
    async with opened(target) as storage:
        await storage.accounts.create(HOST, "alice", binary_credentials(1))
        # private XML kept in the kv store then moved to its own store (storage/private.py)
        assert await storage.store(PrivateStore).get(HOST, "alice", "k") == b"v"
        assert await storage.kv.get(HOST, "alice", "private", "k") is None
        assert await storage.roster.put(HOST, "alice", RosterItem("bob@x.example")) == 1
        assert await storage.roster.changes_since(HOST, "alice", 0) == [
            RosterChange("bob@x.example", RosterItem("bob@x.example"), 1)
        ]
        assert await storage.offline.push(HOST, "alice", b"<message/>", limit=1)
        await storage.blocking.add(HOST, "alice", ["eve@x.example"])
        assert await storage.accounts.delete(HOST, "alice")
    recorded = await _recorded(target)
    assert recorded["kv"] == [1]
    assert recorded["offline"] == [1]


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
    assert await _recorded(target) == {name: list(range(1, n + 1)) for name, n in NEWEST.items()}


@pytest.mark.asyncio
async def test_store_schema_newer_than_the_code_is_refused(target: StorageTarget) -> None:
    async with opened(target):
        pass
    await target.execute(
        "INSERT INTO store_schema (store, version, name) VALUES ('roster', 99, 'x')"
    )
    storage = target.new()
    with pytest.raises(StorageError, match="roster store is at version 99, newer than this roost"):
        await storage.open()
    assert storage.schema_versions == {}
    with pytest.raises(StorageError, match="not open"):
        await storage.accounts.list(HOST)


@pytest.mark.asyncio
async def test_unknown_global_schema_version_is_refused(target: StorageTarget) -> None:
    await target.create_legacy(up_to=2)
    await target.execute("INSERT INTO schema_version (version, name) VALUES (3, 'future')")
    with pytest.raises(StorageError, match="version 3, newer than this roost"):
        await target.new().open()
    # nothing adopted, nothing marked: the whole migration was rolled back
    assert await target.column("SELECT MAX(version) FROM schema_version") == [3]


@pytest.mark.asyncio
async def test_rows_of_stores_this_code_does_not_know_are_left_alone(
    target: StorageTarget,
) -> None:
    async with opened(target):
        pass
    await target.execute(
        "INSERT INTO store_schema (store, version, name) VALUES ('plugin', 3, 'x')"
    )
    async with opened(target) as storage:
        assert "plugin" not in storage.schema_versions
    assert (await _recorded(target))["plugin"] == [3]


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
    storage = open_storage("sqlite", path=tmp_path / "roost.sqlite")
    await storage.open()
    try:
        settings = [
            await storage.db.fetchval(f"PRAGMA {name}")
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
