"""RosterStore behaviour (RFC 6121 §2 rosters, §2.6 versioning), the same on every backend."""

from __future__ import annotations

import asyncio

import pytest

from roost.storage import Storage
from roost.storage.base import RosterChange, RosterItem
from tests.unit.storage.storage_harness import StorageTarget, opened

pytestmark = pytest.mark.asyncio

HOST = "example.org"


async def test_user_without_roster_has_version_zero_and_no_items(storage: Storage) -> None:
    roster = await storage.roster.get(HOST, "alice")
    assert (roster.version, roster.items) == (0, {})
    assert await storage.roster.changes_since(HOST, "alice", 0) == []


async def test_item_round_trips_with_name_groups_and_flags(storage: Storage) -> None:
    full = RosterItem(
        "juliet@capulet.example",
        name="Juliet ☀ Capulet",
        subscription="both",
        ask=True,
        approved=True,
        groups=("Friends", 'Ünïcode, "quoted" {braces}', ""),
    )
    bare = RosterItem("nurse@capulet.example")
    await storage.roster.put(HOST, "romeo", full)
    await storage.roster.put(HOST, "romeo", bare)
    roster = await storage.roster.get(HOST, "romeo")
    assert roster.items == {full.jid: full, bare.jid: bare}
    assert roster.items[bare.jid].name is None
    assert list(roster.items) == sorted(roster.items)


async def test_groups_are_an_ordered_set(storage: Storage) -> None:
    await storage.roster.put(
        HOST, "romeo", RosterItem("a@x.example", groups=("b", "a", "b", "c", "a"))
    )
    roster = await storage.roster.get(HOST, "romeo")
    assert roster.items["a@x.example"].groups == ("b", "a", "c")


async def test_put_replaces_the_whole_item(storage: Storage) -> None:
    await storage.roster.put(
        HOST, "romeo", RosterItem("a@x.example", name="A", groups=("g",), ask=True)
    )
    replacement = RosterItem("a@x.example", subscription="to")
    await storage.roster.put(HOST, "romeo", replacement)
    assert (await storage.roster.get(HOST, "romeo")).items == {"a@x.example": replacement}


async def test_unknown_subscription_is_refused_and_nothing_stored(storage: Storage) -> None:
    with pytest.raises(ValueError, match="subscription"):
        await storage.roster.put(HOST, "romeo", RosterItem("a@x.example", subscription="remove"))
    assert await storage.roster.get(HOST, "romeo") == (await storage.roster.get(HOST, "nobody"))


async def test_every_put_and_remove_increments_the_version_by_one(storage: Storage) -> None:
    assert await storage.roster.put(HOST, "romeo", RosterItem("a@x.example")) == 1
    assert await storage.roster.put(HOST, "romeo", RosterItem("b@x.example")) == 2
    assert await storage.roster.put(HOST, "romeo", RosterItem("a@x.example", name="A")) == 3
    assert await storage.roster.remove(HOST, "romeo", "b@x.example") == 4
    roster = await storage.roster.get(HOST, "romeo")
    assert roster.version == 4
    assert list(roster.items) == ["a@x.example"]


async def test_removing_an_absent_item_is_none_and_keeps_the_version(storage: Storage) -> None:
    assert await storage.roster.remove(HOST, "romeo", "a@x.example") is None  # no roster yet
    await storage.roster.put(HOST, "romeo", RosterItem("a@x.example"))
    assert await storage.roster.remove(HOST, "romeo", "b@x.example") is None
    assert await storage.roster.remove(HOST, "romeo", "a@x.example") == 2
    assert await storage.roster.remove(HOST, "romeo", "a@x.example") is None  # twice
    assert (await storage.roster.get(HOST, "romeo")).version == 2
    assert await storage.roster.changes_since(HOST, "romeo", 2) == []


