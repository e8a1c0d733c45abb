"""Blocking Command (XEP-0191) over the wire: the protocol, pushes and enforcement.

What arrived where is proven with ping round trips, as in test_messages: a session's stanzas
are processed in order (RFC 6120 §10.1), so once the sender's ping is answered its stanza was
delivered, refused or dropped, and once a recipient's ping is answered everything written to
it before has been read.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import slixmpp

from roost.jid import JID
from roost.modules.blocking import matching_item
from roost.xml.element import Element
from roost.xml.ns import (
    NS_BLOCKING,
    NS_BLOCKING_ERRORS,
    NS_CLIENT,
    NS_DISCO_INFO,
    NS_PING,
    NS_STANZAS,
    NS_TLS,
)
from tests.integration.harness import (
    DOMAIN,
    RawClient,
    ServerProcess,
    disconnect,
    make_server,
    slix_client,
)
from tests.integration.rawhelpers import auth, local, ping_server

_ids = itertools.count()
OTHER_DOMAIN = "example.test"


# -- helpers -----------------------------------------------------------------------------------
def blocking_iq(kind: str, action: str, jids: list[str] | None = None) -> Element:
    """An iq without 'to' carrying ``<action xmlns='urn:xmpp:blocking'>`` with items."""
    iq = Element("iq", NS_CLIENT, {"type": kind, "id": f"b{next(_ids)}"})
    payload = iq.sub(action, NS_BLOCKING)
    for jid in jids or ():
        payload.sub("item", jid=jid)
    return iq


def message(to: str, body: str = "hello", kind: str = "chat") -> Element:
    """A message with a fresh id."""
    stanza = Element("message", NS_CLIENT, {"to": to, "type": kind, "id": f"m{next(_ids)}"})
    stanza.sub("body", text=body)
    return stanza


def iq_to(to: str, kind: str = "get") -> Element:
    """An iq get (a ping) or a result addressed to ``to``."""
    stanza = Element("iq", NS_CLIENT, {"to": to, "type": kind, "id": f"q{next(_ids)}"})
    if kind in ("get", "set"):
        stanza.sub("ping", NS_PING)
    return stanza


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


def conditions(stanza: Element) -> list[tuple[str, str]]:
    """(namespace, name) of every child of the stanza's ``<error/>``."""
    assert stanza.get("type") == "error", stanza
    error = stanza.find("error", NS_CLIENT)
    assert error is not None, stanza
    return [(c.xmlns, c.name) for c in error.elements()]


def error_condition(stanza: Element) -> str:
    """The defined condition of an error stanza."""
    return next(name for ns, name in conditions(stanza) if ns == NS_STANZAS and name != "text")


def items_of(payload: Element | None) -> list[str]:
    """The 'jid' of each ``<item/>`` of a blocking payload."""
    assert payload is not None
    return [item.attrs["jid"] for item in payload.elements() if item.name == "item"]


async def request(client: RawClient, iq: Element) -> tuple[Element, list[Element]]:
    """Send an iq; its reply and what arrived before it."""
    await client.send(iq)
    before: list[Element] = []
    while True:
        reply = await client.element()
        is_reply = reply.get("type") in ("result", "error")
        if reply.name == "iq" and reply.get("id") == iq.get("id") and is_reply:
            return reply, before
        before.append(reply)


async def ok(client: RawClient, iq: Element) -> list[Element]:
    """Send an iq that must succeed; what arrived before the result."""
    reply, before = await request(client, iq)
    assert reply.get("type") == "result", reply
    return before


async def blocklist(client: RawClient) -> list[str]:
    """The block list, as the server returns it."""
    reply, _ = await request(client, blocking_iq("get", "blocklist"))
    assert reply.get("type") == "result", reply
    return items_of(reply.find("blocklist", NS_BLOCKING))


async def arrived(client: RawClient, name: str | None = None) -> list[Element]:
    """What reached ``client`` (only ``name`` stanzas if given) before a ping it sends now."""
    return [s for s in await ping_server(client) if name is None or s.name == name]


def pushes(stanzas: list[Element]) -> list[Element]:
    """The blocking pushes among ``stanzas`` (iq set with a blocking payload)."""
    return [
        s
        for s in stanzas
        if s.name == "iq" and s.get("type") == "set" and s.find_ns(NS_BLOCKING) is not None
    ]


