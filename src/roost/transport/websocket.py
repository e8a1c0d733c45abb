"""XMPP over WebSocket (RFC 7395) at ``/xmpp-websocket``.

The opening handshake must offer the ``xmpp`` subprotocol (§3.1; without it: 400), from an
Origin allowed by ``[http].cors_origins`` when a browser sends one (else 403; a plain GET gets
a line of explanation). Compression is not negotiated. Then every text message is
one XML document (§3.3.3), parsed by ``roost.stream.framing.FrameParser`` under the stanza
limits in force (pre- or post-authentication) and fed to the client's ``C2SConnection``:
``<open/>`` opens and restarts the stream (§3.4, §3.5), ``<close/>`` ends it (§3.6). What the
session writes goes out one element per message, each a standalone document
(``roost.stream.framing``). Binary messages are refused with close code 1003 (§3.2: the
subprotocol is text only).

Writes are queued and sent by one writer task per connection (never a task per stanza): the
frames queued in one loop turn go out in one write to the socket (RFC 6455 §5.2 framing done
here, unmasked text frames; one TLS record, one syscall), and the writer waits for the socket
to drain before it writes again. A client that lets more than ``[limits].send_queue_bytes`` or
``send_queue_stanzas`` pile up is
a slow consumer: what is queued is dropped and the stream closed with
``resource-constraint``, the connection aborted if even that is not taken within
``2 * CLOSE_WAIT`` seconds. Reading obeys ``[limits].read_rate``/``read_burst`` like TCP:
past the budget the read loop sleeps before the next frame, so aiohttp's flow control stops
reading the socket. When the server closes the stream it sends ``<close/>`` and waits
``CLOSE_WAIT`` seconds for the client's ``<close/>`` before closing the WebSocket (§3.6.1).
It decides nothing about XMPP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from aiohttp import WSCloseCode, WSMsgType, web

from roost.core.limits import ReadBudget
from roost.errors import StreamError
from roost.stream.framing import (
    CLOSE_FRAME,
    FrameParser,
    frame_element,
    open_frame,
    qualify_stanza,
    websocket_event,
    websocket_header,
)
from roost.xml.ns import NS_FRAMING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp.base_protocol import BaseProtocol

    from roost.core.c2s import C2SConnection
    from roost.transport.http import ClientInfo, HttpContext
    from roost.xml.element import Element

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = "xmpp"
CLOSE_WAIT: Final = 2.0  # seconds to wait for the client's <close/> after ours
INFO: Final = (
    "roost: XMPP over WebSocket (RFC 7395). Connect with a WebSocket client offering the "
    "subprotocol 'xmpp'.\n"
)


class WebSocketEndpoint:
    """The ``/xmpp-websocket`` route."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: HttpContext) -> None:
        self._ctx = ctx

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade to a WebSocket and run the client's stream until it ends."""
        ctx = self._ctx
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text=INFO)
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if SUBPROTOCOL not in (p.strip() for p in offered.split(",")):
            return web.Response(status=400, text="the WebSocket subprotocol 'xmpp' is required\n")
        if not ctx.origin_allowed(request.headers.get("Origin")):
            return web.Response(status=403, text="this origin is not allowed\n")
        limits = ctx.core.config.limits
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            compress=False,  # compression next to secrets is CRIME/BREACH territory
            max_msg_size=2 * limits.stanza_size,  # larger: aiohttp closes with 1009
            timeout=CLOSE_WAIT,
        )
        await ws.prepare(request)
        conn = WebSocketConnection(
            ctx, ws, ctx.client(request), request.transport, request.protocol
        )
        await conn.run()
        return ws


