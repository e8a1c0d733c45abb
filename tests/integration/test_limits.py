"""Limits on dedicated servers (reference/limits.md): per-IP connections, connection rate and
failed authentications, stanza sizes, resources per account, the idle timeout.

Every server here has ``exempt_loopback = false`` and small numbers; after each limit bites,
a fresh client logs in to the same server and gets a ping answered (``assert_server_serves``).
The per-IP tests tell addresses apart with a second loopback source address, 127.0.0.2;
IPv6 clients, which loopback cannot vary (::1 is its only address), come through a trusted
proxy's ``X-Forwarded-For`` on the WebSocket endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING, NS_STANZAS, NS_STREAM_LIMITS
from roost.xml.parser import StreamEnd
from roost.xml.serializer import STREAM_CLOSE
from tests.integration.harness import (
    DOMAIN,
    PASSWORD,
    RawClient,
    ServerProcess,
    make_server,
    raw_client,
)
from tests.integration.rawhelpers import (
    assert_server_serves,
    connected,
    error_condition,
    error_text,
    failure_condition,
    header_then_error,
    ping_server,
    read_stream_error,
    restart,
)
from tests.integration.webclient import BoshClient, WsClient, is_stream_error, open_frame, sasl

OTHER_ADDRESS = "127.0.0.2"  # loopback too, but another IP for the per-IP limits


@contextmanager
def limited_server(
    directory: Path, limits: Mapping[str, object], http: Mapping[str, object] | None = None
) -> Iterator[ServerProcess]:
    """A server with per-IP limits on loopback and these limits; alice@localhost exists.

    ``http``: also the HTTP listener with these ``[http]`` options (loopback is a trusted
    proxy there, so ``X-Forwarded-For`` gives the client address).
    """
    server = make_server(
        directory,
        limits={"exempt_loopback": False, **limits},
        http=http is not None,
        http_options=http,
    )
    server.add_user("alice")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def close_cleanly(client: RawClient) -> None:
    """Close our stream and wait for the server's closing tag (it has ended the session)."""
    await client.send(STREAM_CLOSE)
    while not isinstance(await client.next(), StreamEnd):
        pass
    await client.close()


# -- per-IP limits -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_unauthenticated_connections_per_ip_are_limited(tmp_path: Path) -> None:
    with limited_server(tmp_path / "roost", {"connections_per_ip": 3}) as server:
        async with AsyncExitStack() as stack:
            waiting = [await stack.enter_async_context(connected(server)) for _ in range(3)]
            for client in waiting:
                await client.open()
            async with connected(server) as fourth:
                error = await header_then_error(fourth)
                assert error_condition(error) == "policy-violation"
                assert "unauthenticated" in error_text(error)
            async with connected(server, OTHER_ADDRESS) as elsewhere:
                await elsewhere.open()  # another address has its own count
            await waiting[0].starttls()
            assert (await waiting[0].auth_plain("alice")).name == "success"
            async with connected(server) as fifth:
                await fifth.open()  # authenticating freed a place
                async with connected(server) as sixth:
                    error = await header_then_error(sixth)  # ... exactly one
                    assert error_condition(error) == "policy-violation"
            await close_cleanly(waiting[1])
            async with connected(server) as seventh:
                await seventh.open()  # so did closing one
        await assert_server_serves(server, "alice@localhost")


@pytest.mark.asyncio
async def test_new_connections_per_second_per_ip_are_limited(tmp_path: Path) -> None:
    with limited_server(tmp_path / "roost", {"connection_rate_per_ip": 2}) as server:
        async with connected(server) as first, connected(server) as second:
            async with connected(server) as third:
                error = await header_then_error(third)
                assert error_condition(error) == "policy-violation"
                assert "new connections" in error_text(error)
            await first.open()
            await second.open()
            async with connected(server, OTHER_ADDRESS) as elsewhere:
                await elsewhere.open()
        await asyncio.sleep(0.6)  # 2 per second: one more is allowed by now
        await assert_server_serves(server, "alice@localhost")


