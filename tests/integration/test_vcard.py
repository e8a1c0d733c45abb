"""vcard-temp (XEP-0054) and the avatar hash in presence (XEP-0153), over the wire."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from slixmpp import JID

from roost.modules.vcard import MAX_VCARD_BYTES, photo_hash
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_VCARD, NS_VCARD_UPDATE
from roost.xml.serializer import serialize
from tests.integration.harness import (
    RawClient,
    ServerProcess,
    disconnect,
    error_condition,
    slix_client,
)
from tests.integration.rawhelpers import local, ping_server

_ids = itertools.count()
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


# -- helpers -----------------------------------------------------------------------------------
def vcard_iq(kind: str, vcard: Element | None = None, to: str | None = None) -> Element:
    """An iq with a ``<vCard xmlns='vcard-temp'/>`` (empty unless given)."""
    iq = Element("iq", NS_CLIENT, {"type": kind, "id": f"v{next(_ids)}"})
    if to is not None:
        iq.attrs["to"] = to
    iq.add(vcard if vcard is not None else Element("vCard", NS_VCARD))
    return iq


def make_vcard(fn: str, photo: bytes | None = None, *, wrap: bool = False) -> Element:
    """A vCard with a formatted name and, if given, a PHOTO (BINVAL in 76-column lines when
    ``wrap``, as RFC 2045 recommends)."""
    vcard = Element("vCard", NS_VCARD)
    vcard.sub("FN", text=fn)
    if photo is not None:
        element = vcard.sub("PHOTO")
        element.sub("TYPE", text="image/png")
        encoded = base64.b64encode(photo).decode()
        if wrap:
            encoded = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        element.sub("BINVAL", text=encoded)
    return vcard


async def request(client: RawClient, iq: Element) -> Element:
    """Send an iq; its reply."""
    await client.send(iq)
    while True:
        reply = await client.element()
        if reply.name == "iq" and reply.get("id") == iq.get("id"):
            return reply


def result_vcard(reply: Element) -> Element:
    """The vCard of a result."""
    assert reply.get("type") == "result", serialize(reply)
    vcard = reply.find("vCard", NS_VCARD)
    assert vcard is not None, serialize(reply)
    return vcard


def presence(to: str | None = None, kind: str | None = None) -> Element:
    """A presence stanza."""
    stanza = Element("presence", NS_CLIENT)
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    return stanza


def with_update(stanza: Element, photo: str | None) -> Element:
    """Add the client's own ``<x xmlns='vcard-temp:x:update'/>`` (with ``<photo/>`` unless
    ``photo`` is None)."""
    update = stanza.sub("x", NS_VCARD_UPDATE)
    if photo is not None:
        update.sub("photo", NS_VCARD_UPDATE, text=photo)
    return stanza


def advertised(stanza: Element) -> list[str | None]:
    """The photo of each update child of a presence (None for an ``<x/>`` without one)."""
    photos: list[str | None] = []
    for update in stanza.elements():
        if (update.xmlns, update.name) == (NS_VCARD_UPDATE, "x"):
            photo = update.find("photo", NS_VCARD_UPDATE)
            photos.append(None if photo is None else photo.text)
    return photos


async def next_presence(client: RawClient, sender: str) -> Element:
    """The next presence from the full JID ``sender`` (other stanzas are skipped)."""
    while True:
        stanza = await client.element()
        if stanza.name == "presence" and stanza.get("from") == sender:
            return stanza


async def presences_before_ping(client: RawClient, sender: str) -> list[Element]:
    """The presence stanzas from ``sender`` that reached ``client`` before a ping it sends."""
    return [
        s for s in await ping_server(client) if s.name == "presence" and s.get("from") == sender
    ]


async def subscribe(watcher: RawClient, watcher_jid: str, owner: RawClient, owner_jid: str) -> None:
    """``watcher`` asks to see ``owner``'s presence and ``owner`` approves (RFC 6121 §3.1)."""
    await watcher.send(presence(owner_jid, "subscribe"))
    while True:
        request = await owner.element()
        if request.name == "presence" and request.get("type") == "subscribe":
            break
    await owner.send(presence(watcher_jid, "subscribed"))
    await ping_server(owner)
    await ping_server(watcher)


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


# -- the hash (XEP-0153 §3.1, §4.6) ------------------------------------------------------------
def test_photo_hash_is_sha1_of_the_decoded_image_ignoring_line_breaks() -> None:
    expected = hashlib.sha1(PNG).hexdigest()
    assert photo_hash(make_vcard("A", PNG)) == expected
    assert photo_hash(make_vcard("A", PNG * 20, wrap=True)) == hashlib.sha1(PNG * 20).hexdigest()
    assert photo_hash(make_vcard("A")) == ""
    assert photo_hash(None) == ""
    broken = make_vcard("A")
    broken.sub("PHOTO").sub("BINVAL", text="not base64!")
    assert photo_hash(broken) == ""


