"""Service Discovery (XEP-0030) over the wire: what the server and accounts advertise, and to
whom an account answers (itself and contacts subscribed to its presence, as Prosody does)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slixmpp import JID

from roost.xml.element import Element
from roost.xml.ns import (
    NS_CLIENT,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_LAST,
    NS_PRIVATE,
    NS_VCARD,
)
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
def disco_iq(to: str | None, items: bool = False, node: str | None = None) -> Element:
    """A disco#info (or #items) get."""
    iq = Element("iq", NS_CLIENT, {"type": "get", "id": f"d{next(_ids)}"})
    if to is not None:
        iq.attrs["to"] = to
    query = iq.sub("query", NS_DISCO_ITEMS if items else NS_DISCO_INFO)
    if node is not None:
        query.attrs["node"] = node
    return iq


def presence(to: str | None = None, kind: str | None = None) -> Element:
    """A presence stanza."""
    stanza = Element("presence", NS_CLIENT)
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    return stanza


async def request(client: RawClient, iq: Element) -> Element:
    """Send an iq; its reply (what arrives before it is skipped)."""
    await client.send(iq)
    while True:
        reply = await client.element()
        if reply.name == "iq" and reply.get("id") == iq.get("id"):
            return reply


def info_of(reply: Element) -> tuple[set[tuple[str, str]], set[str]]:
    """(identities as (category, type), features) of a disco#info result."""
    assert reply.get("type") == "result", serialize(reply)
    query = reply.find("query", NS_DISCO_INFO)
    assert query is not None, serialize(reply)
    identities = {
        (e.attrs["category"], e.attrs["type"]) for e in query.elements() if e.name == "identity"
    }
    features = {e.attrs["var"] for e in query.elements() if e.name == "feature"}
    return identities, features


def items_of(reply: Element) -> list[Element]:
    """The items of a disco#items result."""
    assert reply.get("type") == "result", serialize(reply)
    query = reply.find("query", NS_DISCO_ITEMS)
    assert query is not None, serialize(reply)
    return list(query.elements())


async def wait_for(client: RawClient, kind: str, sender: str) -> Element:
    """The next presence of type ``kind`` from ``sender`` (other stanzas are skipped)."""
    while True:
        stanza = await client.element()
        origin = (stanza.get("from") or "").partition("/")[0]
        if stanza.name == "presence" and stanza.get("type") == kind and origin == sender:
            return stanza


async def subscribe(watcher: RawClient, watcher_jid: str, owner: RawClient, owner_jid: str) -> None:
    """``watcher`` asks to see ``owner``'s presence and ``owner`` approves (RFC 6121 §3.1):
    the owner's roster then has the watcher with 'from', the watcher's has the owner with 'to'."""
    await watcher.send(presence(owner_jid, "subscribe"))
    await wait_for(owner, "subscribe", watcher_jid)
    await owner.send(presence(watcher_jid, "subscribed"))
    await ping_server(owner)
    await wait_for(watcher, "subscribed", owner_jid)
    await ping_server(watcher)


