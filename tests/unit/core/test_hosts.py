"""Hosts are isolated (docs/architecture.md §2): each served domain has its own hook bus,
handlers, filters, pre-route chain and disco data; what a module registers on one host is
never seen on another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from roost.core.hooks import SessionBound, SessionEnded
from roost.core.stanza import HOST, Outbound, Routed
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING
from tests.unit.harness import NO_MODULES, Roost, condition

PING = f"<ping xmlns='{NS_PING}'/>"


@pytest_asyncio.fixture
async def two(tmp_path: Path) -> AsyncIterator[Roost]:
    """A server for "localhost" and "example.org", no modules."""
    roost = await Roost.start(tmp_path / "roost", ("localhost", "example.org"), NO_MODULES)
    yield roost
    await roost.stop()


@pytest.mark.asyncio
async def test_a_hook_on_one_host_does_not_see_another_hosts_events(two: Roost) -> None:
    seen: dict[str, list[str]] = {"localhost": [], "example.org": []}

    def watch(log: list[str]) -> None:
        def bound(event: SessionBound) -> None:
            log.append("bound " + event.session.jid_str)

        def ended(event: SessionEnded) -> None:
            log.append("ended " + event.session.jid_str)

        api.hook(SessionBound, bound)
        api.hook(SessionEnded, ended)

    for domain, log in seen.items():
        api = two.api("watch", domain)
        watch(log)
    alice = await two.bound("alice@localhost")
    romeo = await two.bound("romeo@example.org")
    romeo.close()
    assert seen == {
        "localhost": ["bound alice@localhost/r"],
        "example.org": ["bound romeo@example.org/r", "ended romeo@example.org/r"],
    }
    assert alice.session.host is two.core.hosts["localhost"]


@pytest.mark.asyncio
async def test_handlers_and_filters_of_one_host_see_only_its_stanzas(two: Roost) -> None:
    filtered: list[str] = []

    def note(routed: Routed) -> None:
        filtered.append(str(routed.to))

    api = two.api("local", "localhost")
    api.on_iq("get", HOST, NS_PING, "ping", lambda r: None)
    api.filter(note)
    alice = await two.bound("alice@localhost")
    await alice.send(f"<iq type='get' id='here' to='localhost'>{PING}</iq>")
    await alice.expect("iq", type="result", id="here")
    await alice.send(f"<iq type='get' id='there' to='example.org'>{PING}</iq>")
    reply = await alice.expect("iq", type="error", id="there", from_="example.org")
    assert condition(reply) == "service-unavailable"
    assert filtered == ["localhost"]


@pytest.mark.asyncio
async def test_pre_route_runs_on_the_senders_host_only(two: Roost) -> None:
    seen: list[tuple[str, str]] = []

    def note(out: Outbound) -> None:
        seen.append((out.host.name, str(out.sender)))

    for domain in ("localhost", "example.org"):
        two.api("out", domain).pre_route(note)
    alice = await two.bound("alice@localhost")
    romeo = await two.bound("romeo@example.org")
    await alice.send("<message to='romeo@example.org/r' id='m1'/>")
    await romeo.expect("message", id="m1", from_="alice@localhost/r")
    await romeo.send("<message to='alice@localhost/r' id='m2'/>")
    await alice.expect("message", id="m2", from_="romeo@example.org/r")
    assert seen == [("localhost", "alice@localhost/r"), ("example.org", "romeo@example.org/r")]


@pytest.mark.asyncio
async def test_a_stanza_the_server_sends_skips_pre_route(two: Roost) -> None:
    seen: list[Outbound] = []
    two.api("out", "example.org").pre_route(seen.append)
    alice = await two.bound("alice@localhost")
    message = Element("message", NS_CLIENT, {"from": "example.org", "to": "alice@localhost/r"})
    two.api("sender", "example.org").send(message)
    await alice.expect("message", from_="example.org")
    assert seen == []  # the sender is the domain itself, not one of its accounts


@pytest.mark.asyncio
async def test_disco_data_and_services_are_per_host(two: Roost) -> None:
    local, other = two.api("m", "localhost"), two.api("m", "example.org")
    local.feature("urn:test:one")
    local.identity("server", "im")
    other.feature("urn:test:two", account=True)
    hosts = two.core.hosts
    assert hosts["localhost"].features == ["urn:test:one"]
    assert hosts["localhost"].identities == [("server", "im", None)]
    assert hosts["example.org"].features == []
    assert hosts["example.org"].account_features == ["urn:test:two"]
    local.provide(Marker, Marker())
    assert local.optional(Marker) is not None
    assert other.optional(Marker) is None


class Marker:
    """A service type."""
