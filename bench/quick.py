"""A quick single-run measure: logins per second and messages per second (roost alone).

Starts its own roost on free loopback ports with a throw-away data directory, creates the
accounts through the storage API, then measures from this process:

- logins/s: W concurrent workers each log in L times (TCP, STARTTLS, SASL SCRAM-SHA-1,
  bind), closing after each login;
- messages/s: P sender/receiver pairs; each sender sends M chat messages to its receiver's
  full JID as fast as the server reads them; time until the last one is received.

Usage: ``python -m bench.quick [--workers 8 --logins 25 --pairs 4 --messages 5000]``.
This is not the benchmark of record (that compares with Prosody in one run); it gives the
order of magnitude. The load generator shares the machine's two cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scramp

from roost.auth.credentials import derive
from roost.storage import open_storage
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_TLS
from roost.xml.parser import StreamParser
from roost.xml.serializer import serialize

DOMAIN = "localhost"
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A minimal raw XMPP client for load generation."""

    def __init__(self, port: int, tls: ssl.SSLContext) -> None:
        self.port = port
        self.tls = tls
        self.parser = StreamParser(max_stanza_bytes=1 << 20)
        self.events: list[object] = []
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def element(self) -> Element:
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, Element):
                    return event
            data = await self.reader.read(65536)
            if not data:
                raise EOFError
            self.events.extend(self.parser.feed(data))

    async def open(self) -> None:
        self.writer.write(
            f"<stream:stream xmlns='jabber:client' xmlns:stream="
            f"'http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>".encode()
        )
        await self.element()  # features

    async def login(self, user: str, resource: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.open()
        self.writer.write(serialize(Element("starttls", NS_TLS)))
        await self.element()
        await self.writer.start_tls(self.tls, server_hostname=DOMAIN)
        self.parser.reset()
        await self.open()
        client = scramp.ScramClient(["SCRAM-SHA-1"], user, PASSWORD)
        first = base64.b64encode(client.get_client_first().encode()).decode()
        self.writer.write(
            f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{first}</auth>".encode()
        )
        challenge = await self.element()
        client.set_server_first(base64.b64decode(challenge.text).decode())
        final = base64.b64encode(client.get_client_final().encode()).decode()
        self.writer.write(f"<response xmlns='{NS_SASL}'>{final}</response>".encode())
        success = await self.element()
        assert success.name == "success", success
        self.parser.reset()
        await self.open()
        iq = Element("iq", NS_CLIENT, {"type": "set", "id": "b"})
        iq.sub("bind", NS_BIND).sub("resource", NS_BIND, resource)
        self.writer.write(serialize(iq))
        await self.element()
        self.writer.write(b"<presence/>")

    async def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.writer.write(b"</stream:stream>")
            self.writer.close()
            await self.writer.wait_closed()


async def measure_logins(port: int, tls: ssl.SSLContext, workers: int, logins: int) -> float:
    async def worker(n: int) -> None:
        for i in range(logins):
            client = Client(port, tls)
            await client.login(f"user{n}", f"w{i}")
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    return workers * logins / (time.perf_counter() - start)


async def measure_messages(port: int, tls: ssl.SSLContext, pairs: int, count: int) -> float:
    senders, receivers = [], []
    for p in range(pairs):
        sender, receiver = Client(port, tls), Client(port, tls)
        await sender.login(f"user{2 * p}", "send")
        await receiver.login(f"user{2 * p + 1}", "recv")
        senders.append(sender)
        receivers.append(receiver)
    await asyncio.sleep(0.2)

    async def send(p: int) -> None:
        to = f"user{2 * p + 1}@{DOMAIN}/recv"
        for i in range(count):
            stanza = f"<message to='{to}' type='chat' id='m{i}'><body>message {i}</body></message>"
            senders[p].writer.write(stanza.encode())
            if i % 100 == 99:
                await senders[p].writer.drain()

    async def receive(p: int) -> None:
        got = 0
        while got < count:
            element = await receivers[p].element()
            if element.name == "message":
                got += 1

    start = time.perf_counter()
    await asyncio.gather(*(send(p) for p in range(pairs)), *(receive(p) for p in range(pairs)))
    rate = pairs * count / (time.perf_counter() - start)
    for client in senders + receivers:
        await client.close()
    return rate


async def create_accounts(data_dir: Path, count: int) -> None:
    storage = open_storage("sqlite", path=data_dir / "roost.sqlite")
    await storage.open()
    creds = derive(PASSWORD)
    for n in range(count):
        await storage.accounts.create(DOMAIN, f"user{n}", creds)
    await storage.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--logins", type=int, default=25)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        directory = Path(tmp)
        port, tls_port = free_port(), free_port()
        config = directory / "roost.toml"
        config.write_text(
            f'[server]\ndomains = ["{DOMAIN}"]\ndata_dir = "data"\nlog_level = "warning"\n'
            f'[listen]\nc2s = "127.0.0.1:{port}"\nc2s_tls = "127.0.0.1:{tls_port}"\n'
            's2s = ""\ncomponent = ""\nhttp = ""\n[services]\nmuc = ""\npubsub = ""\nupload = ""\n'
            "[limits]\nexempt_loopback = true\nresources_per_account = 100\n"
            "read_rate = 1000000000\n"
        )
        (directory / "data").mkdir()
        asyncio.run(create_accounts(directory / "data", max(args.workers, 2 * args.pairs)))
        proc = subprocess.Popen([sys.executable, "-m", "roost", "run", "-c", str(config)])
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.1)
            tls = ssl.create_default_context(cafile=str(directory / "data" / "roost.crt"))
            cpu0 = cpu_seconds(proc.pid)
            logins = asyncio.run(measure_logins(port, tls, args.workers, args.logins))
            cpu1 = cpu_seconds(proc.pid)
            messages = asyncio.run(measure_messages(port, tls, args.pairs, args.messages))
            cpu2 = cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    print(f"logins/s:   {logins:8.1f}  (server CPU {cpu1 - cpu0:.2f} s)")
    print(f"messages/s: {messages:8.1f}  (server CPU {cpu2 - cpu1:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
