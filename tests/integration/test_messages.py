"""Message delivery to local accounts (RFC 6121 §8.5), one dialogue per case, over raw sockets.

Each case puts the recipient's resources in a known state (bound with a presence priority,
bound without presence, or not bound), sends one message and then proves what arrived where
with ping round trips: a session's stanzas are processed in order (RFC 6120 §10.1), so once
the sender's ping is answered the message was delivered, stored or refused, and once a
recipient's ping is answered everything written to it before has been read.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_DELAY, NS_STANZAS
from tests.integration.harness import DOMAIN, RawClient, ServerProcess
from tests.integration.rawhelpers import local, ping_server


# -- helpers -----------------------------------------------------------------------------------
def message(to: str | None, kind: str | None, msg_id: str, body: str = "hello") -> Element:
    """A message stanza (no 'type' attribute when ``kind`` is None)."""
    stanza = Element("message", NS_CLIENT, {"id": msg_id})
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    stanza.sub("body", text=body)
    return stanza


def presence(priority: int) -> Element:
    """An available presence with a priority."""
    stanza = Element("presence", NS_CLIENT)
    stanza.sub("priority", text=str(priority))
    return stanza


def error_condition(stanza: Element) -> str:
    """The defined condition of an error stanza."""
    assert stanza.get("type") == "error", stanza
    error = stanza.find("error", NS_CLIENT)
    assert error is not None, stanza
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


async def messages(client: RawClient) -> list[Element]:
    """The messages that reached ``client`` before the answer to a ping it sends now."""
    return [e for e in await ping_server(client) if e.name == "message"]


def ids(stanzas: list[Element]) -> list[str | None]:
    """The ids of the stanzas, in order."""
    return [s.get("id") for s in stanzas]


def delay_of(stanza: Element) -> Element | None:
    """The XEP-0203 ``<delay/>`` of a stanza, if any."""
    return stanza.find("delay", NS_DELAY)


class Peers:
    """Raw clients logged in for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[RawClient] = []

    async def login(self, jid: str, resource: str, priority: int | None = 0) -> RawClient:
        """Log ``jid`` in as ``resource``; send presence with ``priority`` (None: stay
        unavailable, a connected resource only); return once the server processed it."""
        client = RawClient(self.server)
        self.clients.append(client)
        await client.connect()
        await client.login(local(jid), resource=resource)
        if priority is not None:
            await client.send(presence(priority))
        early = [e for e in await ping_server(client) if e.name == "message"]
        client.events[:0] = early  # offline messages may come before the ping's answer
        return client

    async def close(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.close()


@pytest_asyncio.fixture
async def peers(server: ServerProcess) -> AsyncIterator[Peers]:
    """Log clients in to the shared server; they are closed after the test."""
    made = Peers(server)
    try:
        yield made
    finally:
        await made.close()


# -- §8.5.2.1: bare JID, available resources ---------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["chat", "normal", None, "unknown-type"])
async def test_bare_jid_message_goes_to_every_resource_of_highest_non_negative_priority(
    peers: Peers, new_user: Callable[[str], str], kind: str | None
) -> None:
    bob = new_user("bob")
    top1, top2 = await peers.login(bob, "top1", 5), await peers.login(bob, "top2", 5)
    low, negative = await peers.login(bob, "low", 1), await peers.login(bob, "neg", -1)
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, kind, "m1"))
    assert await messages(alice) == []
    assert ids(await messages(top1)) == ["m1"]
    assert ids(await messages(top2)) == ["m1"]
    assert await messages(low) == []
    assert await messages(negative) == []


@pytest.mark.asyncio
async def test_bare_jid_headline_goes_to_every_non_negative_resource(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    high, zero = await peers.login(bob, "high", 5), await peers.login(bob, "zero", 0)
    negative = await peers.login(bob, "neg", -5)
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "headline", "h1"))
    assert await messages(alice) == []
    assert ids(await messages(high)) == ["h1"]
    assert ids(await messages(zero)) == ["h1"]
    assert await messages(negative) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
async def test_groupchat_to_an_account_is_refused_and_reaches_nobody(
    peers: Peers, new_user: Callable[[str], str], online: bool
) -> None:
    bob = new_user("bob")
    listener = await peers.login(bob, "b") if online else None
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "groupchat", "g1"))
    (reply,) = await messages(alice)
    assert reply.get("id") == "g1"
    assert reply.get("from") == bob
    assert error_condition(reply) == "service-unavailable"
    if listener is not None:
        assert await messages(listener) == []
    later = await peers.login(bob, "later")
    assert await messages(later) == []  # not stored either


@pytest.mark.asyncio
@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
async def test_error_message_to_an_account_is_dropped_without_reply(
    peers: Peers, new_user: Callable[[str], str], online: bool
) -> None:
    bob = new_user("bob")
    listener = await peers.login(bob, "b") if online else None
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "error", "e1"))
    assert await messages(alice) == []
    if listener is not None:
        assert await messages(listener) == []
    later = await peers.login(bob, "later")
    assert await messages(later) == []


