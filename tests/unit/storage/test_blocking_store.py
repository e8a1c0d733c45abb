"""BlockingStore behaviour (XEP-0191 block lists), the same on every backend."""

from __future__ import annotations

import pytest

from roost.storage import Storage

pytestmark = pytest.mark.asyncio

HOST = "example.org"


async def test_user_without_block_list_blocks_nobody(storage: Storage) -> None:
    assert await storage.blocking.list(HOST, "alice") == []


async def test_blocked_jids_are_listed_sorted_by_code_point(storage: Storage) -> None:
    jids = ["romeo@montague.example", "Zed@x.example", "montague.example", "éve@x.example"]
    await storage.blocking.add(HOST, "alice", jids)
    await storage.blocking.add(HOST, "alice", ["romeo@montague.example/orchard"])
    assert await storage.blocking.list(HOST, "alice") == sorted(
        [*jids, "romeo@montague.example/orchard"]
    )


async def test_blocking_twice_keeps_one_entry(storage: Storage) -> None:
    await storage.blocking.add(HOST, "alice", ["a@x.example", "a@x.example"])
    await storage.blocking.add(HOST, "alice", ["a@x.example", "b@x.example"])
    await storage.blocking.add(HOST, "alice", [])
    assert await storage.blocking.list(HOST, "alice") == ["a@x.example", "b@x.example"]


async def test_unblocking_removes_only_those_jids(storage: Storage) -> None:
    await storage.blocking.add(HOST, "alice", ["a@x.example", "b@x.example", "x.example"])
    await storage.blocking.remove(HOST, "alice", ["a@x.example", "never@x.example"])
    await storage.blocking.remove(HOST, "alice", [])
    assert await storage.blocking.list(HOST, "alice") == ["b@x.example", "x.example"]


async def test_clear_unblocks_everyone_of_that_user_only(storage: Storage) -> None:
    await storage.blocking.add(HOST, "alice", ["a@x.example", "b@x.example"])
    await storage.blocking.add(HOST, "bob", ["a@x.example"])
    await storage.blocking.add("b.example", "alice", ["c@x.example"])
    await storage.blocking.clear(HOST, "alice")
    await storage.blocking.clear(HOST, "alice")  # harmless twice
    assert await storage.blocking.list(HOST, "alice") == []
    assert await storage.blocking.list(HOST, "bob") == ["a@x.example"]
    assert await storage.blocking.list("b.example", "alice") == ["c@x.example"]


async def test_block_lists_are_isolated_per_user_and_host(storage: Storage) -> None:
    await storage.blocking.add("a.example", "alice", ["a@x.example"])
    await storage.blocking.add("b.example", "alice", ["b@x.example"])
    await storage.blocking.remove("b.example", "alice", ["a@x.example"])
    assert await storage.blocking.list("a.example", "alice") == ["a@x.example"]
    assert await storage.blocking.list("b.example", "alice") == ["b@x.example"]
    assert await storage.blocking.list("a.example", "bob") == []
