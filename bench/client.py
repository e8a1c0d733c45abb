"""A lean XMPP client for load generation: one ``asyncio.Protocol`` per connection.

Login is the full RFC 6120 dance a real client does: stream header, STARTTLS (RFC 6120 §5),
stream restart, SASL SCRAM-SHA-1 (RFC 5802), restart, resource binding (§7), optionally the
roster (RFC 6121 §2.2), then initial presence. The client waits on byte patterns in its input
instead of parsing XML: both servers under test send the well-known shapes, and the load
generator has to cost much less CPU than the servers it measures. Once logged in, every chunk
read goes to ``sink`` (a counter of messages or presence) and nothing is buffered.

SCRAM's PBKDF2 result is cached per (password, salt, iterations), as clients cache it
(XEP-0438 §4); the bench provisions every account with one salt, so each worker computes it
once. The server's signature is not checked: the servers' own tests do that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import ssl
from collections.abc import Callable
from typing import Final

DataSink = Callable[[bytes], None]

_FEATURES: Final = re.compile(rb"</stream:features>|<stream:features/>")
_PROCEED: Final = re.compile(rb"<proceed\b")
_CHALLENGE: Final = re.compile(rb"<challenge\b[^>]*>([^<]*)</challenge>")
_SUCCESS: Final = re.compile(rb"<success\b[^>]*(?:/>|>[^<]*</success>)")
_BIND: Final = re.compile(rb"<iq\b[^>]*\bid=['\"]bind1['\"][^>]*(?:/>|>.*?</iq>)", re.S)
_ROSTER: Final = re.compile(rb"<iq\b[^>]*\bid=['\"]roster1['\"][^>]*(?:/>|>.*?</iq>)", re.S)
_FAILED: Final = re.compile(rb"<failure\b|<stream:error\b|</stream:stream>|type=['\"]error")
_RESULT: Final = re.compile(rb"type=['\"]result['\"]")

_SALTED: dict[tuple[bytes, bytes, int], bytes] = {}


class LoginError(Exception):
    """The server refused or broke off the login; the message holds what it sent."""


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


class ScramSha1:
    """The client side of SCRAM-SHA-1 without channel binding (gs2 header ``n,,``)."""

    __slots__ = ("_first_bare", "_nonce", "_password")

    def __init__(self, user: str, password: str) -> None:
        self._nonce = base64.b64encode(os.urandom(18)).decode()
        self._first_bare = f"n={user},r={self._nonce}"
        self._password = password.encode()

    def first(self) -> bytes:
        """The client-first-message."""
        return b"n,," + self._first_bare.encode()

    def final(self, server_first: bytes) -> bytes:
        """The client-final-message answering ``server_first``."""
        attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self._nonce):
            raise LoginError("the server changed our nonce")
        key = (self._password, salt, iterations)
        salted = _SALTED.get(key)
        if salted is None:
            salted = _SALTED[key] = hashlib.pbkdf2_hmac("sha1", *key)
        client_key = hmac.digest(salted, b"Client Key", "sha1")
        stored_key = hashlib.sha1(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first.decode()},{without_proof}".encode()
        proof = _xor(client_key, hmac.digest(stored_key, auth_message, "sha1"))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


class XmppClient(asyncio.Protocol):
    """One client connection: ``login()``, then ``sink`` gets everything the server sends."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.transport: asyncio.BaseTransport | None = None
        self.sink: DataSink | None = None
        self.closed = False
        self._buffer = b""
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink(data)
            return
        self._buffer += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send bytes (dropped once the connection is closed)."""
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)  # type: ignore[attr-defined]

    def close(self) -> None:
        """End the stream and close the connection."""
        if self.transport is not None and not self.closed:
            self.write(b"</stream:stream>")
            self.transport.close()

    # -- login ------------------------------------------------------------------------------
    async def _expect(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        while True:
            match = pattern.search(self._buffer)
            if match is not None:
                self._buffer = self._buffer[match.end() :]
                return match
            if _FAILED.search(self._buffer) or self.closed:
                raise LoginError(self._buffer[-300:].decode(errors="replace") or "closed")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _header(self) -> None:
        self.write(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
            b"'http://etherx.jabber.org/streams' to='%s' version='1.0'>" % self.domain.encode()
        )

    async def login(
        self,
        port: int,
        user: str,
        password: str,
        resource: str,
        tls: ssl.SSLContext,
        source: str,
        *,
        roster: bool = False,
    ) -> None:
        """Connect from ``source`` and log in; initial presence is left to the caller."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            lambda: self, "127.0.0.1", port, local_addr=(source, 0)
        )
        self._header()
        await self._expect(_FEATURES)
        self.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self._expect(_PROCEED)
        tls_transport = await loop.start_tls(transport, self, tls, server_hostname=self.domain)
        if tls_transport is None:
            raise LoginError("TLS handshake failed")
        self.transport = tls_transport
        self._buffer = b""
        await self._authenticate(user, password)
        self.write(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>%s</resource></bind></iq>" % resource.encode()
        )
        if not _RESULT.search((await self._expect(_BIND)).group(0)):
            raise LoginError("bind failed")
        if roster:
            self.write(b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
            await self._expect(_ROSTER)

    async def _authenticate(self, user: str, password: str) -> None:
        self._header()
        await self._expect(_FEATURES)
        scram = ScramSha1(user, password)
        self.write(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>%s</auth>"
            % base64.b64encode(scram.first())
        )
        challenge = base64.b64decode((await self._expect(_CHALLENGE)).group(1))
        self.write(
            b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>"
            % base64.b64encode(scram.final(challenge))
        )
        await self._expect(_SUCCESS)
        self._header()
        await self._expect(_FEATURES)

    def start_sink(self, sink: DataSink) -> None:
        """From now on hand every chunk read to ``sink`` (what is buffered first)."""
        self.sink = sink
        rest, self._buffer = self._buffer, b""
        if rest:
            sink(rest)
