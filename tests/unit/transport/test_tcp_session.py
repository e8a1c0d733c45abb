"""The connection runner over the TCP transport, on a fake transport with real SQLite storage:
PLAIN's PBKDF2 runs off the event loop, and module negotiators get the live connection, in order
with the stanzas around what they claim (RFC 6120 §10.1)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from roost.auth.credentials import Credentials, derive, keys_from_salted, salted_password
from roost.config import Config
from roost.core.c2s import C2SConnection
from roost.core.module import ModuleAPI
from roost.core.server import ServerCore
from roost.storage import open_storage
from roost.stream.c2s import C2SStream
from roost.stream.features import Phase, QName, Reply
from roost.transport.tcp import C2SProtocol
from roost.xml.element import Element
from tests.unit.transport.test_tcp import HEADER, FakeTransport

NS_SM = "urn:xmpp:sm:3"
SLOW_ITERATIONS = 1_500_000  # about half a second of PBKDF2-SHA-256 here


def slow_credentials(password: str) -> Credentials:
    """SHA-256 keys only (what PLAIN checks first), with a costly iteration count."""
    salt = os.urandom(16)
    salted = salted_password("SHA-256", password.encode(), salt, SLOW_ITERATIONS)
    return {"SHA-256": keys_from_salted("SHA-256", salted, salt, SLOW_ITERATIONS)}


@pytest_asyncio.fixture
async def core(tmp_path: Path) -> AsyncIterator[ServerCore]:
    storage = open_storage("sqlite", path=tmp_path / "roost.db")
    await storage.open()
    await storage.accounts.create("localhost", "juliet", derive("secret"))
    await storage.accounts.create("localhost", "romeo", slow_credentials("secret"))
    core = ServerCore(Config(path=Path("roost.toml")), storage, cb_data=None, tls_available=False)
    yield core
    await storage.close()


def connect(core: ServerCore) -> tuple[C2SProtocol, FakeTransport]:
    transport = FakeTransport()
    protocol = C2SProtocol(core, None, direct_tls=True)
    protocol.connection_made(cast(Any, transport))
    return protocol, transport


async def until(transport: FakeTransport, marker: bytes, seen: int = 0) -> int:
    """Turn the loop until ``marker`` is written after byte ``seen``; where it ends."""
    for _ in range(2000):
        at = transport.written.find(marker, seen)
        if at >= 0:
            return at + len(marker)
        await asyncio.sleep(0.005)
    raise AssertionError(f"no {marker!r} in {bytes(transport.written[seen:])!r}")


def plain(user: str, password: str = "secret") -> bytes:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return (
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode()
    )


async def bound(core: ServerCore, user: str = "juliet") -> tuple[C2SProtocol, FakeTransport]:
    protocol, transport = connect(core)
    protocol.data_received(HEADER)
    seen = await until(transport, b"</stream:features>")
    protocol.data_received(plain(user))
    seen = await until(transport, b"<success", seen)
    protocol.data_received(HEADER)
    seen = await until(transport, b"</stream:features>", seen)
    protocol.data_received(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    )
    await until(transport, b"</iq>", seen)
    transport.written.clear()
    return protocol, transport


# --- PLAIN (DESIGN.md §6: "its PBKDF2 off the event loop") -----------------------------------


@pytest.mark.asyncio
async def test_plain_login_with_a_costly_pbkdf2_leaves_the_event_loop_responsive(
    core: ServerCore,
) -> None:
    protocol, transport = connect(core)
    protocol.data_received(HEADER)
    await until(transport, b"</stream:features>")
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.get_running_loop().create_task(ticker())
    start = time.perf_counter()
    protocol.data_received(plain("romeo"))
    await until(transport, b"<success")
    took = time.perf_counter() - start
    done.set()
    await ticking
    assert took > 0.1, "the PBKDF2 was not costly enough to tell"
    assert max(gaps) < took / 2, f"the loop stalled {max(gaps):.3f} s of a {took:.3f} s login"


@pytest.mark.asyncio
async def test_input_after_plain_auth_waits_for_the_password_check(core: ServerCore) -> None:
    protocol, transport = connect(core)
    protocol.data_received(HEADER)
    seen = await until(transport, b"</stream:features>")
    session = protocol.session
    assert session is not None
    protocol.data_received(plain("romeo", "wrong"))
    await asyncio.sleep(0.01)
    assert not transport.reading  # the session waits: nothing more is read meanwhile
    await until(transport, b"<not-authorized", seen)
    assert transport.reading
    assert session.stream.authenticated is None


# --- negotiators from modules ----------------------------------------------------------------


class AsyncAcks:
    """Answers ``<r/>`` after awaiting something (storage, say), with the stanzas seen so far;
    ``<boom/>`` raises."""

    def __init__(self) -> None:
        self.sessions: list[C2SConnection] = []

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        return (Element("sm", NS_SM),) if phase is Phase.PRE_BIND else ()

    def claims(self, phase: Phase) -> Collection[QName]:
        return {(NS_SM, "r"), (NS_SM, "boom")} if phase is Phase.BOUND else ()

    async def handle(self, session: C2SConnection, element: Element) -> Reply:
        if element.name == "boom":
            raise RuntimeError("a broken stream feature")
        await asyncio.sleep(0.02)
        self.sessions.append(session)
        return (Element("a", NS_SM, {"h": str(session.core.limiter.metrics.stanzas_in)}),)


def register(core: ServerCore, negotiator: object) -> ModuleAPI:
    api = ModuleAPI(core.hosts["localhost"], "toy")
    api.stream_feature(cast(Any, negotiator))
    return api


@pytest.mark.asyncio
async def test_module_negotiator_answers_on_the_stream_before_later_stanzas(
    core: ServerCore,
) -> None:
    acks = AsyncAcks()
    register(core, acks)
    protocol, transport = await bound(core)
    protocol.data_received(
        b"<iq type='get' id='q1' to='localhost'><x xmlns='urn:example'/></iq>"
        b"<r xmlns='urn:xmpp:sm:3'/>"
        b"<iq type='get' id='q2' to='localhost'><x xmlns='urn:example'/></iq>"
    )
    await until(transport, b"id='q2'")
    written = bytes(transport.written)
    first, ack, second = (written.find(m) for m in (b"id='q1'", b"<a xmlns", b"id='q2'"))
    assert 0 <= first < ack < second, written
    assert b"<a xmlns='urn:xmpp:sm:3' h='1'/>" in written  # q1 came before (bind: the stream's)
    assert acks.sessions == [protocol.session]


@pytest.mark.asyncio
async def test_module_negotiator_is_offered_after_authentication(core: ServerCore) -> None:
    register(core, AsyncAcks())
    protocol, transport = connect(core)
    protocol.data_received(HEADER)
    seen = await until(transport, b"</stream:features>")
    assert b"urn:xmpp:sm:3" not in transport.written
    protocol.data_received(plain("juliet"))
    seen = await until(transport, b"<success", seen)
    protocol.data_received(HEADER)
    await until(transport, b"</stream:features>", seen)
    assert b"<sm xmlns='urn:xmpp:sm:3'/></stream:features>" in transport.written


@pytest.mark.asyncio
async def test_failing_module_negotiator_closes_with_internal_server_error(
    core: ServerCore,
) -> None:
    register(core, AsyncAcks())
    protocol, transport = await bound(core)
    protocol.data_received(b"<boom xmlns='urn:xmpp:sm:3'/>")
    await until(transport, b"</stream:stream>")
    assert b"<internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in (
        transport.written
    )
    assert protocol.session is not None
    assert protocol.session.closed


@pytest.mark.asyncio
async def test_unloading_the_module_withdraws_its_negotiator(core: ServerCore) -> None:
    api = register(core, AsyncAcks())
    api.unload()
    protocol, transport = await bound(core)
    protocol.data_received(b"<r xmlns='urn:xmpp:sm:3'/>")
    await until(transport, b"<unsupported-stanza-type")
