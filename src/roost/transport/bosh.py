"""BOSH (XEP-0124) carrying XMPP (XEP-0206) at ``/http-bind``.

Theory of operation
-------------------
A ``BoshSession`` is the ``Connection`` of one ``C2SConnection``, spread over HTTP requests that
each carry one ``<body/>`` (parsed by ``roost.stream.framing`` under the session's stanza
limits plus ``BODY_OVERHEAD`` for the wrapper).

- Creation (XEP-0124 §7.1, XEP-0206 §3): a body without ``sid`` needs ``rid`` and ``to``
  (else ``bad-request``/``improper-addressing``); ``wait`` is capped by
  ``[http].bosh_max_wait``, ``hold`` by ``MAX_HOLD``; ``requests`` is hold + 1. It becomes a
  stream header; the answer carries sid, wait, hold, requests, inactivity, polling, ver,
  from, authid (the stream id), ``xmpp:version``, ``xmpp:restartlogic`` and the features.
  At most ``[http].bosh_sessions_per_ip`` sessions per client address, an IPv6 client's /64
  (``core.limits.address_key``), else ``policy-violation``.
- Requests are processed in ``rid`` order (§14.1): a request ahead of the next expected rid
  but within the window of ``requests`` waits for the ones before it; beyond the window, or
  a rid already answered whose answer is no longer kept, is ``item-not-found`` (§14.2). A
  repeated rid gets the same answer again (§14.3). Its stanzas go to the session; ``xmpp:
  restart='true'`` is a new stream header (XEP-0206 §5); ``type='terminate'`` ends the stream
  after its stanzas (§12).
- Holding (§8): a processed request waits until the session writes, or ``wait`` seconds
  (then an empty body). With more than ``hold`` requests waiting, the oldest is answered at
  once. More than ``requests`` open at once, or (polling sessions, hold = 0) two empty
  requests less than ``polling`` seconds apart, is ``policy-violation`` (§11). Answers carry
  ``ack`` when the client asked for acknowledgements and a later rid was processed (§9.1).
- Termination: a binding error (``bad-request``, ``item-not-found``, ``policy-violation``)
  ends the session at once; a stream error from the session becomes ``remote-stream-error``
  with the ``<stream:error/>`` inside (XEP-0206 §6; at creation ``host-unknown``,
  ``improper-addressing`` and ``policy-violation`` are reported as the binding conditions of
  the same name). When no request is waiting, the last answer is kept for the next request.
- A session without any request for ``[http].bosh_max_inactivity`` seconds is closed with
  ``connection-timeout``: the ``C2SConnection`` ends and ``SessionEnded`` fires, so presence
  goes unavailable as for any other client.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import TYPE_CHECKING, Final

from aiohttp import web

from roost.errors import StreamError
from roost.stream.framing import FrameParser, bosh_header
from roost.transport.bosh_session import BODY_OVERHEAD, BoshSession, rid_of, terminate_body
from roost.xml.ns import NS_HTTPBIND

if TYPE_CHECKING:
    from roost.transport.http import ClientInfo, HttpContext
    from roost.xml.element import Element

VERSION: Final = (1, 11)  # XEP-0124 version implemented
MAX_HOLD: Final = 2
CONTENT_TYPE: Final = "text/xml"
INFO: Final = "roost: BOSH (XEP-0124, XEP-0206). POST <body/> elements to this URL.\n"

_SID: Final = re.compile(rb"""\ssid\s*=\s*(?:'([^'<>]*)'|"([^"<>]*)")""")


