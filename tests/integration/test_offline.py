"""Offline messages (XEP-0160) with delayed-delivery stamps (XEP-0203), over raw sockets.

Stored messages are delivered when the user next sends initial presence with a non-negative
priority, exactly once, with ``<delay/>``; they survive a restart on SQLite and PostgreSQL and
a SIGTERM in the middle of a burst; the quota and the expiry are enforced.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_DISCO_INFO, NS_PING
from tests.integration.harness import DOMAIN, RawClient, ServerProcess, make_server
from tests.integration.rawhelpers import local, ping_server
from tests.integration.test_messages import (
    Peers,
    delay_of,
    error_condition,
    ids,
    message,
    messages,
    wait_for_messages,
)

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


# -- helpers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def own_server(directory: Path, **options: object) -> Iterator[ServerProcess]:
    """A server of this test's own (``options`` as for ``make_server``), stopped at the end."""
    server = make_server(directory, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def restart(server: ServerProcess) -> None:
    """Stop with SIGTERM (a clean exit is expected), then start again on the same data."""
    assert server.stop() == 0, server.log_text()
    server.log.rename(server.log.with_name(f"server-{time.monotonic_ns()}.log"))
    server.start()


async def collect_until_quiet(client: RawClient, quiet: float = 1.0) -> list[Element]:
    """The messages that arrive until nothing more comes for ``quiet`` seconds."""
    got: list[Element] = []
    while True:
        try:
            stanza = await client.element(quiet)
        except TimeoutError:
            return got
        if stanza.name == "message":
            got.append(stanza)


async def host_features(client: RawClient) -> set[str | None]:
    """The features of the server's disco#info (XEP-0030)."""
    query = Element("iq", NS_CLIENT, {"type": "get", "id": "disco1", "to": DOMAIN})
    query.sub("query", NS_DISCO_INFO)
    await client.send(query)
    reply = await client.element()
    while reply.get("id") != "disco1":
        reply = await client.element()
    info = reply.find("query", NS_DISCO_INFO)
    assert info is not None, reply
    return {f.get("var") for f in info.elements() if f.name == "feature"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """``make_server`` options for each storage backend."""
    if request.param == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return {"storage": "postgresql", "dsn": dsn}
    return {"storage": "sqlite"}


# -- delivery at the next login ----------------------------------------------------------------
@pytest.mark.asyncio
async def test_offline_messages_delivered_once_with_delay_at_next_login(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    peers = Peers(server)
    try:
        alice_jid = new_user("alice")
        alice = await peers.login(alice_jid, "a")
        before = int(time.time())
        await alice.send(message(bob, "chat", "c1", "first"))
        await alice.send(message(bob, "normal", "n1", "second & <third>"))
        await alice.send(message(bob, None, "n2", "no type"))
        assert await messages(alice) == []  # accepted: no error
        after = int(time.time()) + 1
        b = await peers.login(bob, "b", 0)
        got = await wait_for_messages(b, 3)
        assert ids(got) == ["c1", "n1", "n2"]  # in the order they were sent
        assert [m.find_text("body") for m in got] == ["first", "second & <third>", "no type"]
        for stored in got:
            assert stored.get("from") == alice_jid + "/a"
            assert stored.get("to") == bob
            delay = delay_of(stored)
            assert delay is not None, stored
            assert delay.get("from") == DOMAIN
            stamp = delay.get("stamp") or ""
            assert STAMP.fullmatch(stamp), stamp
            when = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
            assert before <= when <= after
        again = await peers.login(bob, "again", 0)
        assert await collect_until_quiet(again, 0.5) == []  # delivered once, then deleted
    finally:
        await peers.close()


@pytest.mark.asyncio
async def test_offline_messages_wait_through_negative_priority_logins(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    peers = Peers(server)
    try:
        alice = await peers.login(new_user("alice"), "a")
        await alice.send(message(bob, "chat", "c1"))
        assert await messages(alice) == []
        negative = await peers.login(bob, "neg", -1)
        assert await collect_until_quiet(negative, 0.7) == []
        await negative.close()
        positive = await peers.login(bob, "pos", 0)
        assert ids(await wait_for_messages(positive, 1)) == ["c1"]
    finally:
        await peers.close()


@pytest.mark.asyncio
async def test_offline_storage_is_advertised_as_msgoffline(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    peers = Peers(server)
    try:
        client = await peers.login(new_user("u"), "r")
        assert "msgoffline" in await host_features(client)
    finally:
        await peers.close()


@pytest.mark.asyncio
async def test_without_the_offline_module_a_message_to_an_offline_user_is_refused(
    server_dir: Path,
) -> None:
    server = make_server(server_dir)
    with server.config.open("a") as config:  # every module but "offline"
        config.write('[modules]\nenabled = ["disco", "ping", "presence", "message"]\n')
    server.start()
    try:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        peers = Peers(server)
        try:
            sender = await peers.login(alice, "a")
            await sender.send(message(bob, "chat", "c1"))
            (refused,) = await messages(sender)
            assert error_condition(refused) == "service-unavailable"
            assert "msgoffline" not in await host_features(sender)
        finally:
            await peers.close()
    finally:
        server.stop()


# -- quota and expiry ----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_message_past_the_offline_quota_is_service_unavailable(server_dir: Path) -> None:
    with own_server(server_dir, limits={"offline_messages": 3}) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        peers = Peers(server)
        try:
            sender = await peers.login(alice, "a")
            for i in range(5):
                await sender.send(message(bob, "chat", f"m{i}"))
            refused = await messages(sender)
            assert ids(refused) == ["m3", "m4"]
            assert all(error_condition(r) == "service-unavailable" for r in refused)
            b = await peers.login(bob, "b", 0)
            assert ids(await wait_for_messages(b, 3)) == ["m0", "m1", "m2"]
            await b.send(Element("presence", NS_CLIENT, {"type": "unavailable"}))
            await ping_server(b)
            await sender.send(message(bob, "chat", "after"))  # delivered ones made room
            assert await messages(sender) == []
        finally:
            await peers.close()


@pytest.mark.asyncio
async def test_offline_messages_older_than_the_expiry_age_are_deleted(server_dir: Path) -> None:
    with own_server(server_dir, limits={"offline_expire_after": 1}) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        peers = Peers(server)
        try:
            sender = await peers.login(alice, "a")
            await sender.send(message(bob, "chat", "old"))
            assert await messages(sender) == []
        finally:
            await peers.close()
        await asyncio.sleep(1.5)
        restart(server)  # expiry runs at start
        peers = Peers(server)
        try:
            b = await peers.login(bob, "b", 0)
            assert await collect_until_quiet(b, 0.7) == []
        finally:
            await peers.close()


# -- durability ------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_offline_messages_survive_a_restart(
    server_dir: Path, storage_options: dict[str, str]
) -> None:
    with own_server(server_dir, **storage_options) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        peers = Peers(server)
        try:
            sender = await peers.login(alice, "a")
            for i in range(3):
                await sender.send(message(bob, "chat", f"m{i}", f"body {i}"))
            assert await messages(sender) == []
        finally:
            await peers.close()
        restart(server)
        peers = Peers(server)
        try:
            b = await peers.login(bob, "b", 0)
            got = await wait_for_messages(b, 3)
            assert ids(got) == ["m0", "m1", "m2"]
            assert all(delay_of(m) is not None for m in got)
        finally:
            await peers.close()


class Burst:
    """Messages written as fast as possible with a ping after every ``ping_every``, and what
    came back. A message counts as acknowledged once a ping sent after it is answered: the
    server handles a session's stanzas in order, and an offline push is committed before the
    next stanza is processed."""

    def __init__(self, client: RawClient, to: str, total: int, ping_every: int) -> None:
        self.client, self.to, self.total, self.ping_every = client, to, total, ping_every
        self.acked = 0  # messages m0 .. m(acked-1) are acknowledged
        self.refused: set[str] = set()

    async def send(self) -> None:
        """Write the burst; stop writing once the connection is gone."""
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(self.total):
                await self.client.send(message(self.to, "chat", f"m{i}"))
                if (i + 1) % self.ping_every == 0:
                    ping = Element("iq", NS_CLIENT, {"type": "get", "id": f"p{i + 1}"})
                    ping.attrs["to"] = DOMAIN
                    ping.sub("ping", NS_PING)
                    await self.client.send(ping)

    async def read(self, stop_at: int, stop: Callable[[], None]) -> None:
        """Read answers until the server closes the stream; call ``stop`` once ``stop_at``
        messages are acknowledged (the rest of the burst is then queued in the server)."""
        stopped = False
        with contextlib.suppress(EOFError, ConnectionError, OSError, TimeoutError):
            while True:
                stanza = await self.client.element(15)
                if stanza.name == "iq" and stanza.get("type") == "result":
                    self.acked = max(self.acked, int((stanza.get("id") or "p0")[1:]))
                elif stanza.name == "message" and stanza.get("type") == "error":
                    self.refused.add(stanza.get("id") or "")
                if self.acked >= stop_at and not stopped:
                    stop()
                    stopped = True


@pytest.mark.asyncio
async def test_sigterm_during_a_burst_loses_no_acknowledged_message_and_duplicates_none(
    server_dir: Path, storage_options: dict[str, str]
) -> None:
    total = 200
    with own_server(server_dir, **storage_options) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        proc = server.proc
        assert proc is not None
        client = RawClient(server)
        await client.connect()
        try:
            await client.login(local(alice), resource="a")
            burst = Burst(client, bob, total, ping_every=10)
            stop_at = total // 2
            reader = asyncio.get_running_loop().create_task(
                burst.read(stop_at, lambda: proc.send_signal(signal.SIGTERM))
            )
            await burst.send()
            await asyncio.wait_for(reader, 20)
        finally:
            await client.close()
        restart(server)
        peers = Peers(server)
        try:
            b = await peers.login(bob, "b", 0)
            delivered = [m.get("id") for m in await collect_until_quiet(b, 1.5)]
            again = await peers.login(bob, "again", 0)
            redelivered = await collect_until_quiet(again, 0.7)
        finally:
            await peers.close()
    acknowledged = {f"m{i}" for i in range(burst.acked)} - burst.refused
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert acknowledged <= set(delivered), sorted(acknowledged - set(delivered))
    assert set(delivered) <= {f"m{i}" for i in range(total)} - burst.refused
    assert delivered == sorted(delivered, key=lambda m: int((m or "m0")[1:]))  # in order
    assert redelivered == []
    assert stop_at <= burst.acked < total, "the stop did not interrupt the burst"
