"""The limits of reference/limits.md not tested elsewhere, each on the wire (issue 6).

Post-authentication depth and element counts, attributes and namespace declarations per
element, the encoding declaration, no stream compression and no TLS compression, the read
rate (reading pauses, nothing is buffered, other clients are not slowed), the outgoing queue
(a client that does not read is closed with ``resource-constraint``), the memory watchdog,
and ``/metrics`` (counts the rejections, readable from loopback only).

Every test asserts the exact error, then that the server survived: two fresh clients log in
and exchange a message (``assert_fresh_clients_exchange_a_message``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roost.xml.element import Element
from roost.xml.parser import StreamHeader
from tests.integration.harness import RawClient, ServerProcess, header, make_server, raw_client
from tests.integration.rawhelpers import (
    Accounts,
    error_condition,
    error_text,
    header_then_error,
    local,
    ping_server,
    read_stream_error,
)

NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"  # XEP-0138, not implemented
NS_COMPRESS = "http://jabber.org/protocol/compress"
NS_DEEP = "urn:example:robustness"


def started(directory: Path, **limits: object) -> Iterator[ServerProcess]:
    server = make_server(directory, limits=limits, http=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def robust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default parser limits; small outgoing queues; HTTP for /metrics. No read rate to
    speak of: the flood that fills a queue must come fast."""
    limits = {"send_queue_stanzas": 100, "send_queue_bytes": 1_000_000, "read_rate": 1 << 30}
    yield from started(tmp_path_factory.mktemp("robust"), **limits)


@pytest.fixture(scope="module")
def accounts(robust: ServerProcess) -> Accounts:
    return Accounts(robust, "rb")


async def assert_fresh_clients_exchange_a_message(server: ServerProcess, a: str, b: str) -> None:
    """The server survived: two new clients log in and one's message reaches the other."""
    async with raw_client(server) as sender, raw_client(server) as recipient:
        await sender.login(local(a), resource=None)
        to = await recipient.login(local(b), resource=None)
        body = secrets.token_hex(8)
        await sender.send(
            f"<message to='{to}' type='chat' id='alive'><body>{body}</body></message>"
        )
        got = await recipient.element()
        assert (got.name, got.find_text("body")) == ("message", body), got


async def logged_in(server: ServerProcess, user: str) -> tuple[RawClient, str]:
    client = RawClient(server)
    await client.connect()
    return client, await client.login(local(user), resource="r")


# -- the parser's limits after authentication --------------------------------------------------
def nested(to: str, levels: int) -> bytes:
    """A message to ``to`` nesting ``levels`` elements in all (the message included)."""
    inner = levels - 2
    return (
        f"<message to='{to}' id='deep'><a xmlns='{NS_DEEP}'>".encode()
        + b"<a>" * inner
        + b"</a>" * inner
        + b"</a></message>"
    )


def many(to: str, elements: int) -> bytes:
    """A message to ``to`` of ``elements`` elements in all."""
    return (
        f"<message to='{to}' id='many'><p xmlns='{NS_DEEP}'>".encode()
        + b"<x/>" * (elements - 2)
        + b"</p></message>"
    )


def attributed(to: str, attributes: int, declarations: int = 1) -> bytes:
    """A message to ``to`` whose child has this many attributes and xmlns declarations."""
    attrs = "".join(f" a{i}='{i}'" for i in range(attributes))
    decls = "".join(f" xmlns:p{i}='urn:p{i}'" for i in range(declarations - 1))
    return f"<message to='{to}' id='attrs'><x xmlns='{NS_DEEP}'{decls}{attrs}/></message>".encode()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("at_limit", "over_limit"),
    [
        (lambda to: nested(to, 64), lambda to: nested(to, 65)),
        (lambda to: many(to, 10_000), lambda to: many(to, 10_001)),
        (lambda to: attributed(to, 64), lambda to: attributed(to, 65)),
        (lambda to: attributed(to, 0, 32), lambda to: attributed(to, 0, 33)),
    ],
    ids=["depth-64", "elements-10000", "attributes-64", "namespace-declarations-32"],
)
async def test_stanza_over_a_post_auth_limit_is_policy_violation_at_it_is_delivered(
    robust: ServerProcess,
    accounts: Accounts,
    at_limit: Callable[[str], bytes],
    over_limit: Callable[[str], bytes],
) -> None:
    client, full = await logged_in(robust, accounts("alice"))
    try:
        await client.send(at_limit(full))
        echoed = await client.element()
        assert (echoed.name, echoed.get("from")) == ("message", full), echoed
        await client.send(over_limit(full))
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"
    finally:
        await client.close()
    await assert_fresh_clients_exchange_a_message(robust, accounts("alice"), accounts("bob"))


