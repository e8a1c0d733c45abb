"""XMPP over WebSocket (RFC 7395) at /xmpp-websocket, driven frame by frame with aiohttp."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from slixmpp import JID

from roost.xml.element import Element
from roost.xml.ns import NS_FRAMING, NS_SASL, NS_TLS
from tests.integration.harness import (
    PASSWORD,
    ServerProcess,
    disconnect,
    make_server,
    next_stanza,
    slix_client,
)
from tests.integration.webclient import WsClient, error_condition, is_stream_error, open_frame

ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the HTTP listener; two unauthenticated connections per non-local IP."""
    process = make_server(
        tmp_path_factory.mktemp("roost-ws"),
        http=True,
        http_options={"cors_origins": [ALLOWED_ORIGIN]},
        limits={"connections_per_ip": 2},
    )
    process.start()
    for name in ("alice", "bob", "carol"):
        process.add_user(name)
    yield process
    process.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def ws_url(server: ServerProcess) -> str:
    return server.http_url + "/xmpp-websocket"


async def connect(
    http: aiohttp.ClientSession, server: ServerProcess, **headers: str
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(
        ws_url(server),
        protocols=("xmpp",),
        headers=headers or None,
        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
    )


def mechanisms(features: Element) -> list[str]:
    found = features.find("mechanisms", NS_SASL)
    return [] if found is None else [m.text for m in found.elements()]


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Read until the WebSocket closes; the closing message."""
    while True:
        message = await ws.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return message


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-1"])
async def test_websocket_client_logs_in_and_restarts_the_stream_after_sasl(
    web_server: ServerProcess, http: aiohttp.ClientSession, mechanism: str
) -> None:
    async with await connect(http, web_server) as ws:
        assert ws.protocol == "xmpp"
        client = WsClient(ws)
        resource = secrets.token_hex(4)
        jid = await client.login("alice", PASSWORD, mechanism=mechanism, resource=resource)
        assert jid == f"alice@localhost/{resource}"
        await client.send(f"<close xmlns='{NS_FRAMING}'/>")
        closing = await client.next()
        assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
        assert (await closed_by_server(ws)).data == aiohttp.WSCloseCode.OK


@pytest.mark.asyncio
async def test_features_offer_plain_and_scram_without_starttls_or_plus(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as ws:
        features = await WsClient(ws).open()
        assert features.find("starttls", NS_TLS) is None
        assert mechanisms(features) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


@pytest.mark.asyncio
async def test_proxy_saying_plain_http_makes_the_connection_insecure(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A trusted proxy's X-Forwarded-Proto: http: no TLS, so nothing to authenticate with."""
    async with await connect(http, web_server, **{"X-Forwarded-Proto": "http"}) as ws:
        features = await WsClient(ws).open()
        assert features.find("starttls", NS_TLS) is None
        assert mechanisms(features) == []  # [tls].require_c2s


@pytest.mark.asyncio
async def test_messages_flow_both_ways_between_websocket_and_tcp_clients(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    tcp = await slix_client(web_server, "bob@localhost/tcp")
    try:
        async with await connect(http, web_server) as ws:
            client = WsClient(ws)
            jid = await client.login("alice", PASSWORD, resource="web")
            waiting = next_stanza(tcp)
            await client.send(
                "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'>"
                "<body>from the web</body></message>"
            )
            message = await asyncio.wait_for(waiting, 10)
            assert (str(message["from"]), message["body"]) == (jid, "from the web")
            tcp.send_message(mto=JID(jid), mbody="from tcp & slixmpp", mtype="chat")
            received = await client.next()
            assert received.name == "message"
            assert received.get("from") == "bob@localhost/tcp"
            assert received.find_text("body") == "from tcp & slixmpp"
    finally:
        await disconnect(tcp)


@pytest.mark.asyncio
async def test_connection_without_the_xmpp_subprotocol_is_refused(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    for protocols in ((), ("chat",)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(ws_url(web_server), protocols=protocols)
        assert info.value.status == 400


@pytest.mark.asyncio
async def test_plain_get_explains_the_endpoint(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(ws_url(web_server)) as response:
        assert response.status == 200
        assert "RFC 7395" in await response.text()


@pytest.mark.asyncio
async def test_browser_origin_must_be_allowed(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(http, web_server, Origin="https://evil.example")
    assert info.value.status == 403
    async with await connect(http, web_server, Origin=ALLOWED_ORIGIN) as ws:
        await WsClient(ws).open()


@pytest.mark.asyncio
async def test_frame_that_is_not_well_formed_is_a_stream_error(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as ws:
        client = WsClient(ws)
        await client.open()
        await client.send("<message xmlns='jabber:client'><body>half")
        error = await client.next()
        assert is_stream_error(error)
        assert error_condition(error) == "not-well-formed"
        closing = await client.next()
        assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
        await client.send(f"<close xmlns='{NS_FRAMING}'/>")
        assert (await closed_by_server(ws)).data == aiohttp.WSCloseCode.OK


@pytest.mark.asyncio
async def test_frame_over_the_stanza_limit_is_a_policy_violation(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as ws:
        client = WsClient(ws)
        await client.open()
        body = "x" * 10_001  # over [limits].stanza_size_preauth
        await client.send(f"<message xmlns='jabber:client'><body>{body}</body></message>")
        error = await client.next()
        assert error_condition(error) == "policy-violation"


@pytest.mark.asyncio
async def test_wrong_open_is_answered_with_open_then_the_stream_error(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as ws:
        client = WsClient(ws)
        await client.send(open_frame("unknown.example"))
        opened = await client.next()
        assert (opened.name, opened.xmlns) == ("open", NS_FRAMING)
        error = await client.next()
        assert error_condition(error) == "host-unknown"


@pytest.mark.asyncio
async def test_binary_message_closes_with_1003(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as ws:
        await ws.send_bytes(b"<open/>")
        assert (await closed_by_server(ws)).data == aiohttp.WSCloseCode.UNSUPPORTED_DATA


@pytest.mark.asyncio
async def test_replaced_session_gets_conflict_and_close(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, web_server) as first, await connect(http, web_server) as second:
        old = WsClient(first)
        await old.login("carol", PASSWORD, resource="same")
        await WsClient(second).login("carol", PASSWORD, resource="same")
        error = await old.next()
        assert error_condition(error) == "conflict"
        closing = await old.next()
        assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
        # No <close/> from us: the server closes the WebSocket after its wait anyway.
        assert (await closed_by_server(first)).data == aiohttp.WSCloseCode.OK


@pytest.mark.asyncio
async def test_forwarded_client_address_counts_for_the_per_ip_limits(
    web_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """Two unauthenticated connections per IP: the third from 203.0.113.9 is refused."""
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    first = await connect(http, web_server, **forwarded)
    second = await connect(http, web_server, **forwarded)
    try:
        for ws in (first, second):
            await WsClient(ws).open()
        async with await connect(http, web_server, **forwarded) as third:
            client = WsClient(third)
            await client.send(open_frame())
            await client.next()  # <open/>
            error = await client.next()
            assert error_condition(error) == "policy-violation"
        async with await connect(http, web_server, **{"X-Forwarded-For": "203.0.113.10"}) as ws:
            await WsClient(ws).open()  # another address is not affected
    finally:
        await first.close()
        await second.close()


@pytest.mark.asyncio
async def test_websocket_over_the_tls_listener_and_host_meta_there(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """[http].tls: wss:// with the server's certificate; host-meta then names https/wss."""
    server = make_server(tmp_path / "roost", http=True, http_options={"tls": True})
    server.start()
    try:
        server.add_user("erin")
        context = server.client_context()
        url = f"https://localhost:{server.http}"
        async with http.ws_connect(
            url.replace("https", "wss") + "/xmpp-websocket",
            protocols=("xmpp",),
            ssl=context,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        ) as ws:
            jid = await WsClient(ws).login("erin", PASSWORD, resource="tls")
            assert jid == "erin@localhost/tls"
        async with http.get(url + "/.well-known/host-meta.json", ssl=context) as response:
            links = {link["rel"]: link["href"] for link in (await response.json())["links"]}
        assert links["urn:xmpp:alt-connections:websocket"] == (
            f"wss://localhost:{server.http}/xmpp-websocket"
        )
    finally:
        server.stop()


# -- limits: the read rate and the outgoing queue, as over TCP (test_robustness) ---------------
def started_with(directory: Path, **limits: object) -> Iterator[ServerProcess]:
    process = make_server(directory, http=True, limits=limits)
    process.start()
    for name in ("fast", "slow", "flooder", "victim"):
        process.add_user(name)
    yield process
    process.stop()


async def metric(server: ServerProcess, sample: str) -> float:
    """One sample of /metrics (0 when absent), e.g. 'roost_read_throttles_total'."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.http_url + "/metrics") as response,
    ):
        text = await response.text()
    found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


async def ws_logged_in(
    http: aiohttp.ClientSession, server: ServerProcess, user: str, resource: str
) -> tuple[WsClient, str]:
    client = WsClient(await connect(http, server))
    return client, await client.login(user, PASSWORD, resource=resource)


def ping(iq_id: str, padding: int = 0) -> str:
    """An XEP-0199 ping to the server, padded with whitespace to be ``padding`` bytes more."""
    return (
        f"<iq xmlns='jabber:client' type='get' id='{iq_id}' to='localhost'>"
        f"<ping xmlns='urn:xmpp:ping'/>{' ' * padding}</iq>"
    )


async def answer_to(client: WsClient, iq_id: str, timeout: float = 10) -> Element:
    """Read frames until the reply with this id."""
    while True:
        element = await client.next(timeout=timeout)
        if element.get("id") == iq_id:
            return element


@pytest.fixture(scope="module")
def ws_throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Reads at most 20 000 bytes per second per connection, one second of burst."""
    yield from started_with(tmp_path_factory.mktemp("ws-throttled"), read_rate=20_000, read_burst=1)


@pytest.mark.asyncio
async def test_websocket_reading_pauses_past_the_read_rate_and_slows_that_client_only(
    ws_throttled: ServerProcess, http: aiohttp.ClientSession
) -> None:
    client, _ = await ws_logged_in(http, ws_throttled, "slow", "r")
    other, _ = await ws_logged_in(http, ws_throttled, "fast", "r")
    try:
        throttles = await metric(ws_throttled, "roost_read_throttles_total")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(6):  # 60 000 bytes, three seconds' worth: two past the burst
            await client.send(ping(f"pad{n}", 10_000))
        await client.send(ping("last"))
        answered = asyncio.create_task(answer_to(client, "last"))
        await asyncio.sleep(0.5)
        assert not answered.done()  # its frames wait, unread
        other_start = loop.time()
        await other.send(ping("other"))
        assert (await answer_to(other, "other")).get("type") == "result"
        assert loop.time() - other_start < 0.5  # another connection is not slowed
        assert (await answered).get("type") == "result"
        assert 1.8 < loop.time() - start < 6
        assert await metric(ws_throttled, "roost_read_throttles_total") > throttles
    finally:
        await client.ws.close()
        await other.ws.close()


@pytest.fixture(scope="module")
def ws_small_queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Small outgoing queues; no read rate to speak of: the flood must come fast."""
    limits = {"send_queue_stanzas": 100, "send_queue_bytes": 1_000_000, "read_rate": 1 << 30}
    yield from started_with(tmp_path_factory.mktemp("ws-queues"), **limits)


@pytest.mark.asyncio
@pytest.mark.parametrize("body_size", [1000, 20_000], ids=["stanzas", "bytes"])
async def test_websocket_client_that_does_not_read_is_closed_with_resource_constraint(
    ws_small_queues: ServerProcess, http: aiohttp.ClientSession, body_size: int
) -> None:
    server = ws_small_queues
    victim, to = await ws_logged_in(http, server, "victim", f"slow{body_size}")
    sender, _ = await ws_logged_in(http, server, "flooder", f"flood{body_size}")
    try:
        rejected = await metric(server, 'roost_limit_rejections_total{reason="send_queue"}')
        seen = len(server.log_text())
        flood = (
            f"<message xmlns='jabber:client' to='{to}' type='headline'>"
            f"<body>{'x' * body_size}</body></message>"
        )
        for n in range(100_000):  # the victim reads nothing meanwhile
            await sender.send(flood)
            if n % 50 == 49:
                await asyncio.sleep(0.01)
                if "closing slow consumer" in server.log_text()[seen:]:
                    break
        else:
            raise AssertionError("the server queued everything for a client that never read")
        logged = server.log_text()[seen:]
        found = re.search(
            rf"slow consumer <C2SConnection {to}>: (\d+) bytes, (\d+) stanzas", logged
        )
        assert found is not None, logged
        unsent_bytes, unsent_stanzas = int(found[1]), int(found[2])
        if body_size == 1000:  # small stanzas: their number is the limit that bit
            assert unsent_stanzas > 100, found[0]
            assert unsent_bytes <= 1_000_000, found[0]
        else:
            assert unsent_bytes > 1_000_000, found[0]
        # Behind what was already on its way: the stream error, <close/>, then the close.
        element = await victim.next()
        while not is_stream_error(element):
            assert element.name == "message", element
            element = await victim.next()
        assert error_condition(element) == "resource-constraint"
        assert (await victim.next()).name == "close"
        await closed_by_server(victim.ws)
        after = await metric(server, 'roost_limit_rejections_total{reason="send_queue"}')
        assert after == rejected + 1
        await sender.send(ping("alive"))  # the flooder was not disturbed
        assert (await answer_to(sender, "alive")).get("type") == "result"
    finally:
        await victim.ws.close()
        await sender.ws.close()
