"""Converse.js, the web client people use, in headless Chromium against a real roost.

The test serves Converse.js (npm package ``converse.js``) and ``page/index.html`` from
127.0.0.1 on a port of its own, so the page reaches roost's HTTP listener cross-origin (CORS
for BOSH, the Origin check for WebSocket). ``converse.mjs`` drives Debian's Chromium with
``playwright-core``: Converse logs in over WebSocket, then (a new page, another account)
over BOSH; each time a slixmpp client sends it a message, Converse answers through its chat
box, and the screenshot is saved as ``tests/browser/output/converse-websocket.png`` and
``converse-bosh.png`` (the browser's console log beside them in ``console.log``).

Needs /usr/bin/chromium, node and ``npm ci`` in tests/browser (scripts/install-debian-deps.sh
does all three): without them the test is skipped, or fails when CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
from aiohttp import web
from slixmpp import JID

from tests.integration.harness import (
    PASSWORD,
    ServerProcess,
    disconnect,
    free_port,
    make_server,
    next_stanza,
    slix_client,
)

BROWSER_DIR: Final = Path(__file__).resolve().parent
OUTPUT: Final = BROWSER_DIR / "output"
CHROMIUM: Final = Path("/usr/bin/chromium")
NODE_PACKAGES: Final = ("converse.js", "playwright-core")
STEP_TIMEOUT: Final = 30.0  # seconds for one step (page load + login, one message)


def missing_requirement() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not found (apt-get install nodejs npm)"
    for package in NODE_PACKAGES:
        if not (BROWSER_DIR / "node_modules" / package / "package.json").exists():
            return f"npm package {package} missing (cd tests/browser && npm ci)"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = missing_requirement()
    if reason is None:
        return
    reason += "; scripts/install-debian-deps.sh installs everything the browser test needs"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def web_server(
    browser_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = make_server(tmp_path_factory.mktemp("roost-browser"), http=True)
    process.start()
    for name in ("webws", "webbosh", "bob"):
        process.add_user(name)
    yield process
    process.stop()


@pytest_asyncio.fixture
async def page_url() -> AsyncIterator[str]:
    """Serve the test page and Converse.js's dist/ from 127.0.0.1 (another origin)."""
    app = web.Application()
    page = BROWSER_DIR / "page" / "index.html"

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(page)

    app.router.add_get("/", index)
    app.router.add_static("/dist", BROWSER_DIR / "node_modules" / "converse.js" / "dist")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def next_event(proc: asyncio.subprocess.Process, wanted: str) -> dict[str, Any]:
    """The next progress line of converse.mjs, which must be ``wanted``."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT * 2)
    if not line:
        pytest.fail(f"converse.mjs ended while waiting for {wanted!r}; see {OUTPUT}/console.log")
    event: dict[str, Any] = json.loads(line)
    if event["event"] == "error":
        pytest.fail(f"in the browser: {event['message']}; see {OUTPUT}/console.log")
    assert event["event"] == wanted, event
    return event


@pytest.mark.asyncio
async def test_converse_logs_in_over_websocket_and_bosh_and_chats_with_slixmpp(
    web_server: ServerProcess, page_url: str
) -> None:
    OUTPUT.mkdir(exist_ok=True)
    for old in OUTPUT.glob("converse-*.png"):
        old.unlink()
    base = web_server.http_url
    runs = [
        {
            "transport": "websocket",
            "service": "ws" + base.removeprefix("http") + "/xmpp-websocket",
            "jid": "webws@localhost",
            "incoming": "Hello over WebSocket, from slixmpp",
            "outgoing": "Converse answers over WebSocket",
        },
        {
            "transport": "bosh",
            "service": base + "/http-bind",
            "jid": "webbosh@localhost",
            "incoming": "Hello over BOSH, from slixmpp",
            "outgoing": "Converse answers over BOSH",
        },
    ]
    config = {
        "chromium": str(CHROMIUM),
        "pageUrl": page_url,
        "outputDir": str(OUTPUT),
        "timeoutMs": int(STEP_TIMEOUT * 1000),
        "runs": [{**run, "password": PASSWORD} for run in runs],
    }
    bob = await slix_client(web_server, "bob@localhost/tcp")
    with (OUTPUT / "console.log").open("wb") as console:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(BROWSER_DIR / "converse.mjs"),
            json.dumps(config),
            cwd=BROWSER_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=console,
        )
        try:
            for run in runs:
                connected = await next_event(proc, "connected")
                assert JID(connected["jid"]).bare == run["jid"]
                assert connected["service"] == run["service"]  # connected over this transport
                reply = next_stanza(bob)
                bob.send_message(mto=JID(connected["jid"]), mbody=run["incoming"], mtype="chat")
                message = await asyncio.wait_for(reply, STEP_TIMEOUT * 2)
                assert message["body"] == run["outgoing"]
                assert message["from"].bare == run["jid"]
                await next_event(proc, "sent")
                shot = await next_event(proc, "screenshot")
                assert await asyncio.to_thread(os.path.getsize, shot["path"]) > 10_000
            await next_event(proc, "done")
            assert await asyncio.wait_for(proc.wait(), STEP_TIMEOUT) == 0
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            await disconnect(bob)
