"""What the load generator's clients do with the bytes they receive: count and time them.

Both sinks scan bytes with one compiled regular expression per chunk (C speed) instead of
parsing XML, and keep only the unmatched tail of a chunk, where a stanza cut in two by the
read may start.
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable
from typing import Final

from bench.client import XmppClient

_BODY: Final = re.compile(rb"<body>(\d+)</body>")
_PRESENCE: Final = re.compile(rb"<presence\b([^>]*)>")
_FROM: Final = re.compile(rb"\bfrom=['\"]([^'\"/]+)")
_UNAVAILABLE: Final = re.compile(rb"\btype=['\"](?:unavailable|error)")
_TAIL: Final = 1024  # bytes kept from a chunk's unmatched end


def now_us() -> int:
    """The monotonic clock in microseconds (the same clock in every process)."""
    return time.monotonic_ns() // 1000


class MessagePair:
    """A sender and its receiver. Bodies carry the send time; the receiver times them.

    Closed loop: each delivery lets the sender send one more, keeping the window it was
    given in flight. Paced: the orchestrating loop calls ``send`` on a schedule.
    """

    __slots__ = (
        "_closed_loop",
        "_end",
        "_from",
        "_head",
        "_tail",
        "counted",
        "latencies",
        "received_total",
        "receiver",
        "sender",
        "sent",
    )

    def __init__(self, sender: XmppClient, receiver: XmppClient, to: str) -> None:
        self.sender = sender
        self.receiver = receiver
        self._head = f"<message to='{to}' type='chat' id='b'><body>".encode()
        self._tail = b""
        self.sent = 0
        self.received_total = 0
        self.counted = 0  # deliveries inside the measured window
        self.latencies = array("q")  # µs, deliveries inside the measured window
        self._from = 0.0
        self._end = 0.0
        self._closed_loop = False

    @property
    def in_flight(self) -> int:
        """Messages sent and not received yet."""
        return self.sent - self.received_total

    def arm(self, measure_from: float, end: float) -> None:
        """Start a run: count deliveries between the two monotonic times."""
        self._from, self._end = measure_from, end
        self.sent = self.received_total = self.counted = 0
        self.latencies = array("q")

    def send(self, count: int, *, refill: bool = True) -> None:
        """Send ``count`` messages now (in one write); with ``refill`` keep them in flight."""
        self._closed_loop = refill
        stamp = b"%d</body></message>" % now_us()
        self.sender.write((self._head + stamp) * count)
        self.sent += count

    def stop(self) -> None:
        """Send nothing more (the run is over)."""
        self._closed_loop = False

    def received(self, data: bytes) -> None:
        """The receiver's sink."""
        now = now_us()
        buf = self._tail + data if self._tail else data
        count = 0
        end = 0
        in_window = self._from * 1e6 <= now <= self._end * 1e6
        record = self.latencies.append
        for match in _BODY.finditer(buf):
            count += 1
            end = match.end()
            if in_window:
                record(now - int(match[1]))
        self._tail = buf[end:][-_TAIL:]
        if not count:
            return
        self.received_total += count
        if in_window:
            self.counted += count
        if self._closed_loop and now <= self._end * 1e6:
            self.send(count)


class PresenceCounter:
    """Counts presence stanzas and the distinct contacts they came from."""

    __slots__ = ("_done", "_own", "_seen", "_tail", "count", "expected", "finished")

    def __init__(self, own: str, expected: int, done: Callable[[], None]) -> None:
        self._own = own.encode()
        self._seen: set[bytes] = set()
        self._tail = b""
        self._done = done
        self.expected = expected
        self.count = 0
        self.finished: float | None = None  # monotonic time the last contact was seen

    def received(self, data: bytes) -> None:
        """The client's sink."""
        buf = self._tail + data if self._tail else data
        end = 0
        for match in _PRESENCE.finditer(buf):
            end = match.end()
            self.count += 1
            attrs = match[1]
            sender = _FROM.search(attrs)
            if sender is None or sender[1] == self._own or _UNAVAILABLE.search(attrs):
                continue
            self._seen.add(sender[1])
        self._tail = buf[end:][-_TAIL:]
        if self.finished is None and len(self._seen) >= self.expected:
            self.finished = time.monotonic()
            self._done()
