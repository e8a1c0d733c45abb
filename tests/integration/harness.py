"""A real roost server in a child process on free loopback ports, and clients to drive it.

Tests talk XMPP over loopback only: slixmpp as the real client library, and ``RawClient``
for wire-level dialogues (stream errors, SASL failures). Accounts and the self-signed
certificate are made in this process, through ``roost.storage`` and ``roost.tls`` as the
``roost`` command does; ``roost_cli`` runs the command itself for the tests of that path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slixmpp

from roost.auth.credentials import Credentials, derive
from roost.config import load_config
from roost.jid import JID
from roost.storage import open_storage
from roost.tls import ensure_certificate
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_STANZAS, NS_STREAMS, NS_TLS
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader, StreamParser
from roost.xml.serializer import serialize

DOMAIN = "localhost"
PASSWORD = "secret"
START_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def roost_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``roost`` command (this interpreter's) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@functools.cache
def _derived(password: str) -> Credentials:
    return derive(password)


def credentials(password: str) -> Credentials:
    """SCRAM credentials for ``password``, derived once per test session.

    PBKDF2 (4096 iterations for each of three hashes) is most of what an account costs;
    the accounts that share a password share its salts, which only a test may do.
    """
    return dict(_derived(password))


async def create_account(config_path: Path, jid: str, password: str = PASSWORD) -> None:
    """Create ``jid`` in the storage that the server of ``config_path`` uses.

    The same writes as ``roost user add``, safe beside the running server for the same
    reason (SQLite in WAL mode with a busy timeout; PostgreSQL transactions).
    """
    config = load_config(config_path)
    account = JID.parse(jid)
    if account.local is None or account.resource is not None:
        raise ValueError(f"{jid} is not an account (user@domain)")
    if account.domain not in config.server.domains:
        raise ValueError(f"{account.domain} is not served by {config_path}")
    if config.storage.backend == "sqlite":
        config.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    storage = open_storage(config.storage.backend, path=config.sqlite_path, dsn=config.storage.dsn)
    await storage.open()
    try:
        await storage.accounts.create(account.domain, account.local, credentials(password))
    finally:
        await storage.close()


@dataclass
class ServerProcess:
    """A roost child process and what tests need to reach it."""

    directory: Path
    config: Path
    c2s: int
    c2s_tls: int
    domains: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    http: int = 0  # the HTTP listener's port (0: none)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    @property
    def cert(self) -> Path:
        """The generated self-signed certificate, to trust in clients."""
        return self.directory / "data" / "roost.crt"

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP listener (WebSocket, BOSH, host-meta)."""
        return f"http://127.0.0.1:{self.http}"

    def client_context(self) -> ssl.SSLContext:
        """A TLS context that trusts this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def start(self) -> None:
        """Start the process and wait until the client port accepts connections."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        seen = len(self.log_text())  # a restart appends: wait for a new "ready" line
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roost", "run", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"roost exited with {self.proc.returncode}:\n{self.log_text()}")
            if "roost ready" in self.log_text()[seen:]:
                return
            time.sleep(0.05)
        raise RuntimeError("roost did not become ready:\n" + self.log_text())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` to the process we started and wait for it; its exit code."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None
        return proc.returncode

    def log_text(self) -> str:
        """Everything the server logged so far."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def add_user(self, local: str, password: str = PASSWORD, domain: str | None = None) -> str:
        """Create an account through the storage; its bare JID.

        Callable from a test's event loop too: the storage runs on a loop of its own in a
        worker thread, and the caller waits as it waited for ``roost user add`` before.
        """
        jid = f"{local}@{domain or self.domains[0]}"
        with ThreadPoolExecutor(1) as worker:
            worker.submit(asyncio.run, create_account(self.config, jid, password)).result()
        return jid

    def add_user_with_cli(self, local: str, password: str = PASSWORD) -> str:
        """Create an account by running ``roost user add``; its bare JID."""
        jid = f"{local}@{self.domains[0]}"
        done = roost_cli("user", "add", "-c", str(self.config), jid, password)
        if done.returncode != 0:
            raise RuntimeError(f"user add {jid} failed: {done.stderr}")
        return jid


def make_server(
    directory: Path,
    *,
    limits: Mapping[str, object] | None = None,
    storage: str = "sqlite",
    dsn: str = "",
    domains: tuple[str, ...] = (DOMAIN,),
    require_tls: bool = True,
    http: bool = False,
    http_options: Mapping[str, object] | None = None,
) -> ServerProcess:
    """Write a config for a test server (not started yet).

    ``http``: also listen for HTTP (WebSocket, BOSH) on a free port; ``http_options`` are
    the keys of its ``[http]`` section.
    """
    directory.mkdir(parents=True, exist_ok=True)
    c2s, c2s_tls = free_port(), free_port()
    http_port = free_port() if http else 0
    # The read rate stays on (its code runs in every test) but far above what a test sends:
    # at the default 10 KiB/s a 64 KiB vCard takes five seconds. Rate tests set their own.
    merged: dict[str, object] = {"exempt_loopback": True, "read_rate": 1 << 20}
    merged.update(limits or {})
    lines = [
        "[server]",
        f"domains = {_toml_value(list(domains))}",
        'data_dir = "data"',
        'log_level = "info"',
        "[listen]",
        f'c2s = "127.0.0.1:{c2s}"',
        f'c2s_tls = "127.0.0.1:{c2s_tls}"',
        's2s = ""',
        'component = ""',
        f'http = "127.0.0.1:{http_port}"' if http else 'http = ""',
        "[tls]",
        f"require_c2s = {_toml_value(require_tls)}",
        "[storage]",
        f"backend = {_toml_value(storage)}",
        f"dsn = {_toml_value(dsn)}",
        "[services]",
        'muc = ""',
        'pubsub = ""',
        'upload = ""',
        "[limits]",
        *(f"{key} = {_toml_value(value)}" for key, value in merged.items()),
        "[http]",
        *(f"{key} = {_toml_value(value)}" for key, value in (http_options or {}).items()),
    ]
    config = directory / "roost.toml"
    config.write_text("\n".join(lines) + "\n")
    loaded = load_config(config)  # the certificate, as `roost init` and `roost run` make it
    loaded.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_certificate(loaded)
    return ServerProcess(directory, config, c2s, c2s_tls, domains, http=http_port)


@contextlib.contextmanager
def running_server(directory: Path, **options: Any) -> Iterator[ServerProcess]:
    """Start a server for the duration of a ``with`` block."""
    server = make_server(directory, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def error_condition(stanza: Element) -> str:
    """The defined condition of an error reply."""
    assert stanza.get("type") == "error", serialize(stanza)
    error = stanza.find("error", NS_CLIENT)
    assert error is not None
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


# -- slixmpp ---------------------------------------------------------------------------------
async def slix_client(
    server: ServerProcess,
    jid: str,
    password: str = PASSWORD,
    *,
    mechanism: str | None = None,
    direct_tls: bool = False,
    presence: bool = True,
    timeout: float = 10.0,
) -> slixmpp.ClientXMPP:
    """A slixmpp client logged in to ``server`` (session started)."""
    client = slixmpp.ClientXMPP(jid, password, sasl_mech=mechanism)
    client.ssl_context = server.client_context()
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0199")
    client.register_plugin("xep_0092")
    client.register_plugin("xep_0202")
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_start(_: object) -> None:
        if presence:
            client.send_presence()
        if not started.done():
            started.set_result(None)

    def on_failure(event: object) -> None:
        if not started.done():
            started.set_exception(RuntimeError(f"authentication failed: {event}"))

    client.add_event_handler("session_start", on_start)
    client.add_event_handler("failed_all_auth", on_failure)
    if direct_tls:
        client.enable_direct_tls = True
        client.enable_starttls = False
        client.connect("127.0.0.1", server.c2s_tls)
    else:
        client.enable_direct_tls = False
        client.connect("127.0.0.1", server.c2s)
    try:
        await asyncio.wait_for(started, timeout)
    except BaseException:
        client.abort()
        raise
    return client


def next_stanza(client: slixmpp.ClientXMPP, event: str = "message") -> asyncio.Future[Any]:
    """A future resolved with the next stanza of ``event`` the client receives."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_stanza(stanza: Any) -> None:
        if not future.done():
            future.set_result(stanza)
            client.del_event_handler(event, on_stanza)

    client.add_event_handler(event, on_stanza)
    return future


async def disconnect(*clients: slixmpp.ClientXMPP) -> None:
    """Close clients cleanly and wait until they are gone."""
    waits = []
    for client in clients:
        done = asyncio.get_running_loop().create_future()
        client.add_event_handler("disconnected", lambda _, d=done: d.done() or d.set_result(None))
        client.disconnect()
        waits.append(done)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*waits), 5)


# -- raw sockets -------------------------------------------------------------------------------
def header(
    to: str = DOMAIN,
    *,
    version: str | None = "1.0",
    xmlns: str = NS_CLIENT,
    stream_ns: str = NS_STREAMS,
    extra: str = "",
) -> bytes:
    """A client stream header."""
    attrs = f" to='{to}'" if to else ""
    if version is not None:
        attrs += f" version='{version}'"
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{xmlns}' xmlns:stream='{stream_ns}'"
        f"{attrs}{extra}>"
    ).encode()


class RawClient:
    """A client that speaks bytes and reads the server's stream with roost's own parser."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parser = StreamParser(max_stanza_bytes=1 << 24, max_depth=1000, max_elements=100000)
        self.events: list[ParseEvent] = []
        self.closed = False
        self.peer_cert: bytes | None = None

    async def connect(self, *, direct_tls: bool = False) -> RawClient:
        """Open TCP (and TLS for the direct-TLS port)."""
        if direct_tls:
            ctx = self.server.client_context()
            ctx.set_alpn_protocols(["xmpp-client"])
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.server.c2s_tls, ssl=ctx, server_hostname=DOMAIN
            )
            self._note_cert()
        else:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.server.c2s)
        return self

    def _note_cert(self) -> None:
        assert self.writer is not None
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.peer_cert = ssl_object.getpeercert(binary_form=True)

    async def send(self, data: bytes | str | Element) -> None:
        """Write bytes, text or an element."""
        assert self.writer is not None
        if isinstance(data, Element):
            data = serialize(data)
        elif isinstance(data, str):
            data = data.encode()
        self.writer.write(data)
        await self.writer.drain()

    async def next(self, timeout: float = 5.0) -> ParseEvent:
        """The next event from the server (header, element or end of stream)."""
        assert self.reader is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.events:
            if self.closed:
                raise EOFError("the server closed the connection")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("nothing from the server")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                self.closed = True
                continue
            self.events.extend(self.parser.feed(data))
        return self.events.pop(0)

    async def element(self, timeout: float = 5.0) -> Element:
        """The next element (headers are skipped)."""
        while True:
            event = await self.next(timeout)
            if isinstance(event, Element):
                return event
            if isinstance(event, StreamEnd):
                raise EOFError("stream ended")

    async def open(self, to: str = DOMAIN) -> Element:
        """Send a header; return the features after the server's header."""
        await self.send(header(to))
        event = await self.next()
        assert isinstance(event, StreamHeader), event
        features = await self.element()
        assert features.name == "features", features
        assert features.xmlns == NS_STREAMS, features
        return features

    async def starttls(self) -> Element:
        """Negotiate STARTTLS and reopen the stream; the new features."""
        await self.send(Element("starttls", NS_TLS))
        proceed = await self.element()
        assert proceed.name == "proceed", proceed
        assert self.writer is not None
        await self.writer.start_tls(self.server.client_context(), server_hostname=DOMAIN)
        self._note_cert()
        self.parser.reset()
        return await self.open()

    async def auth_plain(self, user: str, password: str = PASSWORD) -> Element:
        """One PLAIN attempt; the server's answer (success or failure)."""
        payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        return await self.element()

    async def login(self, user: str, password: str = PASSWORD, resource: str | None = "raw") -> str:
        """STARTTLS, PLAIN, bind: the bound full JID."""
        await self.open()
        await self.starttls()
        answer = await self.auth_plain(user, password)
        assert answer.name == "success", answer
        self.parser.reset()
        await self.open()
        return await self.bind(resource)

    async def bind(self, resource: str | None) -> str:
        """Bind a resource; the full JID."""
        iq = Element("iq", NS_CLIENT, {"type": "set", "id": "bind1"})
        bind = iq.sub("bind", NS_BIND)
        if resource is not None:
            bind.sub("resource", NS_BIND, resource)
        await self.send(iq)
        result = await self.element()
        assert result.get("type") == "result", serialize(result)
        bound = result.find("bind", NS_BIND)
        assert bound is not None
        return bound.find_text("jid", NS_BIND) or ""

    async def stream_error(self, timeout: float = 5.0) -> str:
        """Read until a stream error; its condition. Checks the stream is then closed."""
        while True:
            event = await self.next(timeout)
            if isinstance(event, Element) and event.name == "error" and event.xmlns == NS_STREAMS:
                condition = next(c.name for c in event.elements() if c.name != "text")
                end = await self.next(timeout)
                assert isinstance(end, StreamEnd), end
                return condition

    async def close(self) -> None:
        """Close our side."""
        if self.writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self.writer.close()
                await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_client(
    server: ServerProcess, *, direct_tls: bool = False
) -> AsyncIterator[RawClient]:
    """A connected ``RawClient`` closed at the end of the block."""
    client = RawClient(server)
    await client.connect(direct_tls=direct_tls)
    try:
        yield client
    finally:
        await client.close()
