"""The router: the one place where stanzas move (docs/architecture.md).

Way in: ``route(stanza, origin)`` reads only the envelope (name, type, id, to, from) and
1. runs the *pre-route* handlers of the sender's host when the sender is one of its accounts,
   whatever the destination (Prosody's ``pre-message/*``; blocking's outbound rule, later
   carbons and the archive of sent messages);
2. looks the destination domain up in the route table (``roost.core.routes``): a local host
   (user or service), a component, or the remote router;
3. for a local host, classifies the address (host, bare, full, self), runs the host's
   filters, then dispatches with one dict lookup to the handlers modules registered; what
   nobody handled gets the host's defaults (RFC 6121 §8.5 for user hosts, RFC 6120 §8.4 for
   services: see ``roost.core.routes``).
It returns None when the stanza is done, or an awaitable when a handler must wait (the
calling connection then pauses, RFC 6120 §10.1).

Way out: ``deliver(session, stanza)`` is the only way a stanza reaches a client: the host's
outgoing filters, then the session's own chain (``Session.outgoing``: stream management,
client state indication), then the session's carrier. Nothing else writes to sessions.

Also here (RFC 6120 §8): an iq without an id or without exactly one payload gets
``bad-request``; an iq result/error to the server itself answers the request the server made
(``roost.core.iq``: matched by id *and* sender); never an error in reply to an error or to an
iq result (§8.3.1). Error replies the router makes itself skip the pre-route handlers and
the filters: they answer a stanza that already went through them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from roost.core.stanza import (
    BARE,
    FULL,
    HOST,
    SELF,
    IqHandler,
    IqRequest,
    Outbound,
    Routed,
    StanzaHandler,
)
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.stanzas import error_reply, iq_result, is_error_or_result
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.core.server import ServerCore
    from roost.core.session import Session

log = logging.getLogger(__name__)

Pending = Awaitable[None] | None
Answer = bool | Awaitable[bool | None] | None


class _Carried(Protocol):
    @property
    def stanza(self) -> Element: ...
    @property
    def origin(self) -> Session | None: ...


A = TypeVar("A", bound=_Carried)


class Router:
    """Classifies, dispatches and delivers stanzas; see the module docstring for the rules."""

    __slots__ = ("_core", "_hosts", "_iq", "_metrics", "_routes", "_sessions")

    def __init__(self, core: ServerCore) -> None:
        self._core = core
        self._routes = core.routes
        self._hosts = core.routes.hosts
        self._sessions = core.sessions
        self._iq = core.iq
        self._metrics = core.limiter.metrics

    # -- the way in ----------------------------------------------------------------------------
    def route(self, stanza: Element, origin: Session | None, *, policy: bool = True) -> Pending:
        """Deliver or dispatch one stanza; see the module docstring.

        ``policy=False`` skips pre-route handlers and filters (the router's own replies).
        """
        attrs = stanza.attrs
        try:
            sender = origin.jid if origin is not None else JID.parse(attrs["from"])
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
        if policy and sender.local is not None:
            own = self._hosts.get(sender.domain)
            if own is not None and own.pre_route:
                outbound = Outbound(stanza, sender, to, own, origin)
                return self._chain(own.pre_route, 0, outbound, self._after_pre_route)
        return self._to_destination(stanza, sender, to, origin, policy)

    def _after_pre_route(self, outbound: Outbound) -> Pending:
        return self._to_destination(outbound.stanza, outbound.sender, outbound.to, outbound.origin)

    def _to_destination(
        self, stanza: Element, sender: JID, to: JID, origin: Session | None, policy: bool = True
    ) -> Pending:
        host = self._hosts.get(to.domain)
        if host is None:
            component = self._routes.component(to.domain)
            if component is not None:
                component.deliver(stanza)
                return None
            return self._routes.remote.route_remote(self, stanza, to, origin)
        if to.local is None:
            addressing = HOST
        elif to.resource is not None:
            addressing = FULL
        elif origin is not None and to == sender.bare:
            addressing = SELF
        else:
            addressing = BARE
        routed = Routed(stanza, sender, to, host, origin, addressing)
        if policy and host.filters:
            return self._chain(host.filters, 0, routed, self._dispatch)
        return self._dispatch(routed)

    def _dispatch(self, routed: Routed) -> Pending:
        stanza = routed.stanza
        if stanza.name == "iq":
            return self._route_iq(routed)
        handlers = routed.host.stanza_handlers.get((stanza.name, routed.addressing))
        if handlers:
            return self.run(handlers, 0, routed, routed.addressing)
        return routed.host.unhandled(self, routed, routed.addressing)

    # -- the way out ---------------------------------------------------------------------------
    def deliver(self, session: Session, stanza: Element, data: bytes | None = None) -> None:
        """Hand ``stanza`` to a client session through its outgoing chain.

        ``data``, when given, is ``stanza`` serialized (fan-out serializes once); a filter
        that replaces the stanza makes it stale, so it is dropped then.
        """
        if session.closed:
            return
        chain = session.host.outgoing
        if chain:
            passed = _through(chain, session, stanza)
            if passed is None:
                return
            if passed is not stanza:
                stanza, data = passed, None
        chain = session.outgoing
        if chain:
            passed = _through(chain, session, stanza)
            if passed is None:
                return
            if passed is not stanza:
                stanza, data = passed, None
        self._metrics.stanzas_out += 1
        session.carrier.send_stanza(stanza, data)

    # -- handler chains ------------------------------------------------------------------------
    def _chain(
        self,
        handlers: Sequence[Callable[[A], Answer]],
        start: int,
        arg: A,
        then: Callable[[A], Pending],
    ) -> Pending:
        """Run pre-route handlers or filters until one returns True; then ``then(arg)``."""
        for i in range(start, len(handlers)):
            try:
                result = handlers[i](arg)
            except StanzaError as err:
                return self.bounce(arg.stanza, err, arg.origin)
            except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
                return self._crashed(arg.stanza, arg.origin)
            if result is True:
                return None
            if result is not None and result is not False:
                return self._chain_async(result, handlers, i + 1, arg, then)
        return then(arg)

    async def _chain_async(
        self,
        pending: Awaitable[bool | None],
        handlers: Sequence[Callable[[A], Answer]],
        start: int,
        arg: A,
        then: Callable[[A], Pending],
    ) -> None:
        try:
            stop = await pending
        except StanzaError as err:
            self.bounce(arg.stanza, err, arg.origin)
            return
        except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
            self._crashed(arg.stanza, arg.origin)
            return
        if stop is not True:
            more = self._chain(handlers, start, arg, then)
            if more is not None:
                await more

    def run(
        self, handlers: Sequence[StanzaHandler], start: int, routed: Routed, addressing: str
    ) -> Pending:
        """Run message/presence handlers until one handles the stanza; then the defaults."""
        for i in range(start, len(handlers)):
            try:
                result = handlers[i](routed)
            except StanzaError as err:
                return self.bounce(routed.stanza, err, routed.origin)
            except Exception:  # noqa: BLE001 - logged with the stanza id in _crashed
                return self._crashed(routed.stanza, routed.origin)
            if result is True:
                return None
            if result is not None and result is not False:
                return self._run_async(result, handlers, i + 1, routed, addressing)
        return routed.host.unhandled(self, routed, addressing)

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
            more = self.run(handlers, start, routed, addressing)
            if more is not None:
                await more

    # -- iq ------------------------------------------------------------------------------------
    def _route_iq(self, routed: Routed) -> Pending:
        stanza, origin, addressing = routed.stanza, routed.origin, routed.addressing
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
                request = IqRequest(stanza, payload, routed.sender, routed.to, routed.host, origin)
                return self._call_iq(handler, request)
            return routed.host.unhandled_iq(self, routed)
        if kind == "result" or kind == "error":
            if addressing == HOST:
                self._iq.reply(stanza, routed.sender)
                return None
            return routed.host.iq_response(self, routed)
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
        self._answer(iq_result(request.stanza, payload), request.origin)

    def _crashed(self, stanza: Element, origin: Session | None) -> Pending:
        """A handler raised: log once with the stanza id, answer internal-server-error."""
        # called from except blocks only, so the traceback is the handler's
        log.error("handler failed on %s id=%s", stanza.name, stanza.get("id"), exc_info=True)  # noqa: LOG014
        return self.bounce(stanza, StanzaError("internal-server-error"), origin)

    # -- replies -------------------------------------------------------------------------------
    def bounce(self, stanza: Element, error: StanzaError, origin: Session | None) -> Pending:
        """Answer ``stanza`` with ``error`` (never an error to an error or an iq result)."""
        if is_error_or_result(stanza):
            return None
        self._answer(error_reply(stanza, error), origin)
        return None

    def _answer(self, reply: Element, origin: Session | None) -> None:
        """A reply of the server's: to the session the request came from, or routed back
        (past the policy that the request already went through)."""
        if origin is not None:
            self.deliver(origin, reply)
        elif "to" in reply.attrs and reply.attrs.get("from"):
            self.route(reply, None, policy=False)


def _through(
    chain: Sequence[Callable[[Session, Element], Element | None]],
    session: Session,
    stanza: Element,
) -> Element | None:
    """Run an outgoing chain; None when a step consumed the stanza."""
    for step in chain:
        try:
            passed = step(session, stanza)
        except Exception:
            log.exception("outgoing filter %r failed on %s", step, stanza.name)
            continue
        if passed is None:
            return None
        stanza = passed
    return stanza


def deliver_all(router: Router, targets: Sequence[Session], stanza: Element, data: bytes) -> None:
    """Deliver one stanza, serialized once as ``data``, to several sessions."""
    for session in targets:
        router.deliver(session, stanza, data)
