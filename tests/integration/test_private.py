"""Private XML storage (XEP-0049) over the wire: store, read back, remove, and refusals."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from slixmpp.xmlstream import ElementBase

from roost.modules.private import MAX_ITEMS
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PRIVATE
from roost.xml.serializer import serialize
from tests.integration.harness import (
    RawClient,
    ServerProcess,
    disconnect,
    error_condition,
    slix_client,
)
from tests.integration.rawhelpers import local

_ids = itertools.count()
PREFS = "urn:example:prefs"


class Prefs(ElementBase):
    """A client's preferences fragment, as slixmpp stanza plugin."""

    name = "prefs"
    namespace = PREFS
    plugin_attrib = "prefs"
    interfaces = {"nick"}
    sub_interfaces = {"nick"}


# -- helpers -----------------------------------------------------------------------------------
def private_iq(kind: str, *fragments: Element, to: str | None = None) -> Element:
    """``<iq><query xmlns='jabber:iq:private'>fragments</query></iq>``."""
    iq = Element("iq", NS_CLIENT, {"type": kind, "id": f"p{next(_ids)}"})
    if to is not None:
        iq.attrs["to"] = to
    query = iq.sub("query", NS_PRIVATE)
    query.children.extend(fragments)
    return iq


def fragment(name: str = "prefs", xmlns: str = PREFS, text: str = "") -> Element:
    """``<name xmlns='xmlns'><nick>text</nick></name>`` (empty without text)."""
    element = Element(name, xmlns)
    if text:
        element.sub("nick", text=text)
    return element


async def request(client: RawClient, iq: Element) -> Element:
    """Send an iq; its reply."""
    await client.send(iq)
    while True:
        reply = await client.element()
        if reply.name == "iq" and reply.get("id") == iq.get("id"):
            return reply


async def stored(client: RawClient, wanted: Element) -> Element:
    """What a get of ``wanted`` returns (the one child of the result's query)."""
    reply = await request(client, private_iq("get", wanted))
    assert reply.get("type") == "result", serialize(reply)
    query = reply.find("query", NS_PRIVATE)
    assert query is not None, serialize(reply)
    children = list(query.elements())
    assert len(children) == 1, serialize(reply)
    return children[0]


