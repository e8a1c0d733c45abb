"""Interop: go-sendxmpp (a real Go XMPP client, from Debian) logs in and sends a message."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import slixmpp
from slixmpp import JID

from tests.integration.harness import (
    DOMAIN,
    PASSWORD,
    ServerProcess,
    disconnect,
    make_server,
    next_stanza,
    slix_client,
)

GO_SENDXMPP = shutil.which("go-sendxmpp")
pytestmark = pytest.mark.skipif(
    GO_SENDXMPP is None and os.environ.get("CI") != "true",
    reason="go-sendxmpp is not installed (scripts/install-debian-deps.sh installs it)",
)


@pytest.fixture(scope="module")
def interop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = make_server(tmp_path_factory.mktemp("interop") / "roost")
    server.start()
    yield server
    server.stop()


async def go_sendxmpp(
    server: ServerProcess, sender: str, to: str, body: str, *, direct: bool
) -> int:
    assert GO_SENDXMPP is not None, "go-sendxmpp must be installed in CI"
    port = server.c2s_tls if direct else server.c2s
    args = ["-u", sender, "-p", PASSWORD, "-j", f"127.0.0.1:{port}", "-n", "--timeout", "10"]
    if direct:
        args.append("-t")
    proc = await asyncio.create_subprocess_exec(
        GO_SENDXMPP,
        *args,
        to,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(body.encode()), 30)
    assert proc.returncode == 0, err.decode()
    return proc.returncode


@pytest.mark.asyncio
@pytest.mark.parametrize("direct", [False, True], ids=["starttls", "direct-tls"])
async def test_go_sendxmpp_sends_a_message_to_a_slixmpp_user(
    interop_server: ServerProcess, direct: bool
) -> None:
    suffix = "d" if direct else "s"
    # The sender's account is made by `roost user add` beside the running server: the one
    # place the command's own path is tested end to end (elsewhere accounts go through
    # the storage in-process).
    alice = interop_server.add_user_with_cli("goalice" + suffix)
    bob = interop_server.add_user("gobob" + suffix)
    receiver = await slix_client(interop_server, bob + "/desk")
    received = next_stanza(receiver)
    await go_sendxmpp(interop_server, alice, bob, "hello from go-sendxmpp", direct=direct)
    message = await asyncio.wait_for(received, 10)
    assert message["body"].strip() == "hello from go-sendxmpp"
    assert message["from"].bare == alice
    assert message["from"].domain == DOMAIN
    await disconnect(receiver)


def presence_from(client: slixmpp.ClientXMPP, contact: str, kind: str) -> asyncio.Future[None]:
    """A future resolved when ``client`` gets available or unavailable presence of ``contact``
    (the handler is registered at once, so nothing sent after this call is missed)."""
    seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    event = "presence_available" if kind == "available" else "presence_unavailable"

    def check(stanza: Any) -> None:
        if stanza["from"].bare == contact and not seen.done():
            seen.set_result(None)
            client.del_event_handler(event, check)

    client.add_event_handler(event, check)
    return seen


@pytest.mark.asyncio
async def test_two_users_add_each_other_see_presence_and_chat_across_offline(
    interop_server: ServerProcess,
) -> None:
    alice = interop_server.add_user("imalice")
    bob = interop_server.add_user("imbob")
    a = await slix_client(interop_server, alice + "/laptop")
    b = await slix_client(interop_server, bob + "/phone")
    for client in (a, b):  # accept subscription requests and subscribe back, as clients do
        client.auto_authorize = True
        client.auto_subscribe = True
    bob_seen = presence_from(a, bob, "available")
    alice_seen = presence_from(b, alice, "available")
    a.send_presence_subscription(pto=JID(bob))
    await asyncio.wait_for(asyncio.gather(bob_seen, alice_seen), 10)
    roster = await a.get_roster()
    assert roster is not None
    assert roster["roster"]["items"][JID(bob)]["subscription"] == "both"

    gone = presence_from(b, alice, "unavailable")
    await disconnect(a)
    await asyncio.wait_for(gone, 10)
    # bob writes with another real client (go-sendxmpp) while alice is offline
    await go_sendxmpp(interop_server, bob, alice, "while you were away", direct=False)

    a = await slix_client(interop_server, alice + "/laptop", presence=False)
    stored = next_stanza(a)
    back = presence_from(b, alice, "available")
    a.send_presence()
    message = await asyncio.wait_for(stored, 10)
    assert message["body"].strip() == "while you were away"
    assert message["from"].bare == bob
    delay = message.xml.find("{urn:xmpp:delay}delay")  # XEP-0203 stamp of offline storage
    assert delay is not None
    assert delay.get("stamp", "").endswith("Z")
    await asyncio.wait_for(back, 10)
    reply = next_stanza(b)
    a.send_message(mto=JID(bob), mbody="back now", mtype="chat")
    assert (await asyncio.wait_for(reply, 10))["body"] == "back now"
    await disconnect(a, b)
