"""Who may read /metrics: loopback by default, after the reverse-proxy rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from roost.config import Config, Endpoint, HttpSection
from roost.transport.http import HttpContext

PUBLIC = Endpoint("0.0.0.0", 5280)


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default


def context(**http: Any) -> HttpContext:
    core = SimpleNamespace(config=Config(path=Path("roost.toml"), http=HttpSection(**http)))
    return HttpContext(cast(Any, core), PUBLIC, tls=False)


def request(peer: str, **headers: str) -> web.Request:
    return make_mocked_request("GET", "/metrics", headers=headers, transport=_Transport(peer))


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("198.51.100.4", False)],
)
def test_by_default_only_loopback_may_read_metrics(peer: str, allowed: bool) -> None:
    assert context().may_read_metrics(request(peer)) is allowed


def test_behind_a_trusted_proxy_the_forwarded_address_decides() -> None:
    ctx = context()
    assert not ctx.may_read_metrics(request("127.0.0.1", **{"X-Forwarded-For": "203.0.113.9"}))
    assert ctx.may_read_metrics(request("127.0.0.1", **{"X-Forwarded-For": "127.0.0.1"}))


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored() -> None:
    forged = request("198.51.100.4", **{"X-Forwarded-For": "127.0.0.1"})
    assert not context().may_read_metrics(forged)


def test_configured_networks_and_nobody() -> None:
    monitoring = context(metrics_allow=("10.1.0.0/16",))
    assert monitoring.may_read_metrics(request("10.1.2.3"))
    assert not monitoring.may_read_metrics(request("127.0.0.1"))
    assert not context(metrics_allow=()).may_read_metrics(request("127.0.0.1"))
