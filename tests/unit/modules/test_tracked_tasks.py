"""Work modules start outside a stanza (api.spawn) is awaited when they are unloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.core.module import stop_module
from roost.storage.last import LastActivityStore
from roost.storage.offline import OfflineStore
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT
from tests.unit.modules.inprocess import bind, running


@pytest.mark.asyncio
async def test_unload_awaits_the_logout_written_when_a_session_ends(tmp_path: Path) -> None:
    async with running(tmp_path, ["last"]) as core:
        alice, _ = bind(core, "alice@a.example/r")
        alice.presence = Element("presence", NS_CLIENT)
        core.end_session(alice, "test")
        module, api = core.hosts["a.example"].modules["last"]
        await stop_module(module, api)
        assert await core.storage.store(LastActivityStore).get("a.example", "alice") is not None


@pytest.mark.asyncio
async def test_unload_awaits_an_offline_delivery_in_flight(tmp_path: Path) -> None:
    async with running(tmp_path, ["offline"]) as core:
        messages = core.storage.store(OfflineStore)
        assert await messages.push("a.example", "alice", b"<message><body/></message>", limit=9)
        alice, inbox = bind(core, "alice@a.example/r")
        alice.presence = Element("presence", NS_CLIENT)
        module, api = core.hosts["a.example"].modules["offline"]
        module.deliver_if_online(alice.jid.bare)  # type: ignore[attr-defined]
        await stop_module(module, api)
        assert [s.name for s in inbox.stanzas] == ["message"]
        assert await messages.count("a.example", "alice") == 0  # delivered, then deleted
