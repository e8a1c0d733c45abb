"""Process-wide limits: per-IP connections, connection rate, failed authentications, memory.

Defaults (``[limits]`` in docs/configuration.md): 20 unauthenticated connections and
10 new connections per second per IP; 20 failed authentications per IP per hour, then a
temporary ban. Loopback (127.0.0.0/8, ::1) is not exempt unless ``[limits].exempt_loopback``
is set.

"Per IP" means per client network (``address_key``): an IPv4 address is counted by itself
(an IPv4-mapped IPv6 address, ``::ffff:a.b.c.d`` from a dual-stack socket, as that IPv4
address), an IPv6 address by its /64. An end site gets a /64 at the least (RFC 6177 §2) and
its hosts choose the 64-bit interface identifier themselves (RFC 4291 §2.5.4; RFC 8981
temporary addresses change it daily): counted by the exact address, one client would walk
around every per-IP limit with 2^64 addresses. Prosody (``mod_register_limits``' throttle,
the community ``mod_limit_auth``) and ejabberd (``mod_fail2ban``'s ``failed_auth`` table; its
``unban_ip`` takes a mask only to remove entries) count the exact address: roost departs
from them here, as web rate limiters do (GitLab's default /64, express-rate-limit's /56).

The memory watchdog (a process-wide watchdog that sheds load): at each sweep the
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
IPV6_PREFIX: Final = 64  # an IPv6 client is counted by this prefix of its address
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


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``ip`` names (an IPv4-mapped IPv6 one as its IPv4 address); None if none."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:  # "unknown", a Unix socket
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(ip: str, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """The key the per-IP limits count ``ip`` under: an IPv4 address itself, an IPv6
    address's network of ``ipv6_prefix`` bits ("2001:db8:1:2::/64"), anything else as is."""
    address = client_address(ip)
    if address is None:
        return ip
    if address.version == 4:
        return str(address)
    return str(ipaddress.IPv6Network((int(address), ipv6_prefix), strict=False))  # no %scope


class Limiter:
    """Counters per client network (``address_key``); all methods are O(1) amortised.

    ``ipv6_prefix`` is the IPv6 prefix length clients are counted by (128: each address).
    """

    __slots__ = (
        "_banned",
        "_failures",
        "_ipv6_prefix",
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
        ipv6_prefix: int = IPV6_PREFIX,
    ) -> None:
        self._limits = limits
        self._ipv6_prefix = ipv6_prefix
        # every table is keyed by ``address_key``: an IPv4 address or an IPv6 /64
        self._unauth: dict[str, int] = {}
        self._rate: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}  # key -> ban end (monotonic)
        self._memory = memory
        total = available()
        self._memory_limit = limits.memory_limit or (int(total * MEMORY_SHARE) if total else 0)
        self.metrics = Metrics()
        self.shedding = False  # over the memory limit: new connections are refused

    def key(self, ip: str) -> str:
        """What ``ip`` is counted under: ``address_key`` with this limiter's IPv6 prefix, but an
        exempt address by itself (its connections must not use up its network's budget)."""
        return ip if self._exempt(ip) else address_key(ip, self._ipv6_prefix)

    def _exempt(self, ip: str) -> bool:
        if not self._limits.exempt_loopback:
            return False
        address = client_address(ip)
        return address is not None and address.is_loopback

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
        key = address_key(ip, self._ipv6_prefix)
        now = time.monotonic()
        if self._ban_holds(key, now):
            self.metrics.rejected("auth_ban")
            return "too many failed authentication attempts; try again later"
        rate = float(self._limits.connection_rate_per_ip)
        tokens, last = self._rate.get(key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._rate[key] = (tokens, now)
            self.metrics.rejected("connection_rate_per_ip")
            return "too many new connections from your address"
        self._rate[key] = (tokens - 1.0, now)
        if self._unauth.get(key, 0) >= self._limits.connections_per_ip:
            self.metrics.rejected("connections_per_ip")
            return "too many unauthenticated connections from your address"
        self._unauth[key] = self._unauth.get(key, 0) + 1
        return None

    def _ban_holds(self, key: str, now: float) -> bool:
        ban_end = self._banned.get(key)
        if ban_end is None:
            return False
        if now < ban_end:
            return True
        del self._banned[key]
        return False

    def banned(self, ip: str) -> bool:
        """Whether ``ip`` (its IPv4 address or IPv6 /64) is banned for failed authentications."""
        return self._ban_holds(self.key(ip), time.monotonic())

    def authenticated(self, ip: str) -> None:
        """A connection from ``ip`` authenticated: it no longer counts as unauthenticated."""
        key = self.key(ip)
        count = self._unauth.get(key, 0) - 1
        if count > 0:
            self._unauth[key] = count
        else:
            self._unauth.pop(key, None)

    def closed_unauthenticated(self, ip: str) -> None:
        """An unauthenticated connection from ``ip`` ended."""
        self.authenticated(ip)

    def auth_failed(self, ip: str) -> bool:
        """Record a failed authentication; True when ``ip`` (its /64 for IPv6) is now banned."""
        if self._exempt(ip):
            return False
        key = address_key(ip, self._ipv6_prefix)
        now = time.monotonic()
        window = self._failures.setdefault(key, deque())
        window.append(now)
        while window and now - window[0] > FAILURE_WINDOW:
            window.popleft()
        if len(window) >= self._limits.auth_failures_per_ip:
            self._banned[key] = now + self._limits.auth_ban_time
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
        for key, (tokens, last) in list(self._rate.items()):
            if tokens + (now - last) * rate >= rate:
                del self._rate[key]
        for key, window in list(self._failures.items()):
            if not window or now - window[-1] > FAILURE_WINDOW:
                del self._failures[key]
        for key, end in list(self._banned.items()):
            if now >= end:
                del self._banned[key]


class ReadBudget:
    """A token bucket on the bytes read from one connection (``[limits].read_rate``).

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
