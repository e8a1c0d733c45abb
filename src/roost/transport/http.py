"""The HTTP listener: one aiohttp application for web clients (docs/architecture.md).

Routes:
- ``/xmpp-websocket``: XMPP over WebSocket, RFC 7395 (``roost.transport.websocket``);
- ``/http-bind``: BOSH, XEP-0124 and XEP-0206 (``roost.transport.bosh``);
- ``/.well-known/host-meta`` and ``/.well-known/host-meta.json``: XEP-0156 §3 (XRD and JRD),
  naming both endpoints under ``[http].public_url``, or the scheme and host of the request;
- ``/metrics``: the server's counters in the Prometheus text format (``roost.core.metrics``),
  only for clients whose address (after the reverse-proxy rules) is in
  ``[http].metrics_allow`` (default: loopback); anyone else gets 403.

CORS (the Fetch standard) for BOSH and host-meta: ``[http].cors_origins`` (``"*"``: any);
preflight ``OPTIONS`` answered with 204. A browser's WebSocket ``Origin`` is checked against
the same list.

Both web transports drive the c2s machine through ``C2SConnection`` like TCP does, with STARTTLS
never offered (TLS belongs to the HTTP layer) and no channel binding (the HTTP certificate may
be a proxy's). A connection counts as secure (RFC 6120 §13.8: PLAIN offered, ``[tls].
require_c2s`` satisfied) when the listener is TLS (``[http].tls``) or bound to loopback, unless
a trusted reverse proxy (``[http].trusted_proxies``) says otherwise: its
``X-Forwarded-Proto`` decides, and its ``X-Forwarded-For`` gives the client address used by the
per-IP limits. Headers from other peers are ignored.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from roost.core.c2s import C2SConnection, Connection, open_c2s_connection
from roost.core.metrics import CONTENT_TYPE, metrics_registry, render
from roost.transport.bosh import BoshEndpoint
from roost.transport.websocket import WebSocketEndpoint
from roost.xml.element import Element
from roost.xml.ns import NS_XRD
from roost.xml.serializer import serialize

if TYPE_CHECKING:
    from roost.config import Endpoint, HttpSection
    from roost.core.server import ServerCore

WEBSOCKET_PATH: Final = "/xmpp-websocket"
BOSH_PATH: Final = "/http-bind"
HOST_META: Final = "/.well-known/host-meta"
HOST_META_JSON: Final = "/.well-known/host-meta.json"
METRICS_PATH: Final = "/metrics"
CORS_PATHS: Final = frozenset({BOSH_PATH, HOST_META, HOST_META_JSON})
CORS_MAX_AGE: Final = "7200"
SHUTDOWN_TIMEOUT: Final = 1.0  # seconds for in-flight requests when the server stops

REL_BOSH: Final = "urn:xmpp:alt-connections:xbosh"
REL_WEBSOCKET: Final = "urn:xmpp:alt-connections:websocket"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What one request says about its client, after the reverse-proxy rules."""

    ip: str
    secure: bool
    scheme: str  # "http" or "https", as the client sees it
    host: str  # the Host the client asked for


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first(value: str | None) -> str | None:
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


class HttpContext:
    """Shared by the routes: the core, the settings and the rules for clients and origins."""

    __slots__ = (
        "_any_origin",
        "_metrics_allow",
        "_origins",
        "_proxies",
        "core",
        "loopback",
        "settings",
        "tls",
    )

    def __init__(self, core: ServerCore, endpoint: Endpoint, *, tls: bool) -> None:
        self.core = core
        self.settings: HttpSection = core.config.http
        self.tls = tls
        self.loopback = _is_loopback(endpoint.host)
        self._proxies: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in self.settings.trusted_proxies
        )
        self._metrics_allow: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in self.settings.metrics_allow
        )
        self._any_origin = "*" in self.settings.cors_origins
        self._origins = frozenset(self.settings.cors_origins)

    # -- clients -----------------------------------------------------------------------------
    def _trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def client(self, request: web.BaseRequest) -> ClientInfo:
        """The client's address, whether the connection is secure, and its URL base."""
        peer = request.remote or "unknown"
        ip, proto, host = peer, None, request.host
        if self._trusted(peer):
            ip = self._forwarded_ip(peer, request.headers.getall("X-Forwarded-For", []))
            proto = _first(request.headers.get("X-Forwarded-Proto"))
            host = _first(request.headers.get("X-Forwarded-Host")) or host
        if proto is None:
            scheme = "https" if self.tls else "http"
            secure = self.tls or self.loopback
        else:
            scheme = "https" if proto.lower() == "https" else "http"
            secure = scheme == "https"
        return ClientInfo(ip, secure, scheme, host)

    def may_read_metrics(self, request: web.BaseRequest) -> bool:
        """The client's address (after the proxy rules) is in ``[http].metrics_allow``."""
        try:
            address = ipaddress.ip_address(self.client(request).ip)
        except ValueError:
            return False
        return any(address in network for network in self._metrics_allow)

    def _forwarded_ip(self, peer: str, headers: list[str]) -> str:
        """The rightmost address in X-Forwarded-For that is not a trusted proxy."""
        hops = [hop.strip() for header in headers for hop in header.split(",")]
        client = peer
        for hop in reversed(hops):
            try:
                hop = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # not an address: believe nothing further left
            client = hop
            if not self._trusted(hop):
                break
        return client

    # -- origins -----------------------------------------------------------------------------
    def origin_allowed(self, origin: str | None) -> bool:
        """Cross-origin use allowed for this Origin (no Origin: not a browser, allowed)."""
        return origin is None or self._any_origin or origin in self._origins

    def cors_headers(self, request: web.BaseRequest) -> dict[str, str]:
        """The CORS response headers for a request, none when its origin is not allowed."""
        origin = request.headers.get("Origin")
        if origin is None or not self.origin_allowed(origin):
            return {}
        headers = {
            "Access-Control-Allow-Origin": "*" if self._any_origin else origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": CORS_MAX_AGE,
        }
        if not self._any_origin:
            headers["Vary"] = "Origin"
        return headers

    # -- sessions ----------------------------------------------------------------------------
    def open_session(self, conn: Connection, info: ClientInfo) -> C2SConnection:
        """A client session on a web transport, counted by the per-IP limits like TCP."""
        # STARTTLS cannot run inside a web transport and its TLS is not ours to bind to.
        return open_c2s_connection(
            self.core, conn, info.ip, secure=info.secure, starttls=False, channel_binding=False
        )

    # -- XEP-0156 ----------------------------------------------------------------------------
    def base_url(self, info: ClientInfo) -> str:
        """The public URL of this listener."""
        return self.settings.public_url or f"{info.scheme}://{info.host}"

    def endpoints(self, info: ClientInfo) -> list[tuple[str, str]]:
        """(rel, href) of the BOSH and WebSocket endpoints, as XEP-0156 names them."""
        base = self.base_url(info)
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return [(REL_BOSH, base + BOSH_PATH), (REL_WEBSOCKET, ws_base + WEBSOCKET_PATH)]


