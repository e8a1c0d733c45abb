"""The server runs on PostgreSQL too: accounts made by the CLI log in and chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slixmpp import JID

from tests.integration.harness import disconnect, next_stanza, running_server, slix_client


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_server_on_postgresql_logs_in_and_delivers(
    postgres_dsn: str, server_dir: Path
) -> None:
    with running_server(server_dir, storage="postgresql", dsn=postgres_dsn) as server:
        alice, bob = server.add_user("alice"), server.add_user("bob")
        a = await slix_client(server, alice + "/a", mechanism="SCRAM-SHA-256")
        b = await slix_client(server, bob + "/b", mechanism="PLAIN")
        received = next_stanza(b)
        a.send_message(mto=JID(bob), mbody="stored in postgres", mtype="chat")
        assert (await asyncio.wait_for(received, 5))["body"] == "stored in postgres"
        await disconnect(a, b)
