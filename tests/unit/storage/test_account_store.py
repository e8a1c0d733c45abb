"""AccountStore behaviour, the same on every backend."""

from __future__ import annotations

import asyncio

import pytest

from roost.auth.credentials import HASHES, derive, verify_password
from roost.storage import AccountExists, AccountNotFound, Storage
from roost.storage.archive import ArchiveKey, ArchiveQuery
from roost.storage.base import RosterItem
from roost.storage.last import LastActivityStore, Logout
from roost.storage.private import PrivateStore
from tests.unit.storage.storage_harness import (
    StorageTarget,
    binary_credentials,
)

HOST = "example.org"


@pytest.mark.asyncio
async def test_created_account_exists_and_is_listed(storage: Storage) -> None:
    assert not await storage.accounts.exists(HOST, "alice")
    await storage.accounts.create(HOST, "alice", binary_credentials(1))
    assert await storage.accounts.exists(HOST, "alice")
    assert await storage.accounts.list(HOST) == ["alice"]


@pytest.mark.asyncio
async def test_missing_account_has_no_credentials(storage: Storage) -> None:
    assert await storage.accounts.get_credentials(HOST, "nobody") is None


@pytest.mark.asyncio
async def test_credentials_round_trip_byte_exact_for_every_hash(storage: Storage) -> None:
    creds = binary_credentials(3)
    await storage.accounts.create(HOST, "alice", creds)
    stored = await storage.accounts.get_credentials(HOST, "alice")
    assert stored == creds
    assert stored is not None
    assert sorted(stored) == sorted(HASHES)
    for name in HASHES:
        assert type(stored[name].salt) is bytes
        assert type(stored[name].stored_key) is bytes


@pytest.mark.asyncio
async def test_password_verifies_against_stored_credentials(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", derive("correct horse"))
    stored = await storage.accounts.get_credentials(HOST, "alice")
    assert stored is not None
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "battery staple")


