"""Blocking (XEP-0191) at the router's three points, in process: the sender's pre-route
handler, the recipient's filter, and the outgoing filter on delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.core.server import ServerCore
from roost.core.session import Session
from roost.modules import blocking
from roost.storage.blocking import BlockingStore
from roost.xml.element import Element
from roost.xml.ns import NS_BLOCKING, NS_BLOCKING_ERRORS, NS_CLIENT, NS_STANZAS
from tests.unit.modules.inprocess import Inbox, bind, running

ALICE, BOB, EVE = "alice@a.example/r", "bob@a.example/r", "eve@a.example/r"


async def route(core: ServerCore, stanza: Element, origin: Session | None = None) -> None:
    pending = core.router.route(stanza, origin)
    if pending is not None:
        await pending


def message(sender: str, to: str, kind: str | None = None) -> Element:
    stanza = Element("message", NS_CLIENT, {"from": sender, "to": to, "id": "m1"})
    if kind is not None:
        stanza.attrs["type"] = kind
    return stanza


async def block(core: ServerCore, session: Session, inbox: Inbox, jid: str) -> None:
    """``session`` blocks ``jid``; its inbox is emptied of the answer."""
    iq = Element("iq", NS_CLIENT, {"type": "set", "id": "b1", "from": session.jid_str})
    iq.sub("block", NS_BLOCKING).sub("item", NS_BLOCKING, jid=jid)
    await route(core, iq, session)
    inbox.stanzas.clear()


def conditions(inbox: Inbox) -> list[tuple[str, list[str]]]:
    """(sender, [conditions and application conditions]) of each error received."""
    found = []
    for stanza in inbox.stanzas:
        error = stanza.find("error", NS_CLIENT)
        if stanza.get("type") == "error" and error is not None:
            wanted = (NS_STANZAS, NS_BLOCKING_ERRORS)
            names = [c.name for c in error.elements() if c.xmlns in wanted]
            found.append((stanza.get("from") or "", names))
    return found


@pytest.mark.asyncio
async def test_what_was_held_from_a_jid_blocked_since_is_not_delivered(tmp_path: Path) -> None:
    async with running(tmp_path, ["blocking", "offline"]) as core:
        alice, inbox = bind(core, ALICE)
        await block(core, alice, inbox, "eve@a.example")
        held = [  # as offline storage and held subscription requests hand them over
            message(EVE, "alice@a.example", "chat"),
            Element("presence", NS_CLIENT, {"from": "eve@a.example", "type": "subscribe"}),
        ]
        passing = [
            message(BOB, "alice@a.example", "chat"),
            message(EVE, ALICE, "error"),  # the server's answer to what alice sent
            Element("presence", NS_CLIENT, {"from": EVE, "type": "unavailable"}),  # §3.3
            Element("iq", NS_CLIENT, {"type": "set", "id": "push"}),  # the server's own
        ]
        for stanza in held + passing:
            core.router.deliver(alice, stanza)
        assert inbox.stanzas == passing


@pytest.mark.asyncio
async def test_the_first_stanza_a_user_sends_loads_the_list_for_delivery(tmp_path: Path) -> None:
    async with running(tmp_path, ["blocking"]) as core:
        await core.storage.store(BlockingStore).add("a.example", "alice", ["eve@a.example"])
        alice, inbox = bind(core, ALICE)
        await route(core, Element("presence", NS_CLIENT, {"from": ALICE}), alice)
        inbox.stanzas.clear()
        core.router.deliver(alice, message(EVE, ALICE, "chat"))
        assert inbox.stanzas == []


@pytest.mark.asyncio
async def test_stanzas_to_a_blocked_domain_are_refused_whatever_the_destination(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, ["blocking"]) as core:
        alice, inbox = bind(core, ALICE)
        await block(core, alice, inbox, "remote.example")
        await route(core, message(ALICE, "x@remote.example", "chat"), alice)
        assert conditions(inbox) == [("x@remote.example", ["not-acceptable", "blocked"])]


@pytest.mark.asyncio
async def test_refusals_of_server_routed_stanzas_reach_the_sender_past_the_policy(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, ["blocking"]) as core:
        alice, alice_inbox = bind(core, ALICE)
        _, bob_inbox = bind(core, BOB)
        await block(core, alice, alice_inbox, "bob@a.example")
        # routed by the server on bob's behalf (no session): alice blocks bob
        await route(core, message(BOB, "alice@a.example", "chat"))
        assert conditions(bob_inbox) == [("alice@a.example", ["service-unavailable"])]
        # and on alice's behalf to bob, whom she blocks: her own refusal reaches her
        await route(core, message(ALICE, "bob@a.example", "chat"))
        assert conditions(alice_inbox) == [("bob@a.example", ["not-acceptable", "blocked"])]


@pytest.mark.asyncio
async def test_a_full_cache_keeps_the_lists_of_users_with_a_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocking, "CACHE_SIZE", 2)
    async with running(tmp_path, ["blocking"]) as core:
        alice, inbox = bind(core, ALICE)
        await block(core, alice, inbox, "eve@a.example")
        module = core.hosts["a.example"].modules["blocking"][0]
        assert isinstance(module, blocking.Blocking)
        for user in ("u1", "u2", "u3", "u4"):
            await module.items(user)
        inbox.stanzas.clear()
        core.router.deliver(alice, message(EVE, ALICE, "chat"))
        assert inbox.stanzas == []
