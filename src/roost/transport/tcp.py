"""TCP transport for client streams: STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368).

An ``asyncio.Protocol`` (not streams: no task or future per read) that
owns the socket, the parser and the output buffer, feeds parse events to its ``C2SConnection``
and writes what the session emits in RFC 6120 §4 framing: the ``<stream:stream>`` header,
top-level elements serialized in the stream's default namespace, ``</stream:stream>``. Writes
are coalesced and flushed once per loop turn. It decides nothing about XMPP.

Flow control, both ways (docs/configuration.md [limits]):
- Read rate: every read is spent from a ``ReadBudget`` (``[limits].read_rate`` bytes per
  second, ``read_burst`` seconds of it at once). Past it, reading pauses
  (``transport.pause_reading``) until the budget is paid back (``loop.call_later``); what was
  read is processed, nothing more is buffered: the client's TCP window closes instead.
  Reading also pauses while the session waits (storage, RFC 6120 §10.1 order).
- Output queue: what the transport could not send yet is counted in bytes and in writes
  (stanzas). A client that lets more than ``send_queue_bytes`` or ``send_queue_stanzas``
  pile up is a slow consumer: its stream is closed with ``resource-constraint`` (RFC 6120
  §4.9.3.16, as ejabberd closes an overflowing stream-management queue), and the connection
  is aborted when even that cannot be delivered within ``CLOSE_WAIT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from roost.core.c2s import C2SConnection, open_c2s_connection
from roost.core.limits import ReadBudget
from roost.errors import StreamError
from roost.xml.ns import NS_CLIENT
from roost.xml.parser import ParseError, StreamEnd, StreamParser
from roost.xml.serializer import STREAM_CLOSE, serialize, stream_header

if TYPE_CHECKING:
    from collections.abc import Mapping

    from roost.config import Endpoint
    from roost.core.server import ServerCore
    from roost.xml.element import Element

log = logging.getLogger(__name__)

CLOSE_WAIT = 2.0  # seconds to wait for the peer's closing tag after ours (RFC 6120 §4.4)


class C2SProtocol(asyncio.Protocol):
    """One client TCP connection."""

    def __init__(self, core: ServerCore, tls: ssl.SSLContext | None, *, direct_tls: bool) -> None:
        self._core = core
        self._tls = tls
        self._direct_tls = direct_tls
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._tls_pending = False
        self._closing = False
        self._paused = False  # the transport's reading is paused (for either reason below)
        self._waiting = False  # the session waits: its later input must wait too
        self._throttle: asyncio.TimerHandle | None = None  # paying back the read budget
        self._plaintext = not direct_tls  # STARTTLS may still come
        limits = core.config.limits
        self._metrics = core.limiter.metrics
        self._budget = ReadBudget(limits.read_rate, limits.read_burst, time.monotonic())
        self._max_queue_bytes = limits.send_queue_bytes
        self._max_queue_stanzas = limits.send_queue_stanzas
        self._written = 0  # bytes handed to the transport so far
        # (end offset, writes) of each flush the client has not taken: made on first need,
        # since an idle connection never needs it (760 bytes saved per connection).
        self._unsent: deque[tuple[int, int]] | None = None
        self._unsent_writes = 0  # writes in _unsent: stanzas the client has not taken yet
        self._slow = False  # closed as a slow consumer
        self._parser = StreamParser(
            max_stanza_bytes=limits.stanza_size_preauth,
            max_depth=limits.depth_preauth,
            max_header_bytes=limits.header_size,
            max_elements=limits.elements_preauth,
            max_attrs=limits.attributes,
            max_ns_decls=limits.namespace_declarations,
        )
        self.peer = ""
        self.session: C2SConnection | None = None

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "unknown"
        self.session = open_c2s_connection(self._core, self, self.peer, secure=self._direct_tls)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if self._tls_pending or session is None:
            return  # bytes after <starttls/> and before the handshake are discarded
        if self._closing:
            self._drain_after_close(data)
            return
        session.last_active = now = time.monotonic()
        delay = self._budget.spend(len(data), now)
        if delay and self._throttle is None:
            self._throttle_for(delay)
        if self._plaintext and session.stream.authenticated is None:
            self._receive_before_tls(session, data)
        else:
            self._receive(session, data)

    def _receive(self, session: C2SConnection, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except ParseError as err:
            if err.events:  # complete before the error: processed first (RFC 6120 §10.1)
                session.receive(err.events)
            session.parse_error(err)
            return
        if events:
            session.receive(events)

    def _receive_before_tls(self, session: C2SConnection, data: bytes) -> None:
        """While STARTTLS may come, feed up to each '>' on its own and stop at <starttls/>.

        Bytes after ``<starttls/>`` must be dropped whatever they are (RFC 6120 §5.4.3.3): fed
        to the parser in the same call, a TLS ClientHello or any other non-XML would be a parse
        error that replaces ``<proceed/>``. Pre-authentication input is small, so this costs little.
        """
        start, size = 0, len(data)
        while start < size and not self._tls_pending and not session.closed:
            end = data.find(b">", start)
            end = size if end < 0 else end + 1
            self._receive(session, data[start:end])
            start = end

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        self._transport = None
        if self._throttle is not None:
            self._throttle.cancel()
            self._throttle = None
        if session is not None:
            session.connection_lost()

    # -- reading: the read budget and the session's waits -------------------------------------
    def _throttle_for(self, delay: float) -> None:
        self._metrics.read_throttles += 1
        self._throttle = asyncio.get_running_loop().call_later(delay, self._unthrottle)
        self._update_reading()

    def _unthrottle(self) -> None:
        self._throttle = None
        delay = self._budget.spend(0, time.monotonic())  # data read while pausing counts
        if delay:
            self._throttle = asyncio.get_running_loop().call_later(delay, self._unthrottle)
            return
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading as the session and the read budget want."""
        transport = self._transport
        if transport is None or self._tls_pending:
            return  # the TLS upgrade pauses and resumes on its own, then calls this again
        pause = (self._waiting or self._throttle is not None) and not self._closing
        if pause != self._paused:
            self._paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # -- Connection interface (used by C2SConnection) -------------------------------------------
    def open_stream(self, attrs: Mapping[str, str]) -> None:
        """Queue the ``<stream:stream>`` header (RFC 6120 §4.7)."""
        self.send_serialized(stream_header(content_ns=NS_CLIENT, attrs=dict(attrs)))

    def send_element(self, element: Element) -> None:
        """Queue one top-level element; the queue is flushed once per loop turn."""
        if self._transport is None or self._tls_pending:
            return  # after <proceed/> only TLS may follow, no XML in the clear (RFC 6120 §5.4.3.3)
        self._out.append(serialize(element))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def send_serialized(self, data: bytes) -> None:
        """Queue a stanza serialized once for many recipients (as ``send_element``)."""
        if self._transport is None or self._tls_pending:
            return
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def close_stream(self) -> None:
        """Queue ``</stream:stream>``."""
        self.send_serialized(STREAM_CLOSE)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self._transport
        out = self._out
        if transport is None or not out:
            out.clear()
            return
        writes = len(out)
        data = out[0] if writes == 1 else b"".join(out)
        out.clear()
        transport.write(data)
        self._written += len(data)
        buffered = transport.get_write_buffer_size()
        if not buffered:  # all taken by the kernel: the common case
            if self._unsent_writes and self._unsent is not None:
                self._unsent.clear()
                self._unsent_writes = 0
            return
        self._account_unsent(writes, buffered)

    def _account_unsent(self, writes: int, buffered: int) -> None:
        """Count what the client has not taken yet; close it when that is too much."""
        unsent = self._unsent
        if unsent is None:
            unsent = self._unsent = deque()
        unsent.append((self._written, writes))
        self._unsent_writes += writes
        sent = self._written - buffered
        while unsent[0][0] <= sent:  # the last entry ends past ``sent``: never empties
            self._unsent_writes -= unsent.popleft()[1]
        if self._slow or self.session is None:
            return
        if buffered > self._max_queue_bytes or self._unsent_writes > self._max_queue_stanzas:
            self._slow = True
            self._metrics.rejected("send_queue")
            log.info(
                "closing slow consumer %s: %d bytes, %d stanzas unsent",
                self.session,
                buffered,
                self._unsent_writes,
            )
            self.session.close(StreamError("resource-constraint", "too much output unread"))

    def start_tls(self) -> None:
        """Flush ``<proceed/>``, then upgrade the connection to TLS."""
        transport = self._transport
        if transport is None or self._tls is None:
            return
        self._flush()
        self._tls_pending = True
        transport.pause_reading()
        asyncio.get_running_loop().create_task(self._upgrade(transport, self._tls))

    async def _upgrade(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls_transport = await loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=min(30, self._core.config.limits.preauth_timeout),
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("TLS handshake with %s failed: %s", self.peer, exc)
            transport.abort()
            return
        if tls_transport is None:
            transport.abort()
            return
        self._transport = tls_transport
        self._plaintext = False
        self._parser.reset()
        self._tls_pending = False
        self._paused = False  # the TLS transport starts reading
        self._update_reading()
        if self.session is not None:
            self.session.tls_established(self._core.cb_data)

    def reset_parser(self) -> None:
        """Stream restart after SASL success."""
        self._parser.reset()

    def set_post_auth_limits(self) -> None:
        """Switch the parser to the limits for authenticated streams."""
        limits = self._core.config.limits
        self._parser.set_limits(
            max_stanza_bytes=limits.stanza_size,
            max_depth=limits.depth,
            max_elements=limits.elements,
        )

    def pause_reading(self) -> None:
        """Stop reading while the session waits (its later stanzas wait too)."""
        self._waiting = True
        self._update_reading()

    def resume_reading(self) -> None:
        """Read again (unless the read budget still says no)."""
        self._waiting = False
        self._update_reading()

    def close(self, *, wait_for_peer: bool) -> None:
        """Flush, then close; wait briefly for the peer's closing tag when asked."""
        transport = self._transport
        if transport is None:
            return
        if self._tls_pending:  # mid-handshake: no closing tags can be exchanged
            transport.abort()
            return
        self._flush()
        if not wait_for_peer:
            self._shut(transport)
            return
        self._closing = True
        self._update_reading()
        asyncio.get_running_loop().call_later(CLOSE_WAIT, self._shut, transport)

    def _shut(self, transport: asyncio.Transport) -> None:
        """Close after sending what is queued; abort if the client does not take it soon."""
        if transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(CLOSE_WAIT, transport.abort)

    def _drain_after_close(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except StreamError:
            events = [StreamEnd()]
        if any(type(e) is StreamEnd for e in events) and self._transport is not None:
            self._shut(self._transport)


async def listen_c2s(
    core: ServerCore, endpoint: Endpoint, tls: ssl.SSLContext | None, *, direct_tls: bool
) -> asyncio.Server:
    """Start a client listener (STARTTLS, or direct TLS when ``direct_tls``)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: C2SProtocol(core, tls, direct_tls=direct_tls),
        endpoint.host,
        endpoint.port,
        ssl=tls if direct_tls else None,
        reuse_address=True,
        backlog=1024,
        # An unfinished handshake must not outlive the pre-auth timeout.
        ssl_handshake_timeout=min(30, core.config.limits.preauth_timeout) if direct_tls else None,
    )
