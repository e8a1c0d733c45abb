"""The load generator: worker processes, each an asyncio (uvloop) loop of raw clients.

The orchestrator (``bench.compare``) runs in its own process and tells every worker what to
do through a pipe, one command at a time; a worker answers each with a dict that always holds
``cpu``, the CPU seconds the worker spent on the command. Summed over workers that is the
load generator's own cost, reported beside the server's so a reader can see which one was
the bottleneck.

A worker keeps its clients between commands (the idle sessions of the connect scenario stay
open while the orchestrator reads the server's memory). Each worker connects from its own
loopback addresses (127.0.x.y), so ephemeral ports never run short.

Commands: ``login`` (log users in, optionally start counting messages or presence),
``close`` (close every client), ``messages`` (run senders for a while), ``presence``
(a login wave; wait until each user saw all its contacts).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import ssl
import time
from array import array
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any, Final

from bench.client import LoginError, XmppClient
from bench.sinks import MessagePair, PresenceCounter

Result = dict[str, Any]
DOMAIN: Final = "localhost"
PASSWORD: Final = "bench-password"
LOGIN_TIMEOUT: Final = 60.0


def raise_open_files_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def client_tls() -> ssl.SSLContext:
    """A client context that takes the servers' self-signed certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Worker:
    """One worker process's state and its command handlers."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.tls = client_tls()
        self.clients: dict[str, XmppClient] = {}
        self.pairs: list[MessagePair] = []
        self.errors: list[str] = []

    async def _login(
        self, port: int, user: str, resource: str, source: str, roster: bool = False
    ) -> XmppClient:
        client = XmppClient(DOMAIN)
        self.clients[f"{user}/{resource}"] = client
        await asyncio.wait_for(
            client.login(port, user, PASSWORD, resource, self.tls, source, roster=roster),
            LOGIN_TIMEOUT,
        )
        return client

    async def _many(
        self, jobs: list[Callable[[], Awaitable[None]]], concurrency: int
    ) -> tuple[int, int]:
        """Run jobs with at most ``concurrency`` at once; (succeeded, failed)."""
        queue = list(reversed(jobs))
        counts = [0, 0]

        async def runner() -> None:
            while queue:
                job = queue.pop()
                try:
                    await job()
                    counts[0] += 1
                except (OSError, LoginError, TimeoutError) as exc:
                    counts[1] += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}"[:300])

        await asyncio.gather(*(runner() for _ in range(max(1, concurrency))))
        return counts[0], counts[1]

    # -- commands -----------------------------------------------------------------------------
    async def cmd_login(
        self, port: int, users: list[str], sources: list[str], concurrency: int
    ) -> Result:
        """Log users in (resource 'bench') and send initial presence; they stay idle."""

        def job(n: int, user: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                client = await self._login(port, user, "bench", sources[n % len(sources)])
                client.start_sink(_discard)
                client.write(b"<presence/>")

            return run

        self.errors = []
        begin = time.monotonic()
        ok, failed = await self._many([job(n, u) for n, u in enumerate(users)], concurrency)
        return {"ok": ok, "failed": failed, "begin": begin, "end": time.monotonic()}

    async def cmd_close(self) -> Result:
        """Close every client and forget the pairs."""
        for client in self.clients.values():
            client.close()
        count = len(self.clients)
        self.clients.clear()
        self.pairs.clear()
        await asyncio.sleep(0.2)  # let the closing bytes go out
        return {"closed": count}

    async def cmd_pairs(
        self, port: int, pairs: list[tuple[str, str]], sources: list[str], concurrency: int
    ) -> Result:
        """Log in sender/receiver pairs; receivers count the messages they get."""
        self.errors = []
        made: list[MessagePair] = []

        def job(n: int, sender: str, receiver: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                source = sources[n % len(sources)]
                out = await self._login(port, sender, "send", source)
                into = await self._login(port, receiver, "recv", source)
                pair = MessagePair(out, into, f"{receiver}@{DOMAIN}/recv")
                out.start_sink(_discard)
                into.start_sink(pair.received)
                out.write(b"<presence/>")
                into.write(b"<presence/>")
                made.append(pair)

            return run

        ok, failed = await self._many([job(n, *p) for n, p in enumerate(pairs)], concurrency)
        self.pairs = made
        return {"ok": ok, "failed": failed, "errors": self.errors}

    async def cmd_messages(
        self, start_at: float, duration: float, warmup: float, window: int, rate: float
    ) -> Result:
        """Send for ``duration`` seconds from ``start_at``: closed loop with ``window``
        messages in flight per pair (rate 0), or ``rate`` messages/s per pair."""
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        measure_from = start_at + warmup
        end = start_at + duration
        for pair in self.pairs:
            pair.arm(measure_from, end)
        if rate > 0:
            await _paced(self.pairs, rate, end)
        else:
            for pair in self.pairs:
                pair.send(window)
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        await _drain(self.pairs, 3.0)
        latencies = array("q")
        for pair in self.pairs:
            latencies.extend(pair.latencies)
        return {
            "delivered": sum(p.counted for p in self.pairs),
            "sent": sum(p.sent for p in self.pairs),
            "received": sum(p.received_total for p in self.pairs),
            "seconds": end - measure_from,
            "latencies_us": latencies.tobytes(),
        }

    async def cmd_presence(
        self,
        port: int,
        users: list[str],
        contacts: int,
        sources: list[str],
        concurrency: int,
        start_at: float,
        timeout: float,
    ) -> Result:
        """Log users in at ``start_at`` (roster, then initial presence); wait until each saw
        the presence of all its ``contacts``, or ``timeout``."""
        self.errors = []
        counters: list[PresenceCounter] = []
        everyone = asyncio.get_running_loop().create_future()
        left = [len(users)]

        def done() -> None:
            left[0] -= 1
            if left[0] == 0 and not everyone.done():
                everyone.set_result(None)

        def job(n: int, user: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                source = sources[n % len(sources)]
                client = await self._login(port, user, "bench", source, roster=True)
                counter = PresenceCounter(f"{user}@{DOMAIN}", contacts, done)
                counters.append(counter)
                client.start_sink(counter.received)
                client.write(b"<presence/>")

            return run

        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        ok, failed = await self._many([job(n, u) for n, u in enumerate(users)], concurrency)
        remaining = start_at + timeout - time.monotonic()
        if failed:
            left[0] -= failed
        if left[0] > 0:
            await asyncio.wait([everyone], timeout=max(0.0, remaining))
        finished = [c.finished for c in counters if c.finished is not None]
        return {
            "ok": ok,
            "failed": failed,
            "complete": len(finished),
            "last": max(finished, default=0.0),
            "presence": sum(c.count for c in counters),
            "errors": self.errors,
        }


def _discard(_data: bytes) -> None:
    """The sink of idle clients and senders: what they get is not measured."""


async def _paced(pairs: list[MessagePair], rate: float, end: float) -> None:
    """Offer ``rate`` messages/s per pair until ``end``, topping up every millisecond."""
    begin = time.monotonic()
    while (now := time.monotonic()) < end:
        due = int((now - begin) * rate)
        for pair in pairs:
            if due > pair.sent:
                pair.send(due - pair.sent, refill=False)
        await asyncio.sleep(0.001)


async def _drain(pairs: list[MessagePair], timeout: float) -> None:
    """Wait until every message sent was received, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for pair in pairs:
        pair.stop()
    while time.monotonic() < deadline and any(p.in_flight for p in pairs):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling: the load generator's path, off the measured window


