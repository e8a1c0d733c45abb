"""Routing and stanza errors (RFC 6120 §8, §10) and the first modules, over the wire."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_STANZAS
from tests.integration.harness import (
    DOMAIN,
    RawClient,
    ServerProcess,
    disconnect,
    raw_client,
    slix_client,
)


def error_condition(stanza: Element) -> str:
    """The defined condition of an error stanza."""
    assert stanza.get("type") == "error", stanza
    error = stanza.find("error", NS_CLIENT)
    assert error is not None
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


async def request(client: RawClient, iq: Element) -> Element:
    """Send an iq and return the reply with the same id."""
    await client.send(iq)
    while True:
        reply = await client.element()
        if reply.name == "iq" and reply.get("id") == iq.get("id"):
            return reply


def iq(kind: str, to: str | None, payload: Element | None, iq_id: str = "q1") -> Element:
    stanza = Element("iq", NS_CLIENT, {"type": kind, "id": iq_id})
    if to is not None:
        stanza.attrs["to"] = to
    if payload is not None:
        stanza.children.append(payload)
    return stanza


@pytest.mark.asyncio
async def test_server_answers_ping_version_time_and_disco(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    client = await slix_client(server, new_user("q") + "/r")
    await client.plugin["xep_0199"].ping(JID(DOMAIN), timeout=5)
    version = await client.plugin["xep_0092"].get_version(JID(DOMAIN), timeout=5)
    assert version["software_version"]["name"] == "roost"
    entity_time = await client.plugin["xep_0202"].get_entity_time(JID(DOMAIN), timeout=5)
    # slixmpp appends a 'Z' to <utc/> itself, so read the XML: XEP-0202 §3 includes the 'Z'.
    utc = entity_time.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}utc").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc), utc
    tzo = entity_time.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}tzo").text
    assert re.fullmatch(r"[+-]\d\d:\d\d", tzo), tzo
    info = await client.plugin["xep_0030"].get_info(jid=JID(DOMAIN), timeout=5)
    features = set(info["disco_info"]["features"])
    assert {NS_DISCO_INFO, NS_PING, "jabber:iq:version", "urn:xmpp:time"} <= features
    assert ("server", "im", None, "roost") in info["disco_info"]["identities"]
    items = await client.plugin["xep_0030"].get_items(jid=JID(DOMAIN), timeout=5)
    assert items["disco_items"]["items"] == set()
    await disconnect(client)


@pytest.mark.asyncio
async def test_account_disco_answers_the_account_itself_only(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    client = await slix_client(server, alice + "/r")
    info = await client.plugin["xep_0030"].get_info(jid=JID(alice), timeout=5)
    assert ("account", "registered", None, None) in info["disco_info"]["identities"]
    with pytest.raises(IqError) as refused:
        await client.plugin["xep_0030"].get_info(jid=JID(bob), timeout=5)
    assert refused.value.condition == "service-unavailable"
    await disconnect(client)


@pytest.mark.asyncio
async def test_unhandled_iq_to_server_is_service_unavailable(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        reply = await request(client, iq("get", DOMAIN, Element("query", "urn:example:nothing")))
        assert error_condition(reply) == "service-unavailable"
        assert reply.get("from") == DOMAIN


@pytest.mark.asyncio
async def test_disco_node_that_does_not_exist_is_item_not_found(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        query = Element("query", NS_DISCO_INFO, {"node": "no-such-node"})
        reply = await request(client, iq("get", DOMAIN, query))
        assert error_condition(reply) == "item-not-found"


@pytest.mark.asyncio
async def test_unknown_remote_domain_is_remote_server_not_found(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        message = Element("message", NS_CLIENT, {"to": "juliet@elsewhere.example", "id": "m1"})
        message.sub("body", text="hi")
        await client.send(message)
        reply = await client.element()
        assert reply.name == "message"
        assert error_condition(reply) == "remote-server-not-found"


@pytest.mark.asyncio
async def test_malformed_to_is_jid_malformed(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        reply = await request(client, iq("get", "a@b@", Element("ping", NS_PING)))
        assert error_condition(reply) == "jid-malformed"


@pytest.mark.asyncio
async def test_iq_without_id_or_with_two_payloads_is_bad_request(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        double = iq("get", DOMAIN, Element("ping", NS_PING), "two")
        double.children.append(Element("ping", NS_PING))
        assert error_condition(await request(client, double)) == "bad-request"
        bad_type = iq("fetch", DOMAIN, Element("ping", NS_PING), "badtype")
        assert error_condition(await request(client, bad_type)) == "bad-request"


@pytest.mark.asyncio
async def test_errors_and_results_are_never_answered_with_errors(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        await client.send(iq("result", DOMAIN, None, "r1"))
        await client.send(iq("error", DOMAIN, None, "e1"))
        stray = Element("message", NS_CLIENT, {"to": "x@elsewhere.example", "type": "error"})
        await client.send(stray)
        reply = await request(client, iq("get", DOMAIN, Element("ping", NS_PING), "after"))
        assert reply.get("type") == "result"  # nothing came before the ping's answer


@pytest.mark.asyncio
async def test_iq_to_full_jid_is_delivered_and_answered(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    a = await slix_client(server, alice + "/a")
    b = await slix_client(server, bob + "/b")
    await a.plugin["xep_0199"].ping(JID(bob + "/b"), timeout=5)
    version = await a.plugin["xep_0092"].get_version(JID(bob + "/b"), timeout=5)
    assert version["software_version"]["name"] == "Slixmpp"
    await disconnect(a, b)


@pytest.mark.asyncio
async def test_iq_to_unbound_full_jid_is_service_unavailable(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    a = await slix_client(server, alice + "/a")
    with pytest.raises(IqError) as refused:
        await a.plugin["xep_0199"].ping(JID(bob + "/gone"), timeout=5)
    assert refused.value.condition == "service-unavailable"
    await disconnect(a)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("to_kind", "kind"),
    [
        ("nonexistent-account", "chat"),
        ("nonexistent-account", "normal"),
        ("unbound-full", "normal"),
    ],
)
async def test_undeliverable_message_is_service_unavailable(
    server: ServerProcess, new_user: Callable[[str], str], to_kind: str, kind: str
) -> None:
    offline = new_user("offline")
    to = {
        "nonexistent-account": f"nobody-{to_kind}@{DOMAIN}",
        "unbound-full": offline + "/nowhere",
    }[to_kind]
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        message = Element("message", NS_CLIENT, {"to": to, "type": kind, "id": "m1"})
        message.sub("body", text="anyone?")
        await client.send(message)
        reply = await client.element()
        assert reply.get("id") == "m1"
        assert error_condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_groupchat_message_to_an_account_is_refused(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    listener = await slix_client(server, bob + "/b")
    async with raw_client(server) as client:
        await client.login(new_user("u").split("@")[0])
        message = Element("message", NS_CLIENT, {"to": bob, "type": "groupchat", "id": "g1"})
        message.sub("body", text="not a room")
        await client.send(message)
        assert error_condition(await client.element()) == "service-unavailable"
    await disconnect(listener)


@pytest.mark.asyncio
async def test_message_after_logout_is_not_delivered_to_the_old_session(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    b = await slix_client(server, bob + "/b")
    await disconnect(b)
    await asyncio.sleep(0.2)
    async with raw_client(server) as client:
        await client.login(alice.split("@")[0])
        # normal to an unbound full JID: service-unavailable (RFC 6121 §8.5.3.2.1)
        message = Element("message", NS_CLIENT, {"to": bob + "/b", "type": "normal", "id": "x"})
        await client.send(message)
        assert error_condition(await client.element()) == "service-unavailable"
