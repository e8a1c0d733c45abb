"""Rows as roost before per-store schemas wrote them (d931bf1), and what the stores must read.

``write_legacy_data`` fills a database made by ``StorageTarget.create_legacy(up_to=2)``
with raw SQL in that code's formats (roster groups as a JSON array on SQLite and a text[]
on PostgreSQL, booleans, BLOB/BYTEA, REAL/TIMESTAMPTZ times); ``check_legacy_data`` reads
every row back through the new stores, then writes and deletes through them.
"""

from __future__ import annotations

import json
from typing import Final

from roost.storage import Storage
from roost.storage.last import LastActivityStore, Logout
from roost.storage.private import PrivateStore
from roost.storage.roster import RosterChange, RosterItem
from tests.unit.storage.storage_harness import StorageTarget, binary_credentials

HOST: Final = "example.org"
PRESENCE: Final = b"<presence from='eve@x.example/r' type='subscribe'/>"
MESSAGES: Final = (b"<message>\x00first</message>", b"<message>second \xff</message>")
BOB: Final = RosterItem("bob@x.example", "Bob", "both", groups=("Friends", 'Ünï "q" {b}'))
FRAGMENT: Final = "<p xmlns='urn:x'>\u00fc</p>".encode()
LOGOUT: Final = b'{"time": 1700000000.25, "status": "gone \\u00fc"}'  # as json.dumps wrote it
DAVE: Final = RosterItem("dave@x.example", None, "none", ask=True, approved=True)


def _bytes(target: StorageTarget, value: bytes) -> str:
    if target.backend == "sqlite":
        return f"X'{value.hex()}'"
    return f"'\\x{value.hex()}'::bytea"


def _groups(target: StorageTarget, groups: tuple[str, ...]) -> str:
    if target.backend == "sqlite":
        return "'" + json.dumps(list(groups)) + "'"  # as json.dumps() wrote it
    quoted = ",".join('"' + g.replace('"', '\\"') + '"' for g in groups)
    return "'{" + quoted + "}'"


def _time(target: StorageTarget, unix: float) -> str:
    return str(unix) if target.backend == "sqlite" else f"to_timestamp({unix})"


def _statements(target: StorageTarget) -> list[str]:
    b, g = _bytes, _groups
    rows = [
        f"INSERT INTO accounts (host, username) VALUES ('{HOST}', 'alice')",
        *(
            "INSERT INTO credentials VALUES"
            f" ('{HOST}', 'alice', '{name}', {b(target, keys.salt)}, {keys.iterations},"
            f" {b(target, keys.stored_key)}, {b(target, keys.server_key)})"
            for name, keys in binary_credentials(1).items()
        ),
        f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'vcard', 'vcard-temp', {b(target, b'<v/>')})",
        f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'private', '{{urn:x}}p',"
        f" {b(target, FRAGMENT)})",
        f"INSERT INTO kv VALUES ('{HOST}', 'alice', 'last', 'logout', {b(target, LOGOUT)})",
        f"INSERT INTO roster_versions VALUES ('{HOST}', 'alice', 4, 0)",
        "INSERT INTO roster_items VALUES"
        f" ('{HOST}', 'alice', 'bob@x.example', 'Bob', 'both', false, false,"
        f" {g(target, BOB.groups)}, false, 1)",
        "INSERT INTO roster_items VALUES"
        f" ('{HOST}', 'alice', 'carol@x.example', NULL, 'none', false, false,"
        f" {g(target, ())}, true, 3)",
        "INSERT INTO roster_items VALUES"
        f" ('{HOST}', 'alice', 'dave@x.example', NULL, 'none', true, true,"
        f" {g(target, ())}, false, 4)",
        f"INSERT INTO roster_pending_in VALUES"
        f" ('{HOST}', 'alice', 'eve@x.example', {b(target, PRESENCE)})",
        *(
            "INSERT INTO offline_messages (host, username, stored_at, stanza) VALUES"
            f" ('{HOST}', 'alice', {_time(target, 1700000000.5 + n)}, {b(target, m)})"
            for n, m in enumerate(MESSAGES)
        ),
        f"INSERT INTO blocked_jids VALUES ('{HOST}', 'alice', 'mallory@x.example')",
    ]
    return rows


async def write_legacy_data(target: StorageTarget) -> None:
    """Rows in every table of the global schema 2, as the old code wrote them."""
    for statement in _statements(target):
        await target.execute(statement)


async def check_legacy_data(storage: Storage) -> None:
    """Every legacy row read back, then changed and deleted, through the new stores."""
    assert await storage.accounts.get_credentials(HOST, "alice") == binary_credentials(1)
    assert await storage.kv.get(HOST, "alice", "vcard", "vcard-temp") == b"<v/>"
    # private XML and last activity moved from kv to their own stores by their migrations
    assert await storage.kv.keys(HOST, "alice", "private") == []
    assert await storage.kv.keys(HOST, "alice", "last") == []
    assert await storage.store(PrivateStore).get(HOST, "alice", "{urn:x}p") == FRAGMENT
    assert await storage.store(LastActivityStore).get(HOST, "alice") == Logout(
        1700000000.25, "gone \u00fc"
    )
    roster = await storage.roster.get(HOST, "alice")
    assert (roster.version, roster.items) == (4, {BOB.jid: BOB, DAVE.jid: DAVE})
    assert await storage.roster.changes_since(HOST, "alice", 1) == [
        RosterChange("carol@x.example", None, 3),
        RosterChange(DAVE.jid, DAVE, 4),
    ]
    assert await storage.roster.pending_in(HOST, "alice") == {"eve@x.example": PRESENCE}
    stored = await storage.offline.fetch(HOST, "alice")
    assert [stanza for _, stanza in stored] == list(MESSAGES)
    assert await storage.offline.expire(1700000001.0) == 1  # the first, stored at ...000.5
    assert await storage.blocking.list(HOST, "alice") == ["mallory@x.example"]
    assert await storage.roster.put(HOST, "alice", RosterItem("frank@x.example")) == 5
    assert await storage.roster.remove(HOST, "alice", BOB.jid) == 6
    assert await storage.accounts.delete(HOST, "alice")
    assert await storage.offline.count(HOST, "alice") == 0
    assert await storage.store(PrivateStore).names(HOST, "alice") == []
    assert await storage.store(LastActivityStore).get(HOST, "alice") is None
    await storage.accounts.create(HOST, "alice", {})
    assert await storage.roster.put(HOST, "alice", RosterItem("bob@x.example")) > 6
