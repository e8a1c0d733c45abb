"""Presence over the wire (RFC 6121 §4): broadcast, probes, directed presence, unavailable.

Who may see whom is set up in storage before the logins (see rosterhelpers). "Nothing
arrived" is proven by ping round trips (the server routes a presence completely before it
reads the sender's next stanza), never by waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from roost.modules.im.subscription import BOTH, FROM, NONE, TO
from roost.stanzas import iq_result
from roost.storage.base import RosterItem
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT
from roost.xml.parser import StreamEnd
from tests.integration.harness import DOMAIN, RawClient, ServerProcess, running_server
from tests.integration.rawhelpers import local
from tests.integration.rosterhelpers import (
    Peer,
    Peers,
    Store,
    kinds,
    open_store,
    presence,
    presences,
    settle,
)


@pytest_asyncio.fixture
async def peers(server: ServerProcess) -> AsyncIterator[Peers]:
    made = Peers(server)
    try:
        yield made
    finally:
        await made.close()


@pytest_asyncio.fixture
async def store(server: ServerProcess) -> AsyncIterator[Store]:
    async with open_store(server) as opened:
        yield opened


async def befriend(store: Store, user: str, contact: str, user_sees_contact: bool = True) -> None:
    """``contact`` sees ``user``'s presence (and the other way round when asked)."""
    await store.put_state(user, contact, BOTH if user_sees_contact else FROM)
    await store.put_state(contact, user, BOTH if user_sees_contact else TO)


def statuses(stanzas: list[Element]) -> list[str | None]:
    return [s.find_text("status") for s in stanzas]


async def unavailable_from(peer: Peer, full: str, timeout: float = 5.0) -> Element:
    """Wait for unavailable presence from ``full``."""
    return await peer.wait_for(
        lambda s: s.name == "presence" and s.get("from") == full and s.get("type") == "unavailable",
        timeout,
    )


# -- broadcast (§4.2, §4.4) and never to non-subscribers ------------------------------------------
@pytest.mark.asyncio
async def test_initial_presence_reaches_the_subscribers_and_nobody_else(
    peers: Peers, store: Store
) -> None:
    alice, bob, carol, dave, eve = await store.accounts("alice", "bob", "carol", "dave", "eve")
    await befriend(store, alice, bob, user_sees_contact=False)  # bob: 'to' alice
    await store.put_state(alice, carol, TO)  # alice sees carol, not the other way round
    await store.put_state(carol, alice, FROM)
    await store.storage.roster.put(DOMAIN, local(alice), RosterItem(dave))  # 'none'
    watchers = {who: await peers.login(who) for who in (bob, carol, dave, eve)}
    user = await peers.login(alice, "desk", roster=False, available=False)
    await user.send(presence(status="hello", priority=3))
    got = await settle(user, *watchers.values())
    (reflected,) = presences(got[0], alice)
    assert (reflected.get("from"), reflected.get("to")) == (user.full, user.full)
    (seen,) = presences(got[1])
    assert (seen.get("from"), seen.get("to"), seen.find_text("status")) == (user.full, bob, "hello")
    assert seen.find_text("priority") == "3"
    for nothing in got[2:]:  # carol (only alice sees her), dave ('none'), eve (no item)
        assert presences(nothing, alice) == []
    await user.send(presence(status="busy"))  # an update: the same audience, no probes
    got = await settle(user, *watchers.values())
    assert statuses(presences(got[1], alice)) == ["busy"]
    for nothing in got[2:]:
        assert presences(nothing, alice) == []


