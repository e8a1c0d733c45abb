"""Wire-level helpers for the stream-error, SASL and limits tests (on top of ``RawClient``).

- reading stream errors: the ``<stream:error/>`` element itself, with the header check of
  RFC 6120 §4.9.1.2 and proof that the connection is then really closed;
- SASL with scramp's ``ScramClient`` as an independent peer, and RFC 5929 §4.1 channel
  binding data computed here from the certificate the client saw;
- a client bound to another loopback source address (127.0.0.2), to tell per-IP limits apart;
- ``assert_server_serves``: a fresh client logs in and gets a ping answered;
- ``Accounts``: accounts created once per test module (each CLI call costs ~0.4 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from scramp import ScramClient

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING, NS_SASL, NS_STREAM_ERRORS, NS_STREAMS
from roost.xml.parser import StreamEnd, StreamHeader
from roost.xml.serializer import STREAM_CLOSE
from tests.integration.harness import DOMAIN, PASSWORD, RawClient, ServerProcess

CLOSE_TIMEOUT = 1.5  # seconds for the server to drop TCP once both closing tags are sent
_ids = itertools.count()


# -- stream errors -----------------------------------------------------------------------------
def error_condition(error: Element) -> str:
    """The defined condition of a ``<stream:error/>`` (the child that is not ``<text/>``)."""
    conditions = [c for c in error.elements() if c.name != "text"]
    assert len(conditions) == 1, conditions
    assert conditions[0].xmlns == NS_STREAM_ERRORS, conditions[0]
    return conditions[0].name


def error_text(error: Element) -> str:
    """The ``<text/>`` of a stream error ("" when there is none)."""
    return error.find_text("text", NS_STREAM_ERRORS) or ""


async def read_stream_error(client: RawClient, timeout: float = 5.0) -> Element:
    """Skip to the next ``<stream:error/>``; check the stream end follows and TCP closes."""
    while True:
        event = await client.next(timeout)
        assert not isinstance(event, StreamEnd), "the stream ended without an error"
        if isinstance(event, Element) and event.name == "error" and event.xmlns == NS_STREAMS:
            break
    end = await client.next(timeout)
    assert isinstance(end, StreamEnd), end
    await expect_connection_closed(client)
    return event


async def header_then_error(client: RawClient, timeout: float = 5.0) -> Element:
    """The first thing read is a server header (§4.9.1.2), the second a stream error."""
    first = await client.next(timeout)
    assert isinstance(first, StreamHeader), first
    assert (first.xmlns, first.name, first.content_ns) == (NS_STREAMS, "stream", NS_CLIENT)
    assert first.attrs.get("id"), first.attrs
    assert first.attrs.get("version") == "1.0", first.attrs
    second = await client.next(timeout)
    assert isinstance(second, Element), second
    assert (second.xmlns, second.name) == (NS_STREAMS, "error"), second
    end = await client.next(timeout)
    assert isinstance(end, StreamEnd), end
    await expect_connection_closed(client)
    return second


async def expect_connection_closed(client: RawClient) -> None:
    """Answer the server's closing tag with ours; the server must then drop the connection."""
    assert client.writer is not None
    with contextlib.suppress(OSError, ConnectionError):
        client.writer.write(STREAM_CLOSE)
        await client.writer.drain()
    try:
        while True:
            event = await client.next(CLOSE_TIMEOUT)
            raise AssertionError(f"data after the stream end: {event!r}")
    except EOFError:
        pass
    except ConnectionResetError:  # closed before our tag arrived: closed all the same
        client.closed = True


