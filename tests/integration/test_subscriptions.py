"""Presence subscriptions over the wire (RFC 6121 §3, Appendix A), table-driven.

Each row of Appendix A's tables is one case between two fresh accounts: the user (alice)
starts in the row's state, the contact (bob) in a state that makes the other side observable
(bob's server delivers what alice's routes; bob's server routes what alice's must judge). Both
rosters are written to storage before the logins, since two servers that agree never reach
some rows (a "subscribed" for a request nobody made). The states are chosen so that the
initial presence of the logins sends no probe that would repair the rosters first (§4.3.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
import slixmpp

from roost.modules.im.subscription import BY_NAME, FROM, NONE, NONE_IN, NONE_OUT, State
from roost.xml.element import Element
from tests.integration.harness import ServerProcess, disconnect, slix_client
from tests.integration.rosterhelpers import (
    Peers,
    Store,
    kinds,
    open_store,
    presence,
    presences,
    pushes,
)
from tests.unit.modules.test_subscription import RFC_INBOUND, RFC_OUTBOUND, rows


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


# bob's state when alice sends: bob's server delivers each of these (A.3), and bob has no 'to'.
OBSERVER = {
    "subscribe": NONE,
    "subscribed": NONE_OUT,
    "unsubscribe": FROM,
    "unsubscribed": NONE_OUT,
}
# bob's state when bob sends: bob's server routes each of these (A.2), and bob has no item.
SENDER = {"subscribe": NONE, "subscribed": NONE_IN, "unsubscribe": NONE, "unsubscribed": NONE_IN}


def sent(stanzas: list[Element], kind: str, sender: str) -> list[Element]:
    """The presence stanzas of type ``kind`` from ``sender``'s bare JID."""
    return [
        s
        for s in stanzas
        if s.name == "presence" and s.get("type") == kind and s.get("from") == sender
    ]


def item_fields(state: State) -> tuple[str, bool, bool]:
    """What a roster item (or its push) shows of a state."""
    return (state.subscription, state.pending_out, state.approved)


