"""KeyValueStore behaviour, the same on every backend."""

from __future__ import annotations

import pytest

from roost.storage import Storage
from tests.unit.storage.storage_harness import (
    binary_credentials,
)

HOST = "example.org"


@pytest.mark.asyncio
async def test_unset_key_is_none(storage: Storage) -> None:
    assert await storage.kv.get(HOST, "alice", "private", "nothing") is None
    assert await storage.kv.keys(HOST, "alice", "private") == []


@pytest.mark.asyncio
async def test_set_value_is_returned_and_overwritten(storage: Storage) -> None:
    await storage.kv.set(HOST, "alice", "private", "storage:bookmarks", b"<one/>")
    assert await storage.kv.get(HOST, "alice", "private", "storage:bookmarks") == b"<one/>"
    await storage.kv.set(HOST, "alice", "private", "storage:bookmarks", b"<two/>")
    assert await storage.kv.get(HOST, "alice", "private", "storage:bookmarks") == b"<two/>"
    assert await storage.kv.keys(HOST, "alice", "private") == ["storage:bookmarks"]


@pytest.mark.asyncio
async def test_binary_values_round_trip_byte_exact(storage: Storage) -> None:
    values = {"empty": b"", "bytes": bytes(range(256)) * 4, "big": b"\x00\xff" * 500_000}
    for key, value in values.items():
        await storage.kv.set(HOST, "alice", "blobs", key, value)
    for key, value in values.items():
        assert await storage.kv.get(HOST, "alice", "blobs", key) == value


@pytest.mark.asyncio
async def test_deleted_key_is_gone_and_deleting_twice_is_harmless(storage: Storage) -> None:
    await storage.kv.set(HOST, "alice", "vcard", "current", b"<vCard/>")
    await storage.kv.set(HOST, "alice", "vcard", "photo", b"\x89PNG")
    await storage.kv.delete(HOST, "alice", "vcard", "current")
    await storage.kv.delete(HOST, "alice", "vcard", "current")
    assert await storage.kv.get(HOST, "alice", "vcard", "current") is None
    assert await storage.kv.keys(HOST, "alice", "vcard") == ["photo"]


@pytest.mark.asyncio
async def test_keys_are_sorted_and_per_store(storage: Storage) -> None:
    for key in ["b", "a", "é", "C"]:
        await storage.kv.set(HOST, "alice", "one", key, b"1")
    await storage.kv.set(HOST, "alice", "two", "z", b"2")
    assert await storage.kv.keys(HOST, "alice", "one") == ["C", "a", "b", "é"]
    assert await storage.kv.keys(HOST, "alice", "two") == ["z"]
    assert await storage.kv.get(HOST, "alice", "two", "a") is None


@pytest.mark.asyncio
async def test_values_are_isolated_per_user_and_host(storage: Storage) -> None:
    await storage.kv.set("a.example", "alice", "s", "k", b"a-alice")
    await storage.kv.set("b.example", "alice", "s", "k", b"b-alice")
    await storage.kv.set("a.example", "bob", "s", "k", b"a-bob")
    assert await storage.kv.get("a.example", "alice", "s", "k") == b"a-alice"
    assert await storage.kv.get("b.example", "alice", "s", "k") == b"b-alice"
    assert await storage.kv.get("a.example", "bob", "s", "k") == b"a-bob"
    await storage.kv.delete("b.example", "alice", "s", "k")
    assert await storage.kv.get("a.example", "alice", "s", "k") == b"a-alice"


@pytest.mark.asyncio
async def test_deleting_an_account_removes_its_kv_rows_only(storage: Storage) -> None:
    for host in ("a.example", "b.example"):
        await storage.accounts.create(host, "alice", binary_credentials(1))
        await storage.kv.set(host, "alice", "private", "k", b"v")
        await storage.kv.set(host, "alice", "vcard", "current", b"<vCard/>")
    await storage.kv.set("a.example", "bob", "private", "k", b"bob's")
    assert await storage.accounts.delete("a.example", "alice")
    assert await storage.kv.keys("a.example", "alice", "private") == []
    assert await storage.kv.keys("a.example", "alice", "vcard") == []
    assert await storage.kv.get("a.example", "bob", "private", "k") == b"bob's"
    assert await storage.kv.get("b.example", "alice", "vcard", "current") == b"<vCard/>"
    # a re-created account starts empty
    await storage.accounts.create("a.example", "alice", {})
    assert await storage.kv.get("a.example", "alice", "private", "k") is None