async def failed_login(client: RawClient, password: str) -> None:
    """Open a stream, start TLS and fail one PLAIN attempt (the stream stays open)."""
    await client.open()
    await client.starttls()
    assert failure_condition(await client.auth_plain("alice", password)) == "not-authorized"


@pytest.mark.asyncio
async def test_failed_authentications_per_ip_ban_the_address(tmp_path: Path) -> None:
    limits = {"auth_failures_per_ip": 3, "auth_ban_time": 3600}
    with limited_server(tmp_path / "roost", limits) as server:
        async with connected(server) as first, connected(server) as second:
            await failed_login(first, "wrong1")
            await failed_login(second, "wrong2")
            async with connected(server) as third:  # two failures: not banned yet
                await failed_login(third, "wrong3")  # the third: ban
                error = await read_stream_error(third)
                assert error_condition(error) == "policy-violation"
                assert "failed authentication" in error_text(error)
            # the other unauthenticated streams of the banned address are closed as well,
            # or they could go on guessing through the ban
            for pending in (first, second):
                error = await read_stream_error(pending)
                assert error_condition(error) == "policy-violation"
        async with connected(server) as refused:
            error = await header_then_error(refused)
            assert error_condition(error) == "policy-violation"
            assert "failed authentication" in error_text(error)
        # the ban is per address: the same server serves another one
        await assert_server_serves(server, "alice@localhost", source=OTHER_ADDRESS)


@pytest.mark.asyncio
async def test_failure_reaching_stream_and_ip_limits_at_once_closes_the_stream_once(
    tmp_path: Path,
) -> None:
    limits = {"auth_failures_per_ip": 2, "auth_failures_per_stream": 2}
    with limited_server(tmp_path / "roost", limits) as server:
        async with connected(server) as client:
            await client.open()
            await client.starttls()
            for guess in ("wrong1", "wrong2"):
                answer = await client.auth_plain("alice", guess)
                assert failure_condition(answer) == "not-authorized"
            # exactly one stream error, then the end of the stream and nothing after it
            error = await read_stream_error(client)
            assert error_condition(error) in ("policy-violation", "not-authorized")
        await assert_server_serves(server, "alice@localhost", source=OTHER_ADDRESS)


# -- per-IP limits for IPv6 clients: counted by their /64 (issue 9) --------------------------------
WebSocketFrom = Callable[[str], Awaitable[WsClient]]


@asynccontextmanager
async def proxied_websockets(server: ServerProcess) -> AsyncIterator[WebSocketFrom]:
    """Open WebSockets whose client address, as the trusted proxy says, is the one given;
    all are closed at the end."""
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:

        async def ws(client_ip: str) -> WsClient:
            socket = await http.ws_connect(
                server.http_url + "/xmpp-websocket",
                protocols=("xmpp",),
                headers={"X-Forwarded-For": client_ip},
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
            )
            return WsClient(await stack.enter_async_context(socket))

        yield ws


async def ws_stream_error(client: WsClient) -> Element:
    """The stream error the server sends next (what comes before it is skipped)."""
    while not is_stream_error(element := await client.next()):
        pass
    return element


async def ws_refused(client: WsClient) -> Element:
    """Open a stream that the per-IP limits refuse: the error after the server's <open/>."""
    await client.send(open_frame())
    await client.next()  # <open/>
    return await ws_stream_error(client)


