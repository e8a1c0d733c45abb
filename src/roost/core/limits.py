"""Process-wide limits: per-IP connections, connection rate, failed authentications, memory.

Defaults come from ``shared/reference/limits.md``: 20 unauthenticated connections and
10 new connections per second per IP; 20 failed authentications per IP per hour, then a
temporary ban. Loopback is not exempt unless ``[limits].exempt_loopback`` is set.

The memory watchdog (limits.md "process-wide watchdog, shed load"): at each sweep the
process's resident memory is compared with ``[limits].memory_limit`` (0: 80 % of the memory
the process may use, RAM or its cgroup's limit, as ejabberd's ``oom_watermark``); while it is
over, new connections are refused with ``resource-constraint``. Where the memory in use
cannot be read (no ``/proc``), the watchdog is off.

Every refusal is counted in ``metrics`` (``roost.core.metrics``), which the limiter owns so
everything that enforces a limit can reach it through ``core.limiter``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from roost.core.metrics import Metrics
from roost.errors import StreamError

if TYPE_CHECKING:
    from roost.config import LimitsSection

log = logging.getLogger(__name__)

FAILURE_WINDOW = 3600.0  # seconds over which failed authentications are counted
MEMORY_SHARE: Final = 0.8  # memory_limit = 0: this share of the memory the process may use
_CGROUP_MAX: Final = (  # cgroup v2, v1
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def memory_in_use() -> int | None:
    """Resident memory of this process in bytes (None where /proc is not there)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_available() -> int | None:
    """The memory this process may use: physical memory, or its cgroup limit when lower."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    for path in _CGROUP_MAX:
        try:
            total = min(total, int(path.read_text().strip()))
        except (OSError, ValueError):  # absent, or "max"
            continue
    return total


class Limiter:
    """Counters per remote address; all methods are O(1) amortised."""

    __slots__ = (
        "_banned",
        "_failures",
        "_limits",
        "_memory",
        "_memory_limit",
        "_rate",
        "_unauth",
        "metrics",
        "shedding",
    )

    def __init__(
        self,
        limits: LimitsSection,
        *,
        memory: Callable[[], int | None] = memory_in_use,
        available: Callable[[], int | None] = memory_available,
    ) -> None:
        self._limits = limits
        self._unauth: dict[str, int] = {}
        self._rate: dict[str, tuple[float, float]] = {}  # ip -> (tokens, last refill)
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}  # ip -> ban end (monotonic)
        self._memory = memory
        total = available()
        self._memory_limit = limits.memory_limit or (int(total * MEMORY_SHARE) if total else 0)
        self.metrics = Metrics()
        self.shedding = False  # over the memory limit: new connections are refused

    def _exempt(self, ip: str) -> bool:
        if not self._limits.exempt_loopback:
            return False
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def refuse(self, ip: str) -> StreamError | None:
        """Account a new connection; the stream error to refuse it with, or None to accept.

        ``resource-constraint`` while the process is over its memory limit, else the
        ``policy-violation`` of the per-IP limits (``refuse_reason``).
        """
        self.metrics.connections_accepted += 1
        if self.shedding:
            self.metrics.rejected("memory")
            return StreamError("resource-constraint", "the server is overloaded; try again later")
        reason = self.refuse_reason(ip)
        return None if reason is None else StreamError("policy-violation", reason)

    def refuse_reason(self, ip: str) -> str | None:
        """Account a new connection; the reason to refuse it, or None to accept."""
        if self._exempt(ip):
            self._unauth[ip] = self._unauth.get(ip, 0) + 1
            return None
        now = time.monotonic()
        ban_end = self._banned.get(ip)
        if ban_end is not None:
            if now < ban_end:
                self.metrics.rejected("auth_ban")
                return "too many failed authentication attempts; try again later"
            del self._banned[ip]
        rate = float(self._limits.connection_rate_per_ip)
        tokens, last = self._rate.get(ip, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._rate[ip] = (tokens, now)
            self.metrics.rejected("connection_rate_per_ip")
            return "too many new connections from your address"
        self._rate[ip] = (tokens - 1.0, now)
        if self._unauth.get(ip, 0) >= self._limits.connections_per_ip:
            self.metrics.rejected("connections_per_ip")
            return "too many unauthenticated connections from your address"
        self._unauth[ip] = self._unauth.get(ip, 0) + 1
        return None

    def authenticated(self, ip: str) -> None:
        """A connection from ``ip`` authenticated: it no longer counts as unauthenticated."""
        count = self._unauth.get(ip, 0) - 1
        if count > 0:
            self._unauth[ip] = count
        else:
            self._unauth.pop(ip, None)

    def closed_unauthenticated(self, ip: str) -> None:
        """An unauthenticated connection from ``ip`` ended."""
        self.authenticated(ip)

    def auth_failed(self, ip: str) -> bool:
        """Record a failed authentication; True when ``ip`` is now banned."""
        if self._exempt(ip):
            return False
        now = time.monotonic()
        window = self._failures.setdefault(ip, deque())
        window.append(now)
        while window and now - window[0] > FAILURE_WINDOW:
            window.popleft()
        if len(window) >= self._limits.auth_failures_per_ip:
            self._banned[ip] = now + self._limits.auth_ban_time
            window.clear()
            self.metrics.rejected("auth_failures_per_ip")
            return True
        return False

    def check_memory(self) -> bool:
        """Compare the memory in use with the limit; True while over it (shedding load)."""
        used = self._memory() if self._memory_limit else None
        shedding = used is not None and used > self._memory_limit
        if shedding != self.shedding:
            if shedding:
                log.warning(
                    "memory in use %d MiB is over the limit of %d MiB: refusing new connections",
                    (used or 0) >> 20,
                    self._memory_limit >> 20,
                )
            else:
                log.warning("memory back under the limit: accepting new connections")
            self.shedding = shedding
        return shedding

    def sweep(self) -> None:
        """Drop state that no longer matters and check the memory (called periodically)."""
        self.check_memory()
        now = time.monotonic()
        rate = float(self._limits.connection_rate_per_ip)
        for ip, (tokens, last) in list(self._rate.items()):
            if tokens + (now - last) * rate >= rate:
                del self._rate[ip]
        for ip, window in list(self._failures.items()):
            if not window or now - window[-1] > FAILURE_WINDOW:
                del self._failures[ip]
        for ip, end in list(self._banned.items()):
            if now >= end:
                del self._banned[ip]


class ReadBudget:
    """A token bucket on the bytes read from one connection (limits.md: read rate).

    ``rate`` bytes per second, up to ``burst`` seconds of it at once. ``spend()`` returns how
    long the transport must stop reading to pay back what it read beyond the budget: the
    caller pauses reading (backpressure through TCP) instead of buffering anything.
    """

    __slots__ = ("_capacity", "_last", "_rate", "_tokens")

    def __init__(self, rate: int, burst: int, now: float) -> None:
        self._rate = float(rate)
        self._capacity = float(rate) * burst
        self._tokens = self._capacity
        self._last = now

    def spend(self, amount: int, now: float) -> float:
        """Take ``amount`` bytes; the seconds to pause reading (0.0: within the budget)."""
        tokens = self._tokens + (now - self._last) * self._rate
        if tokens > self._capacity:
            tokens = self._capacity
        tokens -= amount
        self._tokens = tokens
        self._last = now
        return 0.0 if tokens >= 0.0 else -tokens / self._rate
