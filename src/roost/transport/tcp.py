"""TCP transport for client streams: STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368).

An ``asyncio.Protocol`` (not streams: no task or future per read, model-codebases §1.5) that
owns the socket, the parser and the output buffer, feeds parse events to its ``C2SSession``
and writes what the session emits. Writes are coalesced and flushed once per loop turn.
It decides nothing about XMPP.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, cast

from roost.core.session import C2SSession, open_c2s_session
from roost.errors import StreamError
from roost.xml.parser import ParseError, StreamEnd, StreamParser

if TYPE_CHECKING:
    from roost.config import Endpoint
    from roost.core.server import ServerCore

log = logging.getLogger(__name__)

CLOSE_WAIT = 2.0  # seconds to wait for the peer's closing tag after ours (RFC 6120 §4.4)
MAX_OUTPUT = 8 * 1024 * 1024  # bytes queued for a client before it counts as a slow consumer


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
        self._paused = False
        self._plaintext = not direct_tls  # STARTTLS may still come
        limits = core.config.limits
        self._parser = StreamParser(
            max_stanza_bytes=limits.stanza_size_preauth,
            max_depth=limits.depth_preauth,
            max_header_bytes=limits.header_size,
            max_elements=limits.elements_preauth,
        )
        self.peer = ""
        self.session: C2SSession | None = None

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "unknown"
        self.session = open_c2s_session(self._core, self, self.peer, secure=self._direct_tls)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if self._tls_pending or session is None:
            return  # bytes after <starttls/> and before the handshake are discarded
        if self._closing:
            self._drain_after_close(data)
            return
        session.last_active = time.monotonic()
        if self._plaintext and session.stream.authenticated is None:
            self._receive_before_tls(session, data)
        else:
            self._receive(session, data)

    def _receive(self, session: C2SSession, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except ParseError as err:
            if err.events:  # complete before the error: processed first (RFC 6120 §10.1)
                session.receive(err.events)
            session.parse_error(err)
            return
        if events:
            session.receive(events)

    def _receive_before_tls(self, session: C2SSession, data: bytes) -> None:
        """While STARTTLS may come, feed up to each '>' on its own and stop at <starttls/>.

        Bytes after ``<starttls/>`` must be dropped whatever they are (limits.md): fed to the
        parser in the same call, a TLS ClientHello or any other non-XML would be a parse error
        that replaces ``<proceed/>``. Pre-authentication input is small, so this costs little.
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
        if session is not None:
            session.connection_lost()

    # -- Connection interface (used by C2SSession) -------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue bytes; they are flushed once per loop turn."""
        if self._transport is None or self._tls_pending:
            return  # after <proceed/> only TLS may follow, no XML in the clear (RFC 6120 §5.4.3.3)
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self._transport
        if transport is None or not self._out:
            self._out.clear()
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_OUTPUT and self.session is not None:
            log.info("closing slow consumer %s", self.session)
            self._out.clear()
            transport.abort()

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
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        if self._transport is not None and self._paused:
            self._paused = False
            self._transport.resume_reading()

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
            transport.close()
            return
        self._closing = True
        self.resume_reading()
        asyncio.get_running_loop().call_later(CLOSE_WAIT, transport.close)

    def _drain_after_close(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except StreamError:
            events = [StreamEnd()]
        if any(type(e) is StreamEnd for e in events) and self._transport is not None:
            self._transport.close()


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
