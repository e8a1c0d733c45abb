"""An in-process roost for unit tests: a real ``ServerCore`` and in-memory connections.

In the spirit of Twisted's ``XmlPipe`` (``twisted.words.xish.utility``): both ends of a
connection live in the test, nothing touches a socket, and every stanza crosses as the
bytes a client would see (serialized by the server, parsed back by ``roost.xml``), so the
tests assert on what really leaves the server.

- ``Roost``: a configuration file written into a temporary directory (SQLite storage
  there), the core composed and its modules loaded by ``roost.server`` as the running
  server does (built-in modules and entry points, ``[modules.NAME]`` options); no listener.
  Accounts are created in its storage (``add_user``), not by a subprocess.
- ``BoundClient``: the ``Carrier`` of a session bound without a stream (the connection
  layer is not under test): ``send`` routes a stanza as the c2s stream would after binding
  (``from`` stamped, RFC 6120 §8.1.2.1), and what ``router.deliver`` hands over is queued.
- ``StreamClient``: the client end of a real ``C2SConnection`` over a ``Pipe``, the
  in-memory transport (``roost.core.c2s.Connection``). The pipe is the one place that knows
  how the connection writes (``open_stream``, ``send_element``, ``send_serialized``,
  ``close_stream``); it turns each into bytes for the client's parser.

Both clients share ``Inbox``: ``await client.next()`` / ``expect(...)`` with a timeout,
``await client.nothing()`` to assert that nothing (more) was delivered.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Final, Protocol

from roost.auth.credentials import Credentials, derive
from roost.config import load_config
from roost.core.c2s import C2SConnection, open_c2s_connection
from roost.core.hooks import SessionBound
from roost.core.module import Module, ModuleAPI
from roost.core.server import ServerCore
from roost.core.session import Session
from roost.errors import StreamError
from roost.jid import JID
from roost.server import configured_modules, install_modules, unload_modules
from roost.stanzas import error_of
from roost.storage import open_storage
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_STREAMS
from roost.xml.parser import ParseError, StreamEnd, StreamHeader, StreamParser, parse_fragment
from roost.xml.serializer import serialize, stream_header

DOMAIN: Final = "localhost"
PASSWORD: Final = "secret"
PEER: Final = "192.0.2.7"  # TEST-NET-1 (RFC 5737): the address in-memory clients come from
TIMEOUT: Final = 2.0  # seconds a test waits for a stanza that should come
QUIET: Final = 0.05  # seconds a test waits to be sure that nothing comes
STREAM_CLOSE: Final = b"</stream:stream>"
NO_MODULES: Final = "[modules]\nenabled = []\n"  # ``extra`` for a core with the defaults only


def condition(reply: Element) -> str:
    """The defined condition of an error reply (RFC 6120 §8.3)."""
    assert reply.get("type") == "error", serialize(reply)
    return error_of(reply).condition


def stanza(xml: str | Element) -> Element:
    """An element from literal XML (``jabber:client`` is the default namespace)."""
    return xml if isinstance(xml, Element) else parse_fragment(xml.encode())


@functools.cache
def _derived(password: str) -> Credentials:
    return derive(password)  # PBKDF2 is most of an account's cost: once per password


def write_config(directory: Path, domains: tuple[str, ...] = (DOMAIN,), extra: str = "") -> Path:
    """A roost.toml in ``directory``: SQLite there, no listeners; ``extra`` is appended."""
    directory.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{d}"' for d in domains)
    path = directory / "roost.toml"
    path.write_text(
        f'[server]\ndomains = [{listed}]\ndata_dir = "data"\n\n'
        '[listen]\nc2s = ""\nc2s_tls = ""\ns2s = ""\ncomponent = ""\nhttp = ""\n\n'
        '[services]\nmuc = ""\npubsub = ""\nupload = ""\n' + extra,
        encoding="utf-8",
    )
    return path


class Inbox:
    """Elements delivered to a client, in order, awaited with a timeout."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Element] = asyncio.Queue()

    def put(self, element: Element) -> None:
        self._queue.put_nowait(element)

    def __len__(self) -> int:
        return self._queue.qsize()

    async def next(self, timeout: float = TIMEOUT) -> Element:
        """The next delivered element; fails the test when none comes in time."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"nothing was delivered within {timeout}s") from None

    async def expect(
        self, name: str, xmlns: str = NS_CLIENT, timeout: float = TIMEOUT, **attrs: str | None
    ) -> Element:
        """The next element, asserted to be {xmlns}name with ``attrs`` (``from_`` for 'from';
        None: absent)."""
        element = await self.next(timeout)
        wanted = {key.rstrip("_"): value for key, value in attrs.items()}
        got = {key: element.attrs.get(key) for key in wanted}
        assert (element.xmlns, element.name, got) == (xmlns, name, wanted), serialize(element)
        return element

    async def nothing(self, within: float = QUIET) -> None:
        """Assert that no (further) element is delivered within ``within`` seconds."""
        await asyncio.sleep(within)
        assert self._queue.empty(), serialize(self._queue.get_nowait())


class BoundClient(Inbox):
    """A session bound without a stream, and its ``Carrier``: what ``deliver`` hands over."""

    __slots__ = ("closed_with", "core", "data_given", "delivered", "session")

    def __init__(self, core: ServerCore, jid: JID) -> None:
        super().__init__()
        self.core = core
        self.session = Session(core.hosts[jid.domain], jid, self)
        self.closed_with: list[StreamError | None] = []  # each close() the server made
        self.delivered = 0  # stanzas the carrier was given
        self.data_given = 0  # ... of which came serialized already (fan-out)

    @property
    def jid(self) -> JID:
        return self.session.jid

    # -- Carrier ------------------------------------------------------------------------------
    @property
    def peer(self) -> str:
        return PEER

    def send_stanza(self, stanza: Element, data: bytes | None) -> None:
        # What the client would read: the bytes given, or the stanza serialized now.
        self.delivered += 1
        if data is not None:
            self.data_given += 1
        self.put(parse_fragment(serialize(stanza) if data is None else data))

    def close(self, error: StreamError | None = None) -> None:
        self.closed_with.append(error)
        self.core.end_session(self.session, "closed" if error is None else error.condition)

    # -- the client's side --------------------------------------------------------------------
    async def send(self, xml: str | Element) -> Element:
        """Route a stanza from this session (``from`` stamped as the c2s stream does) and
        wait until the server is done with it (RFC 6120 §10.1 order)."""
        element = stanza(xml)
        element.attrs["from"] = self.session.jid_str
        await settle(self.core.router.route(element, self.session))
        return element


class Pipe:
    """The in-memory transport under a ``C2SConnection`` (``roost.core.c2s.Connection``)."""

    __slots__ = (
        "_held",
        "_input",
        "_output",
        "client",
        "closed",
        "connection",
        "holds",
        "paused",
        "peer",
    )

    def __init__(self, client: StreamClient, peer: str) -> None:
        limits = client.core.config.limits
        self.client = client
        self.peer = peer
        self._input = StreamParser(  # the server's parser of what the client sends
            max_stanza_bytes=limits.stanza_size_preauth,
            max_depth=limits.depth_preauth,
            max_header_bytes=limits.header_size,
            max_elements=limits.elements_preauth,
            max_attrs=limits.attributes,
            max_ns_decls=limits.namespace_declarations,
        )
        self._output = StreamParser(max_stanza_bytes=1 << 24)  # the client's parser
        self._held: list[bytes] = []  # sent while reading was paused
        self.closed = False
        self.paused = False
        self.holds = True  # False: feed on while paused (the connection must queue itself)
        self.connection: C2SConnection | None = None

    # -- from the client ----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        connection = self.connection
        if self.closed or connection is None:
            return
        if self.paused and self.holds:
            self._held.append(data)
            return
        connection.last_active = time.monotonic()
        try:
            events = self._input.feed(data)
        except ParseError as err:
            if err.events:
                connection.receive(err.events)
            connection.parse_error(err)
            return
        if events:
            connection.receive(events)

    # -- Connection: what the server writes, as the bytes the client reads -------------------
    def _to_client(self, data: bytes) -> None:
        for event in self._output.feed(data):
            self.client.received(event)

    def open_stream(self, attrs: Mapping[str, str]) -> None:
        self._to_client(stream_header(content_ns=NS_CLIENT, attrs=dict(attrs)))

    def send_element(self, element: Element) -> None:
        self._to_client(serialize(element))

    def send_serialized(self, data: bytes) -> None:
        self._to_client(data)

    def close_stream(self) -> None:
        self._to_client(STREAM_CLOSE)

    def start_tls(self) -> None:
        raise AssertionError("no TLS in memory: the connection is made secure=True")

    def reset_parser(self) -> None:
        self._input.reset()
        self._output.reset()  # the server's next output opens a new stream too

    def set_post_auth_limits(self) -> None:
        limits = self.client.core.config.limits
        self._input.set_limits(
            max_stanza_bytes=limits.stanza_size,
            max_depth=limits.depth,
            max_elements=limits.elements,
        )

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        held, self._held = self._held, []
        for data in held:
            self.feed(data)

    def close(self, *, wait_for_peer: bool) -> None:
        self.closed = True
        connection = self.connection
        if connection is not None:  # the socket goes away after the closing tag
            asyncio.get_running_loop().call_soon(connection.connection_lost)


class StreamClient(Inbox):
    """A client over a real ``C2SConnection``: bytes in, the server's elements out."""

    __slots__ = ("connection", "core", "ended", "headers", "pipe")

    def __init__(self, core: ServerCore, peer: str = PEER) -> None:
        super().__init__()
        self.core = core
        self.headers: list[StreamHeader] = []
        self.ended = False  # the server sent its closing tag
        self.pipe = Pipe(self, peer)
        self.connection = open_c2s_connection(core, self.pipe, peer, secure=True)
        self.pipe.connection = self.connection

    def received(self, event: Element | StreamHeader | StreamEnd) -> None:
        if isinstance(event, Element):
            self.put(event)
        elif isinstance(event, StreamHeader):
            self.headers.append(event)
        else:
            self.ended = True

    @property
    def session(self) -> Session | None:
        return self.connection.session

    def send(self, data: str | bytes | Element) -> None:
        """Bytes from the client (an element is serialized first)."""
        if isinstance(data, Element):
            data = serialize(data)
        self.pipe.feed(data.encode() if isinstance(data, str) else data)

    def open(self, domain: str = DOMAIN) -> None:
        self.send(
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
            f"xmlns:stream='{NS_STREAMS}' to='{domain}' version='1.0'>"
        )

    async def login(self, jid: JID, password: str = PASSWORD, resource: str = "r") -> JID:
        """Open, authenticate with SASL PLAIN (RFC 4616), restart, bind: the bound JID."""
        self.open(jid.domain)
        await self.expect("features", xmlns=NS_STREAMS)
        token = base64.b64encode(f"\0{jid.local}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        await self.expect("success", xmlns=NS_SASL)
        self.open(jid.domain)
        await self.expect("features", xmlns=NS_STREAMS)
        bind = f"<bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind>"
        self.send(f"<iq type='set' id='bind'>{bind}</iq>")
        reply = await self.expect("iq", type="result", id="bind")
        return JID.parse(bound_jid(reply))

    def drop(self) -> None:
        """The transport is gone without a closing tag (a cut TCP connection)."""
        self.pipe.closed = True
        self.connection.connection_lost()


def bound_jid(reply: Element) -> str:
    bind = reply.find("bind", NS_BIND)
    found = None if bind is None else bind.find_text("jid", NS_BIND)
    assert found, serialize(reply)
    return found


async def settle(pending: Awaitable[object] | bool | None) -> None:
    """Wait for what the router or a hook bus returned, if it has to wait."""
    if pending is not None and not isinstance(pending, bool):
        await pending


class ClientFactory(Protocol):
    """The ``client`` fixture: ``await client("alice", "phone")`` → alice@localhost/phone."""

    def __call__(self, user: str, resource: str = "r") -> Awaitable[BoundClient]: ...


class Roost:
    """A started in-process server: config and SQLite in ``directory``, modules loaded."""

    def __init__(self, core: ServerCore, directory: Path) -> None:
        self.core = core
        self.directory = directory
        self.accounts: set[JID] = set()  # made by add_user

    @classmethod
    async def start(
        cls, directory: Path, domains: tuple[str, ...] = (DOMAIN,), extra: str = ""
    ) -> Roost:
        config = load_config(write_config(directory, domains, extra))
        modules, options = configured_modules(config)
        config.server.data_dir.mkdir(parents=True, exist_ok=True)
        storage = open_storage("sqlite", path=config.sqlite_path, dsn="")
        await storage.open()
        core = ServerCore(config, storage, cb_data=None, tls_available=False)
        install_modules(core, modules, options)
        return cls(core, directory)

    async def stop(self) -> None:
        """Close every stream, unload the modules (their tasks awaited), close storage."""
        self.core.shutdown()
        await asyncio.sleep(0)
        await unload_modules(self.core)
        await self.core.storage.close()

    async def add_user(self, user: str, password: str = PASSWORD) -> JID:
        """The account ``user`` (a local part, or user@domain), created in storage once."""
        jid = JID.parse(user if "@" in user else f"{user}@{DOMAIN}")
        assert jid.local is not None
        if jid not in self.accounts:
            await self.core.storage.accounts.create(jid.domain, jid.local, dict(_derived(password)))
            self.accounts.add(jid)
        return jid

    async def bound(self, user: str, resource: str = "r") -> BoundClient:
        """A session of the account ``user`` (created if need be), bound as ``resource``."""
        return await self.bind(await self.add_user(user), resource)

    async def bind(self, account: JID, resource: str = "r") -> BoundClient:
        """A session of ``account`` bound without a stream (as after RFC 6120 §7)."""
        client = BoundClient(self.core, JID(account.local, account.domain, resource))
        self.core.sessions.add(client.session)
        await settle(client.session.host.hooks.fire(SessionBound(client.session)))
        return client

    def api(self, name: str = "test", domain: str = DOMAIN) -> ModuleAPI:
        """The API of a module without a class of its own on ``domain``: registrations made
        through it are undone, and its tasks awaited, when the server stops."""
        host = self.core.hosts[domain]
        api = ModuleAPI(host, name)
        host.modules[name] = (Module(api), api)
        return api

    def connect(self, peer: str = PEER) -> StreamClient:
        """A new client connection (secure, as after direct TLS; nothing sent yet)."""
        return StreamClient(self.core, peer)
