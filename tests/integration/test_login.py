"""Real clients log in (RFC 6120 §5–§7) and exchange messages between local sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp import JID

from tests.integration.harness import ServerProcess, disconnect, next_stanza, slix_client

MECHANISMS = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_slixmpp_logs_in_with_starttls_and_each_mechanism(
    server: ServerProcess, new_user: Callable[[str], str], mechanism: str
) -> None:
    jid = new_user("mech")
    client = await slix_client(server, jid + "/desk", mechanism=mechanism)
    assert str(client.boundjid) == jid + "/desk"
    assert client.is_connected()
    await disconnect(client)


@pytest.mark.asyncio
async def test_slixmpp_logs_in_over_direct_tls(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    jid = new_user("direct")
    client = await slix_client(server, jid + "/tls", direct_tls=True)
    assert str(client.boundjid) == jid + "/tls"
    await disconnect(client)


@pytest.mark.asyncio
async def test_wrong_password_is_refused(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    jid = new_user("wrong")
    with pytest.raises(RuntimeError, match="authentication failed"):
        await slix_client(server, jid, "not-the-password")


@pytest.mark.asyncio
async def test_server_generates_a_resource_when_the_client_asks_none(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    jid = new_user("nores")
    client = await slix_client(server, jid)
    assert client.boundjid.bare == jid
    assert client.boundjid.resource
    await disconnect(client)


@pytest.mark.asyncio
async def test_chat_message_to_full_jid_is_delivered_with_stamped_from(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    a = await slix_client(server, alice + "/phone")
    b = await slix_client(server, bob + "/laptop")
    received = next_stanza(b)
    a.send_message(mto=JID(bob + "/laptop"), mbody="to your laptop", mtype="chat")
    message = await asyncio.wait_for(received, 5)
    assert message["body"] == "to your laptop"
    assert message["from"] == JID(alice + "/phone")
    await disconnect(a, b)


@pytest.mark.asyncio
async def test_message_to_bare_jid_goes_to_highest_priority_resource(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    a = await slix_client(server, alice + "/a")
    low = await slix_client(server, bob + "/low", presence=False)
    high = await slix_client(server, bob + "/high", presence=False)
    low.send_presence(ppriority=1)
    high.send_presence(ppriority=5)
    await asyncio.sleep(0.2)
    got_high, got_low = next_stanza(high), next_stanza(low)
    a.send_message(mto=JID(bob), mbody="who gets it", mtype="chat")
    assert (await asyncio.wait_for(got_high, 5))["body"] == "who gets it"
    await asyncio.sleep(0.3)
    assert not got_low.done()
    await disconnect(a, low, high)


@pytest.mark.asyncio
async def test_messages_keep_their_order(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    a = await slix_client(server, alice + "/a")
    b = await slix_client(server, bob + "/b")
    bodies: list[str] = []
    done = asyncio.get_running_loop().create_future()

    def collect(message: object) -> None:
        bodies.append(message["body"])  # type: ignore[index]
        if len(bodies) == 200 and not done.done():
            done.set_result(None)

    b.add_event_handler("message", collect)
    for i in range(200):
        a.send_message(mto=JID(bob + "/b"), mbody=str(i), mtype="chat")
    await asyncio.wait_for(done, 10)
    assert bodies == [str(i) for i in range(200)]
    await disconnect(a, b)