# -- the process side ---------------------------------------------------------------------------


def _worker_main(conn: Connection, index: int) -> None:
    raise_open_files_limit()
    try:
        import uvloop
    except ImportError:  # the bench still runs, slower
        asyncio.run(_serve(conn, Worker(index)))
    else:
        uvloop.run(_serve(conn, Worker(index)))


async def _serve(conn: Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command, kwargs = await loop.run_in_executor(None, conn.recv)
        if command == "exit":
            await worker.cmd_close()
            conn.send({"cpu": 0.0})
            return
        cpu = time.process_time()
        result: Result = await getattr(worker, f"cmd_{command}")(**kwargs)
        result["cpu"] = time.process_time() - cpu
        conn.send(result)


class LoadGenerator:
    """A pool of worker processes driven in lock step: one command to all, then all answers."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(workers):
            ours, theirs = context.Pipe()
            proc = context.Process(target=_worker_main, args=(theirs, index), daemon=True)
            proc.start()
            self.conns.append(ours)
            self.procs.append(proc)
        self.cpu = 0.0  # CPU seconds spent by all workers on all commands

    @property
    def size(self) -> int:
        """How many workers there are."""
        return len(self.conns)

    def call(self, command: str, per_worker: list[dict[str, Any]]) -> list[Result]:
        """Send ``command`` to every worker with its own arguments; every answer."""
        for conn, kwargs in zip(self.conns, per_worker, strict=True):
            conn.send((command, kwargs))
        results: list[Result] = [conn.recv() for conn in self.conns]
        self.cpu += sum(float(r["cpu"]) for r in results)
        return results

    def close(self) -> None:
        """Stop every worker (closing its clients first)."""
        for conn in self.conns:
            try:
                conn.send(("exit", {}))
                conn.recv()
            except (OSError, EOFError):
                pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