async def test_changes_since_gives_the_latest_state_of_each_contact_oldest_first(
    storage: Storage,
) -> None:
    put, remove = storage.roster.put, storage.roster.remove
    await put(HOST, "romeo", RosterItem("a@x.example"))  # 1
    await put(HOST, "romeo", RosterItem("b@x.example"))  # 2
    await put(HOST, "romeo", RosterItem("c@x.example"))  # 3
    await put(HOST, "romeo", RosterItem("a@x.example", name="A", groups=("g",)))  # 4
    await remove(HOST, "romeo", "b@x.example")  # 5
    await put(HOST, "romeo", RosterItem("d@x.example"))  # 6
    await remove(HOST, "romeo", "d@x.example")  # 7
    await put(HOST, "romeo", RosterItem("e@x.example", subscription="from"))  # 8

    assert await storage.roster.changes_since(HOST, "romeo", 0) == [
        RosterChange("c@x.example", RosterItem("c@x.example"), 3),
        RosterChange("a@x.example", RosterItem("a@x.example", name="A", groups=("g",)), 4),
        RosterChange("b@x.example", None, 5),
        RosterChange("d@x.example", None, 7),
        RosterChange("e@x.example", RosterItem("e@x.example", subscription="from"), 8),
    ]
    assert await storage.roster.changes_since(HOST, "romeo", 5) == [
        RosterChange("d@x.example", None, 7),
        RosterChange("e@x.example", RosterItem("e@x.example", subscription="from"), 8),
    ]
    assert await storage.roster.changes_since(HOST, "romeo", 8) == []


async def test_removed_contact_added_again_is_reported_as_present(storage: Storage) -> None:
    await storage.roster.put(HOST, "romeo", RosterItem("a@x.example", name="old"))
    await storage.roster.remove(HOST, "romeo", "a@x.example")
    assert await storage.roster.put(HOST, "romeo", RosterItem("a@x.example")) == 3
    assert await storage.roster.changes_since(HOST, "romeo", 1) == [
        RosterChange("a@x.example", RosterItem("a@x.example"), 3)
    ]
    assert (await storage.roster.get(HOST, "romeo")).items == {
        "a@x.example": RosterItem("a@x.example")
    }


async def test_unknown_versions_are_not_answerable(storage: Storage) -> None:
    assert await storage.roster.changes_since(HOST, "romeo", 1) is None  # no roster yet
    await storage.roster.put(HOST, "romeo", RosterItem("a@x.example"))
    await storage.roster.put(HOST, "romeo", RosterItem("b@x.example"))
    assert await storage.roster.changes_since(HOST, "romeo", 3) is None
    assert await storage.roster.changes_since(HOST, "romeo", -1) is None
    assert await storage.roster.changes_since(HOST, "romeo", 2) == []


async def test_oldest_tombstones_are_pruned_beyond_the_limit(target: StorageTarget) -> None:
    storage = target.new(roster_tombstones=3)
    await storage.open()
    try:
        await storage.roster.put(HOST, "romeo", RosterItem("kept@x.example"))  # 1
        for n in range(5):  # 2..6
            await storage.roster.put(HOST, "romeo", RosterItem(f"c{n}@x.example"))
        for n in range(5):  # 7..11: tombstones 7 and 8 are dropped
            assert await storage.roster.remove(HOST, "romeo", f"c{n}@x.example") == 7 + n
        for version in (0, 6, 7):
            assert await storage.roster.changes_since(HOST, "romeo", version) is None
        assert await storage.roster.changes_since(HOST, "romeo", 8) == [
            RosterChange(f"c{n}@x.example", None, 7 + n) for n in (2, 3, 4)
        ]
        roster = await storage.roster.get(HOST, "romeo")
        assert (roster.version, list(roster.items)) == (11, ["kept@x.example"])
        assert await storage.roster.put(HOST, "romeo", RosterItem("new@x.example")) == 12
        assert await storage.roster.changes_since(HOST, "romeo", 11) == [
            RosterChange("new@x.example", RosterItem("new@x.example"), 12)
        ]
    finally:
        await storage.close()


async def test_rosters_are_isolated_per_user_and_host(storage: Storage) -> None:
    await storage.roster.put("a.example", "romeo", RosterItem("x@x.example", name="a-romeo"))
    await storage.roster.put("b.example", "romeo", RosterItem("x@x.example", name="b-romeo"))
    await storage.roster.put("a.example", "juliet", RosterItem("y@x.example"))
    assert await storage.roster.remove("b.example", "romeo", "x@x.example") == 2
    a_romeo = await storage.roster.get("a.example", "romeo")
    assert (a_romeo.version, a_romeo.items) == (
        1,
        {"x@x.example": RosterItem("x@x.example", name="a-romeo")},
    )
    assert (await storage.roster.get("b.example", "romeo")).items == {}
    assert list((await storage.roster.get("a.example", "juliet")).items) == ["y@x.example"]
    assert await storage.roster.changes_since("a.example", "juliet", 0) == [
        RosterChange("y@x.example", RosterItem("y@x.example"), 1)
    ]


