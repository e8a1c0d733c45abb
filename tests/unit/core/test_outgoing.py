"""The way out (docs/architecture.md §4): ``router.deliver`` runs the host's outgoing filters,
then the session's own chain, then the carrier, and it is the only way a stanza reaches a
client: with every module loaded, a filter that counts sees exactly what the clients get."""

from __future__ import annotations

import asyncio

import pytest

from roost.core.hooks import ARCHIVE, DEFAULT, FILTER
from roost.core.router import deliver_all
from roost.core.session import OutgoingFilter, Session
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_ROSTER
from roost.xml.serializer import serialize
from tests.unit.harness import QUIET, BoundClient, ClientFactory, Roost


def message(to: str, msg_id: str = "m1") -> Element:
    return Element("message", NS_CLIENT, {"from": "localhost", "to": to, "id": msg_id})


@pytest.mark.asyncio
async def test_host_filters_run_by_priority_then_the_sessions_chain(bare: Roost) -> None:
    order: list[str] = []

    def step(name: str) -> OutgoingFilter:
        def run(session: Session, stanza: Element) -> Element:
            order.append(name)
            return stanza

        return run

    api = bare.api()
    api.outgoing(step("host default"), DEFAULT)
    api.outgoing(step("host filter"), FILTER)
    alice = await bare.bound("alice")
    alice.session.outgoing.append(step("session"))
    bare.core.router.deliver(alice.session, message("alice@localhost/r"))
    assert order == ["host filter", "host default", "session"]
    await alice.expect("message", id="m1")


@pytest.mark.asyncio
async def test_a_step_that_returns_none_consumes_the_stanza(bare: Roost) -> None:
    later: list[str] = []

    def hold(session: Session, stanza: Element) -> Element | None:
        return None if stanza.get("id") == "held" else stanza

    def session_step(session: Session, stanza: Element) -> Element:
        later.append(stanza.attrs["id"])
        return stanza

    bare.api().outgoing(hold)
    alice = await bare.bound("alice")
    alice.session.outgoing.append(session_step)
    bare.core.router.deliver(alice.session, message("alice@localhost/r", "held"))
    bare.core.router.deliver(alice.session, message("alice@localhost/r", "passed"))
    await alice.expect("message", id="passed")
    await alice.nothing()
    assert later == ["passed"]  # the session's chain never saw the consumed stanza


@pytest.mark.asyncio
async def test_a_replaced_stanza_is_what_is_written_and_stale_bytes_are_dropped(
    bare: Roost,
) -> None:
    def rewrite(session: Session, stanza: Element) -> Element:
        if stanza.get("id") != "rewrite":
            return stanza
        copy = stanza.copy()
        copy.sub("body", text="rewritten")
        return copy

    bare.api().outgoing(rewrite)
    alice, bob = await bare.bound("alice"), await bare.bound("bob")
    original = message("alice@localhost/r", "rewrite")
    deliver_all(bare.core.router, [alice.session], original, serialize(original))
    got = await alice.expect("message", id="rewrite")
    assert got.find_text("body") == "rewritten"
    assert alice.data_given == 0  # the serialized original was not written
    same = message("bob@localhost/r", "same")
    deliver_all(bare.core.router, [bob.session], same, serialize(same))
    await bob.expect("message", id="same")
    assert bob.data_given == 1


@pytest.mark.asyncio
async def test_a_failing_step_is_skipped_and_a_closed_session_gets_nothing(bare: Roost) -> None:
    def broken(session: Session, stanza: Element) -> Element:
        raise RuntimeError("a bug")

    bare.api().outgoing(broken, ARCHIVE)
    alice = await bare.bound("alice")
    bare.core.router.deliver(alice.session, message("alice@localhost/r"))
    await alice.expect("message", id="m1")
    alice.close()
    assert alice.session.closed
    bare.core.router.deliver(alice.session, message("alice@localhost/r", "late"))
    await alice.nothing()


@pytest.mark.asyncio
async def test_deliver_is_the_only_way_out_for_every_module(
    server: Roost, client: ClientFactory
) -> None:
    counted: dict[str, int] = {}

    def count(session: Session, stanza: Element) -> Element:
        counted[session.jid_str] = counted.get(session.jid_str, 0) + 1
        return stanza

    server.api("counter").outgoing(count, FILTER)
    alice, bob = await client("alice"), await client("bob")
    phone = await client("alice", "phone")
    await dialogue(alice, bob, phone)
    got = {c.session.jid_str: c.delivered for c in (alice, bob, phone)}
    assert all(got.values()), got  # the dialogue really delivered to everyone
    assert counted == got


async def dialogue(alice: BoundClient, bob: BoundClient, phone: BoundClient) -> None:
    """Roster, subscription, presence broadcast, messages to bare and full JIDs, iq errors."""
    for who in (alice, bob, phone):
        await who.send(f"<iq type='get' id='roster'><query xmlns='{NS_ROSTER}'/></iq>")
        await who.send("<presence/>")
    await alice.send("<presence to='bob@localhost' type='subscribe'/>")
    await bob.send("<presence to='alice@localhost' type='subscribed'/>")
    await bob.send("<presence to='alice@localhost' type='subscribe'/>")
    await alice.send("<presence to='bob@localhost' type='subscribed'/>")
    await bob.send("<message to='alice@localhost' type='chat'><body>hi</body></message>")
    await alice.send("<message to='bob@localhost/r'><body>hello</body></message>")
    await phone.send("<iq type='get' id='x' to='bob@localhost/gone'><q xmlns='urn:t'/></iq>")
    await bob.send("<presence type='unavailable'/>")
    await asyncio.sleep(QUIET)  # what modules finish in their tasks
