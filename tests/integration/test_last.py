"""Last Activity (XEP-0012) over the wire: uptime, last logout, and who may ask.

Subscriptions are made with the RFC 6121 §3 flows (subscribe, then subscribed) by the
roster and presence modules; what a session's server did is proven with ping round trips
(RFC 6120 §10.1: a session's stanzas are processed in order).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slixmpp import JID

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_LAST
from roost.xml.serializer import serialize
from tests.integration.harness import (
    DOMAIN,
    RawClient,
    ServerProcess,
    disconnect,
    error_condition,
    make_server,
    slix_client,
)
from tests.integration.rawhelpers import local, ping_server

_ids = itertools.count()


# -- helpers -----------------------------------------------------------------------------------
def last_iq(to: str | None) -> Element:
    """``<iq type='get'><query xmlns='jabber:iq:last'/></iq>``."""
    iq = Element("iq", NS_CLIENT, {"type": "get", "id": f"l{next(_ids)}"})
    if to is not None:
        iq.attrs["to"] = to
    iq.sub("query", NS_LAST)
    return iq


def presence(to: str | None = None, kind: str | None = None, status: str = "") -> Element:
    """A presence stanza."""
    stanza = Element("presence", NS_CLIENT)
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    if status:
        stanza.sub("status", text=status)
    return stanza


async def request(client: RawClient, iq: Element) -> Element:
    """Send an iq; its reply (what arrives before it is skipped)."""
    await client.send(iq)
    while True:
        reply = await client.element()
        if reply.name == "iq" and reply.get("id") == iq.get("id"):
            return reply


def seconds_and_text(reply: Element) -> tuple[int, str]:
    """The 'seconds' and text of a last-activity result."""
    assert reply.get("type") == "result", serialize(reply)
    query = reply.find("query", NS_LAST)
    assert query is not None, serialize(reply)
    return int(query.attrs["seconds"]), query.text


async def wait_for(client: RawClient, kind: str, sender: str) -> Element:
    """The next presence of type ``kind`` from ``sender`` (other stanzas are skipped)."""
    while True:
        stanza = await client.element()
        origin = (stanza.get("from") or "").partition("/")[0]
        if stanza.name == "presence" and stanza.get("type") == kind and origin == sender:
            return stanza


async def subscribe(watcher: RawClient, watcher_jid: str, owner: RawClient, owner_jid: str) -> None:
    """``watcher`` asks to see ``owner``'s presence and ``owner`` approves (RFC 6121 §3.1):
    afterwards the owner's roster has the watcher with subscription 'from' (or 'both')."""
    await watcher.send(presence(owner_jid, "subscribe"))
    await wait_for(owner, "subscribe", watcher_jid)
    await owner.send(presence(watcher_jid, "subscribed"))
    await ping_server(owner)
    await wait_for(watcher, "subscribed", owner_jid)
    await ping_server(watcher)