async def test_pending_inbound_requests_are_held_replaced_and_forgotten(storage: Storage) -> None:
    request = b"<presence from='a@x.example' type='subscribe'/>"
    await storage.roster.set_pending_in(HOST, "romeo", "a@x.example", b"<old/>")
    await storage.roster.set_pending_in(HOST, "romeo", "a@x.example", request)
    await storage.roster.set_pending_in(HOST, "romeo", "b@x.example", b"\x00\xff")
    await storage.roster.set_pending_in(HOST, "juliet", "c@x.example", b"<j/>")
    await storage.roster.set_pending_in("b.example", "romeo", "d@x.example", b"<b/>")
    assert await storage.roster.pending_in(HOST, "romeo") == {
        "a@x.example": request,
        "b@x.example": b"\x00\xff",
    }
    await storage.roster.set_pending_in(HOST, "romeo", "b@x.example", None)
    await storage.roster.set_pending_in(HOST, "romeo", "b@x.example", None)  # harmless twice
    assert await storage.roster.pending_in(HOST, "romeo") == {"a@x.example": request}
    assert await storage.roster.pending_in(HOST, "juliet") == {"c@x.example": b"<j/>"}
    assert await storage.roster.pending_in("b.example", "romeo") == {"d@x.example": b"<b/>"}
    # held requests are not roster changes
    assert (await storage.roster.get(HOST, "romeo")).version == 0


async def test_concurrent_puts_get_distinct_consecutive_versions(target: StorageTarget) -> None:
    # two Storage instances: two connections (SQLite) or two pools (PostgreSQL)
    async with opened(target) as one, opened(target) as two:
        versions = await asyncio.gather(
            *(
                (one if n % 2 else two).roster.put(HOST, "romeo", RosterItem(f"c{n % 7}@x.example"))
                for n in range(30)
            )
        )
        assert sorted(versions) == list(range(1, 31))
        changes = await one.roster.changes_since(HOST, "romeo", 0)
        assert changes is not None
        assert sorted(c.jid for c in changes) == [f"c{n}@x.example" for n in range(7)]
        assert [c.version for c in changes] == sorted(c.version for c in changes)
        assert (await two.roster.get(HOST, "romeo")).version == 30


async def test_concurrent_removes_get_distinct_versions_and_remove_once(
    target: StorageTarget,
) -> None:
    async with opened(target) as one, opened(target) as two:
        for n in range(6):
            await one.roster.put(HOST, "romeo", RosterItem(f"c{n}@x.example"))
        results = await asyncio.gather(
            *(
                (one if n % 2 else two).roster.remove(HOST, "romeo", f"c{n % 6}@x.example")
                for n in range(12)
            )
        )
        assert results.count(None) == 6
        assert sorted(v for v in results if v is not None) == list(range(7, 13))
        roster = await one.roster.get(HOST, "romeo")
        assert (roster.version, roster.items) == (12, {})


async def test_issue_9_roster_versions_never_go_back_when_an_account_is_recreated(
    storage: Storage, target: StorageTarget
) -> None:
    await storage.accounts.create(HOST, "romeo", {})
    for n in range(3):
        await storage.roster.put(HOST, "romeo", RosterItem(f"old{n}@x.example"))
    await storage.roster.remove(HOST, "romeo", "old0@x.example")
    cached = (await storage.roster.get(HOST, "romeo")).version  # what romeo's client holds
    assert await storage.accounts.delete(HOST, "romeo")
    await storage.accounts.create(HOST, "romeo", {})
    assert (await storage.roster.get(HOST, "romeo")).items == {}
    versions = [
        await storage.roster.put(HOST, "romeo", RosterItem(f"new{n}@x.example")) for n in range(5)
    ]
    assert min(versions) > cached
    assert versions == list(range(versions[0], versions[0] + 5))
    # the client holding the deleted account's version gets the whole roster, never "no
    # changes" or pushes on top of the old items
    for version in range(cached + 1):
        assert await storage.roster.changes_since(HOST, "romeo", version) is None
    assert await storage.roster.changes_since(HOST, "romeo", versions[2]) == [
        RosterChange(f"new{n}@x.example", RosterItem(f"new{n}@x.example"), versions[n])
        for n in (3, 4)
    ]
    # a second deletion raises the floor again; other hosts keep theirs
    assert await storage.accounts.delete(HOST, "romeo")
    assert await storage.roster.put(HOST, "romeo", RosterItem("a@x.example")) > versions[-1]
    assert await storage.roster.put("b.example", "romeo", RosterItem("a@x.example")) == 1
    assert await target.column("SELECT host FROM roster_version_floors") == [HOST]