class Peers:
    """Raw clients logged in for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[RawClient] = []

    async def login(self, jid: str, resource: str = "raw", *, available: bool = True) -> RawClient:
        """Log ``jid`` in as ``resource`` (with initial presence when ``available``)."""
        client = RawClient(self.server)
        self.clients.append(client)
        await client.connect()
        domain = jid.partition("@")[2]
        if domain == DOMAIN:
            await client.login(local(jid), resource=resource)
        else:
            await login_on_domain(client, domain, local(jid), resource)
        if available:
            await client.send(presence())
        await ping_server(client)
        return client

    async def close(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.close()


async def login_on_domain(client: RawClient, domain: str, user: str, resource: str) -> str:
    """STARTTLS, PLAIN and bind on a stream to ``domain`` (RawClient.login speaks to DOMAIN)."""
    await client.open(domain)
    await client.send(Element("starttls", NS_TLS))
    proceed = await client.element()
    assert proceed.name == "proceed", proceed
    assert client.writer is not None
    await client.writer.start_tls(client.server.client_context(), server_hostname=domain)
    client.parser.reset()
    await client.open(domain)
    await client.send(auth("PLAIN", f"\0{user}\0secret"))
    answer = await client.element()
    assert answer.name == "success", answer
    client.parser.reset()
    await client.open(domain)
    return await client.bind(resource)


@pytest_asyncio.fixture
async def peers(server: ServerProcess) -> AsyncIterator[Peers]:
    """Log clients in to the shared server; they are closed after the test."""
    made = Peers(server)
    try:
        yield made
    finally:
        await made.close()


# -- JID matching (XEP-0191 §6, XEP-0016 §2.1) -------------------------------------------------
@pytest.mark.parametrize(
    ("item", "jid", "matches"),
    [
        ("bob@ex.org/phone", "bob@ex.org/phone", True),
        ("bob@ex.org/phone", "bob@ex.org/laptop", False),
        ("bob@ex.org/phone", "bob@ex.org", False),
        ("bob@ex.org", "bob@ex.org/any", True),
        ("bob@ex.org", "bob@ex.org", True),
        ("bob@ex.org", "eve@ex.org", False),
        ("ex.org/bot", "ex.org/bot", True),
        ("ex.org/bot", "bob@ex.org/bot", True),
        ("ex.org/bot", "ex.org/other", False),
        ("ex.org", "ex.org", True),
        ("ex.org", "bob@ex.org/phone", True),
        ("ex.org", "ex.org/bot", True),
        ("ex.org", "muc.ex.org", False),  # 1.3 dropped XEP-0016's subdomain rule
        ("ex.org", "bob@other.org", False),
    ],
)
def test_an_item_matches_the_full_bare_domain_resource_or_domain_form(
    item: str, jid: str, matches: bool
) -> None:
    assert (matching_item(frozenset({item}), JID.parse(jid)) == item) is matches


def test_the_most_specific_matching_item_is_reported_first() -> None:
    items = frozenset({"bob@ex.org/phone", "bob@ex.org", "ex.org/phone", "ex.org"})
    assert matching_item(items, JID.parse("bob@ex.org/phone")) == "bob@ex.org/phone"
    assert matching_item(items, JID.parse("bob@ex.org/laptop")) == "bob@ex.org"
    assert matching_item(items, JID.parse("eve@ex.org/phone")) == "ex.org/phone"
    assert matching_item(items, JID.parse("eve@ex.org")) == "ex.org"


# -- the protocol (§3.1-§3.5) ------------------------------------------------------------------
@pytest.mark.asyncio
async def test_block_list_starts_empty_then_lists_blocked_jids_normalised(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice = await peers.login(new_user("alice"))
    reply, _ = await request(alice, blocking_iq("get", "blocklist"))
    payload = reply.find("blocklist", NS_BLOCKING)
    assert payload is not None
    assert payload.children == []
    await ok(alice, blocking_iq("set", "block", ["Bob@LocalHost", "EX.org/Bot", "ex.org"]))
    await ok(alice, blocking_iq("set", "block", ["bob@localhost", "carol@ex.org/Phone"]))
    assert await blocklist(alice) == [
        "bob@localhost",
        "carol@ex.org/Phone",
        "ex.org",
        "ex.org/Bot",
    ]


@pytest.mark.asyncio
async def test_block_without_an_item_is_a_bad_request(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice = await peers.login(new_user("alice"))
    reply, _ = await request(alice, blocking_iq("set", "block"))
    assert error_condition(reply) == "bad-request"
    iq = blocking_iq("set", "block")
    payload = iq.find("block", NS_BLOCKING)
    assert payload is not None
    payload.sub("item")  # no 'jid'
    reply, _ = await request(alice, iq)
    assert error_condition(reply) == "bad-request"
    assert await blocklist(alice) == []


@pytest.mark.asyncio
async def test_block_with_an_invalid_jid_is_jid_malformed_and_blocks_nothing(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice = await peers.login(new_user("alice"))
    reply, _ = await request(alice, blocking_iq("set", "block", ["fine@ex.org", "bad@@ex.org"]))
    assert error_condition(reply) == "jid-malformed"
    reply, _ = await request(alice, blocking_iq("set", "unblock", ["@ex.org"]))
    assert error_condition(reply) == "jid-malformed"
    assert await blocklist(alice) == []


@pytest.mark.asyncio
async def test_unblock_removes_the_items_and_an_empty_unblock_removes_all(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice = await peers.login(new_user("alice"))
    await ok(alice, blocking_iq("set", "block", ["a@ex.org", "b@ex.org", "c@ex.org"]))
    await ok(alice, blocking_iq("set", "unblock", ["b@ex.org", "never-blocked@ex.org"]))
    assert await blocklist(alice) == ["a@ex.org", "c@ex.org"]
    await ok(alice, blocking_iq("set", "unblock"))
    assert await blocklist(alice) == []
    await ok(alice, blocking_iq("set", "unblock"))  # nothing to unblock is fine too


@pytest.mark.asyncio
async def test_the_block_list_of_another_account_cannot_be_read_or_changed(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    alice = await peers.login(new_user("alice"))
    for iq in (blocking_iq("get", "blocklist"), blocking_iq("set", "block", ["x@ex.org"])):
        iq.attrs["to"] = bob
        reply, _ = await request(alice, iq)
        assert error_condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_pushes_go_to_every_resource_that_requested_the_block_list(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    user = new_user("alice")
    first, second = await peers.login(user, "first"), await peers.login(user, "second")
    silent = await peers.login(user, "silent")  # never asks for the list (§3.3: no pushes)
    assert await blocklist(first) == []
    assert await blocklist(second) == []
    before = await ok(first, blocking_iq("set", "block", ["eve@ex.org", "Mallory@ex.org"]))
    [own] = pushes(before)
    [other] = pushes(await arrived(second))
    for push, resource in ((own, "first"), (other, "second")):
        assert push.get("to") == f"{user}/{resource}"
        assert push.get("from") in (None, user)
        assert push.get("id")
        assert items_of(push.find("block", NS_BLOCKING)) == ["eve@ex.org", "mallory@ex.org"]
    await ok(second, blocking_iq("set", "unblock", ["eve@ex.org"]))
    [push] = pushes(await arrived(first))
    assert items_of(push.find("unblock", NS_BLOCKING)) == ["eve@ex.org"]
    await ok(second, blocking_iq("set", "unblock"))
    [push] = pushes(await arrived(first))
    unblock_all = push.find("unblock", NS_BLOCKING)
    assert unblock_all is not None
    assert unblock_all.children == []
    assert pushes(await arrived(silent)) == []


@pytest.mark.asyncio
async def test_slixmpp_discovers_blocks_lists_and_unblocks(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    client = await slix_client(server, new_user("alice") + "/slix")
    client.register_plugin("xep_0191")
    info = await client.plugin["xep_0030"].get_info(jid=slixmpp.JID(DOMAIN), timeout=5)
    assert NS_BLOCKING in info["disco_info"]["features"]
    pushed: asyncio.Queue[object] = asyncio.Queue()
    client.add_event_handler("blocked", pushed.put_nowait)
    assert await client.plugin["xep_0191"].get_blocked_jids(timeout=5) == set()
    await client.plugin["xep_0191"].block(
        [slixmpp.JID("eve@ex.org"), slixmpp.JID("ex.net")], timeout=5
    )
    await asyncio.wait_for(pushed.get(), 5)
    blocked = await client.plugin["xep_0191"].get_blocked_jids(timeout=5)
    assert blocked == {slixmpp.JID("eve@ex.org"), slixmpp.JID("ex.net")}
    await client.plugin["xep_0191"].unblock(slixmpp.JID("ex.net"), timeout=5)
    assert await client.plugin["xep_0191"].get_blocked_jids(timeout=5) == {
        slixmpp.JID("eve@ex.org")
    }
    await disconnect(client)


# -- enforcement: stanzas from a blocked JID (§3.3) ------------------------------------------
@pytest.mark.asyncio
async def test_messages_and_iq_requests_from_a_blocked_jid_are_refused_as_if_offline(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    for target in (alice_jid, f"{alice_jid}/raw"):
        sent = message(target, "are you there?")
        await bob.send(sent)
        [error] = await arrived(bob, "message")
        assert error.get("id") == sent.get("id")
        assert error.get("from") == target
        assert error_condition(error) == "service-unavailable"
        assert (NS_BLOCKING_ERRORS, "blocked") not in conditions(error)
        reply, _ = await request(bob, iq_to(target))
        assert error_condition(reply) == "service-unavailable"
    assert await arrived(alice) == []


@pytest.mark.asyncio
async def test_presence_results_and_errors_from_a_blocked_jid_are_dropped_silently(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    full = f"{alice_jid}/raw"
    await bob.send(presence(full, status="directed"))
    await bob.send(presence(alice_jid, "subscribe"))
    await bob.send(iq_to(full, "result"))
    error = message(full, "an error")
    error.attrs["type"] = "error"
    await bob.send(error)
    assert await arrived(bob) == []  # no error comes back for any of them
    assert await arrived(alice) == []


@pytest.mark.asyncio
async def test_a_full_jid_block_blocks_only_that_resource(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice = await peers.login(alice_jid)
    phone, laptop = await peers.login(bob_jid, "phone"), await peers.login(bob_jid, "laptop")
    await ok(alice, blocking_iq("set", "block", [f"{bob_jid}/phone"]))
    await phone.send(message(f"{alice_jid}/raw", "from the phone"))
    [error] = await arrived(phone, "message")
    assert error_condition(error) == "service-unavailable"
    await laptop.send(message(f"{alice_jid}/raw", "from the laptop"))
    assert await arrived(laptop) == []
    [got] = await arrived(alice, "message")
    assert got.find_text("body") == "from the laptop"


# -- enforcement: stanzas to a blocked JID (§3.3) --------------------------------------------
@pytest.mark.asyncio
async def test_stanzas_to_a_blocked_jid_are_refused_with_not_acceptable_and_blocked(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    for target in (bob_jid, f"{bob_jid}/raw"):
        sent = message(target, "Can you hear me now?")
        await alice.send(sent)
        [error] = await arrived(alice, "message")
        assert error.get("id") == sent.get("id")
        assert error.get("from") == target
        assert error.get("to") == f"{alice_jid}/raw"
        assert error.find_text("body") == "Can you hear me now?"
        assert conditions(error) == [
            (NS_STANZAS, "not-acceptable"),
            (NS_BLOCKING_ERRORS, "blocked"),
        ]
        error_el = error.find("error", NS_CLIENT)
        assert error_el is not None
        assert error_el.get("type") == "cancel"
        reply, _ = await request(alice, iq_to(target))
        assert conditions(reply) == [
            (NS_STANZAS, "not-acceptable"),
            (NS_BLOCKING_ERRORS, "blocked"),
        ]
    await alice.send(presence(f"{bob_jid}/raw", status="directed"))
    await alice.send(iq_to(f"{bob_jid}/raw", "result"))
    assert await arrived(alice) == []  # presence and results: dropped, no error
    assert await arrived(bob) == []


@pytest.mark.asyncio
async def test_a_domain_block_covers_every_account_there_but_not_the_own_server(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await ok(alice, blocking_iq("set", "block", [DOMAIN]))
    await bob.send(message(f"{alice_jid}/raw", "hi"))
    [error] = await arrived(bob, "message")
    assert error_condition(error) == "service-unavailable"
    await alice.send(message(f"{bob_jid}/raw", "hi"))
    [error] = await arrived(alice, "message")
    assert (NS_BLOCKING_ERRORS, "blocked") in conditions(error)
    # the server itself still answers (ping_server asserts a result), and so does disco
    info = Element("iq", NS_CLIENT, {"type": "get", "id": "d1", "to": DOMAIN})
    info.sub("query", NS_DISCO_INFO)
    assert (await request(alice, info))[0].get("type") == "result"
    assert await arrived(bob, "message") == []


@pytest.mark.asyncio
async def test_a_user_who_blocks_the_own_account_still_reaches_the_own_resources(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    user = new_user("alice")
    one, two = await peers.login(user, "one"), await peers.login(user, "two")
    await ok(one, blocking_iq("set", "block", [user, f"{user}/two"]))
    await one.send(message(f"{user}/two", "note to self"))
    assert await arrived(one, "message") == []
    [got] = await arrived(two, "message")
    assert got.find_text("body") == "note to self"


@pytest.mark.asyncio
async def test_unblocking_restores_delivery_both_ways(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await ok(alice, blocking_iq("set", "block", [bob_jid, "ex.org"]))
    await ok(alice, blocking_iq("set", "unblock", [bob_jid]))
    await bob.send(message(f"{alice_jid}/raw", "back again"))
    assert await arrived(bob) == []
    [got] = await arrived(alice, "message")
    assert got.find_text("body") == "back again"
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    await ok(alice, blocking_iq("set", "unblock"))  # all
    await alice.send(message(f"{bob_jid}/raw", "and you?"))
    assert await arrived(alice) == []
    [got] = await arrived(bob, "message")
    assert got.find_text("body") == "and you?"


# -- persistence and virtual hosts ---------------------------------------------------------------
@pytest.mark.asyncio
async def test_offline_messages_from_a_jid_blocked_since_are_not_delivered(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice_jid, bob_jid, carol_jid = new_user("alice"), new_user("bob"), new_user("carol")
    bob, carol = await peers.login(bob_jid), await peers.login(carol_jid)
    await bob.send(message(alice_jid, "stored from bob"))
    await carol.send(message(alice_jid, "stored from carol"))
    assert await arrived(bob) == []  # stored, no error
    assert await arrived(carol) == []
    alice = await peers.login(alice_jid, available=False)
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    await alice.send(presence())  # initial presence: the stored messages come now
    first = await alice.element()
    while first.name != "message":
        first = await alice.element()
    rest = await arrived(alice, "message")  # delivery is in order: carol's is last
    assert [m.find_text("body") for m in [first, *rest]] == ["stored from carol"]
    await alice.close()
    again = await peers.login(alice_jid)  # the blocked one was dropped, not kept for later
    assert await arrived(again, "message") == []


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """``make_server`` options for each storage backend."""
    if request.param == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return {"storage": "postgresql", "dsn": dsn}
    return {"storage": "sqlite"}


@pytest.fixture
def two_host_server(server_dir: Path, storage_options: dict[str, str]) -> Iterator[ServerProcess]:
    """A server of this test's own, serving DOMAIN and OTHER_DOMAIN."""
    server = make_server(server_dir, domains=(DOMAIN, OTHER_DOMAIN), **storage_options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def restart(server: ServerProcess) -> None:
    """Stop with SIGTERM, then start again on the same data."""
    assert server.stop() == 0, server.log_text()
    server.log.rename(server.log.with_name(f"server-{time.monotonic_ns()}.log"))
    server.start()


@pytest.mark.asyncio
async def test_blocks_across_hosts_persist_across_relogin_and_restart(
    two_host_server: ServerProcess,
) -> None:
    server = two_host_server
    alice_jid, bob_jid = server.add_user("alice"), server.add_user("bob", domain=OTHER_DOMAIN)
    for round_ in ("first login", "relogin", "after restart"):
        if round_ == "after restart":
            restart(server)
        peers = Peers(server)
        try:
            alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
            if round_ == "first login":
                await ok(alice, blocking_iq("set", "block", [bob_jid]))
            assert await blocklist(alice) == [bob_jid], round_
            await bob.send(message(f"{alice_jid}/raw", round_))
            [error] = await arrived(bob, "message")
            assert error_condition(error) == "service-unavailable", round_
            await alice.send(message(f"{bob_jid}/raw", round_))
            [error] = await arrived(alice, "message")
            assert (NS_BLOCKING_ERRORS, "blocked") in conditions(error), round_
            assert await arrived(alice, "message") == []
            assert await arrived(bob, "message") == []
        finally:
            await peers.close()


# -- presence (§3.3, §3.4) -----------------------------------------------------------------------
async def settle(*clients: RawClient) -> list[list[Element]]:
    """Everything each client received until a ping round trip, in order of the clients."""
    return [await arrived(client) for client in clients]


async def befriend(a: RawClient, a_jid: str, b: RawClient, b_jid: str) -> None:
    """A mutual ('both') subscription made through the protocol (RFC 6121 §3.1)."""
    for sender, to, kind in (
        (a, b_jid, "subscribe"),
        (b, a_jid, "subscribed"),
        (b, a_jid, "subscribe"),
        (a, b_jid, "subscribed"),
    ):
        await sender.send(presence(to, kind))
        await settle(a, b)


async def gone(client: RawClient, full: str) -> None:
    """Wait until ``client`` hears that its own other resource ``full`` went unavailable
    (RFC 6121 §4.5.2): the server has then processed that session's end."""
    while True:
        stanza = await client.element()
        if (stanza.name, stanza.get("from"), stanza.get("type")) == (
            "presence",
            full,
            "unavailable",
        ):
            return


def presences_from(stanzas: list[Element], jid: str) -> list[Element]:
    """The presence stanzas sent by ``jid`` (bare) or one of its resources."""
    return [
        s
        for s in stanzas
        if s.name == "presence" and (s.get("from") or "").partition("/")[0] == jid
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("form", ["bare", "domain"])
async def test_blocking_a_contact_says_unavailable_once_then_hides_presence_both_ways(
    peers: Peers, new_user: Callable[[str], str], form: str
) -> None:
    alice_jid, bob_jid, carol_jid = new_user("alice"), new_user("bob"), new_user("carol")
    alice, bob, carol = [await peers.login(j) for j in (alice_jid, bob_jid, carol_jid)]
    await befriend(alice, alice_jid, bob, bob_jid)
    await alice.send(presence(status="here"))
    await settle(alice, bob, carol)
    before = await ok(alice, blocking_iq("set", "block", [bob_jid if form == "bare" else DOMAIN]))
    await ok(alice, blocking_iq("set", "block", [carol_jid]))  # no subscription: no farewell
    [bob_sees] = presences_from(await arrived(bob), alice_jid)
    assert (bob_sees.get("type"), bob_sees.get("from")) == ("unavailable", f"{alice_jid}/raw")
    [alice_sees] = presences_from(before + await arrived(alice), bob_jid)  # the §3.3 SHOULD
    assert (alice_sees.get("type"), alice_sees.get("from")) == ("unavailable", f"{bob_jid}/raw")
    assert await arrived(carol) == []
    # updates, new resources (initial presence and probes) and logouts: nothing crosses
    await alice.send(presence(status="busy"))
    await bob.send(presence(status="bob is busy"))
    alice_two = await peers.login(alice_jid, "two")
    bob_two = await peers.login(bob_jid, "two")
    assert presences_from(await arrived(alice_two), bob_jid) == []
    await alice_two.close()
    await gone(alice, f"{alice_jid}/two")
    got = await settle(alice, bob, bob_two)
    assert presences_from(got[0], bob_jid) == []
    assert presences_from(got[1] + got[2], alice_jid) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("unblock", ["item", "all"])
async def test_unblocking_a_contact_exchanges_current_presence_again(
    peers: Peers, new_user: Callable[[str], str], unblock: str
) -> None:
    alice_jid, bob_jid = new_user("alice"), new_user("bob")
    alice, bob = await peers.login(alice_jid), await peers.login(bob_jid)
    await befriend(alice, alice_jid, bob, bob_jid)
    await alice.send(presence(status="alice here"))
    await bob.send(presence(status="bob here"))
    await ok(alice, blocking_iq("set", "block", [bob_jid]))
    await settle(alice, bob)
    before = await ok(alice, blocking_iq("set", "unblock", [bob_jid] if unblock == "item" else []))
    [bob_sees] = presences_from(await arrived(bob), alice_jid)
    assert bob_sees.get("type") is None
    assert bob_sees.find_text("status") == "alice here"
    [alice_sees] = presences_from(before + await arrived(alice), bob_jid)
    assert alice_sees.get("type") is None
    assert alice_sees.find_text("status") == "bob here"
    await alice.send(presence(status="alice again"))
    [update] = presences_from(await arrived(bob), alice_jid)
    assert update.find_text("status") == "alice again"
