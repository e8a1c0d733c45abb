"""ArchiveStore behaviour (the generic archive: MAM, MUC history, PubSub items), on every backend.

Paging follows XEP-0059 (RSM) as XEP-0313 §4.3 uses it: pages oldest first, ``complete``
when the page reaches the end in the query's direction, ``count`` of the whole result.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from roost.storage import Storage
from roost.storage.archive import ArchiveKey, ArchivePage, ArchiveQuery, UnknownArchiveId
from tests.unit.storage.storage_harness import StorageTarget, opened

pytestmark = pytest.mark.asyncio

ALICE = ArchiveKey("example.org", "mam", "alice")
T0 = 1_700_000_000_000_000  # microseconds


async def fill(storage: Storage, key: ArchiveKey, n: int, *, step: int = 1000) -> list[str]:
    """n entries one step apart, with bob and carol in turn; their ids, oldest first."""
    return [
        await storage.archive.append(
            key,
            f"<message id='{i}'/>".encode(),
            with_jid="bob@x.example" if i % 2 == 0 else "carol@x.example",
            direction="in" if i % 3 else "out",
            timestamp=T0 + i * step,
            text=f"message number {i}",
        )
        for i in range(n)
    ]


def ids(page: ArchivePage) -> list[str]:
    return [entry.id for entry in page.entries]


async def test_appended_entry_reads_back_whole(storage: Storage) -> None:
    payload = b"<message xmlns='jabber:client'>\x00\xff</message>"
    entry_id = await storage.archive.append(
        ALICE, payload, with_jid="bob@x.example", direction="out", timestamp=T0 + 7
    )
    entry = await storage.archive.get(ALICE, entry_id)
    assert entry is not None
    assert (entry.id, entry.timestamp, entry.with_jid, entry.direction, entry.payload) == (
        entry_id,
        T0 + 7,
        "bob@x.example",
        "out",
        payload,
    )
    assert await storage.archive.get(ArchiveKey("example.org", "muc", "alice"), entry_id) is None


async def test_ids_are_unique_and_time_defaults_to_now(storage: Storage) -> None:
    before = time.time_ns() // 1000
    first = await storage.archive.append(ALICE, b"<a/>", with_jid="b@x")
    second = await storage.archive.append(ALICE, b"<b/>", with_jid="b@x")
    after = time.time_ns() // 1000
    assert first != second
    assert len(first) >= 16
    page = await storage.archive.query(ALICE, ArchiveQuery())
    assert ids(page) == [first, second]
    assert all(before <= entry.timestamp <= after for entry in page.entries)


async def test_pages_forward_with_after_until_complete(storage: Storage) -> None:
    entries = await fill(storage, ALICE, 7)
    page = await storage.archive.query(ALICE, ArchiveQuery(limit=3))
    assert (ids(page), page.complete, page.count) == (entries[:3], False, 7)
    page = await storage.archive.query(ALICE, ArchiveQuery(after=entries[2], limit=3))
    assert (ids(page), page.complete) == (entries[3:6], False)
    page = await storage.archive.query(ALICE, ArchiveQuery(after=entries[5], limit=3))
    assert (ids(page), page.complete, page.count) == (entries[6:], True, 7)
    page = await storage.archive.query(ALICE, ArchiveQuery(after=entries[6], limit=3))
    assert (ids(page), page.complete) == ([], True)


async def test_pages_backward_from_the_end_and_before_an_id(storage: Storage) -> None:
    entries = await fill(storage, ALICE, 7)
    page = await storage.archive.query(ALICE, ArchiveQuery(last=True, limit=3))
    assert (ids(page), page.complete, page.count) == (entries[4:], False, 7)  # oldest first
    page = await storage.archive.query(ALICE, ArchiveQuery(before=entries[4], limit=3))
    assert (ids(page), page.complete) == (entries[1:4], False)
    page = await storage.archive.query(ALICE, ArchiveQuery(before=entries[1], limit=3))
    assert (ids(page), page.complete) == (entries[:1], True)


async def test_after_and_before_together_bound_the_page(storage: Storage) -> None:
    entries = await fill(storage, ALICE, 7)
    query = ArchiveQuery(after=entries[1], before=entries[5], limit=10)
    page = await storage.archive.query(ALICE, query)
    assert (ids(page), page.complete) == (entries[2:5], True)


async def test_limit_zero_only_counts(storage: Storage) -> None:
    await fill(storage, ALICE, 4)
    page = await storage.archive.query(ALICE, ArchiveQuery(limit=0))
    assert (ids(page), page.complete, page.count) == ([], False, 4)


async def test_unknown_rsm_id_is_refused(storage: Storage) -> None:
    await fill(storage, ALICE, 2)
    other = await storage.archive.append(
        ArchiveKey("example.org", "mam", "bob"), b"<m/>", with_jid="x@y"
    )
    for query in (ArchiveQuery(after="nope"), ArchiveQuery(before=other)):
        with pytest.raises(UnknownArchiveId):
            await storage.archive.query(ALICE, query)


async def test_filters_by_with_and_inclusive_time_range(storage: Storage) -> None:
    entries = await fill(storage, ALICE, 8)
    with_bob = await storage.archive.query(ALICE, ArchiveQuery(with_jid="bob@x.example"))
    assert (ids(with_bob), with_bob.count) == (entries[0::2], 4)
    window = ArchiveQuery(start=T0 + 2000, end=T0 + 5000)
    assert ids(await storage.archive.query(ALICE, window)) == entries[2:6]
    both = ArchiveQuery(with_jid="carol@x.example", start=T0 + 2000, end=T0 + 5000, limit=1)
    page = await storage.archive.query(ALICE, both)
    assert (ids(page), page.complete, page.count) == ([entries[3]], False, 2)


async def test_entries_are_ordered_by_time_then_arrival(storage: Storage) -> None:
    late = await storage.archive.append(ALICE, b"<late/>", with_jid="b@x", timestamp=T0 + 50)
    early = await storage.archive.append(ALICE, b"<early/>", with_jid="b@x", timestamp=T0 + 10)
    same = await storage.archive.append(ALICE, b"<same/>", with_jid="b@x", timestamp=T0 + 10)
    page = await storage.archive.query(ALICE, ArchiveQuery())
    assert ids(page) == [early, same, late]
    assert ids(await storage.archive.query(ALICE, ArchiveQuery(after=early))) == [same, late]


async def test_full_text_search_needs_every_word_case_folded(storage: Storage) -> None:
    key = ALICE
    hit = await storage.archive.append(key, b"<1/>", with_jid="b@x", text="Straße nach Köln")
    await storage.archive.append(key, b"<2/>", with_jid="b@x", text="nach Bonn")
    percent = await storage.archive.append(key, b"<3/>", with_jid="b@x", text="100% sure_thing")
    await storage.archive.append(key, b"<4/>", with_jid="b@x")  # no text: never found
    assert ids(await storage.archive.query(key, ArchiveQuery(text="STRASSE köln"))) == [hit]
    assert (await storage.archive.query(key, ArchiveQuery(text="nach"))).count == 2
    # LIKE wildcards in the query are literal characters
    assert ids(await storage.archive.query(key, ArchiveQuery(text="0% e_t"))) == [percent]
    assert ids(await storage.archive.query(key, ArchiveQuery(text="%"))) == [percent]
    assert ids(await storage.archive.query(key, ArchiveQuery(text="_"))) == [percent]
    with pytest.raises(ValueError, match="words"):
        await storage.archive.query(key, ArchiveQuery(text=" ".join("w" * 9)))


async def test_archives_are_isolated_by_host_kind_and_owner(storage: Storage) -> None:
    keys = [
        ALICE,
        ArchiveKey("example.org", "mam", "bob"),
        ArchiveKey("other.example", "mam", "alice"),
        ArchiveKey("example.org", "pep:urn:xmpp:avatar:data", "alice"),
        ArchiveKey("conference.example.org", "muc", "room"),
    ]
    for n, key in enumerate(keys):
        await fill(storage, key, n + 1)
    for n, key in enumerate(keys):
        assert (await storage.archive.query(key, ArchiveQuery())).count == n + 1


async def test_caller_ids_are_unique_per_archive_unless_replaced(storage: Storage) -> None:
    node = ArchiveKey("pubsub.example.org", "pubsub", "princely_musings")
    await storage.archive.append(node, b"<v1/>", with_jid="a@x", entry_id="item1", timestamp=T0)
    await storage.archive.append(node, b"<v1/>", with_jid="a@x", entry_id="item2", timestamp=T0 + 1)
    with pytest.raises(ValueError, match="exists"):
        await storage.archive.append(node, b"<v2/>", with_jid="a@x", entry_id="item1")
    other = ArchiveKey("pubsub.example.org", "pubsub", "other")
    assert await storage.archive.append(other, b"<o/>", with_jid="a@x", entry_id="item1") == "item1"
    await storage.archive.append(
        node, b"<v2/>", with_jid="a@x", entry_id="item1", timestamp=T0 + 2, replace=True
    )
    page = await storage.archive.query(node, ArchiveQuery())
    assert [(e.id, e.payload) for e in page.entries] == [("item2", b"<v1/>"), ("item1", b"<v2/>")]


async def test_delete_by_id_and_expire_older_than(storage: Storage) -> None:
    entries = await fill(storage, ALICE, 6)
    bob = ArchiveKey("example.org", "mam", "bob")
    await fill(storage, bob, 3)
    assert await storage.archive.delete(ALICE, [entries[0], entries[0], "nope"]) == 1
    assert await storage.archive.expire("example.org", "mam", T0 + 2000, owner="alice") == 1
    assert ids(await storage.archive.query(ALICE, ArchiveQuery())) == entries[2:]
    assert (await storage.archive.query(bob, ArchiveQuery())).count == 3
    assert await storage.archive.expire("example.org", "mam", T0 + 4000) == 2 + 3
    assert ids(await storage.archive.query(ALICE, ArchiveQuery())) == entries[4:]
    assert (await storage.archive.query(bob, ArchiveQuery())).count == 0


async def test_concurrent_appends_from_two_storages_all_land(target: StorageTarget) -> None:
    async with opened(target) as one, opened(target) as two:
        written = await asyncio.gather(
            *(
                (one if n % 2 else two).archive.append(ALICE, b"<m/>", with_jid="b@x")
                for n in range(20)
            )
        )
        page = await one.archive.query(ALICE, ArchiveQuery(limit=100))
        assert sorted(ids(page)) == sorted(written)
        assert page.count == 20
