"""The router: the one place where stanzas move (DESIGN.md §1.3).

``route(stanza, origin)`` reads only the envelope (name, type, id, to, from), classifies the
destination relative to the host that serves it (host, bare, full, self), and dispatches with
one dict lookup to the handlers modules registered. It returns None when the stanza is done,
or an awaitable when a handler must wait (the calling session then pauses, RFC 6120 §10.1).

Defaults when no module handles a stanza (RFC 6120 §8, §10; RFC 6121 §8.5):
- iq get/set: ``service-unavailable`` (§8.4), except to a bound full JID, where it is
  delivered; an iq without an id or without exactly one payload: ``bad-request``.
- iq result/error: to the server → the waiting request (``core.iq``); to a bound full JID →
  delivered; otherwise dropped.
- message/presence to a bound full JID → delivered; to a full JID that is not bound → handled
  as if addressed to the bare JID (§8.5.3.2, modules decide); then message →
  ``service-unavailable``, presence → dropped.
- a domain we do not serve → ``remote-server-not-found`` (no federation yet).
- never an error in reply to an error or to an iq result (§8.3.1).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from roost.core.stanza import (
    BARE,
    FULL,
    HOST,
    SELF,
    IqHandler,
    IqRequest,
    Routed,
    StanzaFilter,
    StanzaHandler,
)
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.stanzas import error_reply, iq_result, is_error_or_result
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.core.server import ServerCore
    from roost.core.session import C2SSession

log = logging.getLogger(__name__)

Pending = Awaitable[None] | None


class Router:
    """Classifies and dispatches stanzas; see the module docstring for the rules."""

    __slots__ = ("_core", "_hosts", "_sessions")

    def __init__(self, core: ServerCore) -> None:
        self._core = core
        self._hosts = core.hosts
        self._sessions = core.sessions

    def route(self, stanza: Element, origin: C2SSession | None) -> Pending:
        """Deliver or dispatch one stanza; see the module docstring."""
        attrs = stanza.attrs
        try:
            sender = origin.jid if origin is not None and origin.jid else JID.parse(attrs["from"])
        except (KeyError, JIDError):
            log.warning("dropping a %s without a valid sender", stanza.name)
            return None
        to_raw = attrs.get("to")
        if to_raw is None:
            if origin is None:
                log.warning("dropping a server-originated %s without 'to'", stanza.name)
                return None
            to = sender.bare
        else:
            try:
                to = JID.parse(to_raw)
            except JIDError:
                return self.bounce(stanza, StanzaError("jid-malformed"), origin)
        host = self._hosts.get(to.domain)
        if host is None:
            return self.bounce(
                stanza,
                StanzaError("remote-server-not-found", "federation is not available"),
                origin,
            )
        if to.local is None:
            addressing = HOST
        elif to.resource is not None:
            addressing = FULL
        elif to_raw is None or (origin is not None and to == sender.bare):
            addressing = SELF
        else:
            addressing = BARE
        routed = Routed(stanza, sender, to, host, origin, addressing)
        if host.filters:
            return self._filter(host.filters, 0, routed)
        return self._dispatch(routed)

    def _dispatch(self, routed: Routed) -> Pending:
        stanza = routed.stanza
        if stanza.name == "iq":
            return self._route_iq(routed)
        handlers = routed.host.stanza_handlers.get((stanza.name, routed.addressing))
        if handlers:
            return self._run(handlers, 0, routed, routed.addressing)
        return self._default(routed, routed.addressing)

    # -- filters (blocking, privacy) ---------------------------------------------------------
    def _filter(self, filters: Sequence[StanzaFilter], start: int, routed: Routed) -> Pending:
        for i in range(start, len(filters)):
            try:
                result = filters[i](routed)
            except StanzaError as err:
                return self.bounce(routed.stanza, err, routed.origin)
            except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
                return self._crashed(routed.stanza, routed.origin)
            if result is True:
                return None
            if result is not None and result is not False:
                return self._filter_async(result, filters, i + 1, routed)
        return self._dispatch(routed)

    async def _filter_async(
        self,
        pending: Awaitable[bool | None],
        filters: Sequence[StanzaFilter],
        start: int,
        routed: Routed,
    ) -> None:
        try:
            stop = await pending
        except StanzaError as err:
            self.bounce(routed.stanza, err, routed.origin)
            return
        except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
            self._crashed(routed.stanza, routed.origin)
            return
        if stop is not True:
            more = self._filter(filters, start, routed)
            if more is not None:
                await more

    # -- message and presence ----------------------------------------------------------------
    def _run(
        self, handlers: Sequence[StanzaHandler], start: int, routed: Routed, addressing: str
    ) -> Pending:
        for i in range(start, len(handlers)):
            try:
                result = handlers[i](routed)
            except StanzaError as err:
                return self.bounce(routed.stanza, err, routed.origin)
            except Exception:
                log.exception(
                    "handler failed on %s id=%s", routed.stanza.name, routed.stanza.get("id")
                )
                return self.bounce(
                    routed.stanza, StanzaError("internal-server-error"), routed.origin
                )
            if result is True:
                return None
            if result is not None and result is not False:
                return self._run_async(result, handlers, i + 1, routed, addressing)
        return self._default(routed, addressing)

    async def _run_async(
        self,
        pending: Awaitable[bool | None],
        handlers: Sequence[StanzaHandler],
        start: int,
        routed: Routed,
        addressing: str,
    ) -> None:
        try:
            handled = await pending
        except StanzaError as err:
            self.bounce(routed.stanza, err, routed.origin)
            return
        except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
            self._crashed(routed.stanza, routed.origin)
            return
        if handled is not True:
            more = self._run(handlers, start, routed, addressing)
            if more is not None:
                await more

    def _default(self, routed: Routed, addressing: str) -> Pending:
        stanza = routed.stanza
        if addressing == FULL:
            session = self._sessions.get(str(routed.to))
            if session is not None:
                session.send(stanza)
                return None
            handlers = routed.host.stanza_handlers.get((stanza.name, BARE))  # §8.5.3.2
            if handlers:
                return self._run(handlers, 0, routed, BARE)
        if stanza.name == "message":
            return self.bounce(stanza, StanzaError("service-unavailable"), routed.origin)
        return None

    # -- iq ------------------------------------------------------------------------------------
    def _route_iq(self, routed: Routed) -> Pending:
        stanza, to, origin, addressing = routed.stanza, routed.to, routed.origin, routed.addressing
        kind = stanza.attrs.get("type")
        if kind == "get" or kind == "set":
            payloads = [c for c in stanza.children if type(c) is Element]
            if len(payloads) != 1 or "id" not in stanza.attrs:
                return self.bounce(
                    stanza, StanzaError("bad-request", "one payload and an id"), origin
                )
            payload = payloads[0]
            handlers = routed.host.iq_handlers
            handler = handlers.get((kind, addressing, payload.xmlns, payload.name))
            if handler is None and addressing == SELF:
                handler = handlers.get((kind, BARE, payload.xmlns, payload.name))
            if handler is not None:
                request = IqRequest(stanza, payload, routed.sender, to, routed.host, origin)
                return self._call_iq(handler, request)
            if addressing == FULL:
                session = self._sessions.get(str(to))
                if session is not None:
                    session.send(stanza)
                    return None
            return self.bounce(stanza, StanzaError("service-unavailable"), origin)
        if kind == "result" or kind == "error":
            if addressing == HOST:
                self._core.iq.reply(stanza)
            elif addressing == FULL:
                session = self._sessions.get(str(to))
                if session is not None:
                    session.send(stanza)
            return None
        return self.bounce(stanza, StanzaError("bad-request", "invalid iq type"), origin)

    def _call_iq(self, handler: IqHandler, request: IqRequest) -> Pending:
        try:
            result = handler(request)
        except StanzaError as err:
            return self.bounce(request.stanza, err, request.origin)
        except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
            return self._crashed(request.stanza, request.origin)
        if result is None or isinstance(result, Element):
            self._reply(request, result)
            return None
        return self._finish_iq(result, request)

    async def _finish_iq(self, pending: Awaitable[Element | None], request: IqRequest) -> None:
        try:
            payload = await pending
        except StanzaError as err:
            self.bounce(request.stanza, err, request.origin)
            return
        except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
            self._crashed(request.stanza, request.origin)
            return
        self._reply(request, payload)

    def _reply(self, request: IqRequest, payload: Element | None) -> None:
        reply = iq_result(request.stanza, payload)
        if request.origin is not None:
            request.origin.send(reply)
        else:
            self.route(reply, None)

    def _crashed(self, stanza: Element, origin: C2SSession | None) -> Pending:
        """A handler raised: log once with the stanza id, answer internal-server-error."""
        # called from except blocks only, so the traceback is the handler's
        log.error("handler failed on %s id=%s", stanza.name, stanza.get("id"), exc_info=True)  # noqa: LOG014
        return self.bounce(stanza, StanzaError("internal-server-error"), origin)

    # -- errors --------------------------------------------------------------------------------
    def bounce(self, stanza: Element, error: StanzaError, origin: C2SSession | None) -> Pending:
        """Answer ``stanza`` with ``error`` (never an error to an error or an iq result)."""
        if is_error_or_result(stanza):
            return None
        reply = error_reply(stanza, error)
        if origin is not None:
            origin.send(reply)
        elif "to" in reply.attrs and reply.attrs.get("from"):
            self.route(reply, None)
        return None