class Logins:
    """Raw clients logged in for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[RawClient] = []

    async def __call__(self, jid: str, resource: str = "raw") -> RawClient:
        client = RawClient(self.server)
        self.clients.append(client)
        await client.connect()
        await client.login(local(jid), resource=resource)
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


# -- tests -------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_private_fragment_stored_with_slixmpp_is_read_back_in_a_later_session(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await slix_client(server, alice + "/one")
    client.register_plugin("xep_0049")
    client.plugin["xep_0049"].register(Prefs)  # type: ignore[no-untyped-call]
    prefs = Prefs()
    prefs["nick"] = "Hamlet"
    await client.plugin["xep_0049"].store(prefs, timeout=5)
    await disconnect(client)

    later = await slix_client(server, alice + "/two")
    later.register_plugin("xep_0049")
    later.plugin["xep_0049"].register(Prefs)  # type: ignore[no-untyped-call]
    result: Any = await later.plugin["xep_0049"].retrieve("prefs", timeout=5)
    assert result["private"]["prefs"]["nick"] == "Hamlet"
    await disconnect(later)


@pytest.mark.asyncio
async def test_private_get_of_a_fragment_never_stored_returns_it_as_sent(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    asked = Element("storage", "storage:bookmarks", {"marker": "x"})
    answer = await stored(client, asked)
    assert (answer.xmlns, answer.name, answer.attrs, answer.children) == (
        "storage:bookmarks",
        "storage",
        {"marker": "x"},
        [],
    )


@pytest.mark.asyncio
async def test_private_set_replaces_and_an_empty_fragment_removes(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    for nick in ("Hamlet", "Ophelia"):
        reply = await request(client, private_iq("set", fragment(text=nick)))
        assert reply.get("type") == "result", serialize(reply)
    assert (await stored(client, fragment())).find_text("nick") == "Ophelia"
    reply = await request(client, private_iq("set", fragment()))
    assert reply.get("type") == "result", serialize(reply)
    assert (await stored(client, fragment())).children == []


@pytest.mark.asyncio
async def test_private_set_of_several_fragments_stores_each_under_its_name(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    both = private_iq("set", fragment("prefs", text="one"), fragment("other", text="two"))
    reply = await request(client, both)
    assert reply.get("type") == "result", serialize(reply)
    assert (await stored(client, fragment("prefs"))).find_text("nick") == "one"
    assert (await stored(client, fragment("other"))).find_text("nick") == "two"
    # same name in another namespace is another fragment
    assert (await stored(client, fragment("prefs", "urn:example:else"))).children == []


@pytest.mark.asyncio
async def test_private_fragments_are_per_user(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = await login(new_user("alice"))
    bob = await login(new_user("bob"))
    reply = await request(alice, private_iq("set", fragment(text="alice's")))
    assert reply.get("type") == "result", serialize(reply)
    assert (await stored(bob, fragment())).children == []


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["get", "set"])
async def test_private_query_without_a_fragment_is_not_acceptable(
    login: Logins, new_user: Callable[[str], str], kind: str
) -> None:
    client = await login(new_user("alice"))
    assert error_condition(await request(client, private_iq(kind))) == "not-acceptable"


@pytest.mark.asyncio
async def test_private_get_of_two_fragments_is_bad_request(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    reply = await request(client, private_iq("get", fragment("a"), fragment("b")))
    assert error_condition(reply) == "bad-request"


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["get", "set"])
@pytest.mark.parametrize("xmlns", ["jabber:iq:roster", "jabber:client", NS_PRIVATE])
async def test_private_fragment_in_a_jabber_namespace_is_not_acceptable(
    login: Logins, new_user: Callable[[str], str], kind: str, xmlns: str
) -> None:
    client = await login(new_user("alice"))
    reply = await request(client, private_iq(kind, fragment("query", xmlns, text="x")))
    assert error_condition(reply) == "not-acceptable"


@pytest.mark.asyncio
async def test_private_unqualified_child_inherits_the_reserved_namespace(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    iq_id = f"p{next(_ids)}"
    await client.send(
        f"<iq type='set' id='{iq_id}'><query xmlns='{NS_PRIVATE}'><prefs/></query></iq>"
    )
    reply = await client.element()
    assert reply.get("id") == iq_id
    assert error_condition(reply) == "not-acceptable"


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["get", "set"])
async def test_private_storage_of_another_user_is_forbidden(
    login: Logins, new_user: Callable[[str], str], kind: str
) -> None:
    bob = new_user("bob")
    client = await login(new_user("alice"))
    reply = await request(client, private_iq(kind, fragment(text="x"), to=bob))
    assert error_condition(reply) == "forbidden"
    assert reply.get("from") == bob


@pytest.mark.asyncio
async def test_private_storage_to_own_bare_jid_is_served(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice)
    reply = await request(client, private_iq("set", fragment(text="mine"), to=alice))
    assert reply.get("type") == "result", serialize(reply)
    assert (await stored(client, fragment())).find_text("nick") == "mine"


@pytest.mark.asyncio
async def test_private_fragments_past_the_per_user_limit_are_policy_violation(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    for i in range(MAX_ITEMS):
        reply = await request(client, private_iq("set", fragment(f"f{i}", text="x")))
        assert reply.get("type") == "result", serialize(reply)
    over = await request(client, private_iq("set", fragment("one-more", text="x")))
    assert error_condition(over) == "policy-violation"
    # replacing or removing a fragment that is there is still fine
    reply = await request(client, private_iq("set", fragment("f0", text="y")))
    assert reply.get("type") == "result", serialize(reply)
    reply = await request(client, private_iq("set", fragment("f1")))
    assert reply.get("type") == "result", serialize(reply)
    reply = await request(client, private_iq("set", fragment("one-more", text="x")))
    assert reply.get("type") == "result", serialize(reply)
