"""LastActivityStore behaviour (XEP-0012 logouts), the same on every backend."""

from __future__ import annotations

import pytest

from roost.storage import Storage
from roost.storage.last import LastActivityStore, Logout, decode_logout, encode_logout
from roost.storage.registry import export_user
from roost.storage.sql import StorageError
from tests.unit.storage.storage_harness import StorageTarget, opened

HOST = "example.org"


def test_a_logout_record_round_trips_and_garbage_is_a_storage_error() -> None:
    logout = Logout(1700000000.125, 'out \u00fc "q"')
    assert decode_logout(encode_logout(logout)) == logout
    assert decode_logout(b'{"time": 5}') == Logout(5.0, "")
    for bad in (b"", b"[]", b'{"status": "x"}', b'{"time": "soon"}'):
        with pytest.raises(StorageError, match="not a last-activity record"):
            decode_logout(bad)


@pytest.mark.asyncio
async def test_the_last_logout_is_kept_per_account(storage: Storage) -> None:
    last = storage.store(LastActivityStore)
    assert await last.get(HOST, "alice") is None
    await last.set(HOST, "alice", Logout(1700000000.5, "away"))
    await last.set(HOST, "alice", Logout(1700000100.0))
    await last.set(HOST, "bob", Logout(1.0, "b"))
    assert await last.get(HOST, "alice") == Logout(1700000100.0, "")
    assert await last.get(HOST, "bob") == Logout(1.0, "b")
    assert await last.get("other.example", "alice") is None


@pytest.mark.asyncio
async def test_last_activity_is_deleted_with_the_account_and_not_exported(
    storage: Storage,
) -> None:
    await storage.accounts.create(HOST, "alice", {})
    last = storage.store(LastActivityStore)
    await last.set(HOST, "alice", Logout(10.0, "x"))
    assert (await export_user(storage, HOST, "alice")).children == []
    assert await storage.accounts.delete(HOST, "alice")
    assert await last.get(HOST, "alice") is None


@pytest.mark.asyncio
async def test_logouts_kept_in_the_kv_store_move_here_at_the_upgrade(
    target: StorageTarget,
) -> None:
    await target.create_legacy(up_to=1)  # kv only, as roost before this store made it
    record = b'{"time": 1700000000.25, "status": "bye"}'
    value = f"X'{record.hex()}'" if target.backend == "sqlite" else f"'\\x{record.hex()}'::bytea"
    await target.execute(f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'last', 'logout', {value})")
    async with opened(target) as storage:
        assert await storage.store(LastActivityStore).get(HOST, "alice") == Logout(
            1700000000.25, "bye"
        )
        assert await storage.kv.keys(HOST, "alice", "last") == []
