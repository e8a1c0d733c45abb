"""Writing: µs per stanza handed to a uvloop transport, per stanza or coalesced per loop turn.

A client connection over loopback (plain TCP, and TLS with roost's own server context)
writes small stanzas, K per loop turn, either with one ``transport.write`` per stanza or one
write of the K joined (what roost's C2SProtocol does: DESIGN.md §3, "flushed once per loop
iteration"). The receiving end runs in the same loop and only counts bytes, the same work
for both ways; so the difference between the two lines of a row is what coalescing saves.
With TLS every ``write`` becomes at least one TLS record, which is where coalescing pays most.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

from bench.micro import run_in_temporary_directory
from roost.tls import generate_certificate, server_context

STANZAS = 60_000
PER_TURN = (1, 10, 100)
STANZA = (
    b"<message to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat'"
    b" id='m1'><body>Art thou not Romeo, and a Montague?</body></message>"
)


class _Sink(asyncio.Protocol):
    """The receiving end: counts bytes and wakes the writer when all it waits for arrived."""

    count = 0
    expected = 0
    arrived: asyncio.Event | None = None

    def data_received(self, data: bytes) -> None:
        _Sink.count += len(data)
        if _Sink.count >= _Sink.expected and _Sink.arrived is not None:
            _Sink.arrived.set()


async def _one(port: int, tls: ssl.SSLContext | None, per_turn: int, coalesce: bool) -> float:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    turns = STANZAS // per_turn
    _Sink.expected = _Sink.count + len(STANZA) * turns * per_turn
    _Sink.arrived = asyncio.Event()
    batch = [STANZA] * per_turn
    start = time.perf_counter()
    for _ in range(turns):
        if coalesce:
            transport.write(b"".join(batch))
        else:
            for stanza in batch:
                transport.write(stanza)
        await asyncio.sleep(0)
    await _Sink.arrived.wait()
    elapsed = time.perf_counter() - start
    transport.close()
    return elapsed / (turns * per_turn) * 1e6


async def _measure(directory: Path) -> None:
    cert, key = directory / "cert.pem", directory / "key.pem"
    generate_certificate(["localhost"], cert, key)
    loop = asyncio.get_running_loop()
    for label, server_tls in (("TCP", None), ("TLS", server_context(cert, key))):
        server = await loop.create_server(_Sink, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        client: ssl.SSLContext | None = None
        if server_tls is not None:
            client = ssl.create_default_context(cafile=str(cert))
        print(f"write over {label} loopback ({len(STANZA)} B stanzas), best of 2")
        for per_turn in PER_TURN:
            apart = min([await _one(port, client, per_turn, False) for _ in range(2)])
            joined = min([await _one(port, client, per_turn, True) for _ in range(2)])
            print(
                f"  {per_turn:>3} per loop turn: one write each {apart:6.2f} µs/stanza, "
                f"coalesced {joined:6.2f} µs/stanza"
            )
        server.close()
        await server.wait_closed()


def run() -> None:
    """Measure and print the write figures."""
    run_in_temporary_directory(_measure)
