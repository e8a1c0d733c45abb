"""OfflineStore behaviour (XEP-0160 offline messages), the same on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from roost.storage import Storage
from tests.unit.storage.storage_harness import StorageTarget, opened

pytestmark = pytest.mark.asyncio

HOST = "example.org"
LIMIT = 100


async def test_user_without_messages_has_none(storage: Storage) -> None:
    assert await storage.offline.fetch(HOST, "alice") == []
    assert await storage.offline.count(HOST, "alice") == 0


async def test_messages_are_fetched_oldest_first_byte_exact(storage: Storage) -> None:
    stanzas = [b"<message id='1'/>", bytes(range(256)), b"", "<m>é</m>".encode()]
    for stanza in stanzas:
        assert await storage.offline.push(HOST, "alice", stanza, limit=LIMIT)
    fetched = await storage.offline.fetch(HOST, "alice")
    assert [stanza for _, stanza in fetched] == stanzas
    ids = [message_id for message_id, _ in fetched]
    assert ids == sorted(set(ids))
    assert await storage.offline.count(HOST, "alice") == 4


async def test_deleted_ids_are_gone_and_the_others_stay(storage: Storage) -> None:
    for n in range(5):
        await storage.offline.push(HOST, "alice", b"m%d" % n, limit=LIMIT)
    ids = [message_id for message_id, _ in await storage.offline.fetch(HOST, "alice")]
    await storage.offline.delete(HOST, "alice", [ids[0], ids[3]])
    await storage.offline.delete(HOST, "alice", [ids[0], 999_999])  # absent ids are fine
    await storage.offline.delete(HOST, "alice", [])
    assert await storage.offline.fetch(HOST, "alice") == [
        (ids[1], b"m1"),
        (ids[2], b"m2"),
        (ids[4], b"m4"),
    ]
    assert await storage.offline.count(HOST, "alice") == 3


async def test_ids_are_never_reused_after_deleting_the_newest(storage: Storage) -> None:
    await storage.offline.push(HOST, "alice", b"a", limit=LIMIT)
    await storage.offline.push(HOST, "alice", b"b", limit=LIMIT)
    newest = (await storage.offline.fetch(HOST, "alice"))[-1][0]
    await storage.offline.delete(HOST, "alice", [newest])
    await storage.offline.push(HOST, "alice", b"c", limit=LIMIT)
    assert (await storage.offline.fetch(HOST, "alice"))[-1][0] > newest


async def test_push_beyond_the_limit_is_refused_and_stores_nothing(storage: Storage) -> None:
    assert await storage.offline.push(HOST, "alice", b"1", limit=2)
    assert await storage.offline.push(HOST, "alice", b"2", limit=2)
    assert not await storage.offline.push(HOST, "alice", b"3", limit=2)
    assert [m for _, m in await storage.offline.fetch(HOST, "alice")] == [b"1", b"2"]
    assert not await storage.offline.push(HOST, "bob", b"x", limit=0)
    assert await storage.offline.count(HOST, "bob") == 0
    # room again once delivered messages are deleted
    first_id = (await storage.offline.fetch(HOST, "alice"))[0][0]
    await storage.offline.delete(HOST, "alice", [first_id])
    assert await storage.offline.push(HOST, "alice", b"3", limit=2)
    assert [m for _, m in await storage.offline.fetch(HOST, "alice")] == [b"2", b"3"]


async def test_concurrent_pushes_never_exceed_the_limit(target: StorageTarget) -> None:
    async with opened(target) as one, opened(target) as two:
        accepted = await asyncio.gather(
            *(
                (one if n % 2 else two).offline.push(HOST, "alice", b"%d" % n, limit=5)
                for n in range(20)
            )
        )
        assert accepted.count(True) == 5
        assert await one.offline.count(HOST, "alice") == 5


async def test_pushed_message_is_visible_to_another_connection_at_once(
    target: StorageTarget,
) -> None:
    # committed before push() returns: the sender may be told it was stored
    async with opened(target) as server, opened(target) as other:
        assert await server.offline.push(HOST, "alice", b"<message/>", limit=LIMIT)
        assert [m for _, m in await other.offline.fetch(HOST, "alice")] == [b"<message/>"]


async def test_expire_deletes_messages_stored_before_the_time_for_every_user(
    storage: Storage,
) -> None:
    await storage.offline.push(HOST, "alice", b"old-a", limit=LIMIT)
    await storage.offline.push("b.example", "bob", b"old-b", limit=LIMIT)
    await asyncio.sleep(0.02)
    cutoff = time.time()
    await asyncio.sleep(0.02)
    await storage.offline.push(HOST, "alice", b"new-a", limit=LIMIT)
    assert await storage.offline.expire(cutoff - 3600) == 0
    assert await storage.offline.expire(cutoff) == 2
    assert [m for _, m in await storage.offline.fetch(HOST, "alice")] == [b"new-a"]
    assert await storage.offline.count("b.example", "bob") == 0
    assert await storage.offline.expire(cutoff) == 0


async def test_messages_are_isolated_per_user_and_host(storage: Storage) -> None:
    await storage.offline.push("a.example", "alice", b"a-alice", limit=1)
    await storage.offline.push("b.example", "alice", b"b-alice", limit=1)
    await storage.offline.push("a.example", "bob", b"a-bob", limit=1)
    assert [m for _, m in await storage.offline.fetch("a.example", "alice")] == [b"a-alice"]
    assert [m for _, m in await storage.offline.fetch("b.example", "alice")] == [b"b-alice"]
    # ids of another user are not deleted through this one
    bob_id = (await storage.offline.fetch("a.example", "bob"))[0][0]
    await storage.offline.delete("a.example", "alice", [bob_id])
    assert await storage.offline.count("a.example", "bob") == 1
    await storage.offline.delete("b.example", "bob", [bob_id])
    assert await storage.offline.count("a.example", "bob") == 1
