"""The session runner (``roost.core.c2s``) over an in-memory transport: a real
``C2SConnection`` from stream open (RFC 6120 §4) through SASL PLAIN (§6, RFC 4616) and
binding (§7) to stanzas both ways, in-order processing (§10.1), and the ends of a stream
(§4.4 close, a cut connection, a stream error, a conflicting bind)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from roost.core.hooks import Authenticated, SessionBound, SessionEnded
from roost.core.stanza import HOST, IqRequest
from roost.xml.element import Element
from roost.xml.ns import NS_SASL, NS_STREAM_ERRORS, NS_STREAMS
from tests.unit.harness import PEER, QUIET, Roost, StreamClient

NS = "urn:test"


def stream_condition(error: Element) -> str:
    assert (error.xmlns, error.name) == (NS_STREAMS, "error")
    return next(c.name for c in error.elements() if c.xmlns == NS_STREAM_ERRORS)


def events_of(bare: Roost) -> list[str]:
    """What the host's hook bus reports, as text."""
    seen: list[str] = []
    api = bare.api("watch")
    api.hook(Authenticated, lambda e: seen.append(f"auth {e.jid} {e.mechanism} {e.address}"))
    api.hook(SessionBound, lambda e: seen.append("bound " + e.session.jid_str))
    api.hook(SessionEnded, lambda e: seen.append(f"ended {e.session.jid_str}: {e.reason}"))
    return seen


async def logged_in(bare: Roost, user: str = "juliet", resource: str = "balcony") -> StreamClient:
    client = bare.connect()
    await client.login(await bare.add_user(user), resource=resource)
    return client


@pytest.mark.asyncio
async def test_stream_open_answers_a_header_and_the_mechanisms(bare: Roost) -> None:
    client = bare.connect()
    client.open()
    features = await client.expect("features", NS_STREAMS)
    (header,) = client.headers
    assert (header.attrs.get("from"), header.attrs.get("version")) == ("localhost", "1.0")
    assert header.attrs.get("id")
    mechanisms = features.find("mechanisms", NS_SASL)
    assert mechanisms is not None
    assert "PLAIN" in [m.text for m in mechanisms.elements()]


@pytest.mark.asyncio
async def test_login_binds_a_session_the_host_is_told_about(bare: Roost) -> None:
    seen = events_of(bare)
    client = await logged_in(bare)
    assert client.session is not None
    assert bare.core.sessions.get("juliet@localhost/balcony") is client.session
    assert client.session.carrier is client.connection
    assert seen == [
        f"auth juliet@localhost PLAIN {PEER}",
        "bound juliet@localhost/balcony",
    ]
    assert len(client.headers) == 2  # the stream restarted after SASL


@pytest.mark.asyncio
async def test_a_wrong_password_is_not_authorized(bare: Roost) -> None:
    await bare.add_user("juliet")
    client = bare.connect()
    client.open()
    await client.expect("features", NS_STREAMS)
    token = base64.b64encode(b"\0juliet\0wrong").decode()
    client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
    failure = await client.expect("failure", NS_SASL)
    assert [c.name for c in failure.elements()] == ["not-authorized"]
    assert client.session is None
    assert len(bare.core.sessions) == 0


@pytest.mark.asyncio
async def test_stanzas_go_in_stamped_and_come_out_through_deliver(bare: Roost) -> None:
    client = await logged_in(bare)
    romeo = await bare.bound("romeo")
    client.send("<message to='romeo@localhost/r' id='in' from='juliet@localhost'><body/></message>")
    await romeo.expect("message", id="in", from_="juliet@localhost/balcony")
    await romeo.send("<message to='juliet@localhost/balcony' id='out'><body>hi</body></message>")
    got = await client.expect("message", id="out", from_="romeo@localhost/r")
    assert got.find_text("body") == "hi"