class Logins:
    """Raw clients logged in for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[RawClient] = []

    async def __call__(
        self, jid: str, resource: str = "raw", *, available: bool = True, status: str = ""
    ) -> RawClient:
        client = RawClient(self.server)
        self.clients.append(client)
        await client.connect()
        await client.login(local(jid), resource=resource)
        if available:
            await client.send(presence(status=status))
        await ping_server(client)
        return client


@pytest_asyncio.fixture
async def login(server: ServerProcess) -> AsyncIterator[Logins]:
    """Log raw clients in to the shared server; closed after the test."""
    logins = Logins(server)
    try:
        yield logins
    finally:
        for client in logins.clients:
            await client.close()


async def answered(client: RawClient, to: str, tries: int = 20) -> tuple[int, str]:
    """The last activity of ``to`` once the server has one (a logout is written in the
    background when a session is cut)."""
    for _ in range(tries):
        reply = await request(client, last_iq(to))
        if reply.get("type") == "result":
            return seconds_and_text(reply)
        await asyncio.sleep(0.1)
    raise AssertionError(serialize(reply))


# -- the server (§5) ---------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_last_activity_of_the_server_is_its_uptime(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    client = await slix_client(server, new_user("u") + "/r")
    client.register_plugin("xep_0012")
    reply: Any = await client.plugin["xep_0012"].get_last_activity(JID(DOMAIN), timeout=5)
    assert reply["from"] == JID(DOMAIN)
    assert 0 <= reply["last_activity"]["seconds"] < 24 * 3600
    assert not reply["last_activity"]["status"]  # §5: no text
    await disconnect(client)


@pytest.mark.asyncio
async def test_uptime_grows(login: Logins, new_user: Callable[[str], str]) -> None:
    client = await login(new_user("u"))
    first, _ = seconds_and_text(await request(client, last_iq(DOMAIN)))
    await asyncio.sleep(1.1)
    second, _ = seconds_and_text(await request(client, last_iq(DOMAIN)))
    assert second >= first + 1


# -- accounts (§3) -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_last_activity_of_a_non_subscriber_is_forbidden(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await login(bob)
    client = await login(alice)
    reply = await request(client, last_iq(bob))
    assert error_condition(reply) == "forbidden"
    assert reply.get("from") == bob


@pytest.mark.asyncio
async def test_last_activity_of_no_such_account_is_service_unavailable(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    reply = await request(client, last_iq(f"nobody-here@{DOMAIN}"))
    assert error_condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_last_activity_of_an_online_contact_is_zero(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    bob_client = await login(bob)
    await subscribe(alice_client, alice, bob_client, bob)
    assert seconds_and_text(await request(alice_client, last_iq(bob))) == (0, "")


@pytest.mark.asyncio
async def test_last_activity_of_an_offline_contact_is_time_since_logout_and_status(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    bob_client = await login(bob)
    await subscribe(alice_client, alice, bob_client, bob)
    await bob_client.send(presence(kind="unavailable", status="Heading Home"))
    await ping_server(bob_client)
    await bob_client.close()
    await asyncio.sleep(1.2)
    seconds, text = seconds_and_text(await request(alice_client, last_iq(bob)))
    assert 1 <= seconds <= 10
    assert text == "Heading Home"


@pytest.mark.asyncio
async def test_contact_that_only_the_user_is_subscribed_to_may_not_ask(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    bob_client = await login(bob)
    await subscribe(alice_client, alice, bob_client, bob)  # bob: 'from' alice; alice: 'to' bob
    assert seconds_and_text(await request(alice_client, last_iq(bob)))[0] == 0
    assert error_condition(await request(bob_client, last_iq(alice))) == "forbidden"


@pytest.mark.asyncio
async def test_last_activity_counts_from_the_last_available_resource(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    desk = await login(bob, "desk")
    phone = await login(bob, "phone")
    await subscribe(alice_client, alice, desk, bob)
    await desk.send(presence(kind="unavailable", status="desk gone"))
    await ping_server(desk)
    assert seconds_and_text(await request(alice_client, last_iq(bob))) == (0, "")
    await phone.send(presence(kind="unavailable", status="phone gone"))
    await ping_server(phone)
    seconds, text = seconds_and_text(await request(alice_client, last_iq(bob)))
    assert seconds <= 5
    assert text == "phone gone"


@pytest.mark.asyncio
async def test_session_cut_without_unavailable_is_a_logout_without_status(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    bob_client = await login(bob)
    await subscribe(alice_client, alice, bob_client, bob)
    assert bob_client.writer is not None
    bob_client.writer.transport.abort()  # TCP cut: no unavailable presence, no stream close
    await wait_for(alice_client, "unavailable", bob)  # the server noticed (RFC 6121 §4.5.2)
    seconds, text = await answered(alice_client, bob)
    assert seconds <= 5
    assert text == ""


@pytest.mark.asyncio
async def test_own_last_activity_is_answered_without_a_subscription(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    first = await login(alice, "first", status="bye")
    await first.send(presence(kind="unavailable", status="gone fishing"))
    await ping_server(first)
    await first.close()
    later = await login(alice, "later", available=False)
    seconds, text = seconds_and_text(await request(later, last_iq(None)))
    assert seconds <= 5
    assert text == "gone fishing"


@pytest.mark.asyncio
async def test_account_never_online_has_no_last_activity(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"), available=False)
    assert error_condition(await request(client, last_iq(None))) == "service-unavailable"


@pytest.mark.asyncio
async def test_last_activity_is_advertised_by_the_server_and_accounts(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await slix_client(server, alice + "/r")
    for jid in (DOMAIN, alice):
        info: Any = await client.plugin["xep_0030"].get_info(jid=JID(jid), timeout=5)
        assert NS_LAST in info["disco_info"]["features"], jid
    await disconnect(client)


# -- full JIDs (§4) ----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_last_activity_to_a_full_jid_reaches_the_client_of_a_subscriber_only(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    alice_client = await login(alice)
    bob_client = await login(bob, "desk")
    carol_client = await login(carol)
    await subscribe(alice_client, alice, bob_client, bob)

    refused = await request(carol_client, last_iq(bob + "/desk"))
    assert error_condition(refused) == "forbidden"
    assert await ping_server(bob_client) == []  # nothing reached bob

    query = last_iq(bob + "/desk")
    await alice_client.send(query)
    delivered = await bob_client.element()
    assert delivered.name == "iq"
    assert delivered.get("id") == query.get("id")
    assert delivered.get("from") == alice + "/raw"


@pytest.mark.asyncio
async def test_last_activity_to_own_other_resource_is_delivered(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    desk = await login(alice, "desk")
    phone = await login(alice, "phone")
    query = last_iq(alice + "/desk")
    await phone.send(query)
    while True:
        delivered = await desk.element()
        if delivered.name == "iq":
            break
    assert delivered.get("id") == query.get("id")


# -- across a restart --------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """``make_server`` options for each storage backend."""
    if request.param == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return {"storage": "postgresql", "dsn": dsn}
    return {"storage": "sqlite"}


@pytest.mark.asyncio
async def test_last_logout_survives_a_restart(
    server_dir: Path, storage_options: dict[str, str]
) -> None:
    own = make_server(server_dir, **storage_options)  # type: ignore[arg-type]
    own.start()
    try:
        alice, bob = own.add_user("alice"), own.add_user("bob")
        logins = Logins(own)
        try:
            alice_client = await logins(alice)
            bob_client = await logins(bob)
            await subscribe(alice_client, alice, bob_client, bob)
            await bob_client.send(presence(kind="unavailable", status="see you"))
            await ping_server(bob_client)
        finally:
            for client in logins.clients:
                await client.close()
        assert own.stop() == 0, own.log_text()
        own.log.rename(own.log.with_name("server-before-restart.log"))
        own.start()
        logins = Logins(own)
        try:
            alice_client = await logins(alice)
            seconds, text = seconds_and_text(await request(alice_client, last_iq(bob)))
            assert seconds <= 30
            assert text == "see you"
        finally:
            for client in logins.clients:
                await client.close()
    finally:
        own.stop()