class WebSocketConnection:
    """One client WebSocket: the ``Connection`` its ``C2SConnection`` writes to."""

    __slots__ = (
        "_budget",
        "_close_requested",
        "_closing",
        "_frames",
        "_limits",
        "_metrics",
        "_parser",
        "_protocol",
        "_queued",
        "_readable",
        "_slow",
        "_transport",
        "_wake",
        "_ws",
        "peer",
        "session",
    )

    def __init__(
        self,
        ctx: HttpContext,
        ws: web.WebSocketResponse,
        info: ClientInfo,
        transport: asyncio.Transport | None,
        protocol: BaseProtocol | None = None,
    ) -> None:
        limits = ctx.core.config.limits
        self._ws = ws
        self._transport = transport
        self._protocol = protocol  # aiohttp's, for write flow control
        self._parser = FrameParser(  # attributes and xmlns per element: the parser's defaults
            max_bytes=limits.stanza_size_preauth,
            max_depth=limits.depth_preauth,
            max_elements=limits.elements_preauth,
        )
        self._limits = limits
        self._metrics = ctx.core.limiter.metrics
        self._budget = ReadBudget(limits.read_rate, limits.read_burst, time.monotonic())
        self._frames: list[bytes] = []
        self._queued = 0
        self._slow = False  # closed as a slow consumer
        self._wake = asyncio.Event()
        self._readable = asyncio.Event()
        self._readable.set()
        self._closing = False  # our <close/> is out; waiting for the client's
        self._close_requested = False  # close the WebSocket once the queue is sent
        self.peer = info.ip
        self.session: C2SConnection = ctx.open_session(self, info)

    async def run(self) -> None:
        """Read until the WebSocket closes; the session ends with it."""
        writer = asyncio.get_running_loop().create_task(self._write_loop())
        try:
            await self._read_loop()
        finally:
            self.session.connection_lost()  # nothing happens if the stream closed properly
            self._close_requested = True
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer, CLOSE_WAIT + 1)
            if not self._ws.closed:
                await self._ws.close()

    async def _read_loop(self) -> None:
        ws = self._ws
        while not ws.closed:
            if not self._readable.is_set():
                await self._readable.wait()
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                data = message.data.encode()
                self._on_frame(data)
                delay = self._budget.spend(len(data), time.monotonic())
                if delay:  # past the read rate: read nothing more for a while
                    self._metrics.read_throttles += 1
                    await asyncio.sleep(delay)
            elif message.type is WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text only")
                return
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    def _on_frame(self, data: bytes) -> None:
        session = self.session
        try:
            element = self._parser.parse(data)
        except StreamError as err:
            if self._closing:
                self._close_now()
            else:
                session.parse_error(err)
            return
        if element is None:
            return
        if self._closing:  # after our <close/> only the client's <close/> matters
            if element.xmlns == NS_FRAMING and element.name == "close":
                self._close_now()
            return
        session.last_active = time.monotonic()
        session.receive([websocket_event(element)])

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._frames:
                    frames, self._frames = self._frames, []
                    self._queued = 0
                    self._write(frames)
                    protocol = self._protocol
                    if protocol is not None and protocol.writing_paused:
                        await protocol._drain_helper()  # the client takes its time
                if self._close_requested:
                    await ws.close()
                    return
        except ConnectionError as exc:
            log.debug("WebSocket to %s: %s", self.peer, exc)

    def _write(self, frames: list[bytes]) -> None:
        """All the frames of a loop turn in one write (one TLS record, one syscall)."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._ws.closed:
            raise ConnectionResetError("the WebSocket is closing")
        parts: list[bytes] = []
        for frame in frames:
            parts.append(websocket_header(len(frame)))
            parts.append(frame)
        transport.write(b"".join(parts))

    # -- Connection interface (used by C2SConnection) -------------------------------------------
    def open_stream(self, attrs: Mapping[str, str]) -> None:
        """Queue ``<open/>`` (RFC 7395 §3.4)."""
        self._queue(open_frame(attrs))

    def send_element(self, element: Element) -> None:
        """Queue one top-level element as a frame of its own."""
        self._queue(frame_element(element))

    def send_serialized(self, data: bytes) -> None:
        """Queue a stanza serialized once for many recipients (``jabber:client`` added)."""
        self._queue(qualify_stanza(data))

    def close_stream(self) -> None:
        """Queue ``<close/>`` (RFC 7395 §3.6)."""
        self._queue(CLOSE_FRAME)

    def _queue(self, frame: bytes) -> None:
        """Queue a frame; the writer task sends what is queued once per loop turn."""
        if self._close_requested or self._ws.closed:
            return
        self._frames.append(frame)
        self._queued += len(frame)
        self._wake.set()
        limits = self._limits
        if self._slow:
            return
        if self._queued > limits.send_queue_bytes or len(self._frames) > limits.send_queue_stanzas:
            self._close_slow_consumer()

    def _close_slow_consumer(self) -> None:
        log.info(
            "closing slow consumer %s: %d bytes, %d stanzas unsent",
            self.session,
            self._queued,
            len(self._frames),
        )
        self._slow = True
        self._metrics.rejected("send_queue")
        self._frames.clear()
        self._queued = 0
        asyncio.get_running_loop().call_later(2 * CLOSE_WAIT, self._abort)
        self.session.close(StreamError("resource-constraint", "too much output unread"))

    def _abort(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def start_tls(self) -> None:
        """Never asked: STARTTLS is not offered on web transports."""

    def reset_parser(self) -> None:
        """Every frame is parsed on its own: nothing carries over a stream restart."""

    def set_post_auth_limits(self) -> None:
        """Frames may now be as large as authenticated stanzas."""
        limits = self.session.core.config.limits
        self._parser.set_limits(
            max_bytes=limits.stanza_size, max_depth=limits.depth, max_elements=limits.elements
        )

    def pause_reading(self) -> None:
        """Stop reading while the session waits (its later frames wait too)."""
        self._readable.clear()

    def resume_reading(self) -> None:
        """Read again."""
        self._readable.set()

    def close(self, *, wait_for_peer: bool) -> None:
        """Close after sending what is queued; first wait for ``<close/>`` when asked."""
        if not wait_for_peer:
            self._close_now()
            return
        self._closing = True
        self.resume_reading()
        asyncio.get_running_loop().call_later(CLOSE_WAIT, self._close_now)

    def _close_now(self) -> None:
        self._close_requested = True
        self._wake.set()
