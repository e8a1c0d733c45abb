"""Routing to a WebSocket client (RFC 7395): µs per message from the sender's read to the
frames arriving at the client, K messages per loop turn, over plain TCP and TLS on loopback.

A real roost core (as ``route``) and roost's own ``/xmpp-websocket`` route on an ephemeral
port; the receiver is an aiohttp WebSocket client in the same loop that logs in (PLAIN, bind)
and counts text frames; the sender is a fake-transport TCP client (``route._login``) fed K
messages per loop turn. The server writes one frame per message; what changes between
writers is how the frames of a loop turn reach the socket (one ``send_frame`` each, or all in
one write). The client's work is the same for both, so differences are the server's.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from pathlib import Path

import aiohttp

from bench.micro import run_in_temporary_directory, write_config
from bench.micro.route import _login
from roost.auth.credentials import derive
from roost.config import Endpoint, load_config
from roost.core.server import ServerCore
from roost.server import Server
from roost.tls import generate_certificate, server_context
from roost.transport.http import HttpListener
from roost.transport.tcp import C2SProtocol

MESSAGES = 30_000
PER_TURN = (1, 10, 100)
ROUNDS = 2
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


class Receiver:
    """The WebSocket client: logs in, then counts frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.count = 0
        self.expected = 0
        self.arrived = asyncio.Event()

    async def _until(self, marker: str) -> None:
        while True:
            message = await self.ws.receive(timeout=10)
            if marker in message.data:
                return

    async def login(self, user: str) -> None:
        opening = f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>"
        await self.ws.send_str(opening)
        await self._until("features")
        token = base64.b64encode(f"\0{user}\0secret".encode()).decode()
        await self.ws.send_str(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        await self._until("success")
        await self.ws.send_str(opening)
        await self._until("features")
        bind = f"<bind xmlns='{BIND}'><resource>ws</resource></bind>"
        await self.ws.send_str(f"<iq xmlns='jabber:client' type='set' id='b'>{bind}</iq>")
        await self._until("</iq>")

    async def count_frames(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.count += 1
                if self.count >= self.expected:
                    self.arrived.set()


async def _send(sender: C2SProtocol, receiver: Receiver, per_turn: int) -> float:
    chunk = b"".join(
        b"<message to='juliet@localhost/ws' type='chat' id='m%d'><body>Art thou not Romeo, "
        b"and a Montague?</body></message>" % n
        for n in range(per_turn)
    )
    turns = MESSAGES // per_turn
    receiver.expected = receiver.count + turns * per_turn
    receiver.arrived.clear()
    start = time.perf_counter()
    for _ in range(turns):
        sender.data_received(chunk)
        await asyncio.sleep(0)
    await asyncio.wait_for(receiver.arrived.wait(), 60)
    return (time.perf_counter() - start) / (turns * per_turn) * 1e6


async def _measure(directory: Path) -> None:
    config_path = write_config(
        directory, "send_queue_stanzas = 10000000\nsend_queue_bytes = 1000000000\n"
    )
    cert, key = directory / "cert.pem", directory / "key.pem"
    generate_certificate(["localhost"], cert, key)
    server = Server(load_config(config_path))
    await server.start()
    core = server.core
    assert core is not None
    try:
        for user in ("romeo", "juliet"):
            await core.storage.accounts.create("localhost", user, derive("secret"))
        sender, _ = await _login(server, "romeo")
        for label, tls in (("TCP", None), ("TLS", server_context(cert, key))):
            await _one_listener(core, sender, label, tls, cert)
    finally:
        await server.stop()


async def _one_listener(
    core: ServerCore, sender: C2SProtocol, label: str, tls: ssl.SSLContext | None, cert: Path
) -> None:
    listener = HttpListener(core, Endpoint("127.0.0.1", 0), tls)
    await listener.start()
    port = listener._runner.addresses[0][1]  # the ephemeral port
    client_tls: ssl.SSLContext | bool = False
    if tls is not None:
        client_tls = ssl.create_default_context(cafile=str(cert))
    scheme = "wss" if tls is not None else "ws"
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{scheme}://localhost:{port}/xmpp-websocket"
            ws = await http.ws_connect(url, protocols=("xmpp",), ssl=client_tls)
            receiver = Receiver(ws)
            await receiver.login("juliet")
            counting = asyncio.get_running_loop().create_task(receiver.count_frames())
            print(f"websocket: route to a WebSocket client over {label}, best of {ROUNDS}")
            for per_turn in PER_TURN:
                best = min([await _send(sender, receiver, per_turn) for _ in range(ROUNDS)])
                print(f"  {per_turn:>3} messages per loop turn {best:6.2f} µs/message")
            await ws.close()
            await counting
    finally:
        await listener.stop()


def run() -> None:
    """Measure and print the WebSocket figures."""
    run_in_temporary_directory(_measure)