class Logins:
    """Raw clients logged in (and available) for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[RawClient] = []

    async def __call__(self, jid: str, resource: str = "raw") -> RawClient:
        client = RawClient(self.server)
        self.clients.append(client)
        await client.connect()
        await client.login(local(jid), resource=resource)
        await client.send(presence())
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


def with_modules(directory: Path, modules: list[str]) -> ServerProcess:
    """A server (not started) that loads only ``modules`` (and their dependencies)."""
    server = make_server(directory)
    listed = ", ".join(f'"{name}"' for name in modules)
    with server.config.open("a") as config:
        config.write(f"[modules]\nenabled = [{listed}]\n")
    return server


# -- the server --------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("modules", "features"),
    [
        (["disco"], set()),
        (["disco", "vcard", "private"], {NS_VCARD, NS_PRIVATE}),
    ],
)
async def test_server_features_are_exactly_those_of_the_loaded_modules(
    tmp_path: Path, modules: list[str], features: set[str]
) -> None:
    server = with_modules(tmp_path / "roost", modules)
    server.start()
    try:
        alice = server.add_user("alice")
        client = RawClient(server)
        await client.connect()
        try:
            await client.login(local(alice))
            identities, advertised = info_of(await request(client, disco_iq(DOMAIN)))
            assert identities == {("server", "im")}
            assert advertised == {NS_DISCO_INFO, NS_DISCO_ITEMS} | features
            _, account = info_of(await request(client, disco_iq(None)))
            account_features = {NS_VCARD} & features
            assert account == {NS_DISCO_INFO, NS_DISCO_ITEMS} | account_features
        finally:
            await client.close()
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_default_server_advertises_vcard_private_and_last_activity(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    client = await slix_client(server, new_user("u") + "/r")
    info: Any = await client.plugin["xep_0030"].get_info(jid=JID(DOMAIN), timeout=5)
    assert {NS_VCARD, NS_PRIVATE, NS_LAST} <= set(info["disco_info"]["features"])
    await disconnect(client)


# -- accounts ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_account_answers_itself_with_identity_and_account_features(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice)
    for to in (None, alice):
        reply = await request(client, disco_iq(to))
        identities, features = info_of(reply)
        assert identities == {("account", "registered")}
        assert {NS_DISCO_INFO, NS_DISCO_ITEMS, NS_VCARD, NS_LAST} <= features
        assert NS_PRIVATE not in features  # a service of the server, not of the account
        assert items_of(await request(client, disco_iq(to, items=True))) == []


@pytest.mark.asyncio
async def test_account_answers_a_contact_subscribed_to_its_presence(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice)
    bob_client = await login(bob)
    await subscribe(alice_client, alice, bob_client, bob)  # bob's roster: alice 'from'
    reply = await request(alice_client, disco_iq(bob))
    assert reply.get("from") == bob
    identities, features = info_of(reply)
    assert identities == {("account", "registered")}
    assert NS_VCARD in features
    assert items_of(await request(alice_client, disco_iq(bob, items=True))) == []
    # alice's roster has bob as 'to' only: bob may not see alice's presence, nor her disco#info;
    # her disco#items is empty to him as to anyone (XEP-0030 §8 rule 2)
    assert error_condition(await request(bob_client, disco_iq(alice))) == "service-unavailable"
    assert items_of(await request(bob_client, disco_iq(alice, items=True))) == []


@pytest.mark.asyncio
async def test_account_does_not_answer_strangers_nor_reveal_missing_accounts(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    """disco#info to a stranger's or a missing account: service-unavailable (§8 rule 1)."""
    alice, bob = new_user("alice"), new_user("bob")
    client = await login(alice)
    for to in (bob, f"nobody-here@{DOMAIN}"):
        reply = await request(client, disco_iq(to))
        assert error_condition(reply) == "service-unavailable", to
        with_node = await request(client, disco_iq(to, node="urn:example:node"))
        assert error_condition(with_node) == "service-unavailable", to


def items_answer(reply: Element) -> tuple[str | None, str | None, str | None, list[Element]]:
    """(type, from, node of the query, items) of a disco#items reply."""
    query = reply.find("query", NS_DISCO_ITEMS)
    node = None if query is None else query.get("node")
    return reply.get("type"), reply.get("from"), node, items_of(reply)


@pytest.mark.asyncio
async def test_issue_9_disco_items_to_a_missing_account_is_an_empty_result(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    """XEP-0030 §8 rule 2.1: disco#items to an account that does not exist is an empty
    result, node or not; to a stranger's account the same (rule 2.2, §4.1), so the two
    answers do not tell whether the account exists."""
    alice, bob = new_user("alice"), new_user("bob")
    client = await login(alice)
    for to in (f"nobody-here@{DOMAIN}", bob):
        reply = await request(client, disco_iq(to, items=True))
        assert items_answer(reply) == ("result", to, None, []), serialize(reply)
        node = "urn:example:node"
        reply = await request(client, disco_iq(to, items=True, node=node))
        assert items_answer(reply) == ("result", to, node, []), serialize(reply)


@pytest.mark.asyncio
async def test_account_node_is_item_not_found(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice)
    for items in (False, True):
        reply = await request(client, disco_iq(None, items=items, node="urn:example:node"))
        assert error_condition(reply) == "item-not-found"


@pytest.mark.asyncio
async def test_disco_to_a_full_jid_is_delivered_to_that_client(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    target = await login(bob, "desk")
    asker = await login(alice)
    query = disco_iq(bob + "/desk")
    await asker.send(query)
    while True:
        delivered = await target.element()
        if delivered.name == "iq":
            break
    assert delivered.get("id") == query.get("id")
    assert delivered.get("from") == alice + "/raw"