# -- SASL -------------------------------------------------------------------------------------
def b64(data: bytes | str) -> str:
    """Base64 of bytes or UTF-8 text, "=" for empty (RFC 6120 §6.4.2)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode() if raw else "="


def auth(mechanism: str, initial: bytes | str | None = None) -> bytes:
    """An ``<auth/>`` element with an optional initial response."""
    body = "" if initial is None else b64(initial)
    return f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{body}</auth>".encode()


def response(data: bytes | str) -> bytes:
    """A ``<response/>`` element."""
    return f"<response xmlns='{NS_SASL}'>{b64(data)}</response>".encode()


def failure_condition(answer: Element) -> str:
    """The condition of a SASL ``<failure/>`` (asserting that it is one)."""
    assert (answer.xmlns, answer.name) == (NS_SASL, "failure"), answer
    conditions = [c.name for c in answer.elements() if c.name != "text"]
    assert len(conditions) == 1, conditions
    return conditions[0]


def mechanisms(features: Element) -> list[str]:
    """The SASL mechanisms offered in ``<stream:features/>``."""
    mechs = features.find("mechanisms", NS_SASL)
    return [] if mechs is None else [m.text for m in mechs.elements()]


def end_point_binding(der: bytes) -> bytes:
    """``tls-server-end-point`` data (RFC 5929 §4.1): the DER certificate hashed with the hash
    of its signature algorithm, SHA-256 when that is MD5 or SHA-1."""
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    assert algorithm is not None, "RFC 5929 leaves this channel binding undefined"
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


async def scram_login(
    client: RawClient,
    mechanism: str,
    user: str,
    password: str = PASSWORD,
    *,
    channel_binding: tuple[str, bytes] | None = None,
) -> Element:
    """One SCRAM exchange with scramp as the client; the server's last answer.

    On ``<success/>`` the server's signature is verified (scramp raises if it is wrong).
    ``channel_binding`` with a non-PLUS mechanism makes scramp send the ``y`` gs2 flag.
    """
    scram = ScramClient([mechanism], user, password, channel_binding=channel_binding)
    await client.send(auth(mechanism, scram.get_client_first()))
    answer = await client.element()
    if answer.name != "challenge":
        return answer
    scram.set_server_first(base64.b64decode(answer.text).decode())
    await client.send(response(scram.get_client_final()))
    answer = await client.element()
    if answer.name == "success":
        scram.set_server_final(base64.b64decode(answer.text).decode())
    return answer


async def restart(client: RawClient) -> Element:
    """The stream restart after ``<success/>``: a new header; the new features."""
    client.parser.reset()
    return await client.open()


# -- stanzas ------------------------------------------------------------------------------------
async def ping_server(client: RawClient, timeout: float = 5.0) -> list[Element]:
    """Ping the server (XEP-0199); assert a result; return what arrived before it."""
    iq_id = f"ping{next(_ids)}"
    await client.send(
        f"<iq type='get' id='{iq_id}' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>".encode()
    )
    before: list[Element] = []
    while True:
        stanza = await client.element(timeout)
        if stanza.name == "iq" and stanza.get("id") == iq_id:
            assert stanza.get("type") == "result", stanza
            return before
        before.append(stanza)


# -- accounts ---------------------------------------------------------------------------------
class Accounts:
    """Accounts on one server, each created once (the CLI costs ~0.4 s per account)."""

    def __init__(self, server: ServerProcess, prefix: str) -> None:
        self._server = server
        self._prefix = prefix
        self._made: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        """The bare JID of the account ``<prefix>-<name>``, created on first use."""
        jid = self._made.get(name)
        if jid is None:
            jid = self._made[name] = self._server.add_user(f"{self._prefix}-{name}")
        return jid


def local(jid: str) -> str:
    """The localpart of a bare JID (what PLAIN and SCRAM send as the authcid)."""
    return jid.partition("@")[0]


# -- clients ----------------------------------------------------------------------------------
class SourcedClient(RawClient):
    """A ``RawClient`` whose connections come from a chosen loopback source address."""

    def __init__(self, server: ServerProcess, source: str) -> None:
        super().__init__(server)
        self.source = source

    async def connect(self, *, direct_tls: bool = False) -> RawClient:
        """Open TCP to the STARTTLS port from ``source``."""
        assert not direct_tls, "only the STARTTLS port is used with another source"
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.server.c2s, local_addr=(self.source, 0)
        )
        return self


@contextlib.asynccontextmanager
async def connected(server: ServerProcess, source: str | None = None) -> AsyncIterator[RawClient]:
    """A connected client (from ``source`` when given), closed at the end of the block."""
    client = RawClient(server) if source is None else SourcedClient(server, source)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def assert_server_serves(server: ServerProcess, user: str, source: str | None = None) -> None:
    """The server is alive and well: a fresh client logs in and gets a ping answered."""
    async with connected(server, source) as client:
        jid = await client.login(local(user), resource=None)
        assert jid.startswith(user + "/"), jid
        assert await ping_server(client) == []