# -- XEP-0054 ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_own_vcard_is_empty_before_one_is_published(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    vcard = result_vcard(await request(client, vcard_iq("get")))
    assert vcard.children == []


@pytest.mark.asyncio
async def test_published_vcard_is_read_by_its_owner_and_by_others(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    owner = await slix_client(server, alice + "/r")
    owner.register_plugin("xep_0054")
    vcard = owner.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Liddell"
    vcard["NICKNAME"] = "alice"
    await owner.plugin["xep_0054"].publish_vcard(vcard, timeout=5)
    own: Any = await owner.plugin["xep_0054"].get_vcard(JID(alice), local=False, timeout=5)
    assert own["vcard_temp"]["FN"] == "Alice Liddell"

    reader = await slix_client(server, bob + "/r")
    reader.register_plugin("xep_0054")
    theirs: Any = await reader.plugin["xep_0054"].get_vcard(JID(alice), timeout=5)
    assert theirs["from"] == JID(alice)
    assert theirs["vcard_temp"]["FN"] == "Alice Liddell"
    assert theirs["vcard_temp"]["NICKNAME"] == ["alice"]  # slixmpp reads a list
    await disconnect(owner, reader)


@pytest.mark.asyncio
async def test_vcard_set_replaces_the_whole_vcard_and_keeps_its_xml(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    first = make_vcard("First")
    first.sub("DESC", text="one  <two> & three\n")
    assert (await request(client, vcard_iq("set", first))).get("type") == "result"
    assert serialize(result_vcard(await request(client, vcard_iq("get")))) == serialize(first)
    second = make_vcard("Second")
    assert (await request(client, vcard_iq("set", second))).get("type") == "result"
    assert serialize(result_vcard(await request(client, vcard_iq("get")))) == serialize(second)


@pytest.mark.asyncio
async def test_vcard_of_a_user_without_one_and_of_no_such_user_are_the_same_error(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    bob = new_user("bob")
    client = await login(new_user("alice"))
    without = await request(client, vcard_iq("get", to=bob))
    missing = await request(client, vcard_iq("get", to="nobody-at-all@localhost"))
    assert error_condition(without) == error_condition(missing) == "service-unavailable"


@pytest.mark.asyncio
async def test_vcard_set_on_another_user_is_forbidden_and_changes_nothing(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    owner = await login(bob)
    assert (await request(owner, vcard_iq("set", make_vcard("Bob")))).get("type") == "result"
    intruder = await login(alice)
    reply = await request(intruder, vcard_iq("set", make_vcard("Not Bob"), to=bob))
    assert error_condition(reply) == "forbidden"
    vcard = result_vcard(await request(intruder, vcard_iq("get", to=bob)))
    assert vcard.find_text("FN", NS_VCARD) == "Bob"


@pytest.mark.asyncio
async def test_vcard_over_the_size_limit_is_policy_violation(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    client = await login(new_user("alice"))
    assert (await request(client, vcard_iq("set", make_vcard("Small")))).get("type") == "result"
    big = make_vcard("Big", b"\0" * MAX_VCARD_BYTES)
    assert error_condition(await request(client, vcard_iq("set", big))) == "policy-violation"
    kept = result_vcard(await request(client, vcard_iq("get")))
    assert kept.find_text("FN", NS_VCARD) == "Small"


@pytest.mark.asyncio
async def test_vcard_set_to_own_bare_jid_is_accepted(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice)
    reply = await request(client, vcard_iq("set", make_vcard("Alice"), to=alice))
    assert reply.get("type") == "result", serialize(reply)
    vcard = result_vcard(await request(client, vcard_iq("get", to=alice)))
    assert vcard.find_text("FN", NS_VCARD) == "Alice"


@pytest.mark.asyncio
async def test_vcard_get_to_a_full_jid_is_delivered_to_that_client(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    target = await login(bob, "desk")
    asker = await login(alice)
    query = vcard_iq("get", to=bob + "/desk")
    await asker.send(query)
    delivered = await target.element()
    assert delivered.name == "iq"
    assert delivered.get("id") == query.get("id")
    assert delivered.get("from") == alice + "/raw"
    assert delivered.find("vCard", NS_VCARD) is not None


@pytest.mark.asyncio
async def test_vcard_with_slixmpp_avatar_plugin_is_stored_with_the_photo(
    server: ServerProcess, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await slix_client(server, alice + "/r")
    client.register_plugin("xep_0153")
    await client.plugin["xep_0153"].set_avatar(avatar=PNG, mtype="image/png", timeout=5)
    await disconnect(client)
    raw = RawClient(server)
    await raw.connect()
    try:
        await raw.login(local(alice))
        vcard = result_vcard(await request(raw, vcard_iq("get")))
        assert photo_hash(vcard) == hashlib.sha1(PNG).hexdigest()
        assert await ping_server(raw) == []
    finally:
        await raw.close()


# -- XEP-0153: the hash in broadcast presence ---------------------------------------------------
@pytest.mark.asyncio
async def test_presence_without_update_gets_the_hash_of_the_stored_photo(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    earlier = await login(alice, "earlier")
    assert (await request(earlier, vcard_iq("set", make_vcard("A", PNG)))).get("type") == "result"
    await earlier.close()
    client = await login(alice, "desk")  # a new session: the hash is read from storage
    await client.send(presence())
    echo = await next_presence(client, alice + "/desk")  # RFC 6121 §4.2.2
    assert advertised(echo) == [hashlib.sha1(PNG).hexdigest()]


@pytest.mark.asyncio
async def test_presence_of_an_account_without_photo_gets_an_empty_photo(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice, "desk")
    await client.send(presence())
    assert advertised(await next_presence(client, alice + "/desk")) == [""]
    assert (await request(client, vcard_iq("set", make_vcard("No photo")))).get("type") == "result"
    await client.send(presence())
    assert advertised(await next_presence(client, alice + "/desk")) == [""]


@pytest.mark.asyncio
async def test_photo_a_client_advertises_itself_is_left_alone(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice, "desk")
    assert (await request(client, vcard_iq("set", make_vcard("A", PNG)))).get("type") == "result"
    await client.send(with_update(presence(), "0123abcd"))
    assert advertised(await next_presence(client, alice + "/desk")) == ["0123abcd"]
    await client.send(with_update(presence(), ""))
    assert advertised(await next_presence(client, alice + "/desk")) == [""]


@pytest.mark.asyncio
async def test_update_without_photo_gets_the_photo_added_in_place(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    client = await login(alice, "desk")
    assert (await request(client, vcard_iq("set", make_vcard("A", PNG)))).get("type") == "result"
    await client.send(with_update(presence(), None))
    assert advertised(await next_presence(client, alice + "/desk")) == [
        hashlib.sha1(PNG).hexdigest()
    ]


@pytest.mark.asyncio
async def test_contacts_get_the_hash_in_broadcasts_and_probe_answers(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    alice_client = await login(alice, "desk")
    bob_client = await login(bob, "phone")
    await alice_client.send(presence())
    await bob_client.send(presence())
    await subscribe(bob_client, bob, alice_client, alice)
    assert (await request(alice_client, vcard_iq("set", make_vcard("A", PNG)))).get(
        "type"
    ) == "result"
    digest = hashlib.sha1(PNG).hexdigest()
    await alice_client.send(presence())
    assert advertised(await next_presence(bob_client, alice + "/desk")) == [digest]
    # bob comes back later: the probe is answered with alice's stored presence (§4.3.2)
    await bob_client.close()
    later = await login(bob, "laptop")
    await later.send(presence())
    assert advertised(await next_presence(later, alice + "/desk")) == [digest]


@pytest.mark.asyncio
async def test_unavailable_presence_gets_no_update(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice = new_user("alice")
    desk = await login(alice, "desk")
    phone = await login(alice, "phone")
    await desk.send(presence())
    await phone.send(presence())
    await next_presence(desk, alice + "/phone")
    await phone.send(presence(kind="unavailable"))
    gone = await next_presence(desk, alice + "/phone")
    assert gone.get("type") == "unavailable"
    assert advertised(gone) == []


@pytest.mark.asyncio
async def test_new_photo_rebroadcasts_the_presence_the_server_tagged_only(
    login: Logins, new_user: Callable[[str], str]
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    desk = await login(alice, "desk")  # a client that knows nothing of XEP-0153
    phone = await login(alice, "phone")  # a client that advertises its hash itself
    watcher = await login(bob, "w")
    await watcher.send(presence())
    await desk.send(presence())
    await subscribe(watcher, bob, desk, alice)
    await desk.send(presence())
    assert advertised(await next_presence(watcher, alice + "/desk")) == [""]
    await phone.send(with_update(presence(), ""))
    assert advertised(await next_presence(watcher, alice + "/phone")) == [""]

    assert (await request(phone, vcard_iq("set", make_vcard("A", PNG)))).get("type") == "result"
    again = await next_presence(watcher, alice + "/desk")
    assert advertised(again) == [hashlib.sha1(PNG).hexdigest()]
    assert await presences_before_ping(watcher, alice + "/phone") == []  # left to the client

    # the same photo again: nothing to re-broadcast
    assert (await request(phone, vcard_iq("set", make_vcard("B", PNG)))).get("type") == "result"
    assert await presences_before_ping(watcher, alice + "/desk") == []
