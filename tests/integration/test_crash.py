"""Crash safety (issue 6, item 5): ``kill -9`` in the middle of traffic loses nothing accepted.

A client sends a stream of messages to an offline user, with a ping after every few and a
roster change now and then, as fast as it can. A stanza counts as accepted once the server
has answered a later iq on the same stream: stanzas are processed in order (RFC 6120 §10.1)
and an offline message or a roster change is committed before the next stanza is processed.
Once enough are accepted the server gets SIGKILL while the client is still writing; the
storage must then be intact (SQLite: ``PRAGMA integrity_check`` on the WAL database;
PostgreSQL: amcheck on every table and index), and after a restart every accepted message
arrives exactly once, in order, and every accepted roster item is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING, NS_ROSTER
from tests.integration.harness import DOMAIN, RawClient, ServerProcess, make_server
from tests.integration.rawhelpers import local, ping_server

TOTAL = 1000  # messages the client would send if the server lived (the offline quota is 1000)
PING_EVERY = 10
ROSTER_EVERY = 40
KILL_AT = 240  # accepted messages before the kill


class Load:
    """Writes message m<i> for i in 0..TOTAL-1, a ping p<i> after every PING_EVERY and a roster
    set r<i> (adding c<i>@example.net) after every ROSTER_EVERY, and reads the answers."""

    def __init__(self, client: RawClient, to: str) -> None:
        self.client, self.to = client, to
        self.accepted = 0  # messages m0 .. m(accepted-1) are accepted
        self.contacts: set[str] = set()  # roster items the server answered for
        self.refused: set[str] = set()

    async def write(self) -> None:
        """Write until the connection is gone."""
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(TOTAL):
                body = f"<body>message {i}</body>"
                await self.client.send(
                    f"<message to='{self.to}' type='chat' id='m{i}'>{body}</message>"
                )
                done = i + 1
                if done % ROSTER_EVERY == 0:
                    await self.client.send(roster_set(done))
                elif done % PING_EVERY == 0:
                    await self.client.send(ping(done))

    async def read(self, kill: int) -> None:
        """Read answers until the connection drops; kill the server once ``KILL_AT`` are in."""
        killed = False
        with contextlib.suppress(EOFError, ConnectionError, OSError, TimeoutError):
            while True:
                stanza = await self.client.element(15)
                kind, stanza_id = stanza.get("type"), stanza.get("id") or ""
                if stanza.name == "iq" and kind == "result":
                    self.accepted = max(self.accepted, int(stanza_id[1:]))
                    if stanza_id.startswith("r"):
                        self.contacts.add(contact(int(stanza_id[1:])))
                elif stanza.name == "message" and kind == "error":
                    self.refused.add(stanza_id)
                if self.accepted >= KILL_AT and not killed:
                    os.kill(kill, signal.SIGKILL)  # while the writer is still writing
                    killed = True


def ping(n: int) -> Element:
    iq = Element("iq", NS_CLIENT, {"type": "get", "id": f"p{n}", "to": DOMAIN})
    iq.sub("ping", NS_PING)
    return iq


def contact(n: int) -> str:
    return f"c{n}@example.net"


def roster_set(n: int) -> Element:
    iq = Element("iq", NS_CLIENT, {"type": "set", "id": f"r{n}"})
    iq.sub("query", NS_ROSTER).add(Element("item", NS_ROSTER, {"jid": contact(n)}))
    return iq


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """``make_server`` options for each storage backend."""
    if request.param == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return {"storage": "postgresql", "dsn": dsn}
    return {"storage": "sqlite"}


@contextlib.contextmanager
def own_server(directory: Path, options: dict[str, str]) -> Iterator[ServerProcess]:
    server = make_server(directory, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sqlite_is_intact(path: Path) -> None:
    """The database after the crash: WAL mode, and integrity_check finds nothing wrong."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


async def postgres_is_intact(dsn: str) -> None:
    """amcheck: every heap table and every B-tree index of the schema verifies."""
    db = await asyncpg.connect(dsn)
    try:
        await db.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        tables = await db.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        assert tables > 0
        corrupt = await db.fetch(
            "SELECT c.relname, v.* FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
            " LATERAL verify_heapam(c.oid) v WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        assert corrupt == []
        checked = await db.fetch(  # raises on a corrupt index
            "SELECT bt_index_check(c.oid, true) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND a.amname = 'btree'"
        )
        assert checked
    finally:
        await db.close()


async def delivered_once(server: ServerProcess, user: str) -> list[str]:
    """The ids of the messages ``user`` gets at login; a second login gets none again."""
    got: list[str] = []
    for resource in ("first", "again"):
        client = RawClient(server)
        await client.connect()
        try:
            await client.login(local(user), resource=resource)
            await client.send("<presence/>")
            ids = []
            with contextlib.suppress(TimeoutError):
                while True:  # offline messages come at once after the presence
                    stanza = await client.element(1.0)
                    if stanza.name == "message":
                        ids.append(stanza.get("id") or "")
            got += ids
            if resource == "again":
                assert ids == [], "delivered twice"
        finally:
            await client.close()
    return got


async def roster_of(server: ServerProcess, user: str) -> set[str]:
    client = RawClient(server)
    await client.connect()
    try:
        await client.login(local(user), resource="roster")
        query = Element("iq", NS_CLIENT, {"type": "get", "id": "roster"})
        query.sub("query", NS_ROSTER)
        await client.send(query)
        result = await client.element()
        assert (result.get("id"), result.get("type")) == ("roster", "result"), result
        items = result.find("query", NS_ROSTER)
        assert items is not None
        return {item.get("jid") or "" for item in items.elements()}
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_sigkill_under_load_loses_no_accepted_message_or_roster_change(
    server_dir: Path, storage_options: dict[str, str]
) -> None:
    with own_server(server_dir, storage_options) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        assert server.proc is not None
        client = RawClient(server)
        await client.connect()
        try:
            await client.login(local(alice), resource="a")
            assert await ping_server(client) == []
            load = Load(client, bob)
            reader = asyncio.get_running_loop().create_task(load.read(server.proc.pid))
            await load.write()
            await asyncio.wait_for(reader, 20)
        finally:
            await client.close()
        assert server.proc.wait(10) == -signal.SIGKILL
        assert KILL_AT <= load.accepted < TOTAL, "the kill did not interrupt the load"
        if storage_options["storage"] == "sqlite":
            sqlite_is_intact(server.directory / "data" / "roost.sqlite")
        else:
            await postgres_is_intact(storage_options["dsn"])
        server.proc = None
        server.start()
        delivered = await delivered_once(server, bob)
        contacts = await roster_of(server, alice)
    accepted = {f"m{i}" for i in range(load.accepted)} - load.refused
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert accepted <= set(delivered), sorted(accepted - set(delivered))
    assert set(delivered) <= {f"m{i}" for i in range(TOTAL)} - load.refused
    assert delivered == sorted(delivered, key=lambda m: int(m[1:]))  # in the order sent
    assert load.contacts
    assert load.contacts <= contacts, sorted(load.contacts - contacts)