@pytest.mark.asyncio
async def test_initial_presence_probes_contacts_and_gets_each_available_resource(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await befriend(store, alice, bob)
    phone = await peers.login(bob, "phone", available=False)
    await phone.send(presence(status="on the phone"))
    tablet = await peers.login(bob, "tablet", available=False)
    await tablet.send(presence(status="reading", priority=-1))
    await settle(tablet)
    user = await peers.login(alice, "desk", roster=False, available=False)
    await user.send(presence())
    got = presences(await user.sync(), bob)
    assert sorted((p.get("from"), p.find_text("status")) for p in got) == [
        (phone.full, "on the phone"),
        (tablet.full, "reading"),
    ]
    assert {p.get("to") for p in got} == {alice}  # answers to the probe from the bare JID


@pytest.mark.asyncio
async def test_probe_of_an_offline_contact_gets_its_last_unavailable_presence(
    peers: Peers, store: Store
) -> None:
    alice, bob, carol = await store.accounts("alice", "bob", "carol")
    await befriend(store, alice, bob)
    await befriend(store, alice, carol)  # carol has not logged in since the server started
    contact = await peers.login(bob, "phone")
    await contact.send(presence(kind="unavailable", status="gone fishing"))
    await contact.sync()
    user = await peers.login(alice, roster=False, available=False)
    await user.send(presence())
    got = await user.sync()
    (last,) = presences(got, bob)
    assert (last.get("type"), last.get("from"), last.find_text("status")) == (
        "unavailable",
        contact.full,
        "gone fishing",
    )
    (never,) = presences(got, carol)
    assert (never.get("type"), never.get("from")) == ("unavailable", carol)


@pytest.mark.asyncio
async def test_probe_from_a_non_subscriber_gets_no_presence(peers: Peers, store: Store) -> None:
    alice, eve = await store.accounts("alice", "eve")
    user = await peers.login(alice)
    await user.send(presence(status="secret"))
    stranger = await peers.login(eve)
    for to in (alice, user.full):
        await stranger.send(presence(to=to, kind="probe"))
    await user.sync()
    assert presences(await stranger.sync()) == []


@pytest.mark.asyncio
async def test_probe_from_a_contact_out_of_sync_gets_unsubscribed_and_no_presence(
    peers: Peers, store: Store
) -> None:
    alice, eve = await store.accounts("alice", "eve")
    await store.put_state(alice, eve, NONE)
    await store.storage.roster.put(DOMAIN, local(alice), RosterItem(eve))  # known, 'none'
    await store.put_state(eve, alice, TO)  # eve's roster wrongly says she sees alice
    user = await peers.login(alice)
    await user.send(presence(status="secret"))
    await user.sync()
    stranger = await peers.login(eve, roster=True, available=False)
    await stranger.send(presence())  # probes alice
    got = await stranger.sync()
    assert kinds(presences(got, alice)) == ["unsubscribed"]  # §4.3.2: the roster is repaired
    assert await store.state(eve, alice) == NONE


# -- unavailable (§4.5) ----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_unavailable_presence_is_broadcast_to_contacts_and_own_resources(
    peers: Peers, store: Store
) -> None:
    alice, bob, eve = await store.accounts("alice", "bob", "eve")
    await befriend(store, alice, bob)
    contact, stranger = await peers.login(bob), await peers.login(eve)
    user, other = await peers.login(alice, "one"), await peers.login(alice, "two")
    await settle(other, contact, user)
    await user.send(presence(kind="unavailable", status="bye"))
    got = await settle(user, other, contact, stranger)
    for receiver in got[:3]:
        (gone,) = [p for p in presences(receiver, alice) if p.get("from") == user.full]
        assert (gone.get("type"), gone.find_text("status")) == ("unavailable", "bye")
    assert presences(got[3]) == []