async def host_meta(ctx: HttpContext, request: web.Request) -> web.Response:
    """XEP-0156 §3.1: the XRD document."""
    xrd = Element("XRD", NS_XRD)
    for rel, href in ctx.endpoints(ctx.client(request)):
        xrd.sub("Link", rel=rel, href=href)
    body = b"<?xml version='1.0' encoding='utf-8'?>\n" + serialize(xrd, "") + b"\n"
    return web.Response(body=body, content_type="application/xrd+xml", charset="utf-8")


async def host_meta_json(ctx: HttpContext, request: web.Request) -> web.Response:
    """XEP-0156 §3.2: the JRD document."""
    links = [{"rel": rel, "href": href} for rel, href in ctx.endpoints(ctx.client(request))]
    return web.Response(text=json.dumps({"links": links}), content_type="application/json")


class MetricsEndpoint:
    """``/metrics``: the Prometheus text exposition, for allowed addresses only."""

    __slots__ = ("_ctx", "_registry")

    def __init__(self, ctx: HttpContext) -> None:
        self._ctx = ctx
        self._registry = metrics_registry(ctx.core)

    async def handle(self, request: web.Request) -> web.Response:
        """The metrics, or 403 for an address not in ``[http].metrics_allow``."""
        if not self._ctx.may_read_metrics(request):
            return web.Response(status=403, text="metrics are not available to your address\n")
        return web.Response(body=render(self._registry), headers={"Content-Type": CONTENT_TYPE})


def cors_middleware(ctx: HttpContext) -> Middleware:
    """Answer preflights and add the CORS headers on the CORS paths."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in CORS_PATHS:
            return await handler(request)
        headers = ctx.cors_headers(request)
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.update(headers)
        return response

    return cors


def make_app(ctx: HttpContext) -> web.Application:
    """The application with every route."""
    app = web.Application(middlewares=[cors_middleware(ctx)])
    websocket = WebSocketEndpoint(ctx)
    bosh = BoshEndpoint(ctx)
    app.router.add_get(WEBSOCKET_PATH, websocket.handle)
    app.router.add_post(BOSH_PATH, bosh.handle)
    app.router.add_get(BOSH_PATH, bosh.info)
    app.router.add_get(HOST_META, functools.partial(host_meta, ctx))
    app.router.add_get(HOST_META_JSON, functools.partial(host_meta_json, ctx))
    app.router.add_get(METRICS_PATH, MetricsEndpoint(ctx).handle)
    for path in CORS_PATHS:
        app.router.add_route("OPTIONS", path, _no_content)
    app.on_shutdown.append(lambda _app: bosh.shutdown())
    return app


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)  # the CORS middleware answers preflights first


class HttpListener:
    """The running HTTP listener."""

    __slots__ = ("_endpoint", "_runner", "_tls", "context")

    def __init__(self, core: ServerCore, endpoint: Endpoint, tls: ssl.SSLContext | None) -> None:
        self.context = HttpContext(core, endpoint, tls=tls is not None)
        self._runner = web.AppRunner(
            make_app(self.context), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        self._endpoint = endpoint
        self._tls = tls

    async def start(self) -> None:
        """Listen."""
        endpoint = self._endpoint
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, endpoint.host, endpoint.port, ssl_context=self._tls, reuse_address=True
        )
        await site.start()

    @property
    def address(self) -> str:
        """Where it listens, for the log."""
        addresses = self._runner.addresses
        return str(tuple(addresses[0][:2])) if addresses else "?"

    async def stop(self) -> None:
        """Stop listening and end what is left (held BOSH requests, WebSockets)."""
        await self._runner.cleanup()