@pytest.mark.asyncio
async def test_negative_priority_only_counts_as_offline_for_chat_and_headline(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    negative = await peers.login(bob, "neg", -1)
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "chat", "c1"))
    await alice.send(message(bob, "headline", "h1"))
    assert await messages(alice) == []  # stored, dropped: no error either way
    assert await messages(negative) == []
    available = await peers.login(bob, "avail", 0)
    (stored,) = await wait_for_messages(available, 1)
    assert stored.get("id") == "c1"
    assert delay_of(stored) is not None


@pytest.mark.asyncio
async def test_connected_resource_without_presence_gets_no_bare_jid_message(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    connected = await peers.login(bob, "quiet", None)
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "chat", "c1"))
    assert await messages(alice) == []
    assert await messages(connected) == []
    await connected.send(presence(0))  # now available: the stored message arrives
    (stored,) = await wait_for_messages(connected, 1)
    assert stored.get("id") == "c1"


# -- §8.5.2.2: bare JID, no available resource -------------------------------------------------
@pytest.mark.asyncio
async def test_offline_headline_is_dropped_silently_and_never_stored(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob, "headline", "h1"))
    await alice.send(message(bob, "chat", "c1"))
    assert await messages(alice) == []
    later = await peers.login(bob, "later")
    assert ids(await wait_for_messages(later, 1)) == ["c1"]


# -- §8.5.1: no such account -------------------------------------------------------------------
@pytest.mark.asyncio
async def test_message_to_nonexistent_account_is_service_unavailable_or_dropped(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    nobody = f"nobody-{secrets.token_hex(4)}@{DOMAIN}"
    alice = await peers.login(new_user("alice"), "s")
    for kind in ("chat", "normal", "groupchat", "headline", "error"):
        await alice.send(message(nobody, kind, kind))
    await alice.send(message(nobody + "/res", "chat", "full-chat"))
    replies = await messages(alice)
    assert ids(replies) == ["chat", "normal", "groupchat", "full-chat"]
    assert all(error_condition(r) == "service-unavailable" for r in replies)


# -- §8.5.3: full JID --------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_full_jid_message_reaches_that_resource_whatever_its_type_or_priority(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    other = await peers.login(bob, "other", 10)
    negative = await peers.login(bob, "neg", -1)
    connected = await peers.login(bob, "quiet", None)
    kinds = ("chat", "normal", "headline", "groupchat")
    alice = await peers.login(new_user("alice"), "s")
    for kind in kinds:
        await alice.send(message(bob + "/neg", kind, "neg-" + kind))
        await alice.send(message(bob + "/quiet", kind, "quiet-" + kind))
    assert await messages(alice) == []
    assert ids(await messages(negative)) == [f"neg-{k}" for k in kinds]
    assert ids(await messages(connected)) == [f"quiet-{k}" for k in kinds]
    assert await messages(other) == []


@pytest.mark.asyncio
async def test_message_to_unbound_full_jid_of_online_user_by_type(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    online = await peers.login(bob, "here", 0)
    gone = bob + "/gone"
    alice = await peers.login(new_user("alice"), "s")
    for kind in ("chat", "normal", "headline", "groupchat", "error"):
        await alice.send(message(gone, kind, kind))
    replies = await messages(alice)
    assert ids(replies) == ["normal", "groupchat"]
    assert all(error_condition(r) == "service-unavailable" for r in replies)
    (chat,) = await messages(online)  # chat is handled as if sent to the bare JID
    assert chat.get("id") == "chat"
    assert chat.get("to") == gone


@pytest.mark.asyncio
async def test_chat_to_unbound_full_jid_of_offline_user_is_stored(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    alice = await peers.login(new_user("alice"), "s")
    await alice.send(message(bob + "/gone", "chat", "c1"))
    await alice.send(message(bob + "/gone", "normal", "n1"))
    (refused,) = await messages(alice)
    assert refused.get("id") == "n1"
    assert error_condition(refused) == "service-unavailable"
    later = await peers.login(bob, "later")
    assert ids(await wait_for_messages(later, 1)) == ["c1"]


# -- messages without 'to' ---------------------------------------------------------------------
@pytest.mark.asyncio
async def test_message_without_to_goes_to_the_senders_own_top_resources(
    peers: Peers, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    first, second = await peers.login(alice, "one", 3), await peers.login(alice, "two", 1)
    await first.send(message(None, "chat", "self1"))
    (copy,) = await messages(first)
    assert copy.get("from") == alice + "/one"
    assert await messages(second) == []


# -- waiting for asynchronous deliveries (offline messages at login) ---------------------------
async def wait_for_messages(client: RawClient, count: int, timeout: float = 5.0) -> list[Element]:
    """Read until ``count`` messages have arrived; then check that no more follow."""
    got: list[Element] = []
    while len(got) < count:
        stanza = await client.element(timeout)
        if stanza.name == "message":
            got.append(stanza)
    got.extend(await messages(client))
    assert len(got) == count, ids(got)
    return got
