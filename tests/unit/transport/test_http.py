"""The HTTP listener's rules for clients: reverse proxies, secure connections, CORS, URLs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from roost.config import Config, Endpoint, HttpSection
from roost.transport.http import HttpContext

LOOPBACK = Endpoint("127.0.0.1", 5280)
PUBLIC = Endpoint("0.0.0.0", 5280)


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default


def context(endpoint: Endpoint = LOOPBACK, *, tls: bool = False, **http: Any) -> HttpContext:
    core = SimpleNamespace(config=Config(path=Path("roost.toml"), http=HttpSection(**http)))
    return HttpContext(cast(Any, core), endpoint, tls=tls)


def request(peer: str, **headers: str) -> web.Request:
    headers = {"Host": "chat.example.org:5280", **headers}
    return make_mocked_request("GET", "/", headers=headers, transport=_Transport(peer))


def test_loopback_listener_is_secure_and_takes_the_peer_address() -> None:
    info = context().client(request("127.0.0.1"))
    assert (info.ip, info.secure, info.scheme, info.host) == (
        "127.0.0.1",
        True,
        "http",
        "chat.example.org:5280",
    )


def test_plain_listener_on_a_public_address_is_not_secure() -> None:
    assert context(PUBLIC).client(request("198.51.100.4")).secure is False


def test_tls_listener_is_secure_and_https() -> None:
    info = context(PUBLIC, tls=True).client(request("198.51.100.4"))
    assert (info.secure, info.scheme) == (True, "https")


def test_headers_of_an_untrusted_peer_are_ignored() -> None:
    forged = {
        "X-Forwarded-For": "192.0.2.1",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    info = context(PUBLIC).client(request("198.51.100.4", **forged))
    assert (info.ip, info.secure, info.scheme, info.host) == (
        "198.51.100.4",
        False,
        "http",
        "chat.example.org:5280",
    )


def test_trusted_proxy_gives_the_client_address_scheme_and_host() -> None:
    ctx = context(PUBLIC, trusted_proxies=("10.0.0.0/8",))
    headers = {
        "X-Forwarded-For": "192.0.2.1, 198.51.100.9, 10.1.2.3",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "im.example.org",
    }
    info = ctx.client(request("10.0.0.2", **headers))
    # The rightmost address that is not a trusted proxy: what the client side can forge is
    # further left.
    assert (info.ip, info.secure, info.scheme, info.host) == (
        "198.51.100.9",
        True,
        "https",
        "im.example.org",
    )


def test_trusted_proxy_saying_http_makes_even_a_loopback_listener_insecure() -> None:
    info = context().client(request("127.0.0.1", **{"X-Forwarded-Proto": "http"}))
    assert (info.secure, info.scheme) == (False, "http")


def test_forwarded_for_that_is_not_an_address_stops_the_walk() -> None:
    info = context().client(request("127.0.0.1", **{"X-Forwarded-For": "unknown"}))
    assert info.ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (("*",), "https://any.example", True),
        (("https://app.example",), "https://app.example", True),
        (("https://app.example",), "https://evil.example", False),
        ((), "https://app.example", False),
        ((), None, True),
    ],
)
def test_origins(origins: tuple[str, ...], origin: str | None, allowed: bool) -> None:
    assert context(cors_origins=origins).origin_allowed(origin) is allowed


def test_cors_headers_name_the_origin_when_the_list_is_not_any() -> None:
    ctx = context(cors_origins=("https://app.example",))
    headers = ctx.cors_headers(request("127.0.0.1", Origin="https://app.example"))
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Vary"] == "Origin"
    assert ctx.cors_headers(request("127.0.0.1", Origin="https://evil.example")) == {}
    assert context().cors_headers(request("127.0.0.1")) == {}  # no Origin: not a browser


def test_endpoints_use_the_public_url_when_set() -> None:
    ctx = context(public_url="https://chat.example.org")
    assert ctx.endpoints(ctx.client(request("127.0.0.1"))) == [
        ("urn:xmpp:alt-connections:xbosh", "https://chat.example.org/http-bind"),
        ("urn:xmpp:alt-connections:websocket", "wss://chat.example.org/xmpp-websocket"),
    ]