def pushed_fields(element: Element) -> tuple[str, bool, bool]:
    return (
        element.get("subscription") or "",
        element.get("ask") == "subscribe",
        element.get("approved") == "true",
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("event", "existing", "route", "new"),
    rows(RFC_OUTBOUND),
    ids=[f"{e}-{s}" for e, s, _, _ in rows(RFC_OUTBOUND)],
)
async def test_outbound_subscription_row(
    peers: Peers, store: Store, event: str, existing: str, route: bool, new: str
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    before = BY_NAME[existing]
    expected = BY_NAME[new]
    if event == "subscribed" and not route and not before.has_from:
        expected = replace(expected, approved=True)  # §3.4 pre-approval
    await store.put_state(alice, bob, before)
    await store.put_state(bob, alice, OBSERVER[event])
    user = await peers.login(alice, available=False)  # no probes: the states stay as written
    contact = await peers.login(bob)
    await user.send(presence(to=bob, kind=event))
    got_user, got_contact = [await user.sync(), await contact.sync()]
    routed = sent(got_contact, event, alice)
    assert len(routed) == (1 if route else 0)
    assert await store.state(alice, bob) == expected
    changed = item_fields(before) != item_fields(expected)
    assert [pushed_fields(p) for p in pushes(got_user)] == (
        [item_fields(expected)] if changed else []
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("event", "existing", "deliver", "new"),
    rows(RFC_INBOUND),
    ids=[f"{e}-{s}" for e, s, _, _ in rows(RFC_INBOUND)],
)
async def test_inbound_subscription_row(
    peers: Peers, store: Store, event: str, existing: str, deliver: bool, new: str
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    before, expected = BY_NAME[existing], BY_NAME[new]
    await store.put_state(alice, bob, before)
    await store.put_state(bob, alice, SENDER[event])
    user = await peers.login(alice)
    contact = await peers.login(bob)
    await user.sync()  # bob's login may have sent alice something
    await contact.send(presence(to=alice, kind=event))
    got_contact, got_user = [await contact.sync(), await user.sync()]
    delivered = sent(got_user, event, bob)
    assert len(delivered) == (1 if deliver else 0)
    assert await store.state(alice, bob) == expected
    changed = item_fields(before) != item_fields(expected)
    assert [pushed_fields(p) for p in pushes(got_user)] == (
        [item_fields(expected)] if changed else []
    )
    auto_reply = event == "subscribe" and before.has_from  # A.3.1: the server answers
    assert len(sent(got_contact, "subscribed", alice)) == (1 if auto_reply else 0)


# -- pending requests (§3.1.3) and pre-approval (§3.4) -------------------------------------------
@pytest.mark.asyncio
async def test_unanswered_request_is_redelivered_at_each_initial_presence(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    requester = await peers.login(bob)
    await requester.send(presence(to=alice, kind="subscribe", status="it's bob"))
    await requester.sync()
    for _ in range(2):  # alice logs in twice without answering
        user = await peers.login(alice, roster=True, available=False)
        assert presences(await user.sync()) == []  # only at initial presence
        await user.send(presence())
        (request,) = presences(await user.sync(), bob)
        assert request.get("type") == "subscribe"
        assert (request.get("from"), request.get("to")) == (bob, alice)
        assert request.find_text("status") == "it's bob"
        await user.close()
    user = await peers.login(alice)
    await user.send(presence(to=bob, kind="subscribed"))
    await user.sync()
    later = await peers.login(alice, roster=False, available=False)
    await later.send(presence())
    assert sent(await later.sync(), "subscribe", bob) == []
    assert await store.state(alice, bob) == BY_NAME["From"]


@pytest.mark.asyncio
async def test_pre_approved_request_is_granted_without_asking_the_user(
    peers: Peers, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    user = await peers.login(alice, priority=5)
    contact = await peers.login(bob)
    await user.send(presence(to=bob, kind="subscribed"))
    got_user, got_contact = [await user.sync(), await contact.sync()]
    (push,) = pushes(got_user)
    assert (push.get("subscription"), push.get("approved")) == ("none", "true")
    assert presences(got_contact, alice) == []  # nothing routed yet
    await contact.send(presence(to=alice, kind="subscribe"))
    got_contact, got_user = [await contact.sync(), await user.sync()]
    assert presences(got_user, bob) == []  # the request never reaches alice
    (granted,) = pushes(got_user)
    assert (granted.get("subscription"), granted.get("approved")) == ("from", None)
    assert kinds(presences(got_contact, alice)) == ["subscribed", "available"]
    assert [p.get("subscription") for p in pushes(got_contact)] == ["none", "to"]
    assert await store.state(alice, bob) == BY_NAME["From"]
    assert await store.state(bob, alice) == BY_NAME["To"]


@pytest.mark.asyncio
async def test_withdrawn_pre_approval_lets_the_request_through(peers: Peers, store: Store) -> None:
    alice, bob = await store.accounts("alice", "bob")
    user = await peers.login(alice)
    contact = await peers.login(bob)
    await user.send(presence(to=bob, kind="subscribed"))
    await user.send(presence(to=bob, kind="unsubscribed"))
    got_user = await user.sync()
    assert [p.get("approved") for p in pushes(got_user)] == ["true", None]
    await contact.send(presence(to=alice, kind="subscribe"))
    await contact.sync()
    assert kinds(presences(await user.sync(), bob)) == ["subscribe"]


@pytest.mark.asyncio
async def test_subscription_requests_to_unknown_accounts_are_ignored(
    peers: Peers, store: Store
) -> None:
    (alice,) = await store.accounts("alice")
    user = await peers.login(alice)
    ghost = "nobody-here@localhost"
    await user.send(presence(to=ghost, kind="subscribe"))
    got = await user.sync()
    assert [p.get("ask") for p in pushes(got)] == ["subscribe"]
    assert presences(got) == []  # no error, no "unsubscribed": nothing to learn


# -- real clients -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_two_slixmpp_users_add_each_other_and_see_each_others_presence(
    server: ServerProcess, store: Store
) -> None:
    alice, bob = await store.accounts("alice", "bob")
    a = await slix_client(server, alice + "/laptop")
    b = await slix_client(server, bob + "/phone")
    loop = asyncio.get_running_loop()
    a_sees_b: asyncio.Future[str] = loop.create_future()
    b_sees_a: asyncio.Future[str] = loop.create_future()

    def approve(client: slixmpp.ClientXMPP) -> None:
        client.add_event_handler(
            "presence_subscribe",
            lambda p: client.send_presence(pto=p["from"].bare, ptype="subscribed"),
        )

    def watch(client: slixmpp.ClientXMPP, future: asyncio.Future[str], who: str) -> None:
        def on_available(p: slixmpp.Presence) -> None:
            if p["from"].bare == who and not future.done():
                future.set_result(p["status"])

        client.add_event_handler("presence_available", on_available)

    for client in (a, b):
        await client.get_roster(timeout=5)  # an interested resource: roster pushes come
        client.auto_authorize = None  # answered by the handlers above
        client.auto_subscribe = False
        approve(client)
    watch(a, a_sees_b, bob)
    watch(b, b_sees_a, alice)
    try:
        a.send_presence(pto=bob, ptype="subscribe")
        b.send_presence(pto=alice, ptype="subscribe")
        await asyncio.wait_for(asyncio.gather(a_sees_b, b_sees_a), 10)
        await asyncio.sleep(0.2)  # let the last pushes arrive
        assert a.client_roster[bob]["subscription"] == "both"
        assert b.client_roster[alice]["subscription"] == "both"
        changed: asyncio.Future[str] = loop.create_future()
        watch(b, changed, alice)
        a.send_presence(pstatus="writing tests")
        assert await asyncio.wait_for(changed, 5) == "writing tests"
    finally:
        await disconnect(a, b)
    assert await store.state(alice, bob) == BY_NAME["Both"]
    assert await store.state(bob, alice) == BY_NAME["Both"]
