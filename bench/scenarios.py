"""The scenarios: each runs against one server, bounded in count and time, and returns its
figures (plain numbers, keyed by figure name) plus the CPU both sides spent.

- connect: clients log in (STARTTLS, SCRAM-SHA-1, bind, initial presence) and stay idle, in
  steps up to N; sessions/s of each step and resident memory per idle session at each N
  (RSS after the step minus RSS before the first, after a warm-up login and logout).
- messages: P sender/receiver pairs; closed loop (a window of messages in flight per pair,
  the most the server carries: its saturation rate) or paced at a fixed offered rate;
  delivered/s inside the measured window, latency p50/p99 from the send time in each body,
  server CPU.
- presence: a ring of U users with R mutual contacts each logs in at once (roster, then
  initial presence); the wave ends when every user has seen all R contacts' presence.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import LoadGenerator
from bench.provision import Population
from bench.servers import BenchServer

Figures = dict[str, float]
StartHook = Callable[[float | None], None]  # called as a run starts, with its end (or None)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is."""

    workers: int
    connect_steps: tuple[int, ...]
    login_concurrency: int
    pairs: int
    window: int
    message_seconds: float
    warmup: float
    rings: tuple[tuple[int, int], ...]  # (R contacts, U users)
    presence_timeout: float
    settle: float  # seconds for a server to settle before its memory is read


FULL = Sizes(
    workers=2,
    connect_steps=(1000, 5000, 10000),
    login_concurrency=64,
    pairs=50,
    window=20,
    message_seconds=15.0,
    warmup=3.0,
    rings=((50, 400), (200, 250)),
    presence_timeout=90.0,
    settle=2.0,
)

SMOKE = Sizes(
    workers=2,
    connect_steps=(8, 16),
    login_concurrency=8,
    pairs=2,
    window=4,
    message_seconds=1.5,
    warmup=0.3,
    rings=((4, 10),),
    presence_timeout=20.0,
    settle=0.5,
)


class Sources:
    """Fresh loopback source addresses (127.0.x.y), so ports never run short and no run meets
    the TIME_WAIT sockets of an earlier one."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> list[str]:
        """``count`` addresses not handed out before."""
        out = []
        for _ in range(count):
            n = self._next
            self._next += 1
            out.append(f"127.0.{1 + n // 250 % 254}.{2 + n % 250}")
        return out


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``parts`` lists."""
    return [items[i::parts] for i in range(parts)]


