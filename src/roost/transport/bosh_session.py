"""One BOSH session (XEP-0124, XEP-0206): the ``Connection`` of one ``C2SConnection``.

``roost.transport.bosh`` describes the protocol and serves the route; this module keeps one
session's state: the rid window and the requests waiting for an answer, the output queued
for the next answer, the timers (wait, inactivity) and the end of the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from roost.errors import StreamError
from roost.stream.framing import (
    XBOSH_RESTART,
    FrameParser,
    body_element,
    bosh_body,
    bosh_payload,
    qualify_stanza,
)
from roost.xml.ns import NS_STREAMS
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader

if TYPE_CHECKING:
    from collections.abc import Mapping

    from roost.core.c2s import C2SConnection
    from roost.transport.bosh import BoshEndpoint
    from roost.transport.http import ClientInfo
    from roost.xml.element import Element

POLLING: Final = 5  # seconds between empty requests of a polling session (hold = 0)
BODY_OVERHEAD: Final = 4096  # bytes of <body/> wrapper allowed beyond the stanza limit
MAX_RID: Final = 2**53
# Stream errors at creation reported as the binding condition of the same name.
CREATION_CONDITIONS: Final = frozenset({"host-unknown", "improper-addressing", "policy-violation"})


def terminate_body(condition: str | None = None) -> bytes:
    """``<body type='terminate'/>``, with a binding condition (XEP-0124 §17.2)."""
    attrs = {"type": "terminate"}
    if condition is not None:
        attrs["condition"] = condition
    return bosh_body(attrs)


def _condition(error: Element) -> str:
    """The defined condition of a ``<stream:error/>`` (RFC 6120 §4.9.3)."""
    return next((c.name for c in error.elements() if c.name != "text"), "undefined-condition")


def rid_of(body: Element) -> int | None:
    """The request id (1 ≤ rid < 2**53, XEP-0124 §14), None when missing or invalid."""
    text = body.get("rid") or ""
    if not (text.isascii() and text.isdigit()) or len(text) > 16:
        return None
    rid = int(text)
    return rid if 0 < rid < MAX_RID else None


class _Held:
    """A request waiting for its answer."""

    __slots__ = ("future", "rid", "timer")

    def __init__(self, rid: int, future: asyncio.Future[bytes]) -> None:
        self.rid = rid
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class BoshSession:
    """One BOSH session: the ``Connection`` of one ``C2SConnection``."""

    __slots__ = (
        "_ack",
        "_buffered",
        "_creating",
        "_endpoint",
        "_final",
        "_flush_scheduled",
        "_header",
        "_held",
        "_last_request",
        "_out",
        "_responses",
        "_stream_attrs",
        "_stream_error",
        "_timer",
        "hold",
        "inactivity",
        "parser",
        "peer",
        "requests",
        "rid",
        "secure",
        "session",
        "sid",
        "wait",
    )

    def __init__(
        self,
        endpoint: BoshEndpoint,
        sid: str,
        info: ClientInfo,
        *,
        rid: int,
        wait: int,
        hold: int,
        ack: bool,
        header: StreamHeader,
    ) -> None:
        config = endpoint.ctx.core.config
        limits = config.limits
        self._endpoint = endpoint
        self.sid = sid
        self.peer = info.ip
        self.secure = info.secure
        self.rid = rid  # the highest rid processed, in order
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.inactivity = config.http.bosh_max_inactivity
        self.parser = FrameParser(
            max_bytes=limits.stanza_size_preauth + BODY_OVERHEAD,
            max_depth=limits.depth_preauth + 1,
            max_elements=limits.elements_preauth + 1,
        )
        self.session: C2SConnection | None = None
        self._ack = ack
        self._header = header
        self._held: deque[_Held] = deque()
        self._buffered: dict[int, tuple[Element, _Held]] = {}
        self._responses: dict[int, bytes] = {}  # recent answers by rid, for repeated requests
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._stream_attrs: dict[str, str] = {}
        self._stream_error: Element | None = None
        self._final: bytes | None = None  # the terminate body, once the session ended
        self._creating = True  # until the creation answer is out
        self._last_request = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None  # inactivity, or expiry once ended

    @property
    def ended(self) -> bool:
        """True once the session is terminated."""
        return self._final is not None

    def __repr__(self) -> str:
        return f"<BoshSession {self.sid[:6]}… {self.peer}>"

    # -- creation ----------------------------------------------------------------------------
    def created(self, version: str) -> bytes:
        """Open the stream; the session-creation answer (XEP-0124 §7.2, XEP-0206 §3)."""
        session = self.session
        if self._final is None and session is not None:
            session.receive([self._header])
        self._creating = False
        if self._final is not None:
            final = self._final
            self._endpoint.remove(self)
            self._cancel_timer()
            return final
        stream = self._stream_attrs
        attrs = {
            "sid": self.sid,
            "wait": str(self.wait),
            "hold": str(self.hold),
            "requests": str(self.requests),
            "inactivity": str(self.inactivity),
            "polling": str(POLLING),
            "ver": version,
            "from": stream.get("from", ""),
            "authid": stream.get("id", ""),
            "xmpp:version": "1.0",
            "xmpp:restartlogic": "true",
        }
        if self._ack:
            attrs["ack"] = str(self.rid)
        response = bosh_body(attrs, self._take_out())
        self._remember(self.rid, response)
        self._start_inactivity()
        return response

    # -- requests ----------------------------------------------------------------------------
    def request(self, body: Element) -> bytes | asyncio.Future[bytes]:
        """A request of this session: its answer, now or later."""
        rid = rid_of(body)
        if rid is None:
            return self.fail("bad-request")
        if self._final is not None:  # ended while no request waited: this one learns it
            self._endpoint.remove(self)
            self._cancel_timer()
            return self._final
        if rid <= self.rid or rid in self._buffered:
            return self._repeated(rid)
        if rid > self.rid + self.requests:
            return self.fail("item-not-found")
        terminate = body.get("type") == "terminate"
        if len(self._held) + len(self._buffered) >= self.requests and not terminate:
            return self.fail("policy-violation")
        held = _Held(rid, asyncio.get_running_loop().create_future())
        self._cancel_timer()
        if rid != self.rid + 1:
            self._buffered[rid] = (body, held)
            self._arm(held, 2 * self.wait, self._gap_timeout)
            return held.future
        self._process(body, held)
        while not self.ended and self.rid + 1 in self._buffered:
            body, waiting = self._buffered.pop(self.rid + 1)
            self._process(body, waiting)
        return held.future

    def _repeated(self, rid: int) -> bytes | asyncio.Future[bytes]:
        """§14.3: the client sent a rid again (its connection broke): answer it again."""
        cached = self._responses.get(rid)
        if cached is not None:
            return cached
        waiting = next((h for h in self._held if h.rid == rid), None)
        if waiting is None and rid in self._buffered:
            waiting = self._buffered[rid][1]
        if waiting is None:
            return self.fail("item-not-found")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        old, waiting.future = waiting.future, future
        if not old.done():
            old.set_result(bosh_body({}))  # the old HTTP request is gone anyway
        return future

    def _process(self, body: Element, held: _Held) -> None:
        self.rid = held.rid
        now = time.monotonic()
        payload = bosh_payload(body)
        restart = body.get(XBOSH_RESTART) in ("true", "1")
        terminate = body.get("type") == "terminate"
        empty = not payload and not restart and not terminate
        if empty and self.hold == 0 and now - self._last_request < POLLING:
            held.future.set_result(self.fail("policy-violation"))
            return
        self._last_request = now
        self._held.append(held)
        self._arm(held, self.wait, self._wait_timeout)
        events: list[ParseEvent] = []
        if restart:
            events.append(self._restart_header(body))
        events.extend(payload)
        if terminate:
            events.append(StreamEnd())
        session = self.session
        if session is not None:
            session.last_active = now
            if events:
                session.receive(events)
        if self._final is not None:
            return  # the stream ended: close() answered every request
        if self._out:
            self._answer(self._held[0])
        while len(self._held) > self.hold:
            self._answer(self._held[0])

    def _restart_header(self, body: Element) -> StreamHeader:
        """XEP-0206 §5: the new header; what the restart body leaves out is as at creation."""
        attrs = dict(self._header.attrs)
        for key in ("to", "xml:lang"):
            value = body.get(key)
            if value is not None:
                attrs[key] = value
        return dataclasses.replace(self._header, attrs=attrs)

    # -- answers -----------------------------------------------------------------------------
    def _arm(self, held: _Held, delay: float, callback: Callable[[_Held], None]) -> None:
        held.timer = asyncio.get_running_loop().call_later(delay, callback, held)

    def _wait_timeout(self, held: _Held) -> None:
        held.timer = None
        if held in self._held:
            self._answer(held)

    def _gap_timeout(self, held: _Held) -> None:
        """A request waited too long for an earlier rid that never came."""
        held.timer = None
        if self._final is None and any(h is held for _, h in self._buffered.values()):
            self.fail("item-not-found")

    def _answer(self, held: _Held) -> None:
        self._held.remove(held)
        if held.timer is not None:
            held.timer.cancel()
        attrs = {"ack": str(self.rid)} if self._ack and held.rid != self.rid else {}
        response = bosh_body(attrs, self._take_out())
        self._remember(held.rid, response)
        if not held.future.done():
            held.future.set_result(response)
        if not self._held and not self._buffered:
            self._start_inactivity()

    def _take_out(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def _remember(self, rid: int, response: bytes) -> None:
        responses = self._responses
        responses[rid] = response
        while len(responses) > self.requests + 1:
            del responses[next(iter(responses))]

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._final is None and self._out and self._held:
            self._answer(self._held[0])

    # -- ending ------------------------------------------------------------------------------
    def fail(self, condition: str) -> bytes:
        """End the session with a binding error (XEP-0124 §17.2); the answer to send."""
        final = terminate_body(condition)
        if self._final is None:
            self._finish(final, final)
            self._endpoint.remove(self)
            self._cancel_timer()
            if self.session is not None:
                self.session.close()
        return final

    def _finish(self, first: bytes, others: bytes) -> None:
        """Answer every waiting request (the oldest with ``first``); keep ``others``."""
        self._final = others
        self._cancel_timer()
        waiting = [*self._held, *(h for _, h in self._buffered.values())]
        self._held.clear()
        self._buffered.clear()
        for i, held in enumerate(waiting):
            if held.timer is not None:
                held.timer.cancel()
            if not held.future.done():
                held.future.set_result(first if i == 0 else others)
        if not waiting:
            self._final = first  # for the next request; forgotten after a while
            self._timer = asyncio.get_running_loop().call_later(
                self.inactivity, self._endpoint.remove, self
            )

    def _start_inactivity(self) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(self.inactivity, self._inactive)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _inactive(self) -> None:
        """No request for ``inactivity`` seconds: end the XMPP session cleanly."""
        self._timer = None
        if self._held or self._buffered or self._final is not None:
            return
        self._endpoint.remove(self)
        if self.session is not None:
            self.session.close(StreamError("connection-timeout", "the BOSH session was inactive"))
        self._cancel_timer()

    # -- Connection interface (used by C2SConnection) -------------------------------------------
    def open_stream(self, attrs: Mapping[str, str]) -> None:
        """The stream header: its attributes go into the creation answer (XEP-0206 §3)."""
        self._stream_attrs = dict(attrs)

    def send_element(self, element: Element) -> None:
        """Queue one top-level element for the next answer (a stream error: for the end)."""
        if self._final is not None:
            return
        if element.xmlns == NS_STREAMS and element.name == "error":
            self._stream_error = element  # close() follows and sends it (XEP-0206 §6)
            return
        self._queue(body_element(element))

    def send_serialized(self, data: bytes) -> None:
        """Queue a stanza serialized once for many recipients (``jabber:client`` added)."""
        if self._final is None:
            self._queue(qualify_stanza(data))

    def close_stream(self) -> None:
        """Nothing to write: ``close()`` follows and answers with ``type='terminate'``."""

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def start_tls(self) -> None:
        """Never asked: STARTTLS is not offered on web transports."""

    def reset_parser(self) -> None:
        """Every body is parsed on its own: nothing carries over a stream restart."""

    def set_post_auth_limits(self) -> None:
        """Bodies may now be as large as authenticated stanzas (plus the wrapper)."""
        limits = self._endpoint.ctx.core.config.limits
        self.parser.set_limits(
            max_bytes=limits.stanza_size + BODY_OVERHEAD,
            max_depth=limits.depth + 1,
            max_elements=limits.elements + 1,
        )

    def pause_reading(self) -> None:
        """Nothing to do: the session queues what arrives while it waits."""

    def resume_reading(self) -> None:
        """Nothing to do (see ``pause_reading``)."""

    def close(self, *, wait_for_peer: bool) -> None:
        """The stream ended: answer with ``type='terminate'`` (and the stream error)."""
        del wait_for_peer  # BOSH has no closing handshake to wait for
        if self._final is not None:
            return
        attrs = {"type": "terminate"}
        payload = self._take_out()
        error = self._stream_error
        if error is not None:
            condition = _condition(error)
            if self._creating and condition in CREATION_CONDITIONS:
                attrs["condition"] = condition
            else:
                attrs["condition"] = "remote-stream-error"
                payload.append(body_element(error))
        self._finish(bosh_body(attrs, payload), bosh_body(attrs))
        if self._timer is None and not self._creating:  # every waiting request was answered
            self._endpoint.remove(self)