@pytest.mark.asyncio
async def test_issue_9_ipv6_clients_are_counted_by_their_64(tmp_path: Path) -> None:
    limits = {"connections_per_ip": 1, "connection_rate_per_ip": 100}
    with limited_server(tmp_path / "roost", limits, {}) as server:
        async with proxied_websockets(server) as ws:
            await (await ws("2001:db8:1:2::1")).open()
            error = await ws_refused(await ws("2001:db8:1:2:ffff:ffff:ffff:fffe"))
            assert error_condition(error) == "policy-violation"
            assert "unauthenticated" in error_text(error)
            await (await ws("2001:db8:1:3::1")).open()  # the next /64 is another subscriber
            await (await ws("203.0.113.5")).open()
            error = await ws_refused(await ws("::ffff:203.0.113.5"))  # the same IPv4 client
            assert error_condition(error) == "policy-violation"
            await (await ws("203.0.113.6")).open()  # IPv4 addresses are not grouped
        await assert_server_serves(server, "alice@localhost")


@pytest.mark.asyncio
async def test_issue_9_failed_authentications_ban_the_whole_64(tmp_path: Path) -> None:
    limits = {"auth_failures_per_ip": 2, "connection_rate_per_ip": 100}
    with limited_server(tmp_path / "roost", limits, {}) as server:
        async with proxied_websockets(server) as ws:
            guesser, waiting = await ws("2001:db8:1:2::1"), await ws("2001:db8:1:2::2")
            await waiting.open()
            await guesser.open()
            for guess in ("wrong1", "wrong2"):  # the second failure of the /64: a ban
                answer = await sasl(guesser.exchange, "alice", guess, "PLAIN")
                assert answer.name == "failure", answer
            error = await ws_stream_error(guesser)
            assert "failed authentication" in error_text(error)
            # the other unauthenticated stream of the /64 is closed too, from another address
            assert error_condition(await ws_stream_error(waiting)) == "policy-violation"
            error = await ws_refused(await ws("2001:db8:1:2:abcd::1"))  # never failed, same /64
            assert "failed authentication" in error_text(error)
            elsewhere = await ws("2001:db8:1:3::1")  # another /64 is not banned
            assert (await elsewhere.login("alice", PASSWORD)).startswith("alice@localhost/")
        await assert_server_serves(server, "alice@localhost")


@pytest.mark.asyncio
async def test_issue_9_bosh_sessions_are_counted_by_the_64(tmp_path: Path) -> None:
    limits = {"connection_rate_per_ip": 100}
    with limited_server(tmp_path / "roost", limits, {"bosh_sessions_per_ip": 1}) as server:
        async with aiohttp.ClientSession() as http:

            def bosh(client_ip: str) -> BoshClient:
                url = server.http_url + "/http-bind"
                return BoshClient(http, url, {"X-Forwarded-For": client_ip})

            first = bosh("2001:db8:1:2::1")
            assert (await first.create()).get("sid")
            refused = await bosh("2001:db8:1:2::2").create()
            assert (refused.get("type"), refused.get("condition")) == (
                "terminate",
                "policy-violation",
            )
            other = bosh("2001:db8:1:3::1")
            assert (await other.create()).get("sid")
            await first.post({"type": "terminate"})
            again = bosh("2001:db8:1:2::3")  # the /64's session ended: its place is free
            assert (await again.create()).get("sid")
            for client in (other, again):
                await client.post({"type": "terminate"})