@pytest.mark.asyncio
async def test_too_many_attributes_before_authentication_is_policy_violation(
    robust: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(robust) as client:
        await client.open()
        await client.send(attributed("localhost", 65))
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"
        assert error_text(error) == "too many attributes"
    await assert_fresh_clients_exchange_a_message(robust, accounts("alice"), accounts("bob"))


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16"])
async def test_declaration_of_another_encoding_is_unsupported_encoding(
    robust: ServerProcess, accounts: Accounts, encoding: str
) -> None:
    opening = header().replace(
        b"version='1.0'?>", f"version='1.0' encoding='{encoding}'?>".encode()
    )
    async with raw_client(robust) as client:
        await client.send(opening)
        error = await header_then_error(client)
        assert error_condition(error) == "unsupported-encoding"
    await assert_fresh_clients_exchange_a_message(robust, accounts("alice"), accounts("bob"))


# -- no compression (limits.md: XEP-0138 not implemented; TLS without compression) ----------
@pytest.mark.asyncio
async def test_no_stream_or_tls_compression_is_offered_or_accepted(
    robust: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(robust) as client:
        before = await client.open()
        after_tls = await client.starttls()
        assert client.writer is not None
        tls = client.writer.get_extra_info("ssl_object")
        assert tls.compression() is None
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert (await client.auth_plain(local(accounts("alice")))).name == "success"
        client.parser.reset()
        after_auth = await client.open()
        for features in (before, after_tls, after_auth):
            assert features.find("compression", NS_COMPRESS_FEATURE) is None, features
        await client.bind("compress")
        await client.send(f"<compress xmlns='{NS_COMPRESS}'><method>zlib</method></compress>")
        error = await read_stream_error(client)
        assert error_condition(error) == "unsupported-stanza-type"
    await assert_fresh_clients_exchange_a_message(robust, accounts("alice"), accounts("bob"))


# -- the outgoing queue --------------------------------------------------------------------------
class NotReadingClient(RawClient):
    """A client with a tiny receive buffer: once it stops reading, output piles up at once."""

    async def connect(self, *, direct_tls: bool = False) -> RawClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.server.c2s))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        return self


@pytest.mark.asyncio
@pytest.mark.parametrize("body_size", [1000, 20_000], ids=["stanzas", "bytes"])
async def test_client_that_does_not_read_is_closed_with_resource_constraint(
    robust: ServerProcess, accounts: Accounts, body_size: int
) -> None:
    victim = NotReadingClient(robust)
    await victim.connect()
    sender, _ = await logged_in(robust, accounts("flooder"))
    try:
        to = await victim.login(local(accounts("victim")), resource=f"slow{body_size}")
        seen = len(robust.log_text())
        # headlines: those still arriving after the victim is gone are dropped, not stored
        flood = f"<message to='{to}' type='headline'><body>{'x' * body_size}</body></message>"
        for n in range(100_000):  # the victim reads nothing meanwhile
            await sender.send(flood)
            if n % 50 == 49:
                await asyncio.sleep(0.01)
                if "closing slow consumer" in robust.log_text()[seen:]:
                    break
        else:
            raise AssertionError("the server queued everything for a client that never read")
        logged = robust.log_text()[seen:]
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
        error = await read_stream_error(victim, timeout=10)  # behind what was queued
        assert error_condition(error) == "resource-constraint"
        assert await ping_server(sender, timeout=10) == []  # the flooder was not disturbed
    finally:
        await victim.close()
        await sender.close()
    await assert_fresh_clients_exchange_a_message(robust, accounts("victim"), accounts("flooder"))