def _reply(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8")


def _number(text: str | None, default: int, low: int, high: int) -> int:
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 9:
        return default
    return max(low, min(high, int(text)))


def _version(text: str | None) -> str:
    major, _, minor = (text or "").partition(".")
    digits = major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()
    if digits and len(text or "") < 12 and (int(major), int(minor)) < VERSION:
        return f"{int(major)}.{int(minor)}"
    return f"{VERSION[0]}.{VERSION[1]}"


def _sniff_sid(data: bytes) -> str | None:
    """The sid in a body's start tag, to choose limits before parsing (not trusted)."""
    head = data[: data.find(b">", 0, 4096) + 1 or 4096]
    found = _SID.search(head)
    if found is None:
        return None
    return (found.group(1) or found.group(2) or b"").decode(errors="replace")


async def _read_body(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """The request body, or its first bytes and False when it exceeds ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        return await request.content.read(4096), False
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return chunks[0], False
    return b"".join(chunks), True


class BoshEndpoint:
    """The ``/http-bind`` route and the table of BOSH sessions."""

    __slots__ = ("_per_ip", "_preauth_parser", "ctx", "sessions")

    def __init__(self, ctx: HttpContext) -> None:
        self.ctx = ctx
        limits = ctx.core.config.limits
        self._preauth_parser = FrameParser(
            max_bytes=limits.stanza_size_preauth + BODY_OVERHEAD,
            max_depth=limits.depth_preauth + 1,
            max_elements=limits.elements_preauth + 1,
        )
        self.sessions: dict[str, BoshSession] = {}
        self._per_ip: dict[str, int] = {}

    async def info(self, _request: web.Request) -> web.Response:
        """GET: say what this URL is."""
        return web.Response(text=INFO)

    async def handle(self, request: web.Request) -> web.Response:
        """POST: one request of a session (or the creation of one)."""
        limit = self.ctx.core.config.limits.stanza_size + BODY_OVERHEAD
        data, complete = await _read_body(request, limit)
        session = self.sessions.get(_sniff_sid(data) or "")
        if not complete:
            if session is not None:
                return _reply(session.fail("policy-violation"))
            return _reply(terminate_body("policy-violation"))
        parser = self._preauth_parser if session is None else session.parser
        try:
            body = parser.parse(data)
        except StreamError as err:
            condition = "policy-violation" if err.condition == "policy-violation" else "bad-request"
            if session is not None:
                return _reply(session.fail(condition))
            return _reply(terminate_body(condition))
        if body is None or body.name != "body" or body.xmlns != NS_HTTPBIND:
            return _reply(terminate_body("bad-request"))
        sid = body.get("sid")
        if sid is None:
            return _reply(self._create(body, self.ctx.client(request)))
        session = self.sessions.get(sid)
        if session is None:
            return _reply(terminate_body("item-not-found"))
        answer = session.request(body)
        return _reply(answer if isinstance(answer, bytes) else await answer)

    def _create(self, body: Element, info: ClientInfo) -> bytes:
        settings = self.ctx.settings
        rid = rid_of(body)
        if rid is None:
            return terminate_body("bad-request")
        if body.get("to") is None:
            return terminate_body("improper-addressing")
        client = self.ctx.core.limiter.key(info.ip)  # an IPv4 address or an IPv6 /64
        if self._per_ip.get(client, 0) >= settings.bosh_sessions_per_ip and not self._exempt(
            info.ip
        ):
            return terminate_body("policy-violation")
        sid = secrets.token_urlsafe(18)
        session = BoshSession(
            self,
            sid,
            info,
            rid=rid,
            wait=_number(body.get("wait"), settings.bosh_max_wait, 1, settings.bosh_max_wait),
            hold=_number(body.get("hold"), 1, 0, MAX_HOLD),
            ack="ack" in body.attrs,
            header=bosh_header(body),
        )
        self.sessions[sid] = session
        self._per_ip[client] = self._per_ip.get(client, 0) + 1
        session.session = self.ctx.open_session(session, info)
        return session.created(_version(body.get("ver")))

    def _exempt(self, ip: str) -> bool:
        if not self.ctx.core.config.limits.exempt_loopback:
            return False
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def remove(self, session: BoshSession) -> None:
        """Forget a session (idempotent)."""
        if self.sessions.pop(session.sid, None) is None:
            return
        client = self.ctx.core.limiter.key(session.peer)
        count = self._per_ip.get(client, 0) - 1
        if count > 0:
            self._per_ip[client] = count
        else:
            self._per_ip.pop(client, None)

    async def shutdown(self) -> None:
        """The server stops: end every session still there, answering waiting requests."""
        for session in list(self.sessions.values()):
            session.fail("system-shutdown")