def percentile(sorted_values: array[int] | list[int], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted values lie (nearest rank)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


class CpuWatch:
    """Samples a server's CPU time at given monotonic times, in a thread (the orchestrator
    is blocked in the load generator meanwhile)."""

    def __init__(self, server: BenchServer, times: list[float]) -> None:
        self.samples: list[float] = []
        self._thread = threading.Thread(target=self._run, args=(server, times), daemon=True)
        self._thread.start()

    def _run(self, server: BenchServer, times: list[float]) -> None:
        for when in times:
            time.sleep(max(0.0, when - time.monotonic()))
            self.samples.append(server.cpu_seconds())

    def spent(self) -> float:
        """CPU seconds between the first and the last sample."""
        self._thread.join()
        return self.samples[-1] - self.samples[0]


class Runner:
    """Runs scenarios with one load generator over one population."""

    def __init__(self, lg: LoadGenerator, population: Population, sizes: Sizes) -> None:
        self.lg = lg
        self.population = population
        self.sizes = sizes
        self.sources = Sources()

    def _per_worker_sources(self) -> list[list[str]]:
        return [self.sources.take(2) for _ in range(self.lg.size)]

    def _login(self, server: BenchServer, users: list[str]) -> tuple[int, int, float, list[str]]:
        """Log ``users`` in over all workers; (ok, failed, seconds, errors)."""
        sources = self._per_worker_sources()
        share = max(1, self.sizes.login_concurrency // self.lg.size)
        results = self.lg.call(
            "login",
            [
                {"port": server.port, "users": part, "sources": src, "concurrency": share}
                for part, src in zip(split(users, self.lg.size), sources, strict=True)
            ],
        )
        seconds = max(r["end"] for r in results) - min(r["begin"] for r in results)
        errors = [e for r in results for e in r.get("errors", [])]
        return sum(r["ok"] for r in results), sum(r["failed"] for r in results), seconds, errors

    def _close(self) -> None:
        self.lg.call("close", [{} for _ in range(self.lg.size)])

    # -- connect --------------------------------------------------------------------------------
    def connect(self, server: BenchServer) -> Figures:
        """Sessions/s and RSS per idle session at each step of N."""
        users = [self.population.plain_user(n) for n in range(self.population.plain)]
        self._login(server, users[: 4 * self.lg.size])  # warm-up: code paths, TLS, caches
        self._close()
        time.sleep(self.sizes.settle)
        base = server.rss_kib()
        figures: Figures = {"rss_base_kib": base}
        cpu0, lg0, done = server.cpu_seconds(), self.lg.cpu, 0
        for step in self.sizes.connect_steps:
            ok, failed, seconds, errors = self._login(server, users[done:step])
            done = step
            figures[f"sessions_per_s@{step}"] = ok / seconds if seconds > 0 else 0.0
            figures[f"failed@{step}"] = failed
            if errors:
                print(f"  {server.name}: login errors: {errors[:3]}", flush=True)
            time.sleep(self.sizes.settle)
            figures[f"rss_per_session_kib@{step}"] = (server.rss_kib() - base) / step
        figures["server_cpu_s"] = server.cpu_seconds() - cpu0
        figures["loadgen_cpu_s"] = self.lg.cpu - lg0
        self._close()
        return figures

    # -- messages -------------------------------------------------------------------------------
    def messages(
        self, server: BenchServer, rate: float = 0.0, on_start: StartHook | None = None
    ) -> Figures:
        """Closed loop (rate 0: saturation) or ``rate`` messages/s offered in total."""
        pop, sizes, size = self.population, self.sizes, self.lg.size
        pairs = [(pop.plain_user(2 * p), pop.plain_user(2 * p + 1)) for p in range(sizes.pairs)]
        sources = self._per_worker_sources()
        share = max(1, sizes.login_concurrency // size)
        ready = self.lg.call(
            "pairs",
            [
                {"port": server.port, "pairs": part, "sources": src, "concurrency": share}
                for part, src in zip(split(pairs, size), sources, strict=True)
            ],
        )
        if sum(r["failed"] for r in ready):
            raise RuntimeError(f"{server.name}: pairs failed to log in: {ready[0]['errors']}")
        time.sleep(0.5)
        start = time.monotonic() + 0.5
        measure_from, end = start + sizes.warmup, start + sizes.message_seconds
        watch = CpuWatch(server, [measure_from, end])
        lg0 = self.lg.cpu
        per_pair = rate / sizes.pairs
        if on_start is not None:
            on_start(end)
        results = self.lg.call(
            "messages",
            [
                {
                    "start_at": start,
                    "duration": sizes.message_seconds,
                    "warmup": sizes.warmup,
                    "window": sizes.window,
                    "rate": per_pair,
                }
                for _ in range(size)
            ],
        )
        self._close()
        latencies = array("q")
        for r in results:
            latencies.frombytes(r["latencies_us"])
        ordered = sorted(latencies)
        seconds = end - measure_from
        return {
            "delivered_per_s": sum(r["delivered"] for r in results) / seconds,
            "offered_per_s": rate,
            "latency_p50_ms": percentile(ordered, 0.50) / 1000,
            "latency_p99_ms": percentile(ordered, 0.99) / 1000,
            "lost": sum(r["sent"] - r["received"] for r in results),
            "server_cpu_pct": 100 * watch.spent() / seconds,
            "loadgen_cpu_s": self.lg.cpu - lg0,
            "loadgen_cpu_pct": 100 * (self.lg.cpu - lg0) / sizes.message_seconds,
        }

    # -- presence -------------------------------------------------------------------------------
    def presence(
        self, server: BenchServer, contacts: int, on_start: StartHook | None = None
    ) -> Figures:
        """One login wave of the ring with ``contacts`` contacts per user."""
        users = self.population.ring_users(contacts)
        size = self.lg.size
        start = time.monotonic() + 0.5
        cpu0, lg0 = server.cpu_seconds(), self.lg.cpu
        sources = self._per_worker_sources()
        if on_start is not None:
            on_start(None)
        results = self.lg.call(
            "presence",
            [
                {
                    "port": server.port,
                    "users": part,
                    "contacts": contacts,
                    "sources": src,
                    "concurrency": max(1, self.sizes.login_concurrency // size),
                    "start_at": start,
                    "timeout": self.sizes.presence_timeout,
                }
                for part, src in zip(split(users, size), sources, strict=True)
            ],
        )
        server_cpu = server.cpu_seconds() - cpu0
        self._close()
        complete = sum(r["complete"] for r in results)
        wave = max(r["last"] for r in results) - start if complete else float("nan")
        presence = sum(r["presence"] for r in results)
        errors = [e for r in results for e in r["errors"]]
        if errors:
            print(f"  {server.name}: presence login errors: {errors[:3]}", flush=True)
        return {
            "users": len(users),
            "complete_users": complete,
            "wave_s": wave,
            "presence_per_s": presence / wave if complete else 0.0,
            "presence_stanzas": presence,
            "server_cpu_s": server_cpu,
            "loadgen_cpu_s": self.lg.cpu - lg0,
        }
