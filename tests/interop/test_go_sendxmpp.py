"""Interop: go-sendxmpp (a real Go XMPP client, from Debian) logs in and sends a message."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator

import pytest

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
    alice = interop_server.add_user("goalice" + suffix)
    bob = interop_server.add_user("gobob" + suffix)
    receiver = await slix_client(interop_server, bob + "/desk")
    received = next_stanza(receiver)
    await go_sendxmpp(interop_server, alice, bob, "hello from go-sendxmpp", direct=direct)
    message = await asyncio.wait_for(received, 10)
    assert message["body"].strip() == "hello from go-sendxmpp"
    assert message["from"].bare == alice
    assert message["from"].domain == DOMAIN
    await disconnect(receiver)
