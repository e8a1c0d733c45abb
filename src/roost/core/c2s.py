"""Client connections: the driver between a transport and the sans-IO c2s stream machine.

A ``C2SConnection`` performs the actions the stream returns (write, start TLS, look up
credentials, check a password, bind, hand a claimed element to its negotiator, route). Once
a resource is bound it carries a ``Session`` (``roost.core.session``): the session is what
modules see, the connection is only its current carrier, so a session can outlive it
(stream-management hibernation, XEP-0198 §5) or be carried by something else.

Stanzas of one connection are processed strictly in order (RFC 6120 §10.1): when an action
has to wait (a storage lookup, an async handler, PLAIN's PBKDF2 in a worker thread), reading
pauses and the remaining actions and events wait behind it — Prosody's per-session runner,
without a task per stanza (docs/architecture.md). A step that waits may return the machine's
next actions; they are performed before the remaining ones.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from roost.auth.credentials import verify_password
from roost.core.hooks import Authenticated, SessionBound
from roost.core.metrics import parse_rejection
from roost.errors import StanzaError, StreamError
from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, State
from roost.stream.features import Reply
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING
from roost.xml.parser import ParseEvent

if TYPE_CHECKING:
    from roost.core.server import ServerCore
    from roost.core.session import Session

log = logging.getLogger(__name__)

Step = Awaitable[list[ev.Action]]  # a waiting step of the machine's: ends with its answer


class Connection(Protocol):
    """What a transport offers the driver (TCP, WebSocket, BOSH), element-level: each
    transport writes in its own framing (RFC 6120 §4 text, RFC 7395 frames, XEP-0206 bodies).
    """

    peer: str  # the remote IP address

    def open_stream(self, attrs: Mapping[str, str]) -> None: ...  # header / <open/> / BOSH
    def send_element(self, element: Element) -> None: ...  # one top-level element
    # One jabber:client stanza as roost.xml.serializer.serialize wrote it (default-namespace
    # form); fan-out serializes once and hands the same bytes to many connections.
    def send_serialized(self, data: bytes) -> None: ...
    def close_stream(self) -> None: ...  # </stream:stream> / <close/> / BOSH terminate
    def start_tls(self) -> None: ...  # flush, upgrade, then call tls_established()
    def reset_parser(self) -> None: ...
    def set_post_auth_limits(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self, *, wait_for_peer: bool) -> None: ...  # after flushing what was written


class C2SConnection:
    """One client connection, from the first byte to its end; the carrier of its session."""

    __slots__ = (
        "_backlog",
        "_busy",
        "_failure",
        "_metrics",
        "authenticated_at",
        "closed",
        "conn",
        "core",
        "created",
        "last_active",
        "ping_sent",
        "session",
        "stream",
        "unauth_counted",
    )

    def __init__(
        self,
        core: ServerCore,
        conn: Connection,
        *,
        secure: bool,
        starttls: bool = True,
        channel_binding: bool = True,
    ) -> None:
        self.core = core
        self.conn = conn
        self.stream = C2SStream(
            core.routes.login_domains,
            tls_available=core.tls_available and starttls,
            tls_required=core.config.tls.require_c2s,
            secure=secure,
            cb_data=core.cb_data if secure and channel_binding else None,
            max_auth_failures=core.config.limits.auth_failures_per_stream,
            negotiators=core.stream_negotiators,
        )
        self.session: Session | None = None
        self.created = self.last_active = time.monotonic()
        self.authenticated_at = 0.0
        self.ping_sent = 0.0
        self.closed = False
        self.unauth_counted = False  # counted in the per-IP unauthenticated connections
        self._busy = False
        self._backlog: list[ParseEvent] = []
        self._failure: StreamError | None = None  # a parse error waiting behind the backlog
        self._metrics = core.limiter.metrics

    def __repr__(self) -> str:
        return f"<C2SConnection {self.jid_str or self.conn.peer}>"

    @property
    def peer(self) -> str:
        """The client's IP address."""
        return self.conn.peer

    @property
    def jid(self) -> JID | None:
        """The bound full JID, once bound."""
        return None if self.session is None else self.session.jid

    @property
    def jid_str(self) -> str:
        """The bound full JID as a string ("" before binding)."""
        return "" if self.session is None else self.session.jid_str

    # -- input from the transport ------------------------------------------------------------
    def receive(self, events: list[ParseEvent]) -> None:
        """Process parse events (in order; queued while an earlier stanza is waiting)."""
        if self._busy:
            self._backlog.extend(events)
            return
        self._perform(self.stream.receive(events), 0)

    def parse_error(self, error: StreamError) -> None:
        """The parser refused the input: close with that stream error, after the stanzas
        that came before it (they may still be waiting behind a handler)."""
        self._metrics.rejected(parse_rejection(error))
        if self._busy:
            self._failure = error
            return
        self._perform(self.stream.close(error), 0)

    def tls_established(self, cb_data: bytes | None) -> None:
        """The transport finished the TLS handshake."""
        self._perform(self.stream.tls_established(cb_data), 0)

    def connection_lost(self) -> None:
        """The transport is gone: end the session (unavailable presence etc. via hooks)."""
        if self.closed:
            return
        self.closed = True
        self.stream.state = State.CLOSED
        self._backlog.clear()
        self._uncount()
        self.core.connection_ended(self, "connection closed")

    # -- Carrier: output of the bound session ------------------------------------------------
    def send_stanza(self, stanza: Element, data: bytes | None) -> None:
        """Write one stanza (``router.deliver`` is the only caller)."""
        if self.closed:
            return
        if data is None:
            self.conn.send_element(stanza)
        else:
            self.conn.send_serialized(data)

    def close(self, error: StreamError | None = None) -> None:
        """Close the stream from the server side (with a stream error, or cleanly)."""
        if not self.closed:
            self._perform(self.stream.close(error), 0)

    def ping(self) -> None:
        """Send an idle-check ping (XEP-0199); any data from the client answers it."""
        session = self.session
        if session is None:
            return
        iq = Element("iq", NS_CLIENT, {"type": "get", "id": "idle-" + secrets.token_hex(4)})
        iq.attrs["to"] = session.jid_str
        iq.attrs["from"] = self.stream.domain or ""
        iq.sub("ping", NS_PING)
        self.core.router.deliver(session, iq)
        self.ping_sent = time.monotonic()

    # -- the runner --------------------------------------------------------------------------
    def _perform(self, actions: Sequence[ev.Action], start: int) -> None:
        route = self.core.router.route
        for i in range(start, len(actions)):
            action = actions[i]
            if type(action) is Element:
                self._metrics.stanzas_in += 1
                pending = route(action, self.session)
                if pending is not None:
                    self._wait(pending, actions, i + 1)
                    return
            elif type(action) is ev.SendElement:
                self.conn.send_element(action.element)
            else:
                step = self._act(action)
                if step is not None:
                    self._wait(step, actions, i + 1, answers=True)
                    return
                if self.closed:  # a claimed element's negotiator may close the connection
                    return

    def _act(self, action: ev.Action) -> Step | None:
        kind = type(action)
        if kind is ev.OpenStream:
            self.conn.open_stream(action.attrs)  # type: ignore[union-attr]
        elif kind is ev.CloseStream:
            self.conn.close_stream()
        elif kind is ev.FetchCredentials:
            return self._fetch_credentials(action.jid)  # type: ignore[union-attr]
        elif kind is ev.VerifyPassword:
            return self._verify_password(action)  # type: ignore[arg-type]
        elif kind is ev.Claimed:
            return self._claimed(action)  # type: ignore[arg-type]
        elif kind is ev.BindRequest:
            self._bind(action.resource)  # type: ignore[union-attr]
        elif kind is ev.Authenticated:
            self._authenticated(action)  # type: ignore[arg-type]
        elif kind is ev.ResetParser:
            self.conn.reset_parser()
        elif kind is ev.StartTLS:
            self.conn.start_tls()
        elif kind is ev.AuthFailed:
            self._auth_failed(action)  # type: ignore[arg-type]
        elif kind is ev.Close:
            self._close(action)  # type: ignore[arg-type]
        return None

    def _wait(
        self,
        pending: Awaitable[object],
        actions: Sequence[ev.Action],
        resume_at: int,
        *,
        answers: bool = False,
    ) -> None:
        self._busy = True
        self.conn.pause_reading()
        task = self._resume(pending, actions, resume_at, answers)
        asyncio.get_running_loop().create_task(task)

    async def _resume(
        self,
        pending: Awaitable[object],
        actions: Sequence[ev.Action],
        resume_at: int,
        answers: bool,
    ) -> None:
        result: object = None
        try:
            result = await pending
        except Exception:
            log.exception("connection %r: a waiting step failed", self)
        self._busy = False
        if self.closed:
            return
        if answers and isinstance(result, list) and result:
            # a step of the machine's (``Step``): its answer comes before what was waiting
            actions, resume_at = [*result, *actions[resume_at:]], 0
        self._perform(actions, resume_at)
        if not self._busy and self._backlog:
            backlog, self._backlog = self._backlog, []
            self.receive(backlog)
        if not self._busy and self._failure is not None:
            failure, self._failure = self._failure, None
            self._perform(self.stream.close(failure), 0)
        if not self._busy and not self.closed:
            self.conn.resume_reading()

    # -- steps -------------------------------------------------------------------------------
    async def _fetch_credentials(self, jid: JID) -> list[ev.Action]:
        creds = await self.core.storage.accounts.get_credentials(jid.domain, jid.local or "")
        return self.stream.credentials(creds)

    async def _verify_password(self, action: ev.VerifyPassword) -> list[ev.Action]:
        """PBKDF2 in the loop's worker threads (hashlib releases the GIL): not on the loop."""
        loop = asyncio.get_running_loop()
        valid = await loop.run_in_executor(
            None, verify_password, action.credentials, action.password
        )
        return self.stream.password_checked(valid)

    def _claimed(self, action: ev.Claimed) -> Step | None:
        """Hand a claimed element to its negotiator, with this connection; write its answer."""
        try:
            reply = action.negotiator.handle(self, action.element)
        except Exception as exc:  # noqa: BLE001 - logged in _claim_failed
            self._perform(self._claim_failed(action, exc), 0)
            return None
        if isinstance(reply, Sequence):
            self._perform(self._claim_answered(reply), 0)
            return None
        return self._claim_awaited(action, reply)

    async def _claim_awaited(
        self, action: ev.Claimed, pending: Awaitable[Reply]
    ) -> list[ev.Action]:
        try:
            reply = await pending
        except Exception as exc:  # noqa: BLE001 - logged in _claim_failed
            return self._claim_failed(action, exc)
        return self._claim_answered(reply)

    def _claim_failed(self, action: ev.Claimed, exc: Exception) -> list[ev.Action]:
        log.error("%r: %r failed on <%s/>", self, action.negotiator, action.element, exc_info=exc)
        return self.stream.close(StreamError("internal-server-error", "a stream feature failed"))

    def _claim_answered(self, reply: Reply) -> list[ev.Action]:
        if not self.closed:
            for element in reply:
                self.conn.send_element(element)
        return self.stream.claim_finished()

    def _auth_failed(self, action: ev.AuthFailed) -> None:
        self._metrics.auth_failed(action.condition)
        peer = self.conn.peer
        if not self.core.limiter.auth_failed(peer):
            return
        # The address is banned: close its other unauthenticated streams too (all of its IPv6
        # /64), or they could go on guessing through the ban (only new connections are
        # refused). Bans are rare, so scanning the connections here costs nothing on the hot path.
        text = "too many failed authentication attempts"
        self.close(StreamError("policy-violation", text))
        banned = self.core.limiter.banned
        for other in list(self.core.connections):
            if other.stream.authenticated is None and banned(other.conn.peer):
                other.close(StreamError("policy-violation", text))

    def _authenticated(self, action: ev.Authenticated) -> None:
        self.authenticated_at = time.monotonic()
        self.conn.set_post_auth_limits()
        self._uncount()
        host = self.core.routes.hosts[action.jid.domain]
        host.hooks.fire(Authenticated(str(action.jid), action.mechanism, self.conn.peer))

    def _bind(self, resource: str | None) -> None:
        bare = self.stream.authenticated
        if bare is None:  # the machine never asks before authentication
            return
        try:
            session = self.core.bind(self, bare, resource)
        except StanzaError as err:
            if err.condition == "resource-constraint":
                self._metrics.rejected("resources_per_account")
            self._perform(self.stream.bind_failed(err), 0)
            return
        self.session = session
        self._perform(self.stream.bound(session.jid), 0)
        session.host.hooks.fire(SessionBound(session))

    def _uncount(self) -> None:
        if self.unauth_counted:
            self.unauth_counted = False
            self.core.limiter.authenticated(self.conn.peer)

    def _close(self, action: ev.Close) -> None:
        if self.closed:
            return
        self.closed = True
        self._uncount()
        if action.condition:
            self._metrics.stream_error(action.condition)
        self.conn.close(wait_for_peer=not action.peer_closed)
        reason = action.condition or ("closed by client" if action.peer_closed else "closed")
        self.core.connection_ended(self, reason)


def open_c2s_connection(
    core: ServerCore,
    conn: Connection,
    ip: str,
    *,
    secure: bool,
    starttls: bool = True,
    channel_binding: bool = True,
) -> C2SConnection:
    """A new client connection, registered and counted by the per-IP limits (any transport).

    A refused connection gets its stream error at once (after a header of ours).
    """
    connection = C2SConnection(
        core, conn, secure=secure, starttls=starttls, channel_binding=channel_binding
    )
    core.connections.add(connection)
    refusal = core.limiter.refuse(ip)
    if refusal is None:
        connection.unauth_counted = True
    else:
        connection.close(refusal)
    return connection
