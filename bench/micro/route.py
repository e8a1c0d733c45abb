"""The server's own per-stanza cost without sockets or TLS: µs per message from the bytes a
sender's connection reads to the bytes written to the receiver's connection.

A real roost core (every default module loaded, SQLite storage in a temporary directory, no
listeners) gets two clients on fake transports that log in over direct TLS semantics (SASL
PLAIN, bind, presence). Then the sender's ``data_received`` is fed chunks of ten messages, as
one socket read would deliver them, with one loop turn after each chunk (the output flush);
the receiver's transport counts what it is given. This is parse + route (filters, handlers)
+ serialize + coalesced write: everything but the kernel and the TLS records. Messages go to
the full JID (the router's direct delivery) and to the bare JID (RFC 6121 §8.5 through the
message module).
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any, cast

from bench.micro import run_in_temporary_directory, write_config
from roost.auth.credentials import derive
from roost.config import load_config
from roost.server import Server
from roost.transport.tcp import C2SProtocol

MESSAGES = 50_000
PER_READ = 10
ROUNDS = 3
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


class NullTransport:
    """A transport whose peer takes everything at once; counts the bytes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.count = 0
        self.keep = True  # keep what is written (during login), else only count it

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.count += len(data)
        if self.keep:
            self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def _until(transport: NullTransport, marker: bytes, seen: int) -> int:
    """Turn the loop until ``marker`` appears after byte ``seen``; where it ends."""
    for _ in range(10_000):
        at = transport.written.find(marker, seen)
        if at >= 0:
            return at + len(marker)
        await asyncio.sleep(0.001)
    raise RuntimeError(f"no {marker!r} in {bytes(transport.written[seen:])[-500:]!r}")


async def _login(server: Server, user: str) -> tuple[C2SProtocol, NullTransport]:
    assert server.core is not None
    transport = NullTransport()
    protocol = C2SProtocol(server.core, None, direct_tls=True)
    protocol.connection_made(cast(Any, transport))
    protocol.data_received(HEADER)
    seen = await _until(transport, b"</stream:features>", 0)
    token = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    protocol.data_received(
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode()
    )
    seen = await _until(transport, b"<success", seen)
    protocol.data_received(HEADER)
    seen = await _until(transport, b"</stream:features>", seen)
    protocol.data_received(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>r</resource></bind></iq><presence/>"
    )
    await _until(transport, b"</iq>", seen)
    await asyncio.sleep(0.05)
    transport.keep = False
    return protocol, transport


async def _warm(sender: C2SProtocol, receiver: NullTransport) -> None:
    """One message first, until it arrives: the filters load what they cache (block lists)
    from storage, which the timed rounds must not wait for."""
    before = receiver.count
    sender.data_received(b"<message to='juliet@localhost/r' id='warm'><body>hi</body></message>")
    for _ in range(10_000):
        if receiver.count > before:
            return
        await asyncio.sleep(0.001)
    raise RuntimeError("the warm-up message was not delivered")


async def _send(sender: C2SProtocol, receiver: NullTransport, to: str) -> float:
    """µs per message, best of ROUNDS."""
    chunk = b"".join(
        b"<message to='%s' type='chat' id='m%d'><body>Art thou not Romeo, and a Montague?"
        b"</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        % (to.encode(), n)
        for n in range(PER_READ)
    )
    best = float("inf")
    for _ in range(ROUNDS):
        before = receiver.count
        start = time.perf_counter()
        for _ in range(MESSAGES // PER_READ):
            sender.data_received(chunk)
            await asyncio.sleep(0)  # the loop turn that flushes the receiver's output
        best = min(best, time.perf_counter() - start)
        if receiver.count - before < MESSAGES * 100:
            raise RuntimeError("the messages were not delivered")
    return best / MESSAGES * 1e6


async def _measure(directory: Path) -> None:
    config_path = write_config(directory)
    server = Server(load_config(config_path))
    await server.start()
    assert server.core is not None
    try:
        for user in ("romeo", "juliet"):
            await server.core.storage.accounts.create("localhost", user, derive("secret"))
        romeo, _ = await _login(server, "romeo")
        _, juliet = await _login(server, "juliet")
        await _warm(romeo, juliet)
        print(f"route: parse → route → serialize → write, {PER_READ} messages per read")
        full = await _send(romeo, juliet, "juliet@localhost/r")
        print(f"  {'to a full JID (direct delivery)':<36}{full:6.2f} µs/message")
        bare = await _send(romeo, juliet, "juliet@localhost")
        print(f"  {'to a bare JID (message module)':<36}{bare:6.2f} µs/message")
    finally:
        await server.stop()


def run() -> None:
    """Measure and print the route figures."""
    run_in_temporary_directory(_measure)