@pytest.mark.asyncio
async def test_unavailable_is_broadcast_when_the_tcp_connection_is_cut(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await befriend(store, alice, bob)
    contact = await peers.login(bob)
    user = await peers.login(alice)
    await contact.sync()
    assert user.client.writer is not None
    user.client.writer.transport.abort()  # no </stream:stream>, no TLS close_notify
    await unavailable_from(contact, user.full)


@pytest.mark.asyncio
async def test_unavailable_is_broadcast_when_a_session_is_replaced(
    server: ServerProcess, peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await befriend(store, alice, bob)
    contact = await peers.login(bob)
    old = await peers.login(alice, "desk")
    await contact.sync()
    new = await peers.login(alice, "desk", roster=False, available=False)  # conflict
    assert await old.client.stream_error() == "conflict"
    await unavailable_from(contact, old.full)
    await new.send(presence(status="back"))
    await new.sync()
    assert statuses(presences(await contact.sync(), alice)) == ["back"]


@pytest.mark.asyncio
async def test_unavailable_is_broadcast_when_an_idle_session_times_out(tmp_path: Path) -> None:
    limits = {"idle_timeout": 1, "idle_close_after": 1}
    with running_server(tmp_path / "roost", limits=limits) as server:
        async with open_store(server) as store:
            alice, bob = await store.accounts("alice", "bob")
            await befriend(store, alice, bob)
        peers = Peers(server)
        try:
            contact = await peers.login(bob)
            silent = await peers.login(alice)  # never answers the server's ping
            while True:  # bob answers the pings and waits
                stanza = await contact.client.element(timeout=5)
                if stanza.name == "iq" and stanza.get("type") == "get":
                    await contact.send(iq_result(stanza))
                elif stanza.get("from") == silent.full and stanza.get("type") == "unavailable":
                    break
        finally:
            await peers.close()


@pytest.mark.asyncio
async def test_clean_logout_of_an_unavailable_session_sends_nothing(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await befriend(store, alice, bob)
    contact = await peers.login(bob)
    user = await peers.login(alice, available=False)
    await user.send(presence(to=bob, kind="unavailable"))  # directed unavailable: not tracked
    await user.client.send(b"</stream:stream>")
    while not isinstance(await user.client.next(), StreamEnd):  # the server has closed it
        pass
    assert kinds(presences(await contact.sync(), alice)) == ["unavailable"]  # the directed one


# -- directed presence (§4.6) -------------------------------------------------------------------
@pytest.mark.asyncio
async def test_directed_presence_reaches_a_non_contact_who_gets_unavailable_at_logout(
    peers: Peers, store: Store
) -> None:
    alice, eve, frank = await store.accounts("alice", "eve", "frank")
    user = await peers.login(alice)
    bare_target = await peers.login(eve, "e1")
    full_target = await peers.login(frank, "f1")
    other_frank = await peers.login(frank, "f2")
    await user.send(presence(to=eve, status="hi eve"))
    await user.send(presence(to=full_target.full, status="hi frank"))
    got = await settle(user, bare_target, full_target, other_frank)
    assert statuses(presences(got[1], alice)) == ["hi eve"]
    assert statuses(presences(got[2], alice)) == ["hi frank"]
    assert presences(got[3], alice) == []
    await user.client.send(b"</stream:stream>")
    assert (await unavailable_from(bare_target, user.full)).get("to") == eve
    assert (await unavailable_from(full_target, user.full)).get("to") == full_target.full
    assert presences(await other_frank.sync(), alice) == []


@pytest.mark.asyncio
async def test_directed_unavailable_ends_the_directed_presence(peers: Peers, store: Store) -> None:
    alice, eve = await store.accounts("alice", "eve")
    user = await peers.login(alice)
    target = await peers.login(eve)
    await user.send(presence(to=eve))
    await user.send(presence(to=eve, kind="unavailable"))
    assert kinds(presences((await settle(user, target))[1], alice)) == ["available", "unavailable"]
    await user.send(presence(kind="unavailable"))
    assert presences((await settle(user, target))[1], alice) == []


@pytest.mark.asyncio
async def test_presence_to_an_unbound_resource_is_dropped(peers: Peers, store: Store) -> None:
    alice, eve = await store.accounts("alice", "eve")
    user = await peers.login(alice)
    target = await peers.login(eve, "here")
    await user.send(presence(to=eve + "/elsewhere"))
    assert presences((await settle(user, target))[1]) == []


# -- own resources and priorities (§4.2.2, §4.7.2.3) ---------------------------------------------
@pytest.mark.asyncio
async def test_a_new_resource_learns_the_presence_of_the_others(peers: Peers, store: Store) -> None:
    (alice,) = await store.accounts("alice")
    first = await peers.login(alice, "first", available=False)
    await first.send(presence(status="at work"))
    await first.sync()
    second = await peers.login(alice, "second", available=False)
    await second.send(presence(status="at home"))
    got_second, got_first = await settle(second, first)
    assert sorted((p.get("from"), p.find_text("status")) for p in presences(got_second)) == [
        (first.full, "at work"),
        (second.full, "at home"),
    ]
    assert [(p.get("from"), p.find_text("status")) for p in presences(got_first)] == [
        (second.full, "at home")
    ]


def chat(to: str, msg_id: str) -> Element:
    stanza = Element("message", NS_CLIENT, {"to": to, "type": "chat", "id": msg_id})
    stanza.sub("body", text="hi")
    return stanza


@pytest.mark.asyncio
async def test_priorities_are_clamped_to_the_allowed_range(peers: Peers, store: Store) -> None:
    alice, bob = await store.accounts("alice", "bob")
    high = await peers.login(alice, "high", priority=1000)  # counts as 127
    top = await peers.login(alice, "top", priority=127)
    low = await peers.login(alice, "low", priority=-1000)  # counts as -128
    sender = await peers.login(bob)
    await sender.send(chat(alice, "m1"))
    got = await settle(sender, high, top, low)
    assert [[s.get("id") for s in g if s.name == "message"] for g in got[1:]] == [
        ["m1"],
        ["m1"],
        [],
    ]


@pytest.mark.asyncio
async def test_a_client_cannot_spoof_presence_from_someone_else(
    server: ServerProcess, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    client = RawClient(server)
    await client.connect()
    try:
        await client.login(local(alice), resource="r")
        await client.send(f"<presence from='{bob}'/>".encode())
        assert await client.stream_error() == "invalid-from"
    finally:
        await client.close()
