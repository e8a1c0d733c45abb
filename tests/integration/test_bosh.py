"""BOSH (XEP-0124, XEP-0206) at /http-bind, XEP-0156 host-meta and CORS, with aiohttp."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from slixmpp import JID
from slixmpp.exceptions import IqError

from roost.xml.element import Element
from roost.xml.ns import NS_HTTPBIND, NS_SASL, NS_STREAMS, NS_XBOSH
from roost.xml.serializer import serialize
from tests.integration.harness import (
    PASSWORD,
    ServerProcess,
    disconnect,
    make_server,
    next_stanza,
    slix_client,
)
from tests.integration.webclient import BoshClient, bind_iq, error_condition

MAX_WAIT = 5
INACTIVITY = 3
SESSIONS_PER_IP = 2


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = make_server(
        tmp_path_factory.mktemp("roost-bosh"),
        http=True,
        http_options={
            "bosh_max_wait": MAX_WAIT,
            "bosh_max_inactivity": INACTIVITY,
            "bosh_sessions_per_ip": SESSIONS_PER_IP,
        },
    )
    process.start()
    for name in ("alice", "bob", "carol", "dave"):
        process.add_user(name)
    yield process
    process.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bosh(server: ServerProcess, http: aiohttp.ClientSession, **headers: str) -> BoshClient:
    return BoshClient(http, server.http_url + "/http-bind", headers)


def ping(iq_id: str) -> str:
    return f"<iq xmlns='jabber:client' type='get' id='{iq_id}'><ping xmlns='urn:xmpp:ping'/></iq>"


def ids(*bodies: Element) -> list[str]:
    found: list[str] = []
    for body in bodies:
        found += [child.get("id") or "" for child in body.elements()]
    return found


# -- sessions and login ----------------------------------------------------------------------
@pytest.mark.asyncio
async def test_session_creation_answers_with_the_session_attributes_and_features(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    body = await client.create(wait="600", hold="9", ver="1.11", ack="1")
    attrs = body.attrs
    assert attrs["wait"] == str(MAX_WAIT)  # capped by [http].bosh_max_wait
    assert (attrs["hold"], attrs["requests"]) == ("2", "3")
    assert (attrs["inactivity"], attrs["polling"]) == (str(INACTIVITY), "5")
    assert (attrs["ver"], attrs["from"], attrs["ack"]) == ("1.11", "localhost", str(client.rid))
    assert attrs["sid"]
    assert attrs["authid"]
    assert attrs[f"{{{NS_XBOSH}}}version"] == "1.0"
    assert attrs[f"{{{NS_XBOSH}}}restartlogic"] == "true"
    features = body.find("features", NS_STREAMS)
    assert features is not None
    mechanisms = features.find("mechanisms", NS_SASL)
    assert mechanisms is not None
    assert [m.text for m in mechanisms.elements()][-1] == "PLAIN"
    await client.post({"type": "terminate"})


@pytest.mark.asyncio
async def test_creation_with_an_older_version_answers_with_that_version(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    assert (await client.create(ver="1.6")).get("ver") == "1.6"
    await client.post({"type": "terminate"})


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_bosh_client_logs_in_with_a_restart_and_exchanges_messages_with_tcp(
    web_server: ServerProcess, http: aiohttp.ClientSession, mechanism: str
) -> None:
    client = bosh(web_server, http)
    resource = "bosh-" + secrets.token_hex(3)
    jid = await client.login("alice", PASSWORD, mechanism=mechanism, resource=resource)
    assert jid == f"alice@localhost/{resource}"
    tcp = await slix_client(web_server, f"bob@localhost/tcp-{resource}")
    try:
        waiting = next_stanza(tcp)
        # The request carrying the message is then held: nothing to answer yet.
        sending = asyncio.ensure_future(
            client.post(
                payload=f"<message xmlns='jabber:client' to='{tcp.boundjid}' type='chat'>"
                "<body>over BOSH</body></message>"
            )
        )
        message = await asyncio.wait_for(waiting, 10)
        assert (str(message["from"]), message["body"]) == (jid, "over BOSH")
        await asyncio.sleep(0.2)
        assert not sending.done()
        # A held request is answered as soon as data arrives for the session.
        tcp.send_message(mto=JID(jid), mbody="to the browser", mtype="chat")
        answer = await asyncio.wait_for(sending, MAX_WAIT)
        received = answer.first_element()
        assert received is not None
        assert (received.name, received.get("from")) == ("message", str(tcp.boundjid))
        assert received.find_text("body") == "to the browser"
    finally:
        await disconnect(tcp)
        await client.post({"type": "terminate"})


@pytest.mark.asyncio
async def test_held_request_is_answered_empty_when_wait_expires(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.create(wait="1")
    started = time.monotonic()
    body = await client.post()
    assert 0.8 < time.monotonic() - started < MAX_WAIT
    assert (body.attrs, list(body.elements())) == ({}, [])
    await client.post({"type": "terminate"})


@pytest.mark.asyncio
async def test_terminate_ends_the_session(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.login("carol", PASSWORD, resource="bye")
    body = await client.post(
        {"type": "terminate"}, "<presence xmlns='jabber:client' type='unavailable'/>"
    )
    assert body.get("type") == "terminate"
    assert body.get("condition") is None
    assert error_condition(await client.post()) == "item-not-found"


@pytest.mark.asyncio
async def test_inactive_session_ends_with_unavailable_presence_and_its_resource_is_gone(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    tcp = await slix_client(web_server, "bob@localhost/watcher")
    client = bosh(web_server, http)
    try:
        jid = await client.login("dave", PASSWORD, resource="idle")
        available = next_stanza(tcp, "presence_available")
        unavailable = next_stanza(tcp, "presence_unavailable")
        # Directed presence (RFC 6121 §4.6): its recipient hears when the session ends.
        answer = await client.post(
            payload="<presence xmlns='jabber:client' to='bob@localhost/watcher'/>" + ping("p")
        )
        assert ids(answer) == ["p"]
        assert str((await asyncio.wait_for(available, 10))["from"]) == jid
        started = time.monotonic()
        gone = await asyncio.wait_for(unavailable, INACTIVITY + 5)  # no request meanwhile
        assert str(gone["from"]) == jid
        assert time.monotonic() - started > INACTIVITY - 0.5
        with pytest.raises(IqError) as info:
            await tcp.plugin["xep_0199"].send_ping(JID(jid), timeout=5)
        assert info.value.iq["error"]["condition"] == "service-unavailable"
    finally:
        await disconnect(tcp)
    assert error_condition(await client.post()) == "item-not-found"


@pytest.mark.asyncio
async def test_replaced_session_is_terminated_with_remote_stream_error(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.login("carol", PASSWORD, resource="twice")
    held = asyncio.ensure_future(client.post())
    await asyncio.sleep(0.2)
    tcp = await slix_client(web_server, "carol@localhost/twice")
    try:
        body = await asyncio.wait_for(held, MAX_WAIT)
        assert (body.get("type"), body.get("condition")) == ("terminate", "remote-stream-error")
        error = body.find("error", NS_STREAMS)
        assert error is not None
        assert error_condition(error) == "conflict"
    finally:
        await disconnect(tcp)


# -- request ids -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_request_ahead_of_its_turn_waits_for_the_missing_rid(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.login("alice", PASSWORD, resource="order-" + secrets.token_hex(3))
    first, second = client.rid + 1, client.rid + 2
    later = asyncio.ensure_future(client.post_raw(client.body({}, ping("p2"), rid=second)))
    await asyncio.sleep(0.3)
    assert not later.done()  # rid + 2 waits for rid + 1
    earlier = await client.post_raw(client.body({}, ping("p1"), rid=first))
    client.rid = second
    assert ids(earlier, await asyncio.wait_for(later, MAX_WAIT)) == ["p1", "p2"]
    await client.post({"type": "terminate"})


@pytest.mark.asyncio
async def test_answer_to_an_older_request_acknowledges_the_newest_rid(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    created = await client.create(hold="1", ack="1")
    assert created.get("ack") == str(client.rid)  # §9.1: acknowledgements are on
    older = asyncio.ensure_future(client.post())  # held: nothing to answer yet
    await asyncio.sleep(0.2)
    newer = asyncio.ensure_future(client.post())  # two waiting, hold is 1: older answered
    first = await asyncio.wait_for(older, MAX_WAIT)
    assert first.get("ack") == str(client.rid)  # the newer rid, processed meanwhile
    await asyncio.sleep(0.1)
    await client.post({"type": "terminate"})
    assert (await asyncio.wait_for(newer, MAX_WAIT)).get("type") == "terminate"


@pytest.mark.asyncio
async def test_repeated_rid_gets_the_same_answer_again(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.login("alice", PASSWORD, resource="again-" + secrets.token_hex(3))
    request = client.body({}, ping("once"), rid=client.rid + 1)
    client.rid += 1
    first = await client.post_raw(request)
    again = await client.post_raw(request)
    assert ids(first) == ["once"]
    assert serialize(again) == serialize(first)
    await client.post({"type": "terminate"})


@pytest.mark.asyncio
async def test_rid_beyond_the_window_terminates_with_item_not_found(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    created = await client.create()
    requests = int(created.get("requests") or "0")
    body = await client.post_raw(client.body({}, rid=client.rid + requests + 1))
    assert (body.get("type"), body.get("condition")) == ("terminate", "item-not-found")
    assert error_condition(await client.post()) == "item-not-found"


@pytest.mark.asyncio
async def test_old_rid_no_longer_kept_terminates_with_item_not_found(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.login("alice", PASSWORD, resource="old-" + secrets.token_hex(3))
    old = client.rid - 3  # the creation request; then auth, restart, bind
    assert ids(await client.post(payload=ping("newer"))) == ["newer"]
    body = await client.post_raw(client.body({}, rid=old))
    assert error_condition(body) == "item-not-found"


@pytest.mark.asyncio
async def test_unknown_sid_is_item_not_found(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    client.sid = "no-such-session"
    body = await client.post()
    assert (body.get("type"), body.get("condition")) == ("terminate", "item-not-found")


@pytest.mark.asyncio
async def test_too_many_simultaneous_requests_is_a_policy_violation(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.create(hold="1")  # requests = 2
    rid = client.rid
    held = asyncio.ensure_future(client.post_raw(client.body({}, rid=rid + 1)))
    ahead = asyncio.ensure_future(client.post_raw(client.body({}, rid=rid + 3)))
    await asyncio.sleep(0.3)
    body = await client.post_raw(client.body({}, rid=rid + 2))  # a third open request
    assert error_condition(body) == "policy-violation"
    for waiting in (held, ahead):
        assert (await asyncio.wait_for(waiting, MAX_WAIT)).get("type") == "terminate"


@pytest.mark.asyncio
async def test_polling_faster_than_allowed_is_a_policy_violation(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    created = await client.create(hold="0")
    assert (created.get("hold"), created.get("requests")) == ("0", "1")
    body = await client.post()  # empty, right after the previous request
    assert error_condition(body) == "policy-violation"


# -- malformed requests ----------------------------------------------------------------------
@pytest.mark.asyncio
async def test_body_over_the_size_limit_is_a_policy_violation(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.create()
    big = "<message xmlns='jabber:client'><body>" + "x" * 20_000 + "</body></message>"
    assert error_condition(await client.post(payload=big)) == "policy-violation"
    assert error_condition(await client.post()) == "item-not-found"
    other = bosh(web_server, http)
    await other.create()
    huge = "x" * 300_000  # over the largest body: refused unread, the session with it
    assert error_condition(await other.post(payload=huge)) == "policy-violation"
    assert error_condition(await other.post()) == "item-not-found"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "condition"),
    [
        ("<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost'", "bad-request"),
        ("<html/>", "bad-request"),
        (f"<body xmlns='{NS_HTTPBIND}' to='localhost' wait='5'/>", "bad-request"),
        (f"<body xmlns='{NS_HTTPBIND}' rid='7' wait='5'/>", "improper-addressing"),
        (f"<body xmlns='{NS_HTTPBIND}' rid='7' to='nowhere.example' xmlns:xmpp='{NS_XBOSH}' "
         "xmpp:version='1.0'/>", "host-unknown"),
    ],
    ids=["not-well-formed", "not-a-body", "no-rid", "no-to", "unknown-host"],
)  # fmt: skip
async def test_bad_creation_requests_are_terminated_with_their_condition(
    web_server: ServerProcess, http: aiohttp.ClientSession, data: str, condition: str
) -> None:
    body = await bosh(web_server, http).post_raw(data)
    assert (body.get("type"), body.get("condition")) == ("terminate", condition)


@pytest.mark.asyncio
async def test_creation_without_xmpp_version_is_a_remote_stream_error(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    body = await bosh(web_server, http).post_raw(
        f"<body xmlns='{NS_HTTPBIND}' rid='7' to='localhost' wait='5' hold='1'/>"
    )
    assert body.get("condition") == "remote-stream-error"
    error = body.find("error", NS_STREAMS)
    assert error is not None
    assert error_condition(error) == "unsupported-version"


@pytest.mark.asyncio
async def test_stanza_before_authentication_is_a_remote_stream_error(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client = bosh(web_server, http)
    await client.create()
    body = await client.post(payload=bind_iq("early"))
    assert body.get("condition") == "remote-stream-error"
    error = body.find("error", NS_STREAMS)
    assert error is not None
    assert error_condition(error) == "not-authorized"


# -- limits, CORS, discovery -------------------------------------------------------------------
@pytest.mark.asyncio
async def test_sessions_per_forwarded_client_address_are_limited(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    address = {"X-Forwarded-For": "198.51.100.7"}
    clients = [bosh(web_server, http, **address) for _ in range(SESSIONS_PER_IP + 1)]
    for client in clients[:-1]:
        assert (await client.create()).get("sid")
    refused = await clients[-1].create()
    assert (refused.get("type"), refused.get("condition")) == ("terminate", "policy-violation")
    other = bosh(web_server, http, **{"X-Forwarded-For": "198.51.100.8"})
    assert (await other.create()).get("sid")
    for client in [*clients[:-1], other]:
        await client.post({"type": "terminate"})
    assert (await clients[-1].create()).get("sid")  # ended sessions no longer count
    await clients[-1].post({"type": "terminate"})


@pytest.mark.asyncio
async def test_cors_preflight_and_headers_for_bosh(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    origin = {"Origin": "https://web.example"}
    async with http.options(
        web_server.http_url + "/http-bind",
        headers={**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    ) as response:  # fmt: skip
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    client = bosh(web_server, http)
    async with http.post(client.url, data=client.body({"to": "localhost"}), headers=origin) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.asyncio
async def test_host_meta_names_both_endpoints(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    base = web_server.http_url
    async with http.get(base + "/.well-known/host-meta", headers={"Origin": "x://y"}) as r:
        assert r.content_type == "application/xrd+xml"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        xrd = ET.fromstring(await r.read())
    ns = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
    links = {link.get("rel"): link.get("href") for link in xrd.iter(ns + "Link")}
    host = base.removeprefix("http://")
    assert links == {
        "urn:xmpp:alt-connections:xbosh": f"http://{host}/http-bind",
        "urn:xmpp:alt-connections:websocket": f"ws://{host}/xmpp-websocket",
    }
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.org"}
    async with http.get(base + "/.well-known/host-meta.json", headers=proxied) as r:
        assert r.content_type == "application/json"
        document = json.loads(await r.text())
    assert document == {
        "links": [
            {"rel": "urn:xmpp:alt-connections:xbosh", "href": "https://chat.example.org/http-bind"},
            {
                "rel": "urn:xmpp:alt-connections:websocket",
                "href": "wss://chat.example.org/xmpp-websocket",
            },
        ]
    }


@pytest.mark.asyncio
async def test_get_on_the_bosh_url_explains_it(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(web_server.http_url + "/http-bind") as response:
        assert response.status == 200
        assert "XEP-0124" in await response.text()