@pytest.mark.parametrize("holds", [True, False], ids=["transport-holds", "connection-queues"])
@pytest.mark.asyncio
async def test_stanzas_wait_behind_one_that_waits(bare: Roost, holds: bool) -> None:
    gate = asyncio.Event()
    order: list[str] = []

    async def slow(request: IqRequest) -> None:
        order.append("slow")
        await gate.wait()

    def quick(request: IqRequest) -> None:
        order.append("quick")

    api = bare.api()
    api.on_iq("get", HOST, NS, "slow", slow)
    api.on_iq("get", HOST, NS, "quick", quick)
    client = await logged_in(bare)
    client.pipe.holds = holds
    client.send(
        f"<iq type='get' id='1' to='localhost'><slow xmlns='{NS}'/></iq>"
        f"<iq type='get' id='2' to='localhost'><quick xmlns='{NS}'/></iq>"
    )
    client.send(f"<iq type='get' id='3' to='localhost'><quick xmlns='{NS}'/></iq>")
    await asyncio.sleep(QUIET)
    assert order == ["slow"]
    assert client.pipe.paused  # reading paused while the session waits
    gate.set()
    for iq_id in ("1", "2", "3"):  # RFC 6120 §10.1: in the order sent
        await client.expect("iq", type="result", id=iq_id)
    assert order == ["slow", "quick", "quick"]
    assert not client.pipe.paused


@pytest.mark.asyncio
async def test_a_closing_tag_ends_the_stream_and_the_session(bare: Roost) -> None:
    seen = events_of(bare)
    client = await logged_in(bare)
    client.send("</stream:stream>")
    await asyncio.sleep(0)
    assert client.ended
    assert client.pipe.closed
    assert len(bare.core.sessions) == 0
    assert seen[-1] == "ended juliet@localhost/balcony: closed by client"
    assert client.connection not in bare.core.connections


@pytest.mark.asyncio
async def test_a_lost_connection_ends_the_session(bare: Roost) -> None:
    seen = events_of(bare)
    client = await logged_in(bare)
    session = client.session
    assert session is not None
    client.drop()
    assert seen[-1] == "ended juliet@localhost/balcony: connection closed"
    assert session.closed
    assert bare.core.sessions.get(session.jid_str) is None
    assert not client.ended  # nobody wrote a closing tag to a gone connection


@pytest.mark.asyncio
async def test_a_forged_from_is_a_stream_error(bare: Roost) -> None:
    seen = events_of(bare)
    client = await logged_in(bare)
    client.send("<message to='romeo@localhost' from='romeo@localhost/x'/>")
    assert stream_condition(await client.expect("error", NS_STREAMS)) == "invalid-from"
    await asyncio.sleep(0)
    assert client.ended
    assert seen[-1] == "ended juliet@localhost/balcony: invalid-from"


@pytest.mark.asyncio
async def test_a_second_bind_of_the_same_resource_replaces_the_first(bare: Roost) -> None:
    first = await logged_in(bare)
    second = await logged_in(bare)
    assert stream_condition(await first.expect("error", NS_STREAMS)) == "conflict"
    await asyncio.sleep(0)
    assert first.ended
    assert bare.core.sessions.get("juliet@localhost/balcony") is second.session


@pytest.mark.parametrize("domain", ["rooms.localhost", "nowhere.example"])
@pytest.mark.asyncio
async def test_a_stream_to_a_domain_without_logins_is_host_unknown(
    bare: Roost, domain: str
) -> None:
    bare.core.add_service_host("rooms.localhost")
    client = bare.connect()
    client.open(domain)
    assert stream_condition(await client.expect("error", NS_STREAMS)) == "host-unknown"
    assert client.ended


@pytest.mark.asyncio
async def test_stanzas_before_a_parse_error_are_processed_first(bare: Roost) -> None:
    client = await logged_in(bare)
    romeo = await bare.bound("romeo")
    client.send("<message to='romeo@localhost/r' id='before'/><message <<")
    await romeo.expect("message", id="before")
    assert stream_condition(await client.expect("error", NS_STREAMS)) == "not-well-formed"
    assert client.session is not None
    assert client.session.closed