@pytest.mark.asyncio
async def test_account_without_credentials_has_empty_credentials(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", {})
    assert await storage.accounts.get_credentials(HOST, "alice") == {}


@pytest.mark.asyncio
async def test_duplicate_create_raises_account_exists_and_keeps_credentials(
    storage: Storage,
) -> None:
    await storage.accounts.create(HOST, "alice", binary_credentials(1))
    with pytest.raises(AccountExists):
        await storage.accounts.create(HOST, "alice", binary_credentials(2))
    assert await storage.accounts.get_credentials(HOST, "alice") == binary_credentials(1)


@pytest.mark.asyncio
async def test_set_credentials_replaces_every_hash(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", binary_credentials(1))
    only_sha256 = {"SHA-256": binary_credentials(2)["SHA-256"]}
    await storage.accounts.set_credentials(HOST, "alice", only_sha256)
    assert await storage.accounts.get_credentials(HOST, "alice") == only_sha256


@pytest.mark.asyncio
async def test_set_credentials_of_missing_account_raises_account_not_found(
    storage: Storage,
) -> None:
    with pytest.raises(AccountNotFound):
        await storage.accounts.set_credentials(HOST, "nobody", binary_credentials(1))
    assert not await storage.accounts.exists(HOST, "nobody")


@pytest.mark.asyncio
async def test_delete_says_whether_the_account_existed(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", binary_credentials(1))
    assert await storage.accounts.delete(HOST, "alice")
    assert not await storage.accounts.delete(HOST, "alice")
    assert not await storage.accounts.exists(HOST, "alice")
    assert await storage.accounts.get_credentials(HOST, "alice") is None
    assert await storage.accounts.list(HOST) == []


@pytest.mark.asyncio
async def test_deleted_account_can_be_created_again(storage: Storage) -> None:
    await storage.accounts.create(HOST, "alice", binary_credentials(1))
    await storage.accounts.delete(HOST, "alice")
    await storage.accounts.create(HOST, "alice", binary_credentials(2))
    assert await storage.accounts.get_credentials(HOST, "alice") == binary_credentials(2)


@pytest.mark.asyncio
async def test_list_is_sorted_by_code_point(storage: Storage) -> None:
    names = ["zoë", "bob", "alice", "Zed", "émile", "carol"]
    for name in names:
        await storage.accounts.create(HOST, name, {})
    assert await storage.accounts.list(HOST) == sorted(names)


@pytest.mark.asyncio
async def test_usernames_are_stored_as_given(storage: Storage) -> None:
    # Callers normalise (RFC 7622); the store must not fold case or width again.
    await storage.accounts.create(HOST, "Alice", binary_credentials(1))
    await storage.accounts.create(HOST, "alice", binary_credentials(2))
    assert await storage.accounts.list(HOST) == ["Alice", "alice"]
    assert await storage.accounts.get_credentials(HOST, "Alice") == binary_credentials(1)


@pytest.mark.asyncio
async def test_hosts_are_isolated(storage: Storage) -> None:
    await storage.accounts.create("a.example", "alice", binary_credentials(1))
    await storage.accounts.create("b.example", "alice", binary_credentials(2))
    await storage.accounts.create("b.example", "bob", {})
    assert await storage.accounts.list("a.example") == ["alice"]
    assert await storage.accounts.list("b.example") == ["alice", "bob"]
    assert await storage.accounts.get_credentials("a.example", "alice") == binary_credentials(1)
    assert await storage.accounts.delete("b.example", "alice")
    assert await storage.accounts.get_credentials("a.example", "alice") == binary_credentials(1)
    assert not await storage.accounts.exists("a.example", "bob")
    with pytest.raises(AccountNotFound):
        await storage.accounts.set_credentials("c.example", "alice", {})


@pytest.mark.asyncio
async def test_concurrent_creates_of_one_name_make_one_account(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.accounts.create(HOST, f"user{i % 5}", binary_credentials(i)) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 5
    assert all(r is None or isinstance(r, AccountExists) for r in results)
    assert await storage.accounts.list(HOST) == [f"user{i}" for i in range(5)]
    for i in range(5):
        # whichever create won, its credentials were stored whole
        stored = await storage.accounts.get_credentials(HOST, f"user{i}")
        assert stored in [binary_credentials(j) for j in range(i, 20, 5)]


async def _fill_every_store(storage: Storage, host: str, user: str) -> None:
    await storage.accounts.create(host, user, binary_credentials(1))
    await storage.kv.set(host, user, "private", "k", b"v")
    fragment = {"{urn:x}p": b"<p xmlns='urn:x'/>"}
    await storage.store(PrivateStore).change(host, user, fragment, limit=1)
    await storage.store(LastActivityStore).set(host, user, Logout(1700000000.5, "away"))
    await storage.roster.put(host, user, RosterItem("a@x.example", groups=("g",)))
    await storage.roster.put(host, user, RosterItem("b@x.example"))
    await storage.roster.remove(host, user, "b@x.example")  # a tombstone
    await storage.roster.set_pending_in(host, user, "c@x.example", b"<presence/>")
    await storage.offline.push(host, user, b"<message/>", limit=10)
    await storage.blocking.add(host, user, ["d@x.example"])
    for kind in ("mam", "pep:urn:xmpp:avatar:data"):
        await storage.archive.append(ArchiveKey(host, kind, user), b"<m/>", with_jid="e@x.example")


# Tables of one host, not of a user: what deletion must keep (the roster version floors).
HOST_TABLES = {"roster_version_floors"}


async def _owners(target: StorageTarget, table: str) -> set[str]:
    """user@host of every row in the table (its user column: username, or owner)."""
    column = "owner" if table == "archive" else "username"
    rows = await target.column(f"SELECT DISTINCT {column} || '@' || host FROM {table}")
    return {str(row) for row in rows}


@pytest.mark.asyncio
async def test_deleting_an_account_removes_its_rows_from_every_table(
    storage: Storage, target: StorageTarget
) -> None:
    for host, user in [(HOST, "alice"), (HOST, "bob"), ("b.example", "alice")]:
        await _fill_every_store(storage, host, user)
    assert await storage.accounts.delete(HOST, "alice")
    for table in set(await target.tables()) - HOST_TABLES:
        assert await _owners(target, table) == {f"bob@{HOST}", "alice@b.example"}, table
    # a re-created account starts with an empty roster at version 0
    await storage.accounts.create(HOST, "alice", {})
    roster = await storage.roster.get(HOST, "alice")
    assert (roster.version, roster.items) == (0, {})
    assert await storage.roster.pending_in(HOST, "alice") == {}
    assert await storage.offline.count(HOST, "alice") == 0
    assert await storage.blocking.list(HOST, "alice") == []
    assert await storage.store(PrivateStore).names(HOST, "alice") == []
    assert await storage.store(LastActivityStore).get(HOST, "alice") is None
    assert (
        await storage.archive.query(ArchiveKey(HOST, "mam", "alice"), ArchiveQuery())
    ).count == 0