# -- /metrics ----------------------------------------------------------------------------------
async def scrape(server: ServerProcess, **headers: str) -> tuple[int, dict[str, float]]:
    """GET /metrics: the status and every sample ("name{label=value}" -> value)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.http_url + "/metrics", headers=headers) as response,
    ):
        text = await response.text()
    samples: dict[str, float] = {}
    if response.status == 200:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return response.status, samples


@pytest.mark.asyncio
async def test_metrics_count_rejections_by_reason_for_loopback_only(
    robust: ServerProcess, accounts: Accounts
) -> None:
    depth = "roost_limit_rejections_total{reason=depth}"
    status, before = await scrape(robust)
    assert status == 200
    async with raw_client(robust) as client:
        await client.open()
        await client.send(nested("localhost", 9))  # over the pre-auth depth of 8
        assert error_condition(await read_stream_error(client)) == "policy-violation"
    status, after = await scrape(robust)
    assert after[depth] == before[depth] + 1
    violations = "roost_stream_errors_total{condition=policy-violation}"
    assert after[violations] >= before.get(violations, 0) + 1
    assert after["roost_limit{name=stanza_size}"] == 262144
    assert after["roost_connections_accepted_total"] > before["roost_connections_accepted_total"]
    assert "process_resident_memory_bytes" in after
    # through a trusted reverse proxy on loopback, the client's own address decides
    status, refused = await scrape(robust, **{"X-Forwarded-For": "203.0.113.9"})
    assert (status, refused) == (403, {})
    status, _ = await scrape(robust, **{"X-Forwarded-For": "127.0.0.1"})
    assert status == 200
    await assert_fresh_clients_exchange_a_message(robust, accounts("alice"), accounts("bob"))


# -- the read rate -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Reads at most 20 000 bytes per second per connection, one second of burst."""
    yield from started(tmp_path_factory.mktemp("throttled"), read_rate=20_000, read_burst=1)


@pytest.mark.asyncio
async def test_reading_pauses_past_the_read_rate_and_slows_that_client_only(
    throttled: ServerProcess,
) -> None:
    fast, slow = throttled.add_user("fast"), throttled.add_user("slow")
    client, _ = await logged_in(throttled, slow)
    other, _ = await logged_in(throttled, fast)
    try:
        _, before = await scrape(throttled)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.send(b" " * 60_000)  # three seconds' worth: two past the burst
        await asyncio.sleep(0.2)  # read (in as few reads as the kernel likes): reading pauses
        answered = asyncio.create_task(ping_server(client, timeout=10))
        await asyncio.sleep(0.3)
        assert not answered.done()  # its ping waits in the kernel, unread
        other_start = loop.time()
        assert await ping_server(other) == []  # another connection is not slowed
        assert loop.time() - other_start < 0.5
        assert await answered == []
        assert 1.8 < loop.time() - start < 6
        _, after = await scrape(throttled)
        assert after["roost_read_throttles_total"] > before["roost_read_throttles_total"]
    finally:
        await client.close()
        await other.close()
    await assert_fresh_clients_exchange_a_message(throttled, slow, fast)


# -- the memory watchdog -------------------------------------------------------------------------
async def refused_at_once(server: ServerProcess) -> str | None:
    """The stream error a new stream gets right after the server's header (None: features)."""
    async with raw_client(server) as client:
        await client.send(header())
        assert isinstance(await client.next(), StreamHeader)
        second = await client.next()
        assert isinstance(second, Element), second
        return error_condition(second) if second.name == "error" else None


@pytest.mark.asyncio
async def test_over_the_memory_limit_new_connections_get_resource_constraint(
    tmp_path: Path,
) -> None:
    """No process fits in one byte: from the first sweep on, every new stream is refused
    (shedding load); streams already open go on."""
    limits = {"memory_limit": 1, "preauth_timeout": 4}  # a sweep every second
    for server in started(tmp_path / "roost", **limits):
        user = server.add_user("early")
        early, _ = await logged_in(server, user)
        try:
            for _ in range(30):
                if await refused_at_once(server) == "resource-constraint":
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("new connections were never refused")
            assert "refusing new connections" in server.log_text()
            assert await ping_server(early) == []  # the open stream goes on
        finally:
            await early.close()
