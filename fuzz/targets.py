"""What the fuzzers check, as plain functions of the input bytes (no fuzzer imported here).

- ``parse_stream``: any bytes, fed to ``StreamParser`` in pieces, raise nothing but
  ``StreamError``; every element that comes out serializes to XML that parses back to the
  same serialization (so the server never writes what it cannot read).
- ``drive_c2s``: a client stream after one of a few valid prefixes (nothing, header, TLS,
  SASL, bound), fed through the parser into the c2s machine with a driver that performs
  every action; the machine never raises, its output is always well-formed XML, nothing
  follows ``Close``, and only stanzas of a bound stream, stamped with its full JID, are
  routed.

``fuzz_parser.py`` and ``fuzz_c2s.py`` run these under atheris (``make fuzz``);
``tests/unit/test_fuzz_targets.py`` runs them under hypothesis, bounded, in ``make test``.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Final

from roost.auth.credentials import Credentials, derive, verify_password
from roost.errors import StreamError
from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import C2SStream
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_TLS
from roost.xml.parser import ParseError, ParseEvent, StreamParser
from roost.xml.serializer import STREAM_CLOSE, serialize, stream_header

DOMAIN: Final = "example.com"
USER: Final = "juliet"
PASSWORD: Final = "r0m30myr0m30"
HEADER: Final = stream_header(content_ns=NS_CLIENT, attrs={"to": DOMAIN, "version": "1.0"})
_PLAIN: Final = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
STARTTLS: Final = f"<starttls xmlns='{NS_TLS}'/>".encode()
PLAIN: Final = f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{_PLAIN}</auth>".encode()
BIND: Final = f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>r</resource></bind></iq>"
# Valid beginnings, one read each (a restart discards the rest of a read): nothing, header,
# TLS, SASL, bound.
PREFIXES: Final[tuple[list[bytes], ...]] = (
    [],
    [HEADER],
    [HEADER, STARTTLS, HEADER],
    [HEADER, STARTTLS, HEADER, PLAIN, HEADER],
    [HEADER, STARTTLS, HEADER, PLAIN, HEADER, BIND.encode()],
)
FULL: Final = JID(USER, DOMAIN, "r")


def pieces(data: bytes) -> list[bytes]:
    """Split ``data`` into reads after every NUL byte (kept), so the fuzzer also controls
    where reads end; NUL is never valid XML, so this takes nothing valid away."""
    out: list[bytes] = []
    start = 0
    for i, byte in enumerate(data):
        if byte == 0:
            out.append(data[start : i + 1])
            start = i + 1
    out.append(data[start:])
    return out


def parse_stream(data: bytes) -> None:
    """Fuzz the parser: only StreamError, and what comes out round-trips."""
    parser = StreamParser(max_stanza_bytes=4096, max_depth=16, max_elements=64)
    events: list[ParseEvent] = []
    try:
        for piece in pieces(data):
            events += parser.feed(piece)
    except ParseError as err:
        events += err.events
    except StreamError:
        pass
    for event in events:
        if isinstance(event, Element):
            _round_trip(event)


def _round_trip(element: Element) -> None:
    written = serialize(element)
    reader = StreamParser(max_stanza_bytes=1 << 20, max_depth=1000, max_elements=100_000)
    again = [e for e in reader.feed(HEADER + written) if isinstance(e, Element)]
    assert len(again) == 1, written
    assert serialize(again[0]) == written, (written, serialize(again[0]))


@cache
def _credentials() -> Credentials:
    return derive(PASSWORD, iterations=4096)


class Driver:
    """Transport and session in memory: performs every action of the machine."""

    def __init__(self) -> None:
        self.stream = C2SStream(frozenset({DOMAIN}), tls_available=True, tls_required=True)
        self.parser = StreamParser(max_stanza_bytes=10_000, max_depth=8, max_elements=32)
        self.output = StreamParser(max_stanza_bytes=1 << 20, max_depth=100, max_elements=10_000)
        self.closed = False

    def feed(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except ParseError as err:
            self.perform(self.stream.receive(err.events))
            self.perform(self.stream.close(err))
            return
        self.perform(self.stream.receive(events))

    def perform(self, actions: list[ev.Action]) -> None:
        for action in actions:
            assert not self.closed, f"{action!r} after Close"
            self.perform(self._act(action))

    def _act(self, action: ev.Action) -> list[ev.Action]:
        if isinstance(action, Element):
            # (the stream may be closed by now: by a later stanza of the same read)
            assert self.stream.full_jid == FULL, "routed before binding"
            assert action.get("from") == str(FULL), "routed without the full JID stamped"
        elif isinstance(action, ev.OpenStream | ev.SendElement | ev.CloseStream):
            self.output.feed(_written(action))  # raises if the server wrote malformed XML
        elif isinstance(action, ev.FetchCredentials):
            known = action.jid == JID(USER, DOMAIN)
            return self.stream.credentials(_credentials() if known else None)
        elif isinstance(action, ev.VerifyPassword):
            valid = verify_password(action.credentials, action.password)
            return self.stream.password_checked(valid)
        elif isinstance(action, ev.BindRequest):
            return self.stream.bound(FULL)
        elif isinstance(action, ev.StartTLS | ev.ResetParser):
            self.parser.reset()  # the client's next bytes open a new stream
            self.output.reset()  # and so do the server's
            if isinstance(action, ev.StartTLS):
                return self.stream.tls_established(None)
        elif isinstance(action, ev.Close):
            self.closed = True
        return []


def _written(action: ev.OpenStream | ev.SendElement | ev.CloseStream) -> bytes:
    """What TCP writes for an output action."""
    if isinstance(action, ev.OpenStream):
        return stream_header(content_ns=NS_CLIENT, attrs=action.attrs)
    if isinstance(action, ev.SendElement):
        return serialize(action.element)
    return STREAM_CLOSE


def drive_c2s(data: bytes) -> None:
    """Fuzz the c2s machine after the prefix chosen by the first byte."""
    driver = Driver()
    prefix = PREFIXES[data[0] % len(PREFIXES)] if data else []
    for piece in [*prefix, *pieces(data[1:])]:
        if driver.closed:
            break
        driver.feed(piece)
    if not driver.closed:
        driver.perform(driver.stream.close(StreamError("system-shutdown")))
    assert driver.closed