# -- stanza sizes --------------------------------------------------------------------------------
def message_of_size(to: str, size: int) -> bytes:
    """A message to ``to`` of exactly ``size`` bytes."""
    head = f"<message to='{to}' id='big'><body>".encode()
    tail = b"</body></message>"
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with stanza limits of 2000 bytes before and 10 000 after authentication."""
    limits = {"stanza_size": 10_000, "stanza_size_preauth": 2000}
    with limited_server(tmp_path_factory.mktemp("sized"), limits) as server:
        yield server


@pytest.mark.asyncio
async def test_stanza_size_limits_before_and_after_authentication(sized: ServerProcess) -> None:
    async with raw_client(sized) as early:
        await early.open()
        await early.send(message_of_size("alice@localhost", 3000))
        error = await read_stream_error(early)
        assert error_condition(error) == "policy-violation"
    async with raw_client(sized) as client:
        full = await client.login("alice")
        await client.send(message_of_size(full, 9000))  # over the pre-auth limit: fine
        echoed = await client.element()
        assert (echoed.name, echoed.get("id")) == ("message", "big"), echoed
        await client.send(message_of_size(full, 12_000))
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"
    await assert_server_serves(sized, "alice@localhost")


def advertised_max_bytes(features: Element) -> int | None:
    """``<max-bytes/>`` of XEP-0478 in stream features (None when not advertised)."""
    limits = features.find("limits", NS_STREAM_LIMITS)
    text = None if limits is None else limits.find_text("max-bytes", NS_STREAM_LIMITS)
    return None if text is None else int(text)


@pytest.mark.asyncio
async def test_advertised_max_bytes_is_the_limit_in_effect(sized: ServerProcess) -> None:
    async with raw_client(sized) as client:
        await client.open()
        before = await client.starttls()
        assert advertised_max_bytes(before) == 2000
        assert (await client.auth_plain("alice")).name == "success"
        after = await restart(client)
        assert advertised_max_bytes(after) == 10_000


# -- resources per account ---------------------------------------------------------------------
@pytest.mark.asyncio
async def test_bind_beyond_resources_per_account_is_resource_constraint(tmp_path: Path) -> None:
    with limited_server(tmp_path / "roost", {"resources_per_account": 2}) as server:
        async with (
            raw_client(server) as one,
            raw_client(server) as two,
            raw_client(server) as three,
        ):
            await one.login("alice", resource="one")
            await two.login("alice", resource="two")
            await three.open()
            await three.starttls()
            assert (await three.auth_plain("alice")).name == "success"
            await restart(three)
            await three.send(
                "<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>three</resource></bind></iq>"
            )
            refused = await three.element()
            assert (refused.get("id"), refused.get("type")) == ("b3", "error"), refused
            error = refused.find("error", NS_CLIENT)
            assert error is not None
            assert error.find("resource-constraint", NS_STANZAS) is not None
            assert await ping_server(one) == []
            assert await ping_server(two) == []
            await close_cleanly(one)
            assert await three.bind("three") == "alice@localhost/three"  # a place is free
            assert await ping_server(three) == []
        await assert_server_serves(server, "alice@localhost")


# -- idle sessions -------------------------------------------------------------------------------
async def answer_pings(client: RawClient, seconds: float) -> int:
    """Answer every server ping for ``seconds``; how many came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    answered = 0
    while (left := deadline - loop.time()) > 0:
        try:
            stanza = await client.element(timeout=left)
        except TimeoutError:
            break
        assert is_server_ping(stanza), stanza
        reply = {"type": "result", "id": stanza.get("id") or "", "to": DOMAIN}
        await client.send(Element("iq", NS_CLIENT, reply))
        answered += 1
    return answered


def is_server_ping(stanza: Element) -> bool:
    """An iq get with a XEP-0199 ping from the server."""
    return (
        stanza.name == "iq"
        and stanza.get("type") == "get"
        and stanza.get("from") == DOMAIN
        and stanza.find("ping", NS_PING) is not None
    )


@pytest.mark.asyncio
async def test_idle_client_is_pinged_then_closed_unless_it_answers(tmp_path: Path) -> None:
    limits = {"idle_timeout": 1, "idle_close_after": 1}
    with limited_server(tmp_path / "roost", limits) as server:
        async with raw_client(server) as silent, raw_client(server) as lively:
            silent_jid = await silent.login("alice", resource="silent")
            await lively.login("alice", resource="lively")
            answered = asyncio.create_task(answer_pings(lively, 3.5))
            ping = await silent.element(timeout=3)
            assert is_server_ping(ping), ping
            assert ping.get("to") == silent_jid
            error = await read_stream_error(silent, timeout=3)
            assert error_condition(error) == "connection-timeout"
            assert await answered >= 2
            assert await ping_server(lively) == []
        await assert_server_serves(server, "alice@localhost")
