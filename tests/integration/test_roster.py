"""Rosters over the wire (RFC 6121 §2): get, set, remove, pushes, errors and versioning."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from roost.modules.im.subscription import BOTH, NONE
from roost.xml.element import Element
from roost.xml.ns import NS_PRE_APPROVAL, NS_ROSTER, NS_ROSTER_VER
from tests.integration.harness import RawClient, ServerProcess
from tests.integration.rawhelpers import local, restart
from tests.integration.rosterhelpers import (
    Peer,
    Peers,
    Store,
    error_condition,
    item,
    kinds,
    open_store,
    presences,
    pushes,
    roster_iq,
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


def items(reply: Element) -> dict[str, Element]:
    """The items of a roster result, by JID."""
    query = reply.find("query", NS_ROSTER)
    assert query is not None, reply
    return {i.get("jid") or "": i for i in query.elements()}


def groups(element: Element) -> list[str]:
    return [g.text for g in element.elements() if g.name == "group"]


async def roster_set(peer: Peer, element: Element) -> tuple[Element, list[Element]]:
    """A roster set: its reply, and what the client got until the server settled (the push
    to the sender may come before the result or after it)."""
    reply, before = await peer.query(roster_iq("set", element))
    return reply, before + await peer.sync()


@pytest.mark.asyncio
async def test_roster_of_a_new_account_is_empty_and_versioned(peers: Peers, store: Store) -> None:
    (alice,) = await store.accounts("alice")
    peer = await peers.login(alice)
    reply, _ = await peer.roster()
    query = reply.find("query", NS_ROSTER)
    assert query is not None
    assert list(query.elements()) == []
    assert query.get("ver") == "0"


@pytest.mark.asyncio
async def test_stream_features_offer_roster_versioning_and_pre_approval(
    server: ServerProcess, store: Store
) -> None:
    (alice,) = await store.accounts("alice")
    client = RawClient(server)
    await client.connect()
    try:
        await client.open()
        await client.starttls()
        assert (await client.auth_plain(local(alice))).name == "success"
        features = await restart(client)
        assert features.find("ver", NS_ROSTER_VER) is not None
        assert features.find("sub", NS_PRE_APPROVAL) is not None
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_roster_set_is_pushed_to_every_interested_resource_only(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    first = await peers.login(alice, "first")
    second = await peers.login(alice, "second", available=False)  # interested, not available
    quiet = await peers.login(alice, "quiet", roster=False)  # available, not interested
    reply, got = await roster_set(first, item(bob, "Bob", ["Friends", "Work"]))
    assert reply.get("type") == "result"
    assert reply.find("query", NS_ROSTER) is None
    seen = [got, await second.sync(), await quiet.sync()]
    for got in seen[:2]:
        (pushed,) = pushes(got)
        assert pushed.get("jid") == bob
        assert pushed.get("name") == "Bob"
        assert pushed.get("subscription") == "none"
        assert pushed.get("ask") is None
        assert groups(pushed) == ["Friends", "Work"]
    assert pushes(seen[2]) == []
    push_iq = next(s for s in seen[0] if s.name == "iq")
    assert push_iq.get("to") == first.full
    query = push_iq.find("query", NS_ROSTER)
    assert query is not None
    assert query.get("ver") == "1"
    listed, _ = await quiet.roster()
    stored = items(listed)[bob]
    assert (stored.get("name"), groups(stored)) == ("Bob", ["Friends", "Work"])


@pytest.mark.asyncio
async def test_roster_update_keeps_the_subscription_and_ignores_client_states(
    peers: Peers, store: Store
) -> None:
    alice, bob, carol = await store.accounts("alice", "bob", "carol")
    await store.put_state(alice, bob, BOTH)
    peer = await peers.login(alice, available=False)
    _, first = await roster_set(peer, item(bob, "Robert", subscription="none", ask="subscribe"))
    _, second = await roster_set(peer, item(carol, subscription="both", approved="true"))
    (robert, carol_item) = pushes(first + second)
    assert (robert.get("name"), robert.get("subscription"), robert.get("ask")) == (
        "Robert",
        "both",
        None,
    )
    assert (carol_item.get("subscription"), carol_item.get("approved")) == ("none", None)
    assert await store.state(alice, carol) == NONE
    assert (await store.state(alice, bob)) == BOTH


@pytest.mark.asyncio
async def test_roster_remove_pushes_the_removal_and_forgets_the_item(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    peer = await peers.login(alice)
    await roster_set(peer, item(bob, "Bob"))
    reply, got = await roster_set(peer, item(bob, subscription="remove"))
    assert reply.get("type") == "result"
    (removal,) = pushes(got)
    assert (removal.get("jid"), removal.get("subscription")) == (bob, "remove")
    listed, _ = await peer.roster()
    assert items(listed) == {}
    again, _ = await roster_set(peer, item(bob, subscription="remove"))
    assert error_condition(again) == "item-not-found"


@pytest.mark.asyncio
async def test_roster_remove_cancels_the_subscriptions_both_ways(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await store.put_state(alice, bob, BOTH)
    await store.put_state(bob, alice, BOTH)
    a = await peers.login(alice, "a")
    b = await peers.login(bob, "b")
    await settle(b, a)
    _, got_a = await roster_set(a, item(bob, subscription="remove"))
    got_b = await b.sync()
    assert [p.get("subscription") for p in pushes(got_a)] == ["remove"]
    assert [p.get("subscription") for p in pushes(got_b)] == ["to", "none"]
    assert kinds(presences(got_b, alice)) == ["unsubscribe", "unsubscribed", "unavailable"]
    assert kinds(presences(got_a, bob)) == ["unavailable"]  # bob's presence is gone too
    assert await store.state(alice, bob) == NONE
    assert await store.state(bob, alice) == NONE


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        ([item("x@localhost"), item("y@localhost")], "bad-request"),
        ([], "bad-request"),
        ([Element("item", NS_ROSTER)], "bad-request"),
        ([item("not a jid@localhost")], "jid-malformed"),
        ([item("x@localhost/resource")], "bad-request"),
        ([item("x@localhost", groups=[""])], "not-acceptable"),
        ([item("x@localhost", groups=["a", "a"])], "bad-request"),
        ([item("x@localhost", name="n" * 1024)], "not-acceptable"),
        ([item("x@localhost", groups=["g" * 1024])], "not-acceptable"),
    ],
    ids=[
        "two-items",
        "no-item",
        "no-jid",
        "malformed-jid",
        "full-jid",
        "empty-group",
        "duplicate-group",
        "long-name",
        "long-group",
    ],
)
async def test_invalid_roster_set_is_refused_and_changes_nothing(
    peers: Peers, store: Store, payload: list[Element], condition: str
) -> None:
    (alice,) = await store.accounts("alice")
    peer = await peers.login(alice, available=False)
    reply, _ = await peer.query(roster_iq("set", *payload))
    assert error_condition(reply) == condition
    assert pushes(await peer.sync()) == []
    listed, _ = await peer.roster()
    assert items(listed) == {}


@pytest.mark.asyncio
async def test_the_account_itself_cannot_be_a_roster_item(peers: Peers, store: Store) -> None:
    (alice,) = await store.accounts("alice")
    peer = await peers.login(alice, available=False)
    reply, _ = await peer.query(roster_iq("set", item(alice)))
    assert error_condition(reply) == "not-allowed"


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["get", "set"])
async def test_another_accounts_roster_is_forbidden(peers: Peers, store: Store, kind: str) -> None:
    alice, bob = await store.accounts("alice", "bob")
    await store.put_state(bob, alice, BOTH)
    peer = await peers.login(alice, available=False)
    payload = [item("x@localhost")] if kind == "set" else []
    reply, _ = await peer.query(roster_iq(kind, *payload, to=bob))
    assert error_condition(reply) == "forbidden"
    assert reply.find("query", NS_ROSTER) is None
    assert await store.state(bob, "x@localhost") == NONE


# -- versioning (§2.6) --------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_roster_get_with_the_current_version_is_an_empty_result(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    peer = await peers.login(alice, roster=False, available=False)
    await roster_set(peer, item(bob))
    full, _ = await peer.roster(ver="")
    ver = full.find("query", NS_ROSTER).get("ver")  # type: ignore[union-attr]
    assert ver == "1"
    assert list(items(full)) == [bob]
    again, _ = await peer.roster(ver=ver)
    assert again.get("type") == "result"
    assert again.find("query", NS_ROSTER) is None
    assert pushes(await peer.sync()) == []


@pytest.mark.asyncio
async def test_roster_get_with_an_older_version_is_answered_with_one_push_per_change(
    peers: Peers, store: Store
) -> None:
    alice, bob, carol, dave = await store.accounts("alice", "bob", "carol", "dave")
    peer = await peers.login(alice, roster=False, available=False)
    await roster_set(peer, item(bob))  # version 1
    await roster_set(peer, item(carol, "Carol"))  # 2
    await roster_set(peer, item(dave))  # 3
    await roster_set(peer, item(carol, "Caroline"))  # 4
    await roster_set(peer, item(dave, subscription="remove"))  # 5
    reply, _ = await peer.roster(ver="1")
    assert reply.find("query", NS_ROSTER) is None
    later = [await peer.wait_for(lambda s: s.name == "iq"), await peer.wait_for(lambda s: True)]
    queries = [s.find("query", NS_ROSTER) for s in later]
    versions = [q.get("ver") for q in queries if q is not None]
    changed = pushes(later)
    assert [(i.get("jid"), i.get("name"), i.get("subscription")) for i in changed] == [
        (carol, "Caroline", "none"),
        (dave, None, "remove"),
    ]
    assert versions == ["4", "5"]


@pytest.mark.asyncio
@pytest.mark.parametrize("ver", ["999", "not-a-number", "", "\u00b2"])
async def test_roster_get_with_an_unknown_version_returns_the_whole_roster(
    peers: Peers, store: Store, ver: str
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    peer = await peers.login(alice, roster=False, available=False)
    await roster_set(peer, item(bob, "Bob"))
    reply, _ = await peer.roster(ver=ver)
    query = reply.find("query", NS_ROSTER)
    assert query is not None
    assert query.get("ver") == "1"
    assert list(items(reply)) == [bob]
