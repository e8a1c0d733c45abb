"""PrivateStore behaviour (XEP-0049 fragments), the same on every backend."""

from __future__ import annotations

import asyncio

import pytest

from roost.storage import Storage
from roost.storage.private import PrivateStore, fragment_name
from roost.storage.registry import export_user
from roost.xml.element import Element
from roost.xml.ns import NS_PRIVATE
from tests.unit.storage.storage_harness import StorageTarget, opened

HOST = "example.org"
PREFS = "{urn:example:prefs}prefs"


def test_a_fragment_is_named_by_its_qualified_name() -> None:
    assert fragment_name(Element("prefs", "urn:example:prefs")) == PREFS


@pytest.mark.asyncio
async def test_fragments_are_stored_replaced_and_removed(storage: Storage) -> None:
    private = storage.store(PrivateStore)
    assert await private.get(HOST, "alice", PREFS) is None
    assert await private.change(HOST, "alice", {PREFS: b"<one/>", "{b}x": b"<x/>"}, limit=10)
    assert await private.change(HOST, "alice", {PREFS: b"<two/>"}, limit=10)
    assert await private.get(HOST, "alice", PREFS) == b"<two/>"
    assert await private.names(HOST, "alice") == ["{b}x", PREFS]
    assert await private.change(HOST, "alice", {"{b}x": None, "{c}none": None}, limit=10)
    assert await private.names(HOST, "alice") == [PREFS]
    assert await private.get("other.example", "alice", PREFS) is None
    assert await private.get(HOST, "bob", PREFS) is None


@pytest.mark.asyncio
async def test_a_change_past_the_limit_changes_nothing(storage: Storage) -> None:
    private = storage.store(PrivateStore)
    assert await private.change(HOST, "alice", {"{a}1": b"1", "{a}2": b"2"}, limit=2)
    assert not await private.change(HOST, "alice", {"{a}1": None, "{a}3": b"3"}, limit=2)
    assert await private.names(HOST, "alice") == ["{a}1", "{a}2"]
    # replacing what is stored is no new fragment
    assert await private.change(HOST, "alice", {"{a}1": b"one"}, limit=2)
    assert await private.get(HOST, "alice", "{a}1") == b"one"


@pytest.mark.asyncio
async def test_concurrent_changes_never_exceed_the_limit(storage: Storage) -> None:
    private = storage.store(PrivateStore)
    results = await asyncio.gather(
        *(private.change(HOST, "alice", {f"{{n}}{i}": b"<f/>"}, limit=3) for i in range(10))
    )
    assert sum(results) == 3
    assert len(await private.names(HOST, "alice")) == 3


@pytest.mark.asyncio
async def test_fragments_are_exported_in_one_private_query_by_name(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", {})
    private = storage.store(PrivateStore)
    changes: dict[str, bytes | None] = {
        "{urn:b}b": b"<b xmlns='urn:b'/>",
        "{urn:a}a": b"<a xmlns='urn:a'>1</a>",
    }
    assert await private.change(HOST, "alice", changes, limit=10)
    (query,) = (await export_user(storage, HOST, "alice")).elements()
    assert (query.xmlns, query.name) == (NS_PRIVATE, "query")
    assert [(c.xmlns, c.name, c.text) for c in query.elements()] == [
        ("urn:a", "a", "1"),
        ("urn:b", "b", ""),
    ]


@pytest.mark.asyncio
async def test_fragments_kept_in_the_kv_store_move_here_at_the_upgrade(
    target: StorageTarget,
) -> None:
    await target.create_legacy(up_to=1)  # kv only, as roost before this store made it
    value = "X'3c702f3e'" if target.backend == "sqlite" else "'\\x3c702f3e'::bytea"
    await target.execute(
        f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'private', '{PREFS}', {value})"
    )
    await target.execute(f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'vcard', 'v', {value})")
    async with opened(target) as storage:
        assert await storage.store(PrivateStore).get(HOST, "alice", PREFS) == b"<p/>"
        assert await storage.kv.keys(HOST, "alice", "private") == []
        assert await storage.kv.get(HOST, "alice", "vcard", "v") == b"<p/>"  # left alone
    async with opened(target) as storage:  # the move happens once
        assert await storage.store(PrivateStore).names(HOST, "alice") == [PREFS]
