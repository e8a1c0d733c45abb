"""Per-IP limits: unauthenticated connections, connection rate, failed authentications.

Defaults come from ``shared/reference/limits.md``: 20 unauthenticated connections and
10 new connections per second per IP; 20 failed authentications per IP per hour, then a
temporary ban. Loopback is not exempt unless ``[limits].exempt_loopback`` is set.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.config import LimitsSection

FAILURE_WINDOW = 3600.0  # seconds over which failed authentications are counted


class Limiter:
    """Counters per remote address; all methods are O(1) amortised."""

    __slots__ = ("_banned", "_failures", "_limits", "_rate", "_unauth")

    def __init__(self, limits: LimitsSection) -> None:
        self._limits = limits
        self._unauth: dict[str, int] = {}
        self._rate: dict[str, tuple[float, float]] = {}  # ip -> (tokens, last refill)
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}  # ip -> ban end (monotonic)

    def _exempt(self, ip: str) -> bool:
        if not self._limits.exempt_loopback:
            return False
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def refuse_reason(self, ip: str) -> str | None:
        """Account a new connection; the reason to refuse it, or None to accept."""
        if self._exempt(ip):
            self._unauth[ip] = self._unauth.get(ip, 0) + 1
            return None
        now = time.monotonic()
        ban_end = self._banned.get(ip)
        if ban_end is not None:
            if now < ban_end:
                return "too many failed authentication attempts; try again later"
            del self._banned[ip]
        rate = float(self._limits.connection_rate_per_ip)
        tokens, last = self._rate.get(ip, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._rate[ip] = (tokens, now)
            return "too many new connections from your address"
        self._rate[ip] = (tokens - 1.0, now)
        if self._unauth.get(ip, 0) >= self._limits.connections_per_ip:
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
            return True
        return False

    def sweep(self) -> None:
        """Drop state that no longer matters (called periodically)."""
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
