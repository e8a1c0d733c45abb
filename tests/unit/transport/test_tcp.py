"""The TCP transport's flow control on a fake transport: the read budget pauses reading (it
never buffers), and a client that does not take its output is closed with
``resource-constraint`` once the queue passes its limits."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, cast

import pytest

from roost.config import Config, LimitsSection
from roost.core.server import ServerCore
from roost.transport.tcp import C2SProtocol
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT
from roost.xml.serializer import stream_header

HEADER = stream_header(
    content_ns=NS_CLIENT, attrs={"to": "localhost", "version": "1.0"}
).removeprefix(b"<?xml version='1.0'?>")


class FakeTransport:
    """Records what the protocol does; ``stalled``: the client takes nothing written."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.written = bytearray()
        self.reading = True
        self.pauses = 0
        self.stalled = stalled
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("192.0.2.1", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return len(self.written) if self.stalled else 0

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True


def connect(transport: FakeTransport, **limits: Any) -> tuple[C2SProtocol, ServerCore]:
    config = Config(path=Path("roost.toml"), limits=dataclasses.replace(LimitsSection(), **limits))
    core = ServerCore(config, cast(Any, None), cb_data=None, tls_available=False)
    protocol = C2SProtocol(core, None, direct_tls=True)
    protocol.connection_made(cast(Any, transport))
    return protocol, core


@pytest.mark.asyncio
async def test_reading_pauses_past_the_read_budget_and_resumes_when_paid_back() -> None:
    transport = FakeTransport()
    protocol, core = connect(transport, read_rate=10_000, read_burst=1)
    protocol.data_received(HEADER + b" " * (9000 - len(HEADER)))
    assert transport.reading  # within the burst
    protocol.data_received(b" " * 2000)  # 1000 bytes over: 0.1 s to pay back
    assert not transport.reading
    assert core.limiter.metrics.read_throttles == 1
    await asyncio.sleep(0.05)
    assert not transport.reading
    await asyncio.sleep(0.1)
    assert transport.reading
    assert transport.pauses == 1


@pytest.mark.asyncio
async def test_data_read_while_paused_extends_the_pause() -> None:
    transport = FakeTransport()
    protocol, _ = connect(transport, read_rate=10_000, read_burst=1)
    protocol.data_received(HEADER + b" " * (11_000 - len(HEADER)))  # 0.1 s over
    protocol.data_received(b" " * 1000)  # already in flight when reading paused: 0.2 s
    await asyncio.sleep(0.15)
    assert not transport.reading
    await asyncio.sleep(0.1)
    assert transport.reading


@pytest.mark.asyncio
async def test_a_waiting_session_keeps_reading_paused_after_the_budget_refills() -> None:
    transport = FakeTransport()
    protocol, _ = connect(transport, read_rate=10_000, read_burst=1)
    protocol.data_received(HEADER + b" " * (10_500 - len(HEADER)))  # 0.05 s over
    protocol.pause_reading()  # the session waits for storage
    await asyncio.sleep(0.1)
    assert not transport.reading
    protocol.resume_reading()
    assert transport.reading
    assert transport.pauses == 1


def message(n: int, size: int = 100) -> Element:
    stanza = Element("message", NS_CLIENT, {"to": "a@localhost/r", "id": f"m{n}"})
    stanza.sub("body", text="x" * size)
    return stanza


@pytest.mark.asyncio
async def test_client_not_reading_is_closed_after_send_queue_stanzas() -> None:
    transport = FakeTransport(stalled=True)
    protocol, core = connect(transport, send_queue_stanzas=5)
    protocol.data_received(HEADER)  # our header and features: 2 writes queued
    session = protocol.session
    assert session is not None
    for n in range(3):  # 5 writes: at the limit
        session.send_stanza(message(n), None)
        await asyncio.sleep(0)
    assert b"resource-constraint" not in transport.written
    session.send_stanza(message(3), None)
    await asyncio.sleep(0)
    assert (
        b"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in transport.written
    )
    assert transport.written.endswith(b"</stream:stream>")
    assert session.closed
    assert core.limiter.metrics.rejections["send_queue"] == 1
    session.send_stanza(message(4), None)  # nothing more is written
    await asyncio.sleep(0)
    assert transport.written.endswith(b"</stream:stream>")


@pytest.mark.asyncio
async def test_client_not_reading_is_closed_after_send_queue_bytes() -> None:
    transport = FakeTransport(stalled=True)
    protocol, _ = connect(transport, send_queue_bytes=5000)
    protocol.data_received(HEADER)
    session = protocol.session
    assert session is not None
    session.send_stanza(message(0, 4000), None)
    await asyncio.sleep(0)
    assert session.closed is False
    session.send_stanza(message(1, 1000), None)
    await asyncio.sleep(0)
    assert session.closed
    assert b"<resource-constraint" in transport.written


@pytest.mark.asyncio
async def test_client_taking_its_output_is_never_a_slow_consumer() -> None:
    transport = FakeTransport()
    protocol, _ = connect(transport, send_queue_stanzas=5, send_queue_bytes=5000)
    protocol.data_received(HEADER)
    session = protocol.session
    assert session is not None
    for n in range(50):
        session.send_stanza(message(n, 1000), None)
        await asyncio.sleep(0)
    assert not session.closed
